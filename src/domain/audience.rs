//! Audience expressions: which contacts a campaign or a drip targets (SPEC §3 "Audience"), and the
//! spelling rules for the words they are made of (labels, addresses, attribute keys, languages).
//!
//! Grammar — items separated by spaces or commas:
//!
//! | item | meaning |
//! |---|---|
//! | `vip` | has the label `vip` |
//! | `vip,new` (or `vip new`) | has any of them |
//! | `vip+new` | has all of them |
//! | `-blocked` | does not have `blocked` (several allowed) |
//! | `attr.city=Lisbon` | attribute `city` is exactly `Lisbon` (quote values with spaces: `attr.city="New York"`) |
//! | `lang=pt` | language `pt`, including regional forms such as `pt-BR` / `pt_BR` |
//! | `all` or `*` | every contact (narrowed by any exclusions and conditions) |
//! | `+15550001`, `15550001`, `tg:123`, `wa:15550001` | explicit addresses; cannot be mixed with the rest |
//!
//! So `vip+new,staff -blocked lang=pt` is "(vip and new) or staff, not blocked, speaking Portuguese".
//! Labels are lowercase `a-z 0-9 _ -` and need at least one letter: a word of digits is an address.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::address::{looks_like_address, Address, AddressError};
use super::label::{AttrKey, Label, LabelError};
use super::lang::Lang;

/// A parsed audience. Build it with [`parse_audience`]; `Display` gives the canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceExpr {
    /// Exactly these contacts.
    Addresses(Vec<Address>),
    /// Contacts having every label of at least one group (no groups: no label needed), none of
    /// `exclude`, and meeting every condition. All three empty means every contact.
    Labels {
        any_of: Vec<Vec<Label>>,
        exclude: Vec<Label>,
        conditions: Vec<Condition>,
    },
}

