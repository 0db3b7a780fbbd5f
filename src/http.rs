//! The HTTP server of `herald run`: the WhatsApp Cloud API webhook (`GET` handshake, signed `POST`
//! notifications), `/healthz` and `/metrics`.
//!
//! A webhook POST is answered only after its events are processed and stored: 200 means "done,
//! durably"; any other answer makes Meta redeliver the body later, which is safe because
//! processing is idempotent (inbound messages are deduplicated by id, statuses only move forward).
//!
//! Webhook routes (WhatsApp's, and Telegram's when it is merged in) sit behind the limits of
//! [`Intake`]: one cap on requests in flight, past which a request is answered 503 at once; and
//! for each body a size limit, a deadline and a shared budget of bytes held. A POST without a
//! well-formed signature is refused before its body is read, and the signature of one that has
//! it is computed as the body streams in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::load_shed::LoadShedLayer;
use tower::{BoxError, ServiceBuilder};

use crate::channels::intake::{Intake, IntakeError};
use crate::channels::whatsapp::{parse_webhook_for, verify_handshake, Signature, Verifier};
use crate::channels::{ChannelEvent, ChannelKind};
use crate::engine::{Engine, EngineError};
use crate::metrics::{Metrics, Rejection};
use crate::store::CampaignStatus;

/// Where Meta POSTs notifications and sends its verification `GET`.
pub const WHATSAPP_WEBHOOK_PATH: &str = "/webhooks/whatsapp";

/// The longest a webhook POST waits for its processing. Past it, herald answers 503 so Meta
/// redelivers later, while the processing itself runs to its end (see [`whatsapp_notification`]).
/// Processing is a few database writes, plus a reply when an admin command or an opt-out asks
/// for one; this leaves room for a slow Graph API answer without holding Meta's connection open
/// until it gives up on us.
const PROCESSING_DEADLINE: Duration = Duration::from_secs(10);

/// Meta batches up to 1000 updates in one POST; a few MiB covers that. A body is held whole until
/// its signature is judged, so this also bounds what one forged request can make herald hold
/// (and `WEBHOOK_BUFFER_MB` must leave room for at least one such body).
pub const WEBHOOK_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// A health check that cannot get a database connection this fast reports the database as down,
/// rather than hanging the prober.
const HEALTH_DB_TIMEOUT: Duration = Duration::from_secs(5);

struct HttpState {
    engine: Arc<Engine>,
    intake: Intake,
    /// Set once the "no app secret" warning was logged, so a misconfigured server says it once
    /// instead of on every refused POST.
    warned_no_secret: AtomicBool,
}

/// The router `herald run` serves: WhatsApp's webhook, `telegram` (Telegram's webhook route in
/// webhook mode), `/healthz` and `/metrics`. Both webhook routes share `intake`'s limits; the
/// health and metrics routes stay outside them, so a flood does not blind the monitoring.
pub fn router(engine: Arc<Engine>, intake: Intake, telegram: Option<Router>) -> Router {
    let metrics = engine.metrics.clone();
    let state = Arc::new(HttpState {
        engine,
        intake: intake.clone(),
        warned_no_secret: AtomicBool::new(false),
    });
    let whatsapp = Router::new()
        .route(
            WHATSAPP_WEBHOOK_PATH,
            get(whatsapp_handshake).post(whatsapp_notification),
        )
        .with_state(state.clone());
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
        .merge(capped(whatsapp, &intake, &metrics, ChannelKind::WhatsApp));
    if let Some(telegram) = telegram {
        // WhatsApp's handler times its own processing (it answers once the events are stored);
        // Telegram's route queues the update and answers, so its answer is timed here.
        let timer = metrics.clone();
        let telegram = telegram.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let timer = timer.clone();
                async move {
                    let started = std::time::Instant::now();
                    let response = next.run(request).await;
                    if response.status().is_success() {
                        timer.webhook_took(ChannelKind::Telegram, started.elapsed());
                    }
                    response
                }
            },
        ));
        router = router.merge(capped(telegram, &intake, &metrics, ChannelKind::Telegram));
    }
    router
}

