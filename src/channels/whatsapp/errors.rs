//! Meta's error answers (`{"error":{"message","type","code","error_data":{"details"},..}}`) mapped
//! onto herald's [`ErrorClass`]es, per SPEC section 3 "Errors from the channel".
//!
//! Meta recommends deciding on `code` (not the HTTP status, not the subcode, not the wording), so
//! a known code wins; the HTTP status decides only when the code is unknown or the body is not
//! Meta's JSON (a proxy's 502 page, an empty body).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::channels::{ErrorClass, SendError};

/// Throughput and API-call limits: waiting fixes them.
/// 4 app call rate, 613 and 80004/80007 account/number call rate, 130429 Cloud API throughput,
/// 131056 too many messages to the same user, 131057 number in throughput-upgrade maintenance.
const RATE_LIMITED: &[i64] = &[4, 613, 80004, 80007, 130429, 131056, 131057];

/// Meta's side failed: 1 unknown API error, 2 service temporarily down, 131000 "something went
/// wrong", 131016 service unavailable, 133004 server temporarily unavailable.
const TRANSIENT: &[i64] = &[1, 2, 131000, 131016, 133004];

/// 131049: Meta chose not to deliver a marketing message to keep this user's experience healthy
/// (per-user marketing limit). The same message may go through hours later.
const DEFER: &[i64] = &[131049];

/// 131050: the user stopped marketing messages from this business.
const MARKETING_STOPPED: &[i64] = &[131050];

/// Codes that make every send of the campaign fail, so sending on only burns the audience:
/// 131048 spam rate limit, 368 policy block, 131042 payment, 131031 account locked, 131045/133010
/// number not registered, template problems (132000 parameter count, 132001 template missing,
/// 132005 translated text too long, 132007 policy violation, 132012 parameter format, 132015
/// paused, 132016 disabled), and the access token or its permissions (0/190 token, 3 capability,
/// 10 and 200-299 permission).
const PAUSE_CAMPAIGN: &[i64] = &[
    0, 3, 10, 190, 368, 131031, 131042, 131045, 131048, 132000, 132001, 132005, 132007, 132012,
    132015, 132016, 133010,
];

/// Graph permission errors are a range rather than a list.
const PERMISSION_RANGE: std::ops::RangeInclusive<i64> = 200..=299;

/// Code 100 (invalid parameter) is usually about one message, but with subcode 33 it means the
/// phone number id itself does not exist, which fails every send.
const INVALID_PARAMETER: i64 = 100;
const SUBCODE_NO_SUCH_OBJECT: i64 = 33;

/// How much of a non-JSON error body goes into the reason: enough to recognise a proxy page,
/// not a whole HTML document in every recipient row.
const BODY_SNIPPET_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
struct Envelope {
    error: MetaError,
}

/// Graph's error object. Fields are loose (`Option`, `Value`) because Graph has changed their
/// types over versions (`code` as a string in some proxies, `error_subcode` dropped in v16+).
#[derive(Debug, Deserialize)]
struct MetaError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    error_subcode: Option<serde_json::Value>,
    #[serde(default)]
    error_data: Option<ErrorData>,
}

#[derive(Debug, Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

/// Turns a failed Graph API answer into a [`SendError`] carrying Meta's code and reason.
///
/// `retry_after_header` is the raw `Retry-After` value (seconds or an HTTP date), kept whatever the
/// class so the dispatcher can honour it.
pub fn classify(http_status: u16, body: &str, retry_after_header: Option<&str>) -> SendError {
    let mut error = match serde_json::from_str::<Envelope>(body) {
        Ok(Envelope { error }) => classify_meta(http_status, &error),
        Err(_) => classify_unparsed(http_status, body),
    };
    error.retry_after = retry_after_header.and_then(|h| parse_retry_after(h, Utc::now()));
    error
}

/// The class a known Meta error code falls in, whatever the HTTP status it came with; `None`
/// for codes that only concern the one message (131026, 131047, ...) and for unknown codes.
/// Used for failures reported in status webhooks, where there is no HTTP status.
pub fn class_of_code(code: &str) -> Option<ErrorClass> {
    class_for_code(code.trim().parse().ok()?, None)
}

fn classify_meta(http_status: u16, error: &MetaError) -> SendError {
    let reason = reason(error).unwrap_or_else(|| status_reason(http_status));
    match error.code.as_ref().and_then(as_i64) {
        Some(code) => {
            let subcode = error.error_subcode.as_ref().and_then(as_i64);
            let class = class_for_code(code, subcode).unwrap_or(class_for_status(http_status));
            SendError::new(class, code.to_string(), reason)
        }
        None => SendError::new(
            class_for_status(http_status),
            http_status.to_string(),
            reason,
        ),
    }
}