/// A narrowing condition on a contact's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Attribute `key` equals `value` exactly (values keep their case).
    Attr { key: AttrKey, value: String },
    /// Language code; `pt` also matches `pt-br` and `pt_BR` ([`Lang::covers`]).
    Lang(Lang),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudienceError {
    #[error("empty audience: give labels (vip,new or vip+new), -label to exclude, attr.KEY=value, lang=xx, all, or addresses")]
    Empty,
    #[error(transparent)]
    BadLabel(#[from] LabelError),
    #[error("bad address: {0}")]
    BadAddress(#[from] AddressError),
    #[error("addresses cannot be mixed with labels, conditions or all: give one or the other")]
    MixedAddresses,
    #[error("`all` cannot be combined with labels: use `all -blocked`, or just the labels")]
    AllWithLabels,
    #[error("bad condition {token:?}: {hint}")]
    BadCondition { token: String, hint: String },
    #[error("{0} needs a value, e.g. attr.city=Lisbon or lang=pt")]
    EmptyValue(String),
    #[error("bad language {0:?}: use a code like pt or pt-BR")]
    BadLang(String),
    #[error("unclosed quote in {0:?}")]
    UnclosedQuote(String),
    #[error("too many {what}: at most {max} in one audience (use a label for a large group)")]
    TooLarge { what: &'static str, max: usize },
}

/// The most labels and conditions one audience may name: each is a term of the query, and no
/// real segment needs more. A larger group gets a label of its own.
pub const MAX_TERMS: usize = 100;
/// The most explicit addresses one audience may list.
pub const MAX_ADDRESSES: usize = 1000;

/// Parses an audience expression (see the module doc for the grammar).
pub fn parse_audience(spec: &str) -> Result<AudienceExpr, AudienceError> {
    let mut addresses = Vec::new();
    let mut any_of: Vec<Vec<Label>> = Vec::new();
    let mut exclude = Vec::new();
    let mut conditions = Vec::new();
    let mut all = false;

    for token in tokenize(spec)? {
        // A condition's value may hold commas, so a token with `=` is never split further.
        if token.contains('=') {
            let condition = parse_condition(&token)?;
            if !conditions.contains(&condition) {
                conditions.push(condition);
            }
            continue;
        }
        for item in token.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Some(label) = item.strip_prefix('-') {
                if label.contains('+') {
                    return Err(AudienceError::BadLabel(LabelError {
                        label: item.chars().take(40).collect(),
                        reason: "exclude one label at a time: -a -b",
                    }));
                }
                push_unique(&mut exclude, Label::parse(label)?);
            } else if item == "*" || item.eq_ignore_ascii_case("all") {
                all = true;
            } else if looks_like_address(item) {
                push_unique(&mut addresses, Address::parse(item)?);
            } else {
                let mut group = Vec::new();
                for label in item.split('+') {
                    push_unique(&mut group, Label::parse(label)?);
                }
                push_unique(&mut any_of, group);
            }
        }
    }

    if addresses.len() > MAX_ADDRESSES {
        return Err(AudienceError::TooLarge {
            what: "addresses",
            max: MAX_ADDRESSES,
        });
    }
    let terms = any_of.iter().map(Vec::len).sum::<usize>() + exclude.len() + conditions.len();
    if terms > MAX_TERMS {
        return Err(AudienceError::TooLarge {
            what: "labels and conditions",
            max: MAX_TERMS,
        });
    }
    if !addresses.is_empty() {
        if all || !any_of.is_empty() || !exclude.is_empty() || !conditions.is_empty() {
            return Err(AudienceError::MixedAddresses);
        }
        return Ok(AudienceExpr::Addresses(addresses));
    }
    if all && !any_of.is_empty() {
        return Err(AudienceError::AllWithLabels);
    }
    if !all && any_of.is_empty() && exclude.is_empty() && conditions.is_empty() {
        return Err(AudienceError::Empty);
    }
    Ok(AudienceExpr::Labels {
        any_of,
        exclude,
        conditions,
    })
}

impl FromStr for AudienceExpr {
    type Err = AudienceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_audience(s)
    }
}

impl AudienceExpr {
    /// Every contact.
    pub fn all() -> Self {
        AudienceExpr::Labels {
            any_of: Vec::new(),
            exclude: Vec::new(),
            conditions: Vec::new(),
        }
    }

    /// Whether a contact is in the audience, in memory (for a contact about to be enrolled by a
    /// trigger); the store's query over many contacts applies the same test. Labels and keys are
    /// canonical on both sides, so they compare exactly; attribute values compare exactly.
    pub fn matches(
        &self,
        address: &str,
        labels: &[String],
        attrs: &BTreeMap<String, String>,
        lang: Option<&str>,
    ) -> bool {
        match self {
            AudienceExpr::Addresses(list) => list.iter().any(|a| a == address),
            AudienceExpr::Labels {
                any_of,
                exclude,
                conditions,
            } => {
                let has = |label: &Label| labels.iter().any(|l| label == l.as_str());
                (any_of.is_empty() || any_of.iter().any(|group| group.iter().all(has)))
                    && !exclude.iter().any(has)
                    && conditions.iter().all(|c| c.matches(attrs, lang))
            }
        }
    }
}

impl Condition {
    fn matches(&self, attrs: &BTreeMap<String, String>, lang: Option<&str>) -> bool {
        match self {
            Condition::Attr { key, value } => attrs.get(key.as_str()) == Some(value),
            Condition::Lang(want) => lang.is_some_and(|have| want.covers(have)),
        }
    }
}

impl fmt::Display for AudienceExpr {
    /// The canonical form: it re-parses to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudienceExpr::Addresses(list) => {
                let list: Vec<&str> = list.iter().map(Address::as_str).collect();
                f.write_str(&list.join(","))
            }
            AudienceExpr::Labels {
                any_of,
                exclude,
                conditions,
            } => {
                let mut parts = Vec::new();
                if !any_of.is_empty() {
                    let groups: Vec<String> = any_of
                        .iter()
                        .map(|g| g.iter().map(Label::as_str).collect::<Vec<_>>().join("+"))
                        .collect();
                    parts.push(groups.join(","));
                }
                parts.extend(exclude.iter().map(|l| format!("-{l}")));
                parts.extend(conditions.iter().map(Condition::to_string));
                if parts.is_empty() {
                    f.write_str("all")
                } else {
                    f.write_str(&parts.join(" "))
                }
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Attr { key, value } => write!(f, "attr.{key}={}", quote(value)),
            Condition::Lang(lang) => write!(f, "lang={lang}"),
        }
    }
}

fn parse_condition(token: &str) -> Result<Condition, AudienceError> {
    let (raw_key, value) = token.split_once('=').unwrap_or((token, ""));
    let key = raw_key.trim().to_ascii_lowercase();
    if value.is_empty() {
        return Err(AudienceError::EmptyValue(raw_key.to_string()));
    }
    if key == "lang" || key == "language" {
        return Lang::parse(value)
            .map(Condition::Lang)
            .map_err(|_| AudienceError::BadLang(value.chars().take(40).collect()));
    }
    let bad = |hint: String| AudienceError::BadCondition {
        token: token.to_string(),
        hint,
    };
    if let Some(attr) = key.strip_prefix("attr.") {
        let key = AttrKey::parse(attr)
            .map_err(|_| bad("attribute names use a-z, 0-9 and _".to_string()))?;
        return Ok(Condition::Attr {
            key,
            value: value.to_string(),
        });
    }
    let hint = match AttrKey::parse(&key) {
        Ok(k) => format!(
            "did you mean attr.{k}={}? conditions are attr.KEY=value or lang=xx",
            quote(value)
        ),
        Err(_) => "conditions are attr.KEY=value or lang=xx".to_string(),
    };
    Err(bad(hint))
}

