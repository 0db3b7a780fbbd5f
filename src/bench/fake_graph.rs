//! A minimal fake WhatsApp Cloud API for `herald bench`: it answers `POST /{phone_number_id}/messages`
//! as Meta does (a wamid per accepted message) as fast as it can, and counts the messages per
//! recipient so the bench can tell duplicates. It lives in `src` because the binary runs it.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

/// The phone number id herald is configured with in the bench.
pub const PHONE_NUMBER_ID: &str = "1122334455667";

struct Counts {
    /// Lowest recipient number counted; numbers are `base + i`.
    base: u64,
    /// Messages per recipient, saturating at 255 (2 already means a duplicate).
    per_recipient: Vec<AtomicU8>,
    accepted: AtomicU64,
    /// Messages to recipients outside the counted range (should stay 0).
    stray: AtomicU64,
    wamids: AtomicU64,
}

/// A running fake Graph API; stops when dropped.
pub struct FakeGraph {
    /// Base URL to use as `WHATSAPP_API_URL`.
    pub url: String,
    counts: Arc<Counts>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    to: Option<&'a str>,
}

impl FakeGraph {
    /// Serves on 127.0.0.1 (an OS-chosen port), counting recipients `base..base + capacity`.
    pub async fn start(base: u64, capacity: usize) -> std::io::Result<FakeGraph> {
        let counts = Arc::new(Counts {
            base,
            per_recipient: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            accepted: AtomicU64::new(0),
            stray: AtomicU64::new(0),
            wamids: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/{phone_number_id}/messages", post(messages))
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "bench fake Graph API stopped");
            }
        });
        Ok(FakeGraph {
            url,
            counts,
            server,
        })
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counts.accepted.load(Ordering::Relaxed)
    }

    /// Messages beyond the first to the same recipient.
    pub fn duplicates(&self) -> u64 {
        self.counts
            .per_recipient
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed).saturating_sub(1)))
            .sum()
    }

    /// Messages to recipients outside the counted range.
    pub fn stray(&self) -> u64 {
        self.counts.stray.load(Ordering::Relaxed)
    }
}

async fn messages(State(counts): State<Arc<Counts>>, body: Bytes) -> Response {
    let to = serde_json::from_slice::<Body>(&body)
        .ok()
        .and_then(|b| b.to.map(str::to_owned));
    let Some(to) = to else {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100}}"#,
        )
            .into_response();
    };
    match to
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_sub(counts.base))
        .and_then(|i| counts.per_recipient.get(i as usize))
    {
        Some(c) => {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
        }
        None => {
            counts.stray.fetch_add(1, Ordering::Relaxed);
        }
    }
    counts.accepted.fetch_add(1, Ordering::Relaxed);
    let n = counts.wamids.fetch_add(1, Ordering::Relaxed);
    let answer = format!(
        r#"{{"messaging_product":"whatsapp","contacts":[{{"input":"{to}","wa_id":"{to}"}}],"messages":[{{"id":"wamid.bench{n:010}","message_status":"accepted"}}]}}"#
    );
    ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
}
