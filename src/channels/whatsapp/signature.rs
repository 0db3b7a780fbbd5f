//! `X-Hub-Signature-256` check for webhook POSTs: Meta signs the raw body with HMAC-SHA256 under the
//! app secret. herald accepts a body only when the signature matches, compared in constant time so
//! the answer time leaks nothing about how much of a forged signature was right.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";

/// Whether `header` (the `X-Hub-Signature-256` value, `sha256=<hex>`) is the HMAC-SHA256 of
/// `raw_body` under `app_secret`.
///
/// Missing header, wrong prefix, bad hex and an empty app secret all answer `false`: an unconfigured
/// secret must not turn the check off.
pub fn verify(app_secret: &[u8], raw_body: &[u8], header: Option<&str>) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header.map(str::trim).and_then(strip_prefix) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(app_secret) else {
        return false;
    };
    mac.update(raw_body);
    // `verify_slice` compares in constant time (and refuses a truncated tag).
    mac.verify_slice(&expected).is_ok()
}

/// The `X-Hub-Signature-256` header value Meta would send for `body` (for tests and `herald bench`).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail; the fallback keeps it panic-free anyway.
    match HmacSha256::new_from_slice(app_secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// Meta writes the algorithm in lower case; accept any case since the header is ours to read.
fn strip_prefix(header: &str) -> Option<&str> {
    let head = header.get(..PREFIX.len())?;
    head.eq_ignore_ascii_case(PREFIX)
        .then(|| &header[PREFIX.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-secret";
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;

    #[test]
    fn accepts_its_own_signature() {
        let header = sign(SECRET, BODY);
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), "sha256=".len() + 64);
        assert!(verify(SECRET, BODY, Some(&header)));
    }

    #[test]
    fn matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let header = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Upper-case prefix and hex are the same signature.
        assert!(verify(
            b"Jefe",
            b"what do ya want for nothing?",
            Some(&header.to_uppercase())
        ));
    }

    #[test]
    fn rejects_a_changed_body_or_secret() {
        let header = sign(SECRET, BODY);
        assert!(!verify(SECRET, b"{}", Some(&header)));
        assert!(!verify(b"other-secret", BODY, Some(&header)));
    }

    #[test]
    fn rejects_malformed_headers() {
        let good = sign(SECRET, BODY);
        let hex_only = good.trim_start_matches("sha256=").to_string();
        assert!(!verify(SECRET, BODY, None));
        assert!(!verify(SECRET, BODY, Some("")));
        assert!(!verify(SECRET, BODY, Some(&hex_only)));
        assert!(!verify(SECRET, BODY, Some("sha1=abcdef")));
        assert!(!verify(SECRET, BODY, Some("sha256=not-hex")));
        assert!(!verify(SECRET, BODY, Some(&good[..good.len() - 2])));
        assert!(!verify(SECRET, BODY, Some("sha256=")));
        // Multi-byte text where the prefix would be must not panic on a char boundary.
        assert!(!verify(SECRET, BODY, Some("shaé=00")));
    }

    #[test]
    fn an_empty_secret_never_verifies() {
        let header = sign(b"", BODY);
        assert!(!verify(b"", BODY, Some(&header)));
    }
}
