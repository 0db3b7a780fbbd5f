//! Webhook requests within bounds, for every webhook endpoint alike (WhatsApp's and Telegram's):
//! a cap on requests in flight, a size limit checked against the declared `Content-Length` before
//! a byte is read, a deadline for the whole body, and one budget of bytes shared by every webhook
//! body held in memory at once.
//!
//! Why a byte budget besides the request cap: a signature is checked while the body streams in,
//! but a signed body must still be whole to be parsed, and a forged body under a well-formed
//! signature can only be judged at its last byte. Every body being read is therefore held until
//! it is judged, and cap × body limit (64 × 8 MiB) would let forgeries pin 512 MiB. With the
//! budget the worst case is the budget itself (64 MiB by default), however many connections
//! come; a body that would overrun it is answered 503, which Meta and Telegram both retry.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::config::Config;

/// Why a webhook body was not read whole.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the body is over the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("the body did not arrive within {0:?}")]
    TimedOut(Duration),
    #[error("the webhook bodies held in memory are at their budget")]
    OverBudget,
    #[error("the body could not be read")]
    Read(#[source] axum::Error),
}

impl IntakeError {
    /// The answer to the sender.
    pub fn status(&self) -> StatusCode {
        match self {
            IntakeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            // Both senders retry a 503 later, when the budget has room again.
            IntakeError::OverBudget => StatusCode::SERVICE_UNAVAILABLE,
            IntakeError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A body read whole, kept as the chunks it arrived in. Its bytes count against the budget until
/// it is dropped.
pub struct Buffered {
    chunks: Vec<Bytes>,
    len: usize,
    _budget: OwnedSemaphorePermit,
}

impl Buffered {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body in one piece, for a parser: borrowed when it came in one chunk (most webhooks),
    /// copied once otherwise. Ask only once the body is judged worth parsing.
    pub fn contiguous(&self) -> Cow<'_, [u8]> {
        match self.chunks.as_slice() {
            [] => Cow::Borrowed(&[]),
            [one] => Cow::Borrowed(one),
            many => Cow::Owned(many.concat()),
        }
    }
}

/// The limits every webhook request of one HTTP server shares. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    requests: Arc<Semaphore>,
    max_requests: usize,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    body_timeout: Duration,
}

impl Intake {
    pub fn new(max_requests: usize, budget_bytes: usize, body_timeout: Duration) -> Intake {
        // The semaphore counts bytes in whole permits; its ceiling is far above any sane budget.
        let budget_bytes = budget_bytes.min(Semaphore::MAX_PERMITS);
        Intake {
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            body_timeout,
        }
    }

    pub fn from_config(config: &Config) -> Intake {
        Intake::new(
            config.webhook_max_in_flight,
            config.webhook_buffer_bytes,
            config.webhook_body_timeout,
        )
    }

    /// The cap on webhook requests in flight, for `Router::route_layer` under a load-shed layer
    /// (a request past the cap is answered at once rather than queued). Every layer made here
    /// shares the one cap.
    pub fn request_cap(&self) -> GlobalConcurrencyLimitLayer {
        GlobalConcurrencyLimitLayer::with_semaphore(self.requests.clone())
    }

    pub fn requests_in_flight(&self) -> usize {
        self.max_requests
            .saturating_sub(self.requests.available_permits())
    }

    pub fn buffered_bytes(&self) -> usize {
        self.budget_bytes
            .saturating_sub(self.budget.available_permits())
    }

    /// Refuses, before reading, a body whose declared `Content-Length` is over `limit`.
    pub fn check_declared(headers: &HeaderMap, limit: usize) -> Result<(), IntakeError> {
        match declared_length(headers) {
            Some(n) if n > limit as u64 => Err(IntakeError::TooLarge { limit }),
            _ => Ok(()),
        }
    }

    /// Reads `body` whole, handing each chunk to `each_chunk` as it arrives (a signature check
    /// hashes it there). Stops at once past `limit` bytes, past the body deadline, or when the
    /// chunk would overrun the shared budget.
    pub async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
        each_chunk: impl FnMut(&[u8]),
    ) -> Result<Buffered, IntakeError> {
        Intake::check_declared(headers, limit)?;
        tokio::time::timeout(self.body_timeout, self.read_all(body, limit, each_chunk))
            .await
            .map_err(|_| IntakeError::TimedOut(self.body_timeout))?
    }

