//! The HTTP server of `herald run`: the WhatsApp Cloud API webhook (`GET` handshake, signed `POST`
//! notifications), `/healthz` and `/metrics`.
//!
//! A webhook POST is answered only after its events are processed and stored: 200 means "done,
//! durably"; any other answer makes Meta redeliver the body later, which is safe because
//! processing is idempotent (inbound messages are deduplicated by id, statuses only move forward).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::channels::whatsapp::{parse_webhook, verify_handshake, verify_signature};
use crate::channels::{ChannelEvent, ChannelKind};
use crate::engine::{Engine, EngineError};
use crate::metrics::Rejection;
use crate::store::CampaignStatus;

/// Where Meta POSTs notifications and sends its verification `GET`.
pub const WHATSAPP_WEBHOOK_PATH: &str = "/webhooks/whatsapp";

/// The longest a webhook POST waits for its processing. Past it, herald answers 503 so Meta
/// redelivers later, while the processing itself runs to its end (see [`whatsapp_notification`]).
/// Processing is a few database writes, plus a reply when an admin command or an opt-out asks
/// for one; this leaves room for a slow Graph API answer without holding Meta's connection open
/// until it gives up on us.
const PROCESSING_DEADLINE: Duration = Duration::from_secs(10);

/// Meta batches up to 1000 updates in one POST; a few MiB covers that, and the limit keeps a
/// flood of garbage from being buffered whole before its signature is checked.
const WEBHOOK_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// A health check that cannot get a database connection this fast reports the database as down,
/// rather than hanging the prober.
const HEALTH_DB_TIMEOUT: Duration = Duration::from_secs(5);

struct HttpState {
    engine: Arc<Engine>,
    /// Set once the "no app secret" warning was logged, so a misconfigured server says it once
    /// instead of on every refused POST.
    warned_no_secret: AtomicBool,
}

