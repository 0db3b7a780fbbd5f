//! Webhook mode: Telegram POSTs each update to `TELEGRAM_WEBHOOK_URL`, which herald serves on its
//! own HTTP server (the route is merged into the axum app of `herald run`).
//!
//! herald registers the webhook with a secret token, and Telegram sends it back in
//! `X-Telegram-Bot-Api-Secret-Token` on every POST: a request without the right token is
//! refused with 401 before its body is read. The check is our own (rather than teloxide's
//! `axum_to_router`) so the comparison is constant-time, like the WhatsApp signature check, and
//! the body is read within the limits every webhook shares ([`Intake`]).
//! Accepted updates go into a bounded queue that one task drains in order, so the answer to
//! Telegram is immediate and a customer's messages are handled in the order they were written.
//! The queue lives in memory: updates accepted but not yet handled when the process dies are
//! lost (Telegram does not redeliver an answered update), a window of well under a second in
//! normal operation; shutdown drains it first.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sha2::{Digest, Sha256};
use teloxide::types::Update;
use tokio::sync::mpsc;

use crate::channels::intake::Intake;

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// One update is a message or a callback, a few KiB; this is the limit axum applied before the
/// body was streamed, kept as it was.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Clone)]
struct Hook {
    secret: Arc<str>,
    queue: mpsc::Sender<Update>,
    intake: Intake,
}

/// The webhook route at `path`, feeding `queue`, reading bodies within `intake`'s limits.
pub fn router(path: &str, secret: Arc<str>, queue: mpsc::Sender<Update>, intake: Intake) -> Router {
    Router::new().route(path, post(receive)).with_state(Hook {
        secret,
        queue,
        intake,
    })
}

#[tracing::instrument(skip_all, name = "telegram_webhook")]
async fn receive(State(hook): State<Hook>, headers: HeaderMap, body: Body) -> Response {
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !same_secret(given, hook.secret.as_bytes()) {
        tracing::warn!("telegram webhook: request without the right secret token refused");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body = match hook.intake.read(&headers, body, BODY_LIMIT, |_| {}).await {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(error = %crate::error_chain(&error), "telegram webhook: body refused");
            // The rest of the body is not wanted: the connection closes instead of reading it.
            return (error.status(), [(header::CONNECTION, "close")]).into_response();
        }
    };
    let update: Update = match serde_json::from_slice(&body.contiguous()) {
        Ok(u) => u,
        Err(e) => {
            // Telegram would redeliver it forever and it would never parse: take it and say so.
            tracing::warn!(error = %e, "telegram webhook: update not understood, dropped");
            return StatusCode::OK.into_response();
        }
    };
    drop(body);
    let status = match hook.queue.try_send(update) {
        Ok(()) => StatusCode::OK,
        // Full or shutting down: Telegram retries later, and the update is not lost.
        Err(e) => {
            tracing::warn!(error = %e, "telegram webhook: update queue unavailable");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    status.into_response()
}

/// Compares in constant time. Hashing first makes the comparison independent of both lengths.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() {
        return false;
    }
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected);
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Whether `s` may be a webhook secret token (Bot API: 1-256 of `A-Z a-z 0-9 _ -`).
pub fn valid_secret(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A random secret token for a run whose configuration names none (herald registers the
/// webhook at every start, so it need not survive a restart).
pub fn random_secret() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 48)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        assert!(!same_secret(b"", b""));
    }

    #[test]
    fn generated_secrets_are_valid_tokens() {
        let s = random_secret();
        assert!(valid_secret(&s));
        assert_ne!(s, random_secret());
        assert!(!valid_secret("has space"));
        assert!(!valid_secret(""));
    }
}
