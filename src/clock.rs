//! Time, injected: the engine asks a [`Clock`] for "now" and for waits, so tests can move time
//! forward instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Waits `d` of this clock's time.
    async fn sleep(&self, d: Duration);
}

pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// A clock that moves only when told. `sleep` advances it by the slept amount and returns at
/// once, so paced sending runs instantly in tests while keeping its bookkeeping honest.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn advance(&self, d: chrono::Duration) {
        let mut now = crate::lock(&self.now);
        *now += d;
    }

    pub fn set(&self, t: DateTime<Utc>) {
        let mut now = crate::lock(&self.now);
        *now = t;
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *crate::lock(&self.now)
    }

    async fn sleep(&self, d: Duration) {
        if let Ok(d) = chrono::Duration::from_std(d) {
            self.advance(d);
        }
        tokio::task::yield_now().await;
    }
}

/// Milliseconds since the epoch, the store's time format.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