/// The router `herald run` serves.
pub fn router(engine: Arc<Engine>) -> Router {
    let state = Arc::new(HttpState {
        engine,
        warned_no_secret: AtomicBool::new(false),
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            WHATSAPP_WEBHOOK_PATH,
            get(whatsapp_handshake).post(whatsapp_notification),
        )
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
        .with_state(state)
}

/// 200 `ok` when the database answers, 503 otherwise.
async fn healthz(State(state): State<Arc<HttpState>>) -> Response {
    let ping = sqlx::query("SELECT 1").execute(state.engine.store.pool());
    match tokio::time::timeout(HEALTH_DB_TIMEOUT, ping).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok").into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: database error");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => {
            tracing::warn!("health check: database did not answer in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let engine = &state.engine;
    // Read at scrape time: the database is the truth shared by every process.
    match engine.store.campaigns(Some(CampaignStatus::Sending)).await {
        Ok(sending) => engine.metrics.set_campaigns_sending(sending.len() as i64),
        Err(error) => tracing::warn!(%error, "metrics: cannot count sending campaigns"),
    }
    match engine.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics: encoding failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Meta's subscription check: `hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`.
/// Echoes the challenge for the configured verify token, 403 otherwise.
#[tracing::instrument(skip_all)]
async fn whatsapp_handshake(
    State(state): State<Arc<HttpState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let expected = state
        .engine
        .config
        .whatsapp_verify_token
        .as_deref()
        .unwrap_or_default();
    let param = |name: &str| params.get(name).map(String::as_str);
    match verify_handshake(
        param("hub.mode"),
        param("hub.verify_token"),
        param("hub.challenge"),
        expected,
    ) {
        Some(challenge) => {
            tracing::info!("WhatsApp webhook subscription verified");
            // Plain text, so an echoed challenge can never be rendered as a page.
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                challenge,
            )
                .into_response()
        }
        None => {
            if expected.is_empty() {
                tracing::warn!(
                    "WhatsApp webhook verification refused: WHATSAPP_VERIFY_TOKEN is not set"
                );
            } else {
                tracing::warn!("WhatsApp webhook verification refused: wrong mode or verify token");
            }
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

/// A notification from Meta: verified, parsed, processed, and only then answered.
#[tracing::instrument(skip_all, fields(bytes = body.len(), events = tracing::field::Empty))]
async fn whatsapp_notification(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let engine = &state.engine;
    let metrics = &engine.metrics;
    metrics.webhook_received(ChannelKind::WhatsApp);

    // Without a secret nothing can be verified, and an unverified body is anyone's forgery.
    let Some(secret) = engine
        .config
        .whatsapp_app_secret
        .as_deref()
        .filter(|s| !s.is_empty())
    else {
        if !state.warned_no_secret.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "WHATSAPP_APP_SECRET is not set: every WhatsApp webhook POST is refused with 401"
            );
        }
        metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Signature);
        return StatusCode::UNAUTHORIZED;
    };
    let signature = headers
        .get(crate::channels::whatsapp::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if !verify_signature(secret.as_bytes(), &body, signature) {
        tracing::warn!(
            signed = signature.is_some(),
            "refused a WhatsApp webhook: missing or wrong X-Hub-Signature-256"
        );
        metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Signature);
        return StatusCode::UNAUTHORIZED;
    }

    let events = match parse_webhook(&body) {
        Ok(events) => events,
        Err(error) => {
            // Signed by Meta yet unreadable: redelivering it would not help.
            tracing::warn!(%error, "refused a signed WhatsApp webhook that is not a webhook body");
            metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Malformed);
            return StatusCode::BAD_REQUEST;
        }
    };
    tracing::Span::current().record("events", events.len());
    if events.is_empty() {
        return StatusCode::OK;
    }

    // Processing runs in its own task: when Meta hangs up, the server drops this handler, and a
    // body dropped between two writes would be half applied. The task always runs to its end.
    let task = tokio::spawn(process(engine.clone(), events));
    match tokio::time::timeout(PROCESSING_DEADLINE, task).await {
        Ok(Ok(Ok(()))) => StatusCode::OK,
        Ok(Ok(Err(error))) => {
            tracing::error!(error = %crate::error_chain(&error), "WhatsApp webhook processing failed; Meta will redeliver");
            metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Processing);
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "WhatsApp webhook processing panicked; Meta will redeliver");
            metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Processing);
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Err(_) => {
            tracing::warn!(
                deadline = ?PROCESSING_DEADLINE,
                "WhatsApp webhook processing is slow; answering 503 so Meta redelivers \
                 (processing goes on, and the redelivery will change nothing)"
            );
            metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Processing);
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// Applies every event in order. Consecutive statuses are handed over together, so the status
/// writer stores a body of many statuses in one batch. One failing event does not stop the
/// others (they are independent, and each one done now is one less for the redelivery); the
/// first error is returned so the body is redelivered.
async fn process(engine: Arc<Engine>, events: Vec<ChannelEvent>) -> Result<(), EngineError> {
    let mut errors = Vec::new();
    let mut statuses = Vec::new();
    for event in events {
        let kind = match &event {
            ChannelEvent::Inbound(_) => "inbound",
            ChannelEvent::Status(_) => "status",
            ChannelEvent::MarketingPreference { .. } => "preference",
        };
        engine.metrics.webhook_event(ChannelKind::WhatsApp, kind);
        if matches!(event, ChannelEvent::Status(_)) {
            statuses.push(event);
            continue;
        }
        errors.extend(apply_together(&engine, std::mem::take(&mut statuses)).await);
        if let Err(error) = engine.handle_event(event).await {
            tracing::error!(kind, error = %crate::error_chain(&error), "webhook event not processed");
            errors.push(error);
        }
    }
    errors.extend(apply_together(&engine, statuses).await);
    errors.into_iter().next().map_or(Ok(()), Err)
}

/// Applies events concurrently; returns the errors.
async fn apply_together(engine: &Engine, events: Vec<ChannelEvent>) -> Vec<EngineError> {
    futures::future::join_all(events.into_iter().map(|e| engine.handle_event(e)))
        .await
        .into_iter()
        .filter_map(|result| result.err())
        .inspect(|error| {
            tracing::error!(error = %crate::error_chain(error), "webhook event not processed")
        })
        .collect()
}
