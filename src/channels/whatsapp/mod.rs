//! WhatsApp Cloud API wire layer: webhook parsing ([`webhook`]), its signature check ([`signature`]),
//! the send client ([`client`]), the Business account's template list ([`templates`]) and the mapping of Meta's error answers onto herald's retry classes
//! ([`errors`]). Everything here speaks Meta's JSON on one side and [`crate::channels`] types on the
//! other; nothing here touches the store or the engine.

pub mod client;
pub mod errors;
pub mod signature;
pub mod templates;
pub mod webhook;

pub use client::{ClientBuildError, ReplyButton, WhatsAppClient, WhatsAppConfig};
pub use errors::classify;
pub use signature::{sign, verify as verify_signature, Signature, Verifier};
pub use templates::TemplateClient;
pub use webhook::{parse_webhook, parse_webhook_for, verify_handshake, Decoded, WebhookError};

use crate::domain::Address;

/// The header Meta signs every webhook POST with (`sha256=<hex HMAC of the raw body>`).
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// herald's address for a WhatsApp user id (`972987654321` → `wa:972987654321`), through the
/// one address parser, so a number imported as `+972 98-765-4321` is the same contact. `None`
/// for what is not a phone number (placeholders, or a BSUID-only user herald cannot address).
pub fn address(wa_id: &str) -> Option<String> {
    let digits = wa_id.trim();
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '+') {
        return None;
    }
    Address::parse(digits).ok().map(Address::into_string)
}

/// The Cloud API `to` value for a herald address: `wa:+1 555-0001` → `15550001`. An address of
/// another network (`tg:42`) or a name is refused rather than turned into some other number.
pub fn recipient_digits(address: &str) -> Option<String> {
    Address::parse(address)
        .ok()?
        .phone_digits()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keeps_only_digits() {
        assert_eq!(address("972987654321").as_deref(), Some("wa:972987654321"));
        assert_eq!(address("+1 555-0001").as_deref(), Some("wa:15550001"));
        assert_eq!(address("<WHATSAPP_USER_PHONE_NUMBER>"), None);
        assert_eq!(address(""), None);
    }

    #[test]
    fn recipient_digits_strips_prefix_and_punctuation() {
        assert_eq!(recipient_digits("wa:15550001").as_deref(), Some("15550001"));
        assert_eq!(
            recipient_digits("wa:+1 (555) 000-1").as_deref(),
            Some("15550001")
        );
        assert_eq!(recipient_digits("+15550001").as_deref(), Some("15550001"));
        assert_eq!(recipient_digits("tg:42"), None);
        assert_eq!(recipient_digits("alice"), None);
        assert_eq!(recipient_digits("wa:"), None);
        assert_eq!(recipient_digits("wa:+"), None);
    }
}
