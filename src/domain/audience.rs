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

/// A parsed audience. Build it with [`parse_audience`]; `Display` gives the canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceExpr {
    /// Exactly these contacts, normalised with [`normalize_address`].
    Addresses(Vec<String>),
    /// Contacts having every label of at least one group (no groups: no label needed), none of
    /// `exclude`, and meeting every condition. All three empty means every contact.
    Labels {
        any_of: Vec<Vec<String>>,
        exclude: Vec<String>,
        conditions: Vec<Condition>,
    },
}

/// A narrowing condition on a contact's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Attribute `key` (normalised with [`normalize_attr_key`]) equals `value` exactly.
    Attr { key: String, value: String },
    /// Language code, normalised by [`normalize_lang`]; `pt` also matches `pt-br` and `pt_BR`.
    Lang(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudienceError {
    #[error("empty audience: give labels (vip,new or vip+new), -label to exclude, attr.KEY=value, lang=xx, all, or addresses")]
    Empty,
    #[error("bad label {label:?}: {reason}")]
    BadLabel { label: String, reason: &'static str },
    #[error("bad address {0:?}: write it as +15550001, 15550001, tg:123 or wa:15550001")]
    BadAddress(String),
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
}

/// Parses an audience expression (see the module doc for the grammar).
pub fn parse_audience(spec: &str) -> Result<AudienceExpr, AudienceError> {
    let mut addresses = Vec::new();
    let mut any_of: Vec<Vec<String>> = Vec::new();
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
                    return Err(AudienceError::BadLabel {
                        label: item.to_string(),
                        reason: "exclude one label at a time: -a -b",
                    });
                }
                push_unique(&mut exclude, normalize_label(label)?);
            } else if item == "*" || item.eq_ignore_ascii_case("all") {
                all = true;
            } else if looks_like_address(item) {
                let address = normalize_address(item)
                    .ok_or_else(|| AudienceError::BadAddress(item.to_string()))?;
                push_unique(&mut addresses, address);
            } else {
                let mut group = Vec::new();
                for label in item.split('+') {
                    push_unique(&mut group, normalize_label(label)?);
                }
                push_unique(&mut any_of, group);
            }
        }
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

    /// SQL boolean expression over the alias `c` (table `contacts`), with placeholders numbered
    /// from `$first_param`, and the values to bind to them in order. The expression is
    /// self-contained (parenthesised where needed) so a caller can `AND` it into any query, and
    /// never yields NULL, so `NOT (...)` is safe too. Portable between SQLite and PostgreSQL.
    pub fn to_sql(&self, first_param: usize) -> (String, Vec<String>) {
        let mut b = Binds {
            next: first_param,
            values: Vec::new(),
        };
        let sql = match self {
            // `IN ()` is a syntax error in PostgreSQL, so an empty list is spelled out as false.
            AudienceExpr::Addresses(list) if list.is_empty() => "1 = 0".to_string(),
            AudienceExpr::Addresses(list) => {
                let params: Vec<String> = list.iter().map(|a| b.bind(a)).collect();
                format!("c.address IN ({})", params.join(", "))
            }
            AudienceExpr::Labels {
                any_of,
                exclude,
                conditions,
            } => {
                let mut clauses = Vec::new();
                if !any_of.is_empty() {
                    let groups: Vec<String> = any_of
                        .iter()
                        .map(|group| {
                            let has: Vec<String> =
                                group.iter().map(|l| has_label_sql(&b.bind(l))).collect();
                            join_clauses(has, " AND ")
                        })
                        .collect();
                    clauses.push(join_clauses(groups, " OR "));
                }
                if !exclude.is_empty() {
                    let params: Vec<String> = exclude.iter().map(|l| b.bind(l)).collect();
                    clauses.push(format!(
                        "NOT EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label IN ({}))",
                        params.join(", ")
                    ));
                }
                for condition in conditions {
                    clauses.push(match condition {
                        Condition::Attr { key, value } => format!(
                            "EXISTS (SELECT 1 FROM contact_attrs a WHERE a.contact_id = c.id AND a.key = {} AND a.value = {})",
                            b.bind(key),
                            b.bind(value)
                        ),
                        // Appending `-` to both sides makes `pt` match `pt` and `pt-br` but not
                        // `ptx`; `_` is folded to `-` first because WhatsApp spells it `pt_BR`.
                        // The normalised code has no `%` or `_`, so LIKE sees no stray wildcard.
                        Condition::Lang(lang) => format!(
                            "(REPLACE(LOWER(COALESCE(c.lang, '')), '_', '-') || '-') LIKE {}",
                            b.bind(&format!("{lang}-%"))
                        ),
                    });
                }
                join_clauses(clauses, " AND ")
            }
        };
        (sql, b.values)
    }

    /// The same test as [`AudienceExpr::to_sql`], in memory: for a contact about to be enrolled
    /// by a trigger. Labels, keys and values compare exactly, as in SQL, so the store must keep
    /// labels normalised ([`normalize_label`]).
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
                let has = |label: &String| labels.contains(label);
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
            Condition::Attr { key, value } => attrs.get(key) == Some(value),
            // Mirrors the SQL: lowercase ASCII, `_` as `-`, then a prefix test on whole subtags.
            Condition::Lang(want) => lang.is_some_and(|have| {
                let have = format!("{}-", have.to_ascii_lowercase().replace('_', "-"));
                have.starts_with(&format!("{want}-"))
            }),
        }
    }
}

