//! The Telegram channel (teloxide). Not wired yet.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Channel, ChannelKind, Outbound, SendError, Sent};
use crate::config::Config;
use crate::engine::Engine;

pub struct TelegramChannel;

impl TelegramChannel {
    pub fn from_config(config: &Config) -> Result<Option<Arc<TelegramChannel>>, String> {
        if config.telegram_token.is_some() {
            return Err("the Telegram channel is not available yet".into());
        }
        Ok(None)
    }

    pub fn start(
        self: Arc<Self>,
        engine: Arc<Engine>,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let _ = engine;
        tokio::spawn(async move { shutdown.cancelled().await })
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    async fn send(&self, _msg: &Outbound) -> Result<Sent, SendError> {
        Err(SendError::new(
            super::ErrorClass::PauseCampaign,
            "unavailable",
            "Telegram is not wired yet",
        ))
    }
}