    async fn read_all(
        &self,
        body: Body,
        limit: usize,
        mut each_chunk: impl FnMut(&[u8]),
    ) -> Result<Buffered, IntakeError> {
        let mut held = self
            .budget
            .clone()
            .try_acquire_many_owned(0)
            .map_err(|_| IntakeError::OverBudget)?;
        // The chunks are kept as the server read them, not copied into one buffer sized for the
        // whole body: buffers of the declared size, each filled to a different depth, would
        // leave the allocator's heap spread over budget-many full-size buffers (a flood of
        // forged 8 MB bodies held 650 MiB resident that way against a 64 MiB budget). Held
        // chunks take what arrived, which is what the budget counts.
        let mut chunks = Vec::new();
        let mut len = 0;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(IntakeError::Read)?;
            if len + chunk.len() > limit {
                return Err(IntakeError::TooLarge { limit });
            }
            let n = u32::try_from(chunk.len()).map_err(|_| IntakeError::TooLarge { limit })?;
            // Never wait for room: a wait would hold the connection (and its bytes) longer.
            let more = self
                .budget
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| IntakeError::OverBudget)?;
            held.merge(more);
            each_chunk(&chunk);
            len += chunk.len();
            chunks.push(chunk);
        }
        Ok(Buffered {
            chunks,
            len,
            _budget: held,
        })
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(length: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(n) = length {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        h
    }

    #[tokio::test]
    async fn a_body_within_bounds_is_read_whole_and_hashed_as_it_comes() {
        let intake = Intake::new(4, 1024, Duration::from_secs(5));
        let mut seen = Vec::new();
        let body = intake
            .read(&headers(Some(5)), Body::from("hello"), 100, |c| {
                seen.extend_from_slice(c)
            })
            .await
            .expect("read");
        assert_eq!(&*body.contiguous(), b"hello");
        assert_eq!(seen, b"hello");
        assert_eq!(intake.buffered_bytes(), 5);
        drop(body);
        assert_eq!(intake.buffered_bytes(), 0);
    }

    #[tokio::test]
    async fn a_body_in_many_chunks_is_whole_again() {
        let intake = Intake::new(4, 1024, Duration::from_secs(5));
        let parts: Vec<Result<&'static str, std::io::Error>> =
            vec![Ok("{\"a\""), Ok(":"), Ok("1}")];
        let body = intake
            .read(
                &headers(None),
                Body::from_stream(futures::stream::iter(parts)),
                100,
                |_| {},
            )
            .await
            .expect("read");
        assert_eq!(body.len(), 7);
        assert_eq!(&*body.contiguous(), br#"{"a":1}"#);
    }

    #[tokio::test]
    async fn too_large_declared_or_sent_is_refused() {
        let intake = Intake::new(4, 1024, Duration::from_secs(5));
        let declared = intake
            .read(&headers(Some(101)), Body::empty(), 100, |_| {})
            .await;
        assert!(matches!(
            declared,
            Err(IntakeError::TooLarge { limit: 100 })
        ));
        let sent = intake
            .read(&headers(None), Body::from(vec![b'x'; 101]), 100, |_| {})
            .await;
        assert!(matches!(sent, Err(IntakeError::TooLarge { .. })));
        assert_eq!(intake.buffered_bytes(), 0);
    }

    #[tokio::test]
    async fn bodies_held_at_once_share_one_budget() {
        let intake = Intake::new(4, 10, Duration::from_secs(5));
        let first = intake
            .read(&headers(None), Body::from("123456"), 100, |_| {})
            .await
            .expect("fits");
        let second = intake
            .read(&headers(None), Body::from("123456"), 100, |_| {})
            .await;
        assert!(matches!(second, Err(IntakeError::OverBudget)));
        assert_eq!(
            IntakeError::OverBudget.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(first);
        let third = intake
            .read(&headers(None), Body::from("123456"), 100, |_| {})
            .await;
        assert!(third.is_ok());
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let intake = Intake::new(4, 1024, Duration::from_millis(50));
        let stalled = futures::stream::pending::<Result<Vec<u8>, std::io::Error>>();
        let read = intake
            .read(&headers(Some(10)), Body::from_stream(stalled), 100, |_| {})
            .await;
        assert!(matches!(read, Err(IntakeError::TimedOut(_))));
    }
}
