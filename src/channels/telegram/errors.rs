//! Telegram's answers in herald's terms: each Bot API error becomes a [`SendError`] whose class
//! tells the dispatcher what to do (SPEC section 3, "Errors from the channel").
//!
//! teloxide parses an error from its `description` and drops `error_code`, so the code herald
//! records is recovered from the description's prefix (`Forbidden:` is 403, `Bad Request:` is
//! 400, ...), which is how the Bot API writes every error. (teloxide also waits 10 s before it
//! returns a 5xx answer, so a server error is already backed off when the dispatcher sees it.)

use teloxide::errors::{ApiError, RequestError};

use crate::channels::{ErrorClass, SendError};

/// Maps a failed Bot API request to herald's error classes.
pub fn classify(e: &RequestError) -> SendError {
    match e {
        RequestError::RetryAfter(seconds) => {
            let wait = seconds.duration();
            SendError {
                class: ErrorClass::RateLimited,
                code: "429".into(),
                reason: format!("Too Many Requests: retry after {}", wait.as_secs()),
                retry_after: Some(wait),
            }
        }
        RequestError::Api(api) => classify_api(api),
        RequestError::MigrateToChatId(to) => SendError::new(
            // The group became a supergroup with a new id: this address is gone for good.
            ErrorClass::Unreachable,
            "400",
            format!("Bad Request: group chat was upgraded to a supergroup chat (new id {to})"),
        ),
        // As for WhatsApp: only a failed connection proves the message never left.
        RequestError::Network(err) => {
            let (class, code) = if err.is_connect() {
                (ErrorClass::Transient, "connect")
            } else if err.is_timeout() {
                (ErrorClass::Unknown, "timeout")
            } else {
                (ErrorClass::Unknown, "network")
            };
            SendError::new(class, code, err.to_string())
        }
        // A proxy or an overloaded Bot API answering HTML instead of JSON.
        RequestError::InvalidJson { raw, .. } => SendError::new(
            ErrorClass::Transient,
            "invalid_response",
            format!(
                "the Bot API answered something that is not JSON: {}",
                raw.chars().take(120).collect::<String>()
            ),
        ),
        RequestError::Io(err) => SendError::new(ErrorClass::Transient, "io", err.to_string()),
    }
}

fn classify_api(api: &ApiError) -> SendError {
    let reason = match api {
        ApiError::Unknown(description) => description.clone(),
        other => other.to_string(),
    };
    let code = code_of(&reason);
    let class = match api {
        // The person is gone for this bot: blocked it, deleted their account, or never started
        // a conversation (bots cannot write first).
        ApiError::BotBlocked
        | ApiError::UserDeactivated
        | ApiError::BotKicked
        | ApiError::BotKickedFromSupergroup
        | ApiError::BotKickedFromChannel
        | ApiError::CantInitiateConversation
        | ApiError::CantTalkWithBots
        | ApiError::ChatNotFound
        | ApiError::UserNotFound
        | ApiError::GroupDeactivated => ErrorClass::Unreachable,
        // A bad token stops every send: pause and tell the admin instead of failing everyone.
        ApiError::InvalidToken => ErrorClass::PauseCampaign,
        ApiError::Unknown(_) => match code.as_str() {
            "403" => ErrorClass::Unreachable,
            "429" => ErrorClass::RateLimited,
            "401" | "404" => ErrorClass::PauseCampaign,
            "400" | "413" => ErrorClass::Permanent,
            // 5xx, 409 and anything unrecognised: retried a bounded number of times.
            _ => ErrorClass::Transient,
        },
        _ => ErrorClass::Permanent,
    };
    let reason = match api {
        ApiError::InvalidToken => {
            "Unauthorized: the bot token was refused; check TELEGRAM_TOKEN".into()
        }
        _ => reason,
    };
    SendError::new(class, code, reason)
}

/// The HTTP status the Bot API pairs with a description.
fn code_of(description: &str) -> String {
    const PREFIXES: &[(&str, &str)] = &[
        ("Bad Request", "400"),
        ("Unauthorized", "401"),
        ("Forbidden", "403"),
        ("Not Found", "404"),
        ("Conflict", "409"),
        ("Request Entity Too Large", "413"),
        ("Too Many Requests", "429"),
        ("Internal Server Error", "500"),
        ("Bad Gateway", "502"),
        ("Service Unavailable", "503"),
        ("Gateway Timeout", "504"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| description.starts_with(prefix))
        .map(|(_, code)| (*code).to_string())
        .unwrap_or_else(|| "telegram".into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Parses a Bot API answer the way teloxide does, by asking it to parse one.
    fn parse(body: &str) -> RequestError {
        #[derive(serde::Deserialize)]
        struct Answer {
            description: ApiError,
            parameters: Option<teloxide::types::ResponseParameters>,
        }
        let a: Answer = serde_json::from_str(body).unwrap();
        match a.parameters {
            Some(teloxide::types::ResponseParameters::RetryAfter(s)) => RequestError::RetryAfter(s),
            Some(teloxide::types::ResponseParameters::MigrateToChatId(c)) => {
                RequestError::MigrateToChatId(c)
            }
            None => RequestError::Api(a.description),
        }
    }

    #[test]
    fn too_many_requests_waits_retry_after() {
        let e = classify(&parse(
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
        ));
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.code, "429");
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn blocked_and_deactivated_users_are_unreachable() {
        for description in [
            "Forbidden: bot was blocked by the user",
            "Forbidden: user is deactivated",
            "Bad Request: chat not found",
            "Forbidden: bot can't initiate conversation with a user",
        ] {
            let e = classify(&parse(&format!(
                r#"{{"ok":false,"error_code":403,"description":"{description}"}}"#
            )));
            assert_eq!(e.class, ErrorClass::Unreachable, "{description}");
            assert_eq!(e.reason, description);
        }
        let e = classify(&parse(
            r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#,
        ));
        assert_eq!(e.code, "403");
    }

    #[test]
    fn other_bad_requests_are_permanent_and_server_errors_transient() {
        let e = classify(&parse(
            r#"{"ok":false,"error_code":400,"description":"Bad Request: message is too long"}"#,
        ));
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::Permanent, "400"));
        let e = classify(&parse(
            r#"{"ok":false,"error_code":400,"description":"Bad Request: something new"}"#,
        ));
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::Permanent, "400"));
        let e = classify(&parse(
            r#"{"ok":false,"error_code":502,"description":"Bad Gateway"}"#,
        ));
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::Transient, "502"));
    }

    #[test]
    fn a_refused_token_pauses_instead_of_failing_everyone() {
        let e = classify(&parse(
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        ));
        assert_eq!(e.class, ErrorClass::PauseCampaign);
        assert!(e.reason.contains("TELEGRAM_TOKEN"));
    }
}
