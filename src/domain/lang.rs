//! A language code, parsed once: `pt`, `pt_BR`, `pt-br` and `PT_br` are one language, spelled as
//! WhatsApp spells its template languages (`pt_BR`, `en_US`, `zh_Hant`).

use super::label::text_value;
use std::fmt;

/// A language code: 2–3 letters, then optional subtags of 1–8 letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lang(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad language {0:?}: use a code like pt or pt_BR")]
pub struct LangError(pub String);

impl Lang {
    pub fn parse(raw: &str) -> Result<Lang, LangError> {
        let bad = || LangError(raw.trim().chars().take(40).collect());
        let lower = raw.trim().to_ascii_lowercase().replace('-', "_");
        let mut parts = lower.split('_');
        let primary = parts.next().ok_or_else(bad)?;
        if !(2..=3).contains(&primary.len()) || !primary.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(bad());
        }
        let mut spelled = primary.to_string();
        // At most a script and a region (`zh_Hant_TW`): what Meta's template languages use.
        for (i, part) in parts.enumerate() {
            let ok = i < 2
                && (2..=4).contains(&part.len())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !ok {
                return Err(bad());
            }
            spelled.push('_');
            // Regions are upper case (BR), scripts title case (Hant), as Meta writes them.
            match part.len() {
                2 => spelled.push_str(&part.to_ascii_uppercase()),
                4 => {
                    spelled.push_str(&part[..1].to_ascii_uppercase());
                    spelled.push_str(&part[1..]);
                }
                _ => spelled.push_str(part),
            }
        }
        Ok(Lang(spelled))
    }

    /// Wraps a code the store wrote after parsing.
    pub fn from_canonical(stored: impl Into<String>) -> Lang {
        Lang(stored.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a contact speaking `have` matches this code: `pt` matches `pt` and `pt_BR`, but
    /// not `ptx`; `pt_BR` does not match `pt`.
    pub fn covers(&self, have: &str) -> bool {
        let have = format!("{}-", have.to_ascii_lowercase().replace('_', "-"));
        have.starts_with(&format!(
            "{}-",
            self.0.to_ascii_lowercase().replace('_', "-")
        ))
    }
}

text_value!(Lang);

/// Unit tests write languages as literals; one that does not parse is a broken test.
#[cfg(test)]
impl From<&str> for Lang {
    fn from(text: &str) -> Lang {
        Lang::parse(text).expect("a valid language literal")
    }
}

impl From<Lang> for String {
    fn from(lang: Lang) -> String {
        lang.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_language() {
        for typed in ["pt_BR", "pt-br", "PT_br", " pt-BR "] {
            assert_eq!(Lang::parse(typed).unwrap().as_str(), "pt_BR", "{typed:?}");
        }
        assert_eq!(Lang::parse("zh-hant").unwrap().as_str(), "zh_Hant");
        assert_eq!(Lang::parse("EN").unwrap().as_str(), "en");
        for bad in [
            "",
            "p",
            "portuguese",
            "pt_",
            "pt_toolong",
            "1a",
            "zh_Hant_TW_x",
        ] {
            assert!(Lang::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_language_covers_its_regional_forms() {
        let pt = Lang::parse("pt").unwrap();
        assert!(pt.covers("pt") && pt.covers("pt_BR") && pt.covers("pt-br"));
        assert!(!pt.covers("ptx") && !pt.covers("en"));
        assert!(!Lang::parse("pt_BR").unwrap().covers("pt"));
    }
}