/// `routes` behind the shared cap on webhook requests in flight, each request counted as received
/// first. A request past the cap is shed at once with 503 (both Meta and Telegram redeliver
/// later) rather than queued: a queue would only hold more connections open.
fn capped(routes: Router, intake: &Intake, metrics: &Arc<Metrics>, channel: ChannelKind) -> Router {
    let received = metrics.clone();
    let count = move |request: axum::extract::Request| {
        // Notifications only: Meta's verification GET is not a webhook delivery.
        if request.method() == axum::http::Method::POST {
            received.webhook_received(channel);
        }
        request
    };
    let metrics = metrics.clone();
    let shed = move |_: BoxError| {
        let metrics = metrics.clone();
        async move {
            metrics.webhook_rejected(channel, Rejection::Busy);
            tracing::debug!(
                channel = channel.name(),
                "webhook request shed: too many in flight"
            );
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    routes.route_layer(
        ServiceBuilder::new()
            .map_request(count)
            .layer(HandleErrorLayer::new(shed))
            .layer(LoadShedLayer::new())
            .layer(intake.request_cap()),
    )
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

async fn metrics_text(State(state): State<Arc<HttpState>>) -> Response {
    let engine = &state.engine;
    engine.metrics.set_webhook_load(
        state.intake.requests_in_flight(),
        state.intake.buffered_bytes(),
    );
    // Read at scrape time: the database is the truth shared by every process.
    match engine.overview().await {
        Ok(overview) => {
            let sending = overview.campaigns_in(CampaignStatus::Sending);
            engine.metrics.set_campaigns_sending(sending);
            engine.metrics.set_shared(&overview.gauges());
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot read the queue and campaigns"),
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

/// A notification from Meta: verified while it streams in, parsed, processed, and only then
/// answered.
#[tracing::instrument(skip_all, fields(bytes = tracing::field::Empty, events = tracing::field::Empty))]
async fn whatsapp_notification(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let engine = &state.engine;
    let metrics = &engine.metrics;

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
        return StatusCode::UNAUTHORIZED.into_response();
    };
    // A request that cannot be signed is refused before a byte of its body is read.
    let signature = headers
        .get(crate::channels::whatsapp::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let Some(mut verifier) =
        Signature::parse(signature).and_then(|expected| Verifier::new(secret.as_bytes(), expected))
    else {
        tracing::warn!(
            signed = signature.is_some(),
            "refused a WhatsApp webhook: missing or malformed X-Hub-Signature-256"
        );
        metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Signature);
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let body = match state
        .intake
        .read(&headers, body, WEBHOOK_BODY_LIMIT, |chunk| {
            verifier.update(chunk)
        })
        .await
    {
        Ok(body) => body,
        Err(error) => return refuse_body(metrics, ChannelKind::WhatsApp, &error),
    };
    tracing::Span::current().record("bytes", body.len());
    if !verifier.verify() {
        tracing::warn!("refused a WhatsApp webhook: wrong X-Hub-Signature-256");
        metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Signature);
        return StatusCode::UNAUTHORIZED.into_response();
    }

    // Processing time runs from the body in hand to the answer.
    let started = std::time::Instant::now();
    let our_number = engine
        .config
        .whatsapp_phone_number_id
        .as_deref()
        .unwrap_or_default();
    let our_account = engine.config.whatsapp_business_account_id.as_deref();
    let decoded = match parse_webhook_for(&body.contiguous(), our_number, our_account) {
        Ok(decoded) => decoded,
        Err(error) => {
            // Signed by Meta yet unreadable: redelivering it would not help.
            tracing::warn!(%error, "refused a signed WhatsApp webhook that is not a webhook body");
            metrics.webhook_rejected(ChannelKind::WhatsApp, Rejection::Malformed);
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    // The events own what they need: the raw body goes back to the budget now.
    drop(body);
    if decoded.other_number > 0 {
        // Answered 200 all the same: redelivering a change for another number changes nothing.
        metrics.webhook_changes_other_number(ChannelKind::WhatsApp, decoded.other_number);
    }
    let events = decoded.events;
    tracing::Span::current().record("events", events.len());
    if events.is_empty() {
        metrics.webhook_took(ChannelKind::WhatsApp, started.elapsed());
        return StatusCode::OK.into_response();
    }

    // Processing runs in its own task: when Meta hangs up, the server drops this handler, and a
    // body dropped between two writes would be half applied. The task always runs to its end.
    let task = tokio::spawn(process(engine.clone(), events));
    let status = match tokio::time::timeout(PROCESSING_DEADLINE, task).await {
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
    };
    metrics.webhook_took(ChannelKind::WhatsApp, started.elapsed());
    status.into_response()
}

/// The answer to a body that was not read whole, counted and logged.
fn refuse_body(metrics: &Metrics, channel: ChannelKind, error: &IntakeError) -> Response {
    let reason = match error {
        IntakeError::TooLarge { .. } => Rejection::TooLarge,
        IntakeError::TimedOut(_) => Rejection::Timeout,
        IntakeError::OverBudget => Rejection::Busy,
        IntakeError::Read(_) => Rejection::Read,
    };
    metrics.webhook_rejected(channel, reason);
    tracing::warn!(
        channel = channel.name(),
        error = %crate::error_chain(error),
        "refused a webhook body"
    );
    // The rest of the body is not wanted: the connection closes instead of reading it.
    (error.status(), [(header::CONNECTION, "close")]).into_response()
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
            ChannelEvent::Billed(_) => "billing",
            ChannelEvent::Account(_) => "account",
        };
        engine.metrics.webhook_event(ChannelKind::WhatsApp, kind);
        // A status's billing goes with the statuses: both only write the recipient's row.
        if matches!(event, ChannelEvent::Status(_) | ChannelEvent::Billed(_)) {
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
