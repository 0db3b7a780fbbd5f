//! herald: WhatsApp and Telegram messaging campaigns, steered by admin chat commands.
//!
//! - [`channels`]: the channel interface and the console, WhatsApp and Telegram channels
//! - [`commands`]: admin commands, text -> [`commands::Command`] -> reply
//! - [`engine`]: the rules, the dispatcher, the scheduler, inbound handling
//! - [`store`]: SQLite / PostgreSQL persistence
//! - [`domain`]: audiences, content rendering, consent words, CSV import
//! - [`http`], [`metrics`]: the HTTP server of `herald run` (webhooks, `/healthz`, `/metrics`)
//! - [`app`], [`config`], [`clock`], [`report`]: wiring, settings, injected time, exports
//! - [`bench`]: `herald bench`, its fake Graph API and bulk seeding

pub mod app;
pub mod bench;
pub mod channels;
mod chart;
pub mod clock;
pub mod commands;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod report;
pub mod store;

/// An error and its causes on one line, for logs and for the reasons admins read.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Locks a mutex that guards plain state (counters, caches, times). A thread that panicked while
/// holding it cannot have left that state half-written in a way that matters more than stopping
/// every later caller, so a poisoned lock is used as it is.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
