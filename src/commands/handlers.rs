//! Applies a parsed [`Command`] to the store and the engine and words the reply. Every path
//! answers with something a person can act on; a refusal is one line and changes nothing.
//! Each command group has its own module (`contact`, `campaign`, ...) with its parser, its
//! handler and their tests; this one routes.

use super::reply::{Refusal, Reply};
use super::{parse, Command};
use crate::engine::Engine;

/// Parses and runs one admin line; always returns the text to send back.
pub async fn run(engine: &Engine, admin: &str, line: &str) -> String {
    let command = match parse(line) {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    match apply(engine, admin, command).await {
        Ok(reply) => reply,
        Err(Refusal::Said(why)) => why,
        Err(Refusal::Internal(e)) => {
            tracing::error!(error = %e, line, "command failed");
            Refusal::Internal(e).to_string()
        }
    }
}

async fn apply(engine: &Engine, admin: &str, command: Command) -> Reply {
    match command {
        Command::Help { topic } => Ok(super::help::help(topic.as_deref())),
        Command::On {
            campaign_id,
            event,
            action,
        } => super::on::apply(engine, campaign_id, event, action).await,
        Command::Contact(command) => super::contact::apply(engine, admin, command).await,
        Command::Label(command) => super::label::apply(engine, admin, command).await,
        Command::Consent(command) => super::consent::apply(engine, admin, command).await,
        Command::Template(command) => super::template::apply(engine, admin, command).await,
        Command::Campaign(command) => super::campaign::apply(engine, admin, command).await,
        Command::Trigger(command) => super::trigger::apply(engine, admin, command).await,
        Command::Drip(command) => super::drip::apply(engine, admin, command).await,
    }
}