impl fmt::Display for AudienceExpr {
    /// The canonical form: it re-parses to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudienceExpr::Addresses(list) => f.write_str(&list.join(",")),
            AudienceExpr::Labels {
                any_of,
                exclude,
                conditions,
            } => {
                let mut parts = Vec::new();
                if !any_of.is_empty() {
                    let groups: Vec<String> = any_of.iter().map(|g| g.join("+")).collect();
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

/// Lowercases a label and checks its spelling: `a-z 0-9 _ -`, not starting with `-` (that means
/// "exclude"), at least one letter (a word of digits reads as an address), and not `all`.
pub fn normalize_label(raw: &str) -> Result<String, AudienceError> {
    let trimmed = raw.trim();
    let label = trimmed.to_lowercase();
    let bad = |reason| {
        Err(AudienceError::BadLabel {
            label: trimmed.to_string(),
            reason,
        })
    };
    if label.is_empty() {
        return bad("empty label (look for a stray +, - or comma)");
    }
    if label.starts_with('-') {
        return bad("labels cannot start with -");
    }
    if !label
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return bad("labels use only a-z, 0-9, _ and -");
    }
    if !label.chars().any(|c| c.is_ascii_lowercase()) {
        return bad("labels need a letter (a word of digits is read as an address)");
    }
    if label == "all" {
        return bad("`all` is reserved: it means every contact");
    }
    Ok(label)
}

/// Normalises a contact address, or `None` if it is not one:
/// - `tg:<chat id>` (negative for groups) stays as is, prefix lowercased;
/// - `wa:<digits>` keeps only the digits (`wa:+1 555-0001` → `wa:15550001`);
/// - a phone number `+15550001` or `15550001` loses spaces, dashes, dots and parentheses and
///   keeps its `+` if it had one.
///
/// Phone numbers have 3 to 15 digits (E.164 allows at most 15; short ones are test numbers).
pub fn normalize_address(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let prefix = raw.get(..3).map(str::to_ascii_lowercase);
    match prefix.as_deref() {
        Some("tg:") => {
            let id = raw[3..].trim();
            let digits = id.strip_prefix('-').unwrap_or(id);
            let ok = (1..=20).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
            ok.then(|| format!("tg:{id}"))
        }
        Some("wa:") => phone_digits(&raw[3..]).map(|d| format!("wa:{d}")),
        _ => {
            let digits = phone_digits(raw)?;
            Some(if raw.starts_with('+') {
                format!("+{digits}")
            } else {
                digits
            })
        }
    }
}

/// Normalises an attribute key as used in `attr.KEY`, CSV column names and `{{attr.KEY}}`:
/// lowercase, spaces and dashes become `_`; the result must be non-empty `a-z 0-9 _`.
pub fn normalize_attr_key(raw: &str) -> Option<String> {
    let key = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .to_lowercase()
        .replace('-', "_");
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then_some(key)
}

/// Normalises a language code for comparison: lowercase, `_` → `-` (`pt_BR` → `pt-br`). A code is
/// 2–3 letters, then optional subtags of 1–8 letters or digits.
pub fn normalize_lang(raw: &str) -> Option<String> {
    let lang = raw.trim().to_ascii_lowercase().replace('_', "-");
    let mut parts = lang.split('-');
    let primary = parts.next()?;
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_lowercase());
    let rest_ok = parts.all(|p| {
        (1..=8).contains(&p.len())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    (primary_ok && rest_ok).then_some(lang)
}

/// Whether an item is meant as an address (and so must parse as one): it starts with `+`,
/// `tg:` or `wa:`, or it is a phone number (starts with a digit or `(` and has no letter).
fn looks_like_address(item: &str) -> bool {
    let lower = item.to_ascii_lowercase();
    item.starts_with('+')
        || lower.starts_with("tg:")
        || lower.starts_with("wa:")
        || (item.starts_with(|c: char| c.is_ascii_digit() || c == '(')
            && !item.chars().any(|c| c.is_alphabetic()))
}

/// The digits of a phone number written with optional `+`, spaces, dashes, dots, parentheses.
fn phone_digits(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let body = raw.strip_prefix('+').unwrap_or(raw);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '(') {
        return None;
    }
    let mut digits = String::new();
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (3..=15).contains(&digits.len()).then_some(digits)
}

fn parse_condition(token: &str) -> Result<Condition, AudienceError> {
    let (raw_key, value) = token.split_once('=').unwrap_or((token, ""));
    let key = raw_key.trim().to_ascii_lowercase();
    if value.is_empty() {
        return Err(AudienceError::EmptyValue(raw_key.to_string()));
    }
    if key == "lang" || key == "language" {
        return normalize_lang(value)
            .map(Condition::Lang)
            .ok_or_else(|| AudienceError::BadLang(value.to_string()));
    }
    let bad = |hint: String| AudienceError::BadCondition {
        token: token.to_string(),
        hint,
    };
    if let Some(attr) = key.strip_prefix("attr.") {
        let key = normalize_attr_key(attr)
            .ok_or_else(|| bad("attribute names use a-z, 0-9 and _".to_string()))?;
        return Ok(Condition::Attr {
            key,
            value: value.to_string(),
        });
    }
    let hint = match normalize_attr_key(&key) {
        Some(k) => format!(
            "did you mean attr.{k}={}? conditions are attr.KEY=value or lang=xx",
            quote(value)
        ),
        None => "conditions are attr.KEY=value or lang=xx".to_string(),
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

fn has_label_sql(param: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label = {param})"
    )
}

/// Joins clauses with `op`, parenthesising only a compound result; no clause at all is true.
fn join_clauses(clauses: Vec<String>, op: &str) -> String {
    match clauses.len() {
        0 => "1 = 1".to_string(),
        1 => clauses.into_iter().next().unwrap_or_default(),
        _ => format!("({})", clauses.join(op)),
    }
}

/// Hands out `$n` placeholders in order and remembers their values.
struct Binds {
    next: usize,
    values: Vec<String>,
}

impl Binds {
    fn bind(&mut self, value: &str) -> String {
        self.values.push(value.to_string());
        let placeholder = format!("${}", self.next);
        self.next += 1;
        placeholder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(spec: &str) -> (Vec<Vec<String>>, Vec<String>, Vec<Condition>) {
        match parse_audience(spec) {
            Ok(AudienceExpr::Labels {
                any_of,
                exclude,
                conditions,
            }) => (any_of, exclude, conditions),
            other => panic!("{spec:?} gave {other:?}"),
        }
    }

    fn strs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn groups(items: &[&[&str]]) -> Vec<Vec<String>> {
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
            strs(&["blocked", "spam", "bounced"])
        );
    }

    #[test]
    fn labels_are_lowercased_and_deduplicated() {
        assert_eq!(
            labels("VIP+Vip,vip,New_2024").0,
            groups(&[&["vip"], &["new_2024"]])
        );
        assert_eq!(labels("-Blocked -blocked").1, strs(&["blocked"]));
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
            parse_audience("+15550001 15550002,tg:123 wa:15550003, TG:-100200 WA:+1-555"),
            Ok(AudienceExpr::Addresses(strs(&[
                "+15550001",
                "15550002",
                "tg:123",
                "wa:15550003",
                "tg:-100200",
                "wa:1555"
            ])))
        );
        // Labels need a letter, so a word of digits is never ambiguous: it is an address.
        assert_eq!(
            parse_audience("2024"),
            Ok(AudienceExpr::Addresses(strs(&["2024"])))
        );
        assert_eq!(
            parse_audience("+1-555-0001,+15550001"),
            Ok(AudienceExpr::Addresses(strs(&["+15550001"])))
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
            ("tg:abc", AudienceError::BadAddress("tg:abc".into())),
            ("+1555x", AudienceError::BadAddress("+1555x".into())),
            ("12", AudienceError::BadAddress("12".into())),
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
            "bad address \"12\": write it as +15550001, 15550001, tg:123 or wa:15550001"
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
                "vip lang=pt-br attr.city=\"New York\"",
            ),
            (
                r#"attr.note="say \"hi\" \\o/""#,
                r#"attr.note="say \"hi\" \\o/""#,
            ),
            (r"attr.path=a\b", r"attr.path=a\b"),
            ("tg:1, +15550001 wa:(555) ", "tg:1,+15550001,wa:555"),
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
        assert!(expr.matches("+15550001", &[], &none, None));
        assert!(expr.matches("tg:7", &strs(&["blocked"]), &none, None));
        assert!(!expr.matches("+15550002", &strs(&["vip"]), &none, Some("pt")));
    }

    #[test]
    fn sql_for_addresses() {
        let expr = parse_audience("+15550001,tg:7").expect("parses");
        assert_eq!(
            expr.to_sql(3),
            (
                "c.address IN ($3, $4)".to_string(),
                strs(&["+15550001", "tg:7"])
            )
        );
        assert_eq!(
            AudienceExpr::Addresses(vec![]).to_sql(1),
            ("1 = 0".to_string(), vec![])
        );
    }

    #[test]
    fn sql_for_every_contact() {
        assert_eq!(AudienceExpr::all().to_sql(1), ("1 = 1".to_string(), vec![]));
    }

    #[test]
    fn sql_for_one_label() {
        assert_eq!(
            parse_audience("vip").expect("parses").to_sql(1),
            (
                "EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label = $1)"
                    .to_string(),
                strs(&["vip"])
            )
        );
    }

    #[test]
    fn sql_for_groups_excludes_and_conditions() {
        let has = |n: usize| {
            format!("EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label = ${n})")
        };
        let expr = parse_audience("vip+new,staff -blocked -spam attr.city=Lisbon lang=pt")
            .expect("parses");
        let (sql, binds) = expr.to_sql(2);
        let want = format!(
            "((({} AND {}) OR {}) AND NOT EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label IN ($5, $6)) AND EXISTS (SELECT 1 FROM contact_attrs a WHERE a.contact_id = c.id AND a.key = $7 AND a.value = $8) AND (REPLACE(LOWER(COALESCE(c.lang, '')), '_', '-') || '-') LIKE $9)",
            has(2),
            has(3),
            has(4)
        );
        assert_eq!(sql, want);
        assert_eq!(
            binds,
            strs(&["vip", "new", "staff", "blocked", "spam", "city", "Lisbon", "pt-%"])
        );
    }

    #[test]
    fn sql_placeholders_match_binds_for_every_shape() {
        for spec in [
            "vip",
            "vip,new",
            "vip+new",
            "-blocked",
            "all",
            "lang=pt",
            "attr.city=Lisbon",
            "vip+new,staff -blocked lang=pt attr.a=1 attr.b=2",
            "+1555,tg:1,wa:1555",
        ] {
            let expr = parse_audience(spec).expect(spec);
            for first in [1, 4] {
                let (sql, binds) = expr.to_sql(first);
                let mut used: Vec<usize> = sql
                    .split('$')
                    .skip(1)
                    .map(|rest| {
                        let digits: String =
                            rest.chars().take_while(char::is_ascii_digit).collect();
                        digits.parse().expect("placeholder number")
                    })
                    .collect();
                used.sort_unstable();
                let want: Vec<usize> = (first..first + binds.len()).collect();
                assert_eq!(used, want, "{spec:?}: {sql}");
                assert_eq!(
                    sql.matches('(').count(),
                    sql.matches(')').count(),
                    "{spec:?}"
                );
            }
        }
    }

    #[test]
    fn normalizes_addresses() {
        assert_eq!(
            normalize_address(" +1 (555) 000-1 "),
            Some("+15550001".into())
        );
        assert_eq!(normalize_address("15550001"), Some("15550001".into()));
        assert_eq!(
            normalize_address("Wa:+1 555 0001"),
            Some("wa:15550001".into())
        );
        assert_eq!(normalize_address("tg:-1001"), Some("tg:-1001".into()));
        for bad in [
            "",
            "+",
            "12",
            "tg:",
            "tg:1a",
            "wa:abc",
            "bob",
            "+1234567890123456",
            "-15550001",
            "1555\u{0661}",
        ] {
            assert_eq!(normalize_address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn normalizes_attr_keys_and_langs() {
        assert_eq!(normalize_attr_key("First Name"), Some("first_name".into()));
        assert_eq!(normalize_attr_key("e-mail"), Some("e_mail".into()));
        assert_eq!(normalize_attr_key("pr\u{e9}nom"), None);
        assert_eq!(normalize_attr_key(" "), None);
        assert_eq!(normalize_lang("pt_BR"), Some("pt-br".into()));
        assert_eq!(normalize_lang("zh-Hant-TW"), Some("zh-hant-tw".into()));
        for bad in ["", "p", "port", "pt-", "pt--br", "p1"] {
            assert_eq!(normalize_lang(bad), None, "{bad:?}");
        }
    }
}
