//! Message content: `{{variable}}` rendering per contact, WhatsApp template placeholders
//! `{{1}}..{{n}}`, and the deterministic choice of a text variant (SPEC §3 "Content").
//!
//! Variables are `name`, `lang`, `address` and `attr.KEY`, case-insensitive, with spaces allowed
//! inside the braces (`{{ Name }}`). A variable with no value for a contact is an error, never a
//! blank sent to a customer.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use sha2::{Digest, Sha256};

use super::label::AttrKey;

/// `{{ ... }}` with no braces inside and something other than spaces in it; the name is trimmed.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\{\{\s*([^{}\s][^{}]*?)\s*\}\}").expect("placeholder regex is valid")
});

/// Variables usable in free text besides `attr.KEY`.
const BUILTIN_VARIABLES: &[&str] = &["name", "lang", "address"];

/// What a render may read from one contact.
#[derive(Debug, Clone, Copy)]
pub struct ContactFields<'a> {
    pub name: Option<&'a str>,
    pub address: &'a str,
    pub lang: Option<&'a str>,
    pub attrs: &'a BTreeMap<AttrKey, String>,
}

/// Variables a render could not fill, in order of first use: absent or empty for this contact,
/// or not a variable at all (e.g. `foo`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_missing(.0))]
pub struct MissingVars(pub Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template placeholder {{{{{0}}}}} is not a number: template bodies use {{{{1}}}}..{{{{n}}}}")]
    NotNumbered(String),
    #[error("template placeholders start at {{{{1}}}}, not {{{{0}}}}")]
    ZeroIndex,
    #[error("template placeholders must run {{{{1}}}}..{{{{n}}}} without gaps: {{{{{missing}}}}} is missing (highest is {{{{{highest}}}}})")]
    Gap { missing: usize, highest: usize },
}

/// Renders `{{name}}`, `{{attr.KEY}}`, `{{lang}}` and `{{address}}` for one contact.
///
/// Every missing or unknown variable is reported at once, so an admin fixes them in one go.
pub fn render(text: &str, c: &ContactFields) -> Result<String, MissingVars> {
    let mut missing: Vec<String> = Vec::new();
    let rendered = PLACEHOLDER.replace_all(text, |caps: &Captures| {
        let name = canonical_name(&caps[1]);
        match lookup(&name, c) {
            Some(value) => value.to_string(),
            None => {
                if !missing.contains(&name) {
                    missing.push(name);
                }
                String::new()
            }
        }
    });
    if missing.is_empty() {
        Ok(rendered.into_owned())
    } else {
        Err(MissingVars(missing))
    }
}

/// Variables a text uses, canonical (lowercase, `attr.first_name`), in order of first use.
pub fn variables(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for caps in PLACEHOLDER.captures_iter(text) {
        let name = canonical_name(&caps[1]);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Whether `name` (as returned by [`variables`]) is a variable at all.
pub fn is_known_variable(name: &str) -> bool {
    BUILTIN_VARIABLES.contains(&name)
        || name
            .strip_prefix("attr.")
            .is_some_and(|key| AttrKey::parse(key).is_ok_and(|k| k == key))
}

/// The variables of a text that are not variables at all, for rejecting a command early.
pub fn unknown_variables(text: &str) -> Vec<String> {
    variables(text)
        .into_iter()
        .filter(|name| !is_known_variable(name))
        .collect()
}

/// Counts a template body's placeholders `{{1}}..{{n}}`: returns `n`, or an error if a
/// placeholder is not a number or the numbers are not exactly 1..n (repeats are fine).
pub fn template_param_count(body: &str) -> Result<usize, TemplateError> {
    let mut seen = std::collections::BTreeSet::new();
    for caps in PLACEHOLDER.captures_iter(body) {
        let raw = &caps[1];
        let index = parse_index(raw).ok_or_else(|| TemplateError::NotNumbered(raw.to_string()))?;
        if index == 0 {
            return Err(TemplateError::ZeroIndex);
        }
        seen.insert(index);
    }
    let highest = seen.last().copied().unwrap_or(0);
    // `seen` holds every index, so when there is a gap it is found within `seen.len() + 1` steps.
    if let Some(missing) = (1..=highest).find(|i| !seen.contains(i)) {
        return Err(TemplateError::Gap { missing, highest });
    }
    Ok(highest)
}

/// Fills `{{1}}..{{n}}` with `params` (already rendered per contact). A placeholder without a
/// parameter is left as written; parameter text is inserted verbatim, never expanded again.
pub fn fill_template(body: &str, params: &[String]) -> String {
    PLACEHOLDER
        .replace_all(body, |caps: &Captures| {
            parse_index(&caps[1])
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| params.get(i))
                .cloned()
                .unwrap_or_else(|| caps[0].to_string())
        })
        .into_owned()
}

/// Picks a variant in `0..count` for a contact of a campaign. It depends only on the two ids,
/// through SHA-256 (fixed by its standard, unlike std's hashers), so a pause, a restart or a new
/// Rust version never changes which variant a contact gets; SHA-256 mixes well enough that
/// consecutive contact ids split evenly and each campaign splits them differently.
/// `count` 0 or 1 gives 0.
pub fn choose_variant(campaign_id: i64, contact_id: i64, count: usize) -> usize {
    if count <= 1 {
        return 0;
    }
    let mut hasher = Sha256::new();
    // A domain tag: changing it (or the byte layout) reshuffles every running campaign.
    hasher.update(b"herald.variant.v1");
    hasher.update(campaign_id.to_le_bytes());
    hasher.update(contact_id.to_le_bytes());
    let digest = hasher.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // Modulo bias is below 2^-50 for any realistic count.
    (u64::from_le_bytes(head) % count as u64) as usize
}

fn parse_index(raw: &str) -> Option<usize> {
    // `usize::from_str` would also take `+1`, which is not a template placeholder.
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// Lowercases a variable name; an attribute key is normalised as CSV columns are, so
/// `{{attr.First Name}}` reads the `first_name` a CSV column "First Name" wrote.
fn canonical_name(raw: &str) -> String {
    let lower = raw.trim().to_lowercase();
    match lower.strip_prefix("attr.") {
        Some(key) => match AttrKey::parse(key) {
            Ok(key) => format!("attr.{key}"),
            Err(_) => lower,
        },
        None => lower,
    }
}

fn lookup<'a>(name: &str, c: &ContactFields<'a>) -> Option<&'a str> {
    let value = match name {
        "name" => c.name,
        "lang" => c.lang,
        "address" => Some(c.address),
        _ => {
            let key = name.strip_prefix("attr.")?;
            if !is_known_variable(name) {
                return None;
            }
            // Keys are stored canonical (AttrKey), as `key` is here.
            c.attrs.get(key).map(String::as_str)
        }
    };
    value.filter(|v| !v.trim().is_empty())
}