/// Splits on whitespace; `"..."` groups a value with spaces (`\"` and `\\` escape inside).
fn tokenize(spec: &str) -> Result<Vec<String>, AudienceError> {
    let unclosed = || AudienceError::UnclosedQuote(spec.trim().to_string());
    let mut tokens = Vec::new();
    let mut current = String::new();
    // Tracks `""`, which is a (empty) token although `current` stays empty.
    let mut in_token = false;
    let mut chars = spec.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '"' => {
                in_token = true;
                loop {
                    match chars.next().ok_or_else(unclosed)? {
                        '"' => break,
                        '\\' => match chars.next().ok_or_else(unclosed)? {
                            c @ ('"' | '\\') => current.push(c),
                            c => {
                                current.push('\\');
                                current.push(c);
                            }
                        },
                        c => current.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_token {
                    tokens.push(std::mem::take(&mut current));
                    in_token = false;
                }
            }
            c => {
                current.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        tokens.push(current);
    }
    Ok(tokens)
}

/// Quotes a condition value when the tokenizer would otherwise split or unquote it.
fn quote(value: &str) -> String {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == '"') {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audience_too_large_to_be_a_segment_is_refused() {
        let labels: Vec<String> = (0..5000).map(|i| format!("l{i}")).collect();
        let err = parse_audience(&labels.join("+")).unwrap_err();
        assert!(matches!(err, AudienceError::TooLarge { .. }), "{err}");
        let hundred: Vec<String> = (0..MAX_TERMS).map(|i| format!("l{i}")).collect();
        assert!(parse_audience(&hundred.join(",")).is_ok());
        let addresses: Vec<String> = (0..=MAX_ADDRESSES)
            .map(|i| format!("+1555{i:07}"))
            .collect();
        let err = parse_audience(&addresses.join(" ")).unwrap_err();
        assert!(matches!(err, AudienceError::TooLarge { .. }), "{err}");
    }

    fn labels(spec: &str) -> (Vec<Vec<Label>>, Vec<Label>, Vec<Condition>) {
        match parse_audience(spec) {
            Ok(AudienceExpr::Labels {
                any_of,
                exclude,
                conditions,
            }) => (any_of, exclude, conditions),
            other => panic!("{spec:?} gave {other:?}"),
        }
    }

    fn strs<T: for<'a> From<&'a str>>(items: &[&str]) -> Vec<T> {
        items.iter().map(|s| T::from(s)).collect()
    }

    fn groups(items: &[&[&str]]) -> Vec<Vec<Label>> {
        items.iter().map(|g| strs(g)).collect()
    }

    fn attr(key: &str, value: &str) -> Condition {
        Condition::Attr {
            key: key.into(),
            value: value.into(),
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_single_label() {
        assert_eq!(labels("vip"), (groups(&[&["vip"]]), vec![], vec![]));
    }

    #[test]
    fn parses_any_of_all_of_and_exclude() {
        assert_eq!(labels("vip,new").0, groups(&[&["vip"], &["new"]]));
        assert_eq!(labels("vip new").0, groups(&[&["vip"], &["new"]]));
        assert_eq!(labels("vip, new").0, groups(&[&["vip"], &["new"]]));
        assert_eq!(labels("vip+new").0, groups(&[&["vip", "new"]]));
        assert_eq!(
            labels("vip+new,staff -blocked"),
            (
                groups(&[&["vip", "new"], &["staff"]]),
                strs(&["blocked"]),
                vec![]
            )
        );
        assert_eq!(
            labels("-blocked -spam,-bounced").1,
            strs::<Label>(&["blocked", "spam", "bounced"])
        );
    }

    #[test]
    fn labels_are_lowercased_and_deduplicated() {
        assert_eq!(
            labels("VIP+Vip,vip,New_2024").0,
            groups(&[&["vip"], &["new_2024"]])
        );
        assert_eq!(labels("-Blocked -blocked").1, strs::<Label>(&["blocked"]));
    }

    #[test]
    fn parses_conditions() {
        let (any_of, exclude, conditions) = labels("vip attr.city=Lisbon lang=PT_br");
        assert_eq!(any_of, groups(&[&["vip"]]));
        assert!(exclude.is_empty());
        assert_eq!(
            conditions,
            vec![attr("city", "Lisbon"), Condition::Lang("pt-br".into())]
        );
        assert_eq!(labels("attr.City=lisbon").2, vec![attr("city", "lisbon")]);
        assert_eq!(
            labels(r#"attr.city="New York""#).2,
            vec![attr("city", "New York")]
        );
        assert_eq!(labels("attr.tags=a,b").2, vec![attr("tags", "a,b")]);
        assert_eq!(labels("language=en").2, vec![Condition::Lang("en".into())]);
    }

    #[test]
    fn all_and_star_mean_every_contact() {
        assert_eq!(parse_audience("all"), Ok(AudienceExpr::all()));
        assert_eq!(parse_audience("*"), Ok(AudienceExpr::all()));
        assert_eq!(parse_audience("  ALL  "), Ok(AudienceExpr::all()));
        assert_eq!(labels("all -blocked"), (vec![], strs(&["blocked"]), vec![]));
        assert_eq!(labels("-blocked"), (vec![], strs(&["blocked"]), vec![]));
        assert_eq!(
            labels("* lang=pt"),
            (vec![], vec![], vec![Condition::Lang("pt".into())])
        );
    }

    #[test]
    fn parses_addresses() {
        assert_eq!(
            parse_audience("+15550001 15550002,tg:123 wa:15550003, TG:-100200 WA:+1-555-0004"),
            Ok(AudienceExpr::Addresses(strs(&[
                "wa:15550001",
                "wa:15550002",
                "tg:123",
                "wa:15550003",
                "tg:-100200",
                "wa:15550004"
            ])))
        );
        // Labels need a letter, so a word of digits is never ambiguous: it is an address.
        assert_eq!(
            parse_audience("2024000"),
            Ok(AudienceExpr::Addresses(strs(&["wa:2024000"])))
        );
        assert_eq!(
            parse_audience("+1-555-0001,+15550001"),
            Ok(AudienceExpr::Addresses(strs(&["wa:15550001"])))
        );
    }

    #[test]
    fn rejects_mistakes_with_one_line_reasons() {
        let cases: &[(&str, AudienceError)] = &[
            ("", AudienceError::Empty),
            ("  , ", AudienceError::Empty),
            ("vip +15550001", AudienceError::MixedAddresses),
            ("+15550001 -blocked", AudienceError::MixedAddresses),
            ("+15550001 lang=pt", AudienceError::MixedAddresses),
            ("all +15550001", AudienceError::MixedAddresses),
            ("all,vip", AudienceError::AllWithLabels),
            (
                "tg:abc",
                AudienceError::BadAddress(AddressError::BadTelegram("tg:abc".into())),
            ),
            (
                "+1555x",
                AudienceError::BadAddress(AddressError::BadPhone("+1555x".into())),
            ),
            (
                "12",
                AudienceError::BadAddress(AddressError::BadPhone("12".into())),
            ),
            (
                "lang=portuguese",
                AudienceError::BadLang("portuguese".into()),
            ),
            ("attr.city=", AudienceError::EmptyValue("attr.city".into())),
            (
                r#"attr.city="""#,
                AudienceError::EmptyValue("attr.city".into()),
            ),
            (
                r#"attr.city="Lisbon"#,
                AudienceError::UnclosedQuote(r#"attr.city="Lisbon"#.into()),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_audience(spec).as_ref(), Err(want), "{spec:?}");
        }
        for spec in [
            "vip+",
            "vip,-",
            "caf\u{e9}",
            "v.i.p",
            "-2024",
            "-vip+new",
            "-all",
            "vip+all",
        ] {
            assert!(
                matches!(parse_audience(spec), Err(AudienceError::BadLabel { .. })),
                "{spec:?} gave {:?}",
                parse_audience(spec)
            );
        }
        for spec in ["city=Lisbon", "attr.=x", "attr.c!ty=x"] {
            assert!(
                matches!(
                    parse_audience(spec),
                    Err(AudienceError::BadCondition { .. })
                ),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn errors_are_actionable_one_liners() {
        let msg = |spec: &str| match parse_audience(spec) {
            Err(e) => e.to_string(),
            Ok(v) => panic!("{spec:?} parsed as {v:?}"),
        };
        assert_eq!(
            msg("city=Lisbon"),
            "bad condition \"city=Lisbon\": did you mean attr.city=Lisbon? conditions are attr.KEY=value or lang=xx"
        );
        assert_eq!(
            msg("vip+"),
            "bad label \"\": empty label (look for a stray +, - or comma)"
        );
        assert_eq!(
            msg("12"),
            "bad address: \"12\" is not a phone number: it needs 7 to 15 digits (+15550001)"
        );
        for spec in ["", "vip +1555", "all,vip", "lang=x", "2024_", "\"open"] {
            assert!(!msg(spec).contains('\n'), "{spec:?}");
        }
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let cases = [
            ("vip", "vip"),
            ("VIP , new", "vip,new"),
            ("vip+new,staff -blocked", "vip+new,staff -blocked"),
            ("-blocked all", "-blocked"),
            ("all", "all"),
            ("*", "all"),
            (
                "lang=pt_BR attr.City=\"New York\" vip",
                "vip lang=pt_BR attr.city=\"New York\"",
            ),
            (
                r#"attr.note="say \"hi\" \\o/""#,
                r#"attr.note="say \"hi\" \\o/""#,
            ),
            (r"attr.path=a\b", r"attr.path=a\b"),
            (
                "tg:1, +15550001 wa:(555)000-2",
                "tg:1,wa:15550001,wa:5550002",
            ),
        ];
        for (spec, canonical) in cases {
            let parsed = parse_audience(spec).expect(spec);
            assert_eq!(parsed.to_string(), canonical, "{spec:?}");
            assert_eq!(parse_audience(&parsed.to_string()), Ok(parsed), "{spec:?}");
        }
    }

    #[test]
    fn matches_label_truth_table() {
        let expr = parse_audience("vip+new,staff -blocked").expect("parses");
        let none = BTreeMap::new();
        let table: &[(&[&str], bool)] = &[
            (&[], false),
            (&["vip"], false),
            (&["new"], false),
            (&["vip", "new"], true),
            (&["staff"], true),
            (&["staff", "blocked"], false),
            (&["vip", "new", "blocked"], false),
            (&["vip", "staff"], true),
            (&["blocked"], false),
        ];
        for (have, want) in table {
            assert_eq!(
                expr.matches("+1555", &strs(have), &none, None),
                *want,
                "{have:?}"
            );
        }
    }

    #[test]
    fn matches_all_and_exclude_only() {
        let none = BTreeMap::new();
        let all = AudienceExpr::all();
        assert!(all.matches("+1555", &[], &none, None));
        let not_blocked = parse_audience("-blocked").expect("parses");
        assert!(not_blocked.matches("+1555", &strs(&["vip"]), &none, None));
        assert!(!not_blocked.matches("+1555", &strs(&["vip", "blocked"]), &none, None));
    }

    #[test]
    fn matches_conditions() {
        let expr = parse_audience("vip attr.city=Lisbon lang=pt").expect("parses");
        let vip = strs(&["vip"]);
        let lisbon = attrs(&[("city", "Lisbon"), ("plan", "gold")]);
        assert!(expr.matches("x", &vip, &lisbon, Some("pt")));
        assert!(expr.matches("x", &vip, &lisbon, Some("pt-BR")));
        assert!(expr.matches("x", &vip, &lisbon, Some("PT_br")));
        assert!(!expr.matches("x", &vip, &lisbon, Some("ptx")));
        assert!(!expr.matches("x", &vip, &lisbon, Some("en")));
        assert!(!expr.matches("x", &vip, &lisbon, None));
        assert!(!expr.matches("x", &[], &lisbon, Some("pt")));
        assert!(!expr.matches("x", &vip, &attrs(&[("city", "lisbon")]), Some("pt")));
        assert!(!expr.matches("x", &vip, &BTreeMap::new(), Some("pt")));

        let regional = parse_audience("lang=pt-BR").expect("parses");
        assert!(regional.matches("x", &[], &BTreeMap::new(), Some("pt_BR")));
        assert!(!regional.matches("x", &[], &BTreeMap::new(), Some("pt")));
    }

    #[test]
    fn matches_addresses() {
        let expr = parse_audience("+15550001 tg:7").expect("parses");
        let none = BTreeMap::new();
        assert!(expr.matches("wa:15550001", &[], &none, None));
        assert!(expr.matches("tg:7", &strs(&["blocked"]), &none, None));
        assert!(!expr.matches("wa:15550002", &strs(&["vip"]), &none, Some("pt")));
    }
}
