//! Labels and attribute keys, each with its one parser (SPEC §2 "One spelling per thing"): they
//! are case-insensitive, so `VIP` and `vip` are one label and `attr.City` and `{{attr.city}}` one
//! key. Attribute *values* keep their case.

use std::fmt;

/// Labels are typed often and echoed in lists: a short word.
const LABEL_MAX_LEN: usize = 64;
const KEY_MAX_LEN: usize = 64;

/// A contact label: lowercase `a-z 0-9 _ -`, at least one letter (a word of digits is an
/// address), not starting with `-` (that means "exclude" in an audience), and not `all`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(String);

/// An attribute key: lowercase `a-z 0-9 _`; spaces and dashes typed in a CSV header become `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttrKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad label {label:?}: {reason}")]
pub struct LabelError {
    pub label: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad attribute name {0:?}: use letters, digits and _")]
pub struct AttrKeyError(pub String);

impl Label {
    pub fn parse(raw: &str) -> Result<Label, LabelError> {
        let trimmed = raw.trim();
        let label = trimmed.to_lowercase();
        let bad = |reason| {
            Err(LabelError {
                label: trimmed.chars().take(40).collect(),
                reason,
            })
        };
        if label.is_empty() {
            return bad("empty label (look for a stray +, - or comma)");
        }
        if label.len() > LABEL_MAX_LEN {
            return bad("labels are at most 64 characters");
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
        Ok(Label(label))
    }

    /// Wraps a label the store wrote after parsing.
    pub fn from_canonical(stored: impl Into<String>) -> Label {
        Label(stored.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AttrKey {
    pub fn parse(raw: &str) -> Result<AttrKey, AttrKeyError> {
        let key = raw
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("_")
            .to_lowercase()
            .replace('-', "_");
        let ok = !key.is_empty()
            && key.len() <= KEY_MAX_LEN
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(AttrKey(key))
        } else {
            Err(AttrKeyError(raw.trim().chars().take(40).collect()))
        }
    }

    /// Wraps a key the store wrote after parsing.
    pub fn from_canonical(stored: impl Into<String>) -> AttrKey {
        AttrKey(stored.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_value {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        // Maps keyed by the value are looked up with a plain `&str` (the same order and hash
        // as the inner text).
        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}
pub(crate) use text_value;

text_value!(Label);
text_value!(AttrKey);

/// Unit tests write labels and keys as literals; one that does not parse is a broken test.
#[cfg(test)]
impl From<&str> for Label {
    fn from(text: &str) -> Label {
        Label::parse(text).expect("a valid label literal")
    }
}

#[cfg(test)]
impl From<&str> for AttrKey {
    fn from(text: &str) -> AttrKey {
        AttrKey::parse(text).expect("a valid key literal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_one_lowercase_spelling() {
        assert_eq!(Label::parse("VIP").unwrap(), Label::parse("vip").unwrap());
        assert_eq!(
            Label::parse(" Early-Bird_2 ").unwrap().as_str(),
            "early-bird_2"
        );
        for bad in [
            "",
            "-x",
            "123",
            "all",
            "a.b",
            "a,b",
            "vip+new",
            &"x".repeat(65),
        ] {
            assert!(Label::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn attribute_keys_fold_case_spaces_and_dashes() {
        assert_eq!(AttrKey::parse("City").unwrap().as_str(), "city");
        assert_eq!(AttrKey::parse("Zip Code").unwrap().as_str(), "zip_code");
        assert_eq!(AttrKey::parse("first-name").unwrap().as_str(), "first_name");
        for bad in ["", "a.b", "é", "{x}"] {
            assert!(AttrKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