fn classify_unparsed(http_status: u16, body: &str) -> SendError {
    let snippet: String = body.trim().chars().take(BODY_SNIPPET_CHARS).collect();
    let reason = if snippet.is_empty() {
        status_reason(http_status)
    } else {
        format!("{}: {snippet}", status_reason(http_status))
    };
    SendError::new(
        class_for_status(http_status),
        http_status.to_string(),
        reason,
    )
}

fn class_for_code(code: i64, subcode: Option<i64>) -> Option<ErrorClass> {
    let class = if RATE_LIMITED.contains(&code) {
        ErrorClass::RateLimited
    } else if TRANSIENT.contains(&code) {
        ErrorClass::Transient
    } else if DEFER.contains(&code) {
        ErrorClass::Defer
    } else if MARKETING_STOPPED.contains(&code) {
        ErrorClass::MarketingStopped
    } else if PAUSE_CAMPAIGN.contains(&code)
        || PERMISSION_RANGE.contains(&code)
        || (code == INVALID_PARAMETER && subcode == Some(SUBCODE_NO_SUCH_OBJECT))
    {
        ErrorClass::PauseCampaign
    } else {
        // 131026 undeliverable, 131047 outside the window, 131051 unsupported type and every
        // other code: decided by the HTTP status below (a 4xx is this recipient's problem).
        return None;
    };
    Some(class)
}

/// For answers without a known code.
fn class_for_status(http_status: u16) -> ErrorClass {
    match http_status {
        429 => ErrorClass::RateLimited,
        408 | 500..=599 => ErrorClass::Transient,
        // Bad token, no permission, or a wrong api_url / phone_number_id: every send would fail
        // the same way, so stop the campaign instead of failing each recipient.
        401 | 403 | 404 => ErrorClass::PauseCampaign,
        400..=499 => ErrorClass::Permanent,
        // classify is only called for failures; anything else (a redirect that was not followed)
        // is not the recipient's fault, so allow a bounded retry.
        _ => ErrorClass::Transient,
    }
}

