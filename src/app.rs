//! Builds herald from configuration: the store, the channels, the engine, and (for `herald run`)
//! the HTTP server; runs it until a shutdown signal.

use std::sync::Arc;

use crate::channels::{Channel, ChannelRouter};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::engine::{Engine, EngineError};
use crate::store::{Backend, Store};

/// Opens the store, recovers interrupted work and assembles the engine over `channels`.
pub async fn build_engine(
    config: Config,
    clock: SharedClock,
    channels: Vec<Arc<dyn Channel>>,
) -> Result<Arc<Engine>, EngineError> {
    let store = Store::connect(&config.database_url).await?;
    let mut router = ChannelRouter::new();
    for c in channels {
        router.add(c);
    }
    let single_process = store.backend() == Backend::Sqlite;
    let engine = Arc::new(Engine::new(store, Arc::new(config), clock, router));
    // On SQLite this process is the only one, so every lease left behind is a crashed run's.
    engine.recover(single_process).await?;
    Ok(engine)
}
