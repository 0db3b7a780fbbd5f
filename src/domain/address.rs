//! A contact's address, parsed once (SPEC §2 "One spelling per thing"): commands, CSV import,
//! webhooks and audiences all go through [`Address::parse`], so the same number typed three ways
//! is one contact.
//!
//! | typed | canonical |
//! |---|---|
//! | `+1 555-0001`, `15550001`, `(1) 555.0001`, `wa:+15550001` | `wa:15550001` |
//! | `tg:42`, `TG:-1001` | `tg:42`, `tg:-1001` |
//! | `ann` (console only) | `ann` |
//!
//! A phone number is a WhatsApp identity (`wa:<E.164 digits>`, SPEC §1), whichever channel or file
//! it came from; the console shows it back as `+<digits>` ([`Address::display_phone`]).

use std::fmt;

/// E.164 numbers have at most 15 digits; fewer than 7 is no real number with its country code.
pub const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

/// A Telegram chat id is a signed 64-bit integer; groups are negative.
const TG_MAX_DIGITS: usize = 20;

/// Console names are short words: they are typed, and echoed in every reply.
const NAME_MAX_LEN: usize = 64;

/// A contact's canonical address. The only ways in are [`Address::parse`] (anything a person or
/// a channel typed) and [`Address::from_canonical`] (a value the store wrote after parsing).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(String);

/// Which network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// A phone number: WhatsApp, or the console standing in for it.
    Phone,
    Telegram,
    /// A bare name, only meaningful on the console.
    Name,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("{0:?} is not a phone number: it needs 7 to 15 digits (+15550001)")]
    BadPhone(String),
    #[error("{0:?} is not a Telegram chat id (tg:<number>)")]
    BadTelegram(String),
    #[error("{0:?} is not an address: use a phone number (+15550001) or tg:<chat id>")]
    NotAnAddress(String),
}

