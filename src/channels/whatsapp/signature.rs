//! `X-Hub-Signature-256` check for webhook POSTs: Meta signs the raw body with HMAC-SHA256 under the
//! app secret. herald accepts a body only when the signature matches, compared in constant time so
//! the answer time leaks nothing about how much of a forged signature was right. The header is
//! read first ([`Signature`]) and the body hashed as it streams in ([`Verifier`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";

/// A well-formed `X-Hub-Signature-256` value (`sha256=` and 64 hex digits): the tag the body
/// must hash to. Read from the header before the body, so a request that cannot possibly be
/// signed is refused without reading a byte of it.
#[derive(Clone, Copy)]
pub struct Signature([u8; 32]);

impl Signature {
    /// `None` for a missing header, a wrong prefix, bad hex or a tag of the wrong length.
    pub fn parse(header: Option<&str>) -> Option<Signature> {
        let hex_sig = header.map(str::trim).and_then(strip_prefix)?;
        let mut tag = [0u8; 32];
        hex::decode_to_slice(hex_sig, &mut tag).ok()?;
        Some(Signature(tag))
    }
}

/// The HMAC of a body fed to it chunk by chunk as it arrives, checked against a [`Signature`] at
/// the end: the body need not be whole in memory to be judged.
pub struct Verifier {
    mac: HmacSha256,
    expected: Signature,
}

impl Verifier {
    /// `None` for an empty app secret: an unconfigured secret must not turn the check off.
    pub fn new(app_secret: &[u8], expected: Signature) -> Option<Verifier> {
        if app_secret.is_empty() {
            return None;
        }
        let mac = HmacSha256::new_from_slice(app_secret).ok()?;
        Some(Verifier { mac, expected })
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Whether the bytes fed so far are the signed body.
    pub fn verify(self) -> bool {
        // `verify_slice` compares in constant time, so the answer time leaks nothing about how
        // much of a forged signature was right.
        self.mac.verify_slice(&self.expected.0).is_ok()
    }
}

/// Whether `header` (the `X-Hub-Signature-256` value, `sha256=<hex>`) is the HMAC-SHA256 of
/// `raw_body` under `app_secret`.
///
/// Missing header, wrong prefix, bad hex and an empty app secret all answer `false`.
pub fn verify(app_secret: &[u8], raw_body: &[u8], header: Option<&str>) -> bool {
    let Some(mut verifier) =
        Signature::parse(header).and_then(|expected| Verifier::new(app_secret, expected))
    else {
        return false;
    };
    verifier.update(raw_body);
    verifier.verify()
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

    #[test]
    fn a_body_fed_in_chunks_verifies_like_the_whole() {
        let header = sign(SECRET, BODY);
        let expected = Signature::parse(Some(&header)).expect("well-formed");
        let mut verifier = Verifier::new(SECRET, expected).expect("a secret");
        for chunk in BODY.chunks(7) {
            verifier.update(chunk);
        }
        assert!(verifier.verify());
        let mut short = Verifier::new(SECRET, expected).expect("a secret");
        short.update(&BODY[..BODY.len() - 1]);
        assert!(!short.verify());
        assert!(Verifier::new(b"", expected).is_none());
    }

    #[test]
    fn only_a_whole_tag_is_a_well_formed_signature() {
        let good = sign(SECRET, BODY);
        assert!(Signature::parse(Some(&good)).is_some());
        assert!(Signature::parse(Some(&format!("  {good} "))).is_some());
        for bad in ["", "sha256=", "sha256=abcd", "sha1=00", "garbage"] {
            assert!(Signature::parse(Some(bad)).is_none(), "{bad:?}");
        }
        assert!(Signature::parse(Some(&good[..good.len() - 2])).is_none());
        assert!(Signature::parse(Some(&format!("{good}00"))).is_none());
        assert!(Signature::parse(None).is_none());
    }
}