/// `title` (webhook style) or `message` (send answers, with Graph's `(#131047) ` prefix removed,
/// since the code is kept separately), plus `error_data.details` when it says more.
fn reason(error: &MetaError) -> Option<String> {
    let head = error
        .title
        .as_deref()
        .or(error.message.as_deref())
        .map(strip_code_prefix)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let details = error
        .error_data
        .as_ref()
        .and_then(|d| d.details.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match (head, details) {
        (Some(head), Some(details)) if head != details => Some(format!("{head}: {details}")),
        (Some(head), _) => Some(head.to_string()),
        (None, Some(details)) => Some(details.to_string()),
        (None, None) => None,
    }
}

/// `"(#131047) Re-engagement message"` → `"Re-engagement message"`.
fn strip_code_prefix(message: &str) -> &str {
    let trimmed = message.trim_start();
    if let Some(rest) = trimmed.strip_prefix("(#") {
        if let Some(end) = rest.find(')') {
            if rest[..end].chars().all(|c| c.is_ascii_digit()) {
                return rest[end + 1..].trim_start();
            }
        }
    }
    message
}

fn status_reason(http_status: u16) -> String {
    let canonical = reqwest::StatusCode::from_u16(http_status)
        .ok()
        .and_then(|s| s.canonical_reason());
    match canonical {
        Some(text) => format!("HTTP {http_status} {text}"),
        None => format!("HTTP {http_status}"),
    }
}

fn as_i64(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `Retry-After` is either delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past
/// means "now". Absurd values are ignored rather than trusted (or panicking `Duration` maths).
fn parse_retry_after(header: &str, now: DateTime<Utc>) -> Option<Duration> {
    const MAX_SECS: f64 = 7.0 * 24.0 * 3600.0;
    let header = header.trim();
    if let Ok(secs) = header.parse::<f64>() {
        return (secs.is_finite() && (0.0..=MAX_SECS).contains(&secs))
            .then(|| Duration::from_secs_f64(secs));
    }
    let at = DateTime::parse_from_rfc2822(header).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(code: i64, message: &str, details: &str) -> String {
        serde_json::json!({
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": details},
                "fbtrace_id": "AbCdEf"
            }
        })
        .to_string()
    }

    fn class_of(status: u16, code: i64) -> ErrorClass {
        classify(status, &meta(code, "(#1) x", "y"), None).class
    }

    #[test]
    fn rate_limits_wait() {
        for code in [130429, 131056, 131057, 4, 80007, 80004, 613] {
            assert_eq!(class_of(400, code), ErrorClass::RateLimited, "code {code}");
        }
        let e = classify(429, "", None);
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::RateLimited, "429"));
        // A 429 with an unknown code is still a rate limit.
        assert_eq!(class_of(429, 999_999), ErrorClass::RateLimited);
    }

    #[test]
    fn server_trouble_is_transient() {
        for code in [1, 2, 131000, 131016, 133004] {
            assert_eq!(class_of(500, code), ErrorClass::Transient, "code {code}");
        }
        for status in [500, 502, 503, 504] {
            assert_eq!(
                classify(status, "<html>Bad gateway</html>", None).class,
                ErrorClass::Transient
            );
        }
        assert_eq!(class_of(503, 999_999), ErrorClass::Transient);
    }

    #[test]
    fn per_user_marketing_limit_defers() {
        let e = classify(
            400,
            &meta(
                131049,
                "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
                "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
            ),
            None,
        );
        assert_eq!(e.class, ErrorClass::Defer);
        assert_eq!(e.code, "131049");
    }

    #[test]
    fn recipient_problems_are_permanent() {
        for code in [131026, 131047, 131051, 131009, 100, 130472] {
            assert_eq!(class_of(400, code), ErrorClass::Permanent, "code {code}");
        }
        assert_eq!(classify(400, "not json", None).class, ErrorClass::Permanent);
    }

    #[test]
    fn stopped_marketing_is_its_own_class() {
        assert_eq!(class_of(400, 131050), ErrorClass::MarketingStopped);
    }

    #[test]
    fn account_wide_problems_pause_the_campaign() {
        for code in [
            131048, 368, 131042, 132000, 132001, 132005, 132007, 132012, 132015, 132016, 190, 0, 3,
            10, 200, 299, 131031,
        ] {
            assert_eq!(
                class_of(400, code),
                ErrorClass::PauseCampaign,
                "code {code}"
            );
        }
        let no_such_number = serde_json::json!({"error": {
            "message": "Unsupported post request. Object with ID '123' does not exist",
            "type": "GraphMethodException", "code": 100, "error_subcode": 33}})
        .to_string();
        assert_eq!(
            classify(400, &no_such_number, None).class,
            ErrorClass::PauseCampaign
        );
        // Non-JSON 401/403/404: credentials or URL are wrong for every send.
        for status in [401, 403, 404] {
            assert_eq!(classify(status, "", None).class, ErrorClass::PauseCampaign);
        }
    }

    #[test]
    fn webhook_codes_classify_without_an_http_status() {
        assert_eq!(class_of_code("131050"), Some(ErrorClass::MarketingStopped));
        assert_eq!(class_of_code("131048"), Some(ErrorClass::PauseCampaign));
        assert_eq!(class_of_code("131049"), Some(ErrorClass::Defer));
        assert_eq!(class_of_code("131026"), None);
        assert_eq!(class_of_code("unknown"), None);
    }

    #[test]
    fn known_code_wins_over_http_status() {
        // Spam rate limit answered as HTTP 429 still pauses: waiting seconds will not fix it.
        assert_eq!(class_of(429, 131048), ErrorClass::PauseCampaign);
        // A service error answered as 400 is still worth retrying.
        assert_eq!(class_of(400, 131000), ErrorClass::Transient);
    }

    #[test]
    fn code_and_reason_are_kept() {
        let e = classify(
            400,
            &meta(
                131047,
                "(#131047) Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            ),
            None,
        );
        assert_eq!(e.class, ErrorClass::Permanent);
        assert_eq!(e.code, "131047");
        assert_eq!(
            e.reason,
            "Re-engagement message: Message failed to send because more than 24 hours have passed since the customer last replied to this number."
        );
        assert_eq!(e.retry_after, None);
    }

    #[test]
    fn reason_falls_back_sensibly() {
        let only_message = r#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}"#;
        let e = classify(401, only_message, None);
        assert_eq!(
            (e.class, e.code.as_str(), e.reason.as_str()),
            (
                ErrorClass::PauseCampaign,
                "190",
                "Invalid OAuth access token."
            )
        );

        let string_code = r#"{"error":{"code":"131026","error_data":{"details":"Receiver is incapable of receiving this message"}}}"#;
        let e = classify(400, string_code, None);
        assert_eq!(e.code, "131026");
        assert_eq!(e.reason, "Receiver is incapable of receiving this message");

        let no_code = r#"{"error":{"message":"Something odd"}}"#;
        let e = classify(400, no_code, None);
        assert_eq!(
            (e.code.as_str(), e.reason.as_str()),
            ("400", "Something odd")
        );

        let e = classify(502, "  <html>bad gateway</html> ", None);
        assert_eq!(e.code, "502");
        assert_eq!(e.reason, "HTTP 502 Bad Gateway: <html>bad gateway</html>");

        let e = classify(503, "", None);
        assert_eq!(e.reason, "HTTP 503 Service Unavailable");

        let long = "é".repeat(1000);
        let e = classify(500, &long, None);
        assert!(e.reason.chars().count() < 300);
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        let e = classify(429, &meta(130429, "Rate limit hit", ""), Some("7"));
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));

        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1e300", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn strips_only_a_numeric_code_prefix() {
        assert_eq!(
            strip_code_prefix("(#131047) Re-engagement"),
            "Re-engagement"
        );
        assert_eq!(strip_code_prefix("(#abc) x"), "(#abc) x");
        assert_eq!(strip_code_prefix("(# no close"), "(# no close");
        assert_eq!(strip_code_prefix("plain"), "plain");
    }
}