fn describe_missing(names: &[String]) -> String {
    let mut text = format!("missing {}", names.join(", "));
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !is_known_variable(n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        text.push_str(&format!(
            " ({} not a variable: use name, lang, address or attr.KEY)",
            unknown.join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<AttrKey, String> {
        pairs
            .iter()
            .map(|(k, v)| (AttrKey::from(*k), v.to_string()))
            .collect()
    }

    fn contact<'a>(attrs: &'a BTreeMap<AttrKey, String>) -> ContactFields<'a> {
        ContactFields {
            name: Some("Ana"),
            address: "+15550001",
            lang: Some("pt"),
            attrs,
        }
    }

    fn strs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn renders_every_variable() {
        let a = attrs(&[("city", "Lisbon"), ("first_name", "Ana Maria")]);
        let c = contact(&a);
        assert_eq!(
            render(
                "Hi {{name}} ({{ address }}, {{LANG}}) from {{attr.city}}, {{ Attr.First Name }}!",
                &c
            ),
            Ok("Hi Ana (+15550001, pt) from Lisbon, Ana Maria!".to_string())
        );
        assert_eq!(render("no variables", &c), Ok("no variables".to_string()));
        assert_eq!(render("{{name}}{{name}}", &c), Ok("AnaAna".to_string()));
    }

    #[test]
    fn reports_every_missing_variable_once_in_order() {
        let a = attrs(&[("city", "")]);
        let c = ContactFields {
            name: None,
            address: "+15550001",
            lang: Some("  "),
            attrs: &a,
        };
        assert_eq!(
            render(
                "{{attr.city}} {{name}} {{attr.city}} {{lang}} {{address}}",
                &c
            ),
            Err(MissingVars(strs(&["attr.city", "name", "lang"])))
        );
        assert_eq!(
            MissingVars(strs(&["attr.city", "name"])).to_string(),
            "missing attr.city, name"
        );
    }

    #[test]
    fn reports_unknown_variables() {
        let a = attrs(&[("foo", "x")]);
        let c = contact(&a);
        let err = render("Hi {{name}} {{foo}} {{attr.}} {{attr.a!}}", &c).expect_err("unknown");
        assert_eq!(err, MissingVars(strs(&["foo", "attr.", "attr.a!"])));
        assert_eq!(
            err.to_string(),
            "missing foo, attr., attr.a! (foo, attr., attr.a! not a variable: use name, lang, address or attr.KEY)"
        );
    }

    #[test]
    fn attribute_variables_are_case_insensitive() {
        // Keys are stored canonical (lower case); the variable may be typed in any case.
        let a = attrs(&[("city", "Porto")]);
        assert_eq!(
            render("{{attr.City}} {{ATTR.CITY}}", &contact(&a)),
            Ok("Porto Porto".to_string())
        );
    }

    #[test]
    fn leaves_non_placeholders_alone() {
        let a = BTreeMap::new();
        let c = contact(&a);
        for text in ["{{}}", "{{ }}", "{name}", "{{name", "name}}", "{ {name} }"] {
            assert_eq!(render(text, &c), Ok(text.to_string()), "{text:?}");
        }
        assert_eq!(render("{{{name}}}", &c), Ok("{Ana}".to_string()));
    }

    #[test]
    fn inserted_values_are_not_expanded_again() {
        let a = attrs(&[("note", "{{name}}")]);
        assert_eq!(
            render("{{attr.note}}", &contact(&a)),
            Ok("{{name}}".to_string())
        );
    }

    #[test]
    fn lists_variables_in_order_of_first_use() {
        assert_eq!(
            variables("{{attr.City}} {{ name }} {{attr.city}} {{foo}} {{NAME}}"),
            strs(&["attr.city", "name", "foo"])
        );
        assert!(variables("plain").is_empty());
        assert_eq!(
            unknown_variables("{{name}} {{foo}} {{attr.x}}"),
            strs(&["foo"])
        );
        assert!(is_known_variable("attr.first_name"));
        assert!(!is_known_variable("attr."));
        assert!(!is_known_variable("Name"));
    }

    #[test]
    fn counts_template_params() {
        assert_eq!(template_param_count("no params"), Ok(0));
        assert_eq!(template_param_count("Hi {{1}}"), Ok(1));
        assert_eq!(
            template_param_count("{{2}} then {{1}}, again {{ 2 }} and {{3}}"),
            Ok(3)
        );
    }

    #[test]
    fn rejects_bad_template_params() {
        assert_eq!(
            template_param_count("{{1}} {{3}}"),
            Err(TemplateError::Gap {
                missing: 2,
                highest: 3
            })
        );
        assert_eq!(
            template_param_count("{{2}}"),
            Err(TemplateError::Gap {
                missing: 1,
                highest: 2
            })
        );
        assert_eq!(
            template_param_count("{{0}} {{1}}"),
            Err(TemplateError::ZeroIndex)
        );
        assert_eq!(
            template_param_count("{{1}} {{name}}"),
            Err(TemplateError::NotNumbered("name".into()))
        );
        assert_eq!(
            template_param_count("{{+1}}"),
            Err(TemplateError::NotNumbered("+1".into()))
        );
        assert_eq!(
            template_param_count("{{99999999999999999999999}}"),
            Err(TemplateError::NotNumbered("99999999999999999999999".into()))
        );
        assert_eq!(
            template_param_count("{{18446744073709551615}}").map_err(|e| e.to_string()),
            Err("template placeholders must run {{1}}..{{n}} without gaps: {{1}} is missing (highest is {{18446744073709551615}})".to_string())
        );
        assert_eq!(
            TemplateError::NotNumbered("name".into()).to_string(),
            "template placeholder {{name}} is not a number: template bodies use {{1}}..{{n}}"
        );
    }

    #[test]
    fn fills_template_params() {
        let params = strs(&["Ana", "{{1}}", "3"]);
        assert_eq!(
            fill_template("Hi {{1}}, code {{ 2 }}, {{1}} x{{3}}", &params),
            "Hi Ana, code {{1}}, Ana x3"
        );
        assert_eq!(
            fill_template("{{4}} {{0}} {{name}}", &params),
            "{{4}} {{0}} {{name}}"
        );
        assert_eq!(fill_template("{{1}}", &[]), "{{1}}");
    }

    #[test]
    fn variant_choice_is_stable() {
        // Pinned values: if these change, every running campaign's split changes with them.
        let picks: Vec<usize> = (1..=12).map(|id| choose_variant(7, id, 3)).collect();
        assert_eq!(picks, PINNED_PICKS.to_vec());
        assert_eq!(choose_variant(1, 1, 2), choose_variant(1, 1, 2));
        assert_eq!(choose_variant(1, 1, 0), 0);
        assert_eq!(choose_variant(1, 1, 1), 0);
        assert!(choose_variant(-5, i64::MIN, 7) < 7);
    }

    // Cross-checked outside Rust: SHA-256 of "herald.variant.v1" + i64 LE 7 + i64 LE id, first 8
    // bytes as u64 LE, modulo 3.
    const PINNED_PICKS: [usize; 12] = [0, 1, 2, 2, 2, 2, 0, 1, 0, 0, 2, 0];

    fn shares(campaign_id: i64, count: usize) -> Vec<f64> {
        let n = 10_000;
        let mut tally = vec![0usize; count];
        for contact_id in 1..=n {
            tally[choose_variant(campaign_id, contact_id, count)] += 1;
        }
        tally.iter().map(|&t| t as f64 / n as f64).collect()
    }

    #[test]
    fn variant_choice_is_roughly_uniform() {
        for campaign_id in [1, 2, 9_999] {
            for count in [2, 3] {
                let expected = 1.0 / count as f64;
                for share in shares(campaign_id, count) {
                    assert!(
                        (share - expected).abs() < 0.03,
                        "campaign {campaign_id}, {count} variants: share {share}"
                    );
                }
            }
        }
    }

    #[test]
    fn campaigns_split_contacts_independently() {
        // With two variants, two campaigns should agree on about half the contacts, not all.
        let agree = (1..=10_000)
            .filter(|&id| choose_variant(1, id, 2) == choose_variant(2, id, 2))
            .count();
        assert!((4_700..=5_300).contains(&agree), "agree on {agree}");
    }
}
