//! The HTTP server of `herald run`: `/healthz`, and (in later modules) the WhatsApp webhook and
//! `/metrics`.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::engine::Engine;

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .with_state(engine)
}