impl Address {
    /// Parses an address however it was typed (see the module doc). Surrounding space is ignored.
    pub fn parse(raw: &str) -> Result<Address, AddressError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(AddressError::Empty);
        }
        let prefix = raw.get(..3).map(str::to_ascii_lowercase);
        match prefix.as_deref() {
            Some("tg:") => {
                let id = raw[3..].trim();
                let digits = id.strip_prefix('-').unwrap_or(id);
                let ok = (1..=TG_MAX_DIGITS).contains(&digits.len())
                    && digits.chars().all(|c| c.is_ascii_digit())
                    && id.parse::<i64>().is_ok();
                if ok {
                    Ok(Address(format!("tg:{id}")))
                } else {
                    Err(AddressError::BadTelegram(echo(raw)))
                }
            }
            Some("wa:") => phone_digits(&raw[3..])
                .map(|d| Address(format!("wa:{d}")))
                .ok_or_else(|| AddressError::BadPhone(echo(raw))),
            _ if looks_like_phone(raw) => phone_digits(raw)
                .map(|d| Address(format!("wa:{d}")))
                .ok_or_else(|| AddressError::BadPhone(echo(raw))),
            _ if is_name(raw) => Ok(Address(raw.to_ascii_lowercase())),
            _ => Err(AddressError::NotAnAddress(echo(raw))),
        }
    }

    /// Wraps a value that was canonical when it was stored (read back from the database).
    pub fn from_canonical(stored: impl Into<String>) -> Address {
        Address(stored.into())
    }

    /// The Telegram chat id behind `tg:<id>`.
    pub fn telegram_chat(&self) -> Option<i64> {
        self.0.strip_prefix("tg:")?.parse().ok()
    }

    /// The phone number's digits behind `wa:<digits>` (the Cloud API's `to` and `wa_id`).
    pub fn phone_digits(&self) -> Option<&str> {
        self.0.strip_prefix("wa:")
    }

    /// The canonical text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> AddressKind {
        if self.0.starts_with("wa:") {
            AddressKind::Phone
        } else if self.0.starts_with("tg:") {
            AddressKind::Telegram
        } else {
            AddressKind::Name
        }
    }

    /// How a person writes the address: `+15550001` for a phone number, the canonical text
    /// otherwise. The console prints this, as its users type it.
    pub fn display_phone(&self) -> String {
        match self.phone_digits() {
            Some(digits) => format!("+{digits}"),
            None => self.0.clone(),
        }
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Canonical form of a stored address, for code that only has text (routing, the console).
/// Text that does not parse is returned as it is.
pub fn canonical(text: &str) -> String {
    Address::parse(text).map_or_else(|_| text.to_string(), Address::into_string)
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Address {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Address {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Address {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Unit tests write addresses as literals; a literal that does not parse is a broken test.
#[cfg(test)]
impl From<&str> for Address {
    fn from(text: &str) -> Address {
        Address::parse(text).expect("a valid address literal")
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

/// Whether text is meant as a phone number (and so must parse as one): it starts with `+`, a
/// digit or `(`, and has no letter. Audiences use it to tell addresses from labels.
pub fn looks_like_phone(text: &str) -> bool {
    let text = text.trim();
    text.starts_with('+')
        || ((text.starts_with('(') || text.starts_with(|c: char| c.is_ascii_digit()))
            && !text.chars().any(char::is_alphabetic))
}

/// Whether an item of an audience is meant as an address rather than a label.
pub fn looks_like_address(text: &str) -> bool {
    let lower = text.trim().to_ascii_lowercase();
    lower.starts_with("tg:") || lower.starts_with("wa:") || looks_like_phone(text)
}

/// The digits of a phone number written with an optional `+`, spaces, dashes, dots and
/// parentheses (`+1 (555) 000-1`), or `None` if anything else is in it or the count is off.
fn phone_digits(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let body = raw.strip_prefix('+').unwrap_or(raw);
    let mut digits = String::new();
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    PHONE_DIGITS.contains(&digits.len()).then_some(digits)
}

/// A console name: a letter, then letters, digits, `_`, `-` or `.`.
fn is_name(raw: &str) -> bool {
    raw.len() <= NAME_MAX_LEN
        && raw.starts_with(|c: char| c.is_ascii_alphabetic())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A value quoted in an error stays short and on one line.
fn echo(raw: &str) -> String {
    const LIMIT: usize = 40;
    let mut text: String = raw.chars().take(LIMIT).collect();
    if raw.chars().count() > LIMIT {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> String {
        Address::parse(raw)
            .map(Address::into_string)
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn every_spelling_of_a_number_is_one_address() {
        for typed in [
            "+15550001",
            "15550001",
            "+1 555-0001",
            " (1) 555.0001 ",
            "wa:15550001",
            "WA:+1 555 0001",
        ] {
            assert_eq!(canon(typed), "wa:15550001", "{typed:?}");
        }
    }

    #[test]
    fn telegram_chats_keep_their_sign() {
        assert_eq!(canon("tg:42"), "tg:42");
        assert_eq!(canon("TG:-1001"), "tg:-1001");
        assert_eq!(
            Address::parse("tg:-1001").unwrap().telegram_chat(),
            Some(-1001)
        );
        assert!(
            Address::parse("tg:99999999999999999999").is_err(),
            "past i64"
        );
        assert!(Address::parse("tg:abc").is_err());
    }

    #[test]
    fn console_names_are_lowercased_words() {
        assert_eq!(canon("Ann"), "ann");
        assert_eq!(Address::parse("ann").unwrap().kind(), AddressKind::Name);
        for bad in ["a b", "=x", "-x", "a/b", "é"] {
            assert!(Address::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_outside_e164_are_refused_with_a_reason() {
        for bad in [
            "+12345",
            "1234567890123456",
            "+1555abc",
            "wa:",
            "wa:12",
            "+",
        ] {
            let err = Address::parse(bad).unwrap_err().to_string();
            assert!(!err.contains('\n') && !err.is_empty(), "{bad:?}: {err}");
        }
        assert_eq!(Address::parse("  ").unwrap_err(), AddressError::Empty);
    }

    #[test]
    fn phones_show_as_typed_on_the_console() {
        let a = Address::parse("15550001").unwrap();
        assert_eq!(a.display_phone(), "+15550001");
        assert_eq!(a.phone_digits(), Some("15550001"));
        assert_eq!(Address::parse("tg:7").unwrap().display_phone(), "tg:7");
    }

    #[test]
    fn errors_echo_a_short_value() {
        let long = "+".repeat(500);
        let err = Address::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }
}
