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
    answer(apply(engine, admin, command).await, line)
}

/// `/contact import` with a file's bytes: what `herald contacts import FILE` and the console
/// run, the same code as a CSV attached or pasted after the command. `Err` is the one-line
/// answer when nothing was imported because the file or the database refused (the CLI exits
/// with a failure then); a file with rejected rows is still `Ok`.
pub async fn import_contacts(engine: &Engine, file: &[u8]) -> Result<String, String> {
    let now = engine.clock.now();
    match super::contact::import_csv(engine, file, now).await {
        Ok(reply) => Ok(reply),
        refused => Err(answer(refused, "/contact import")),
    }
}

fn answer(reply: Reply, line: &str) -> String {
    match reply {
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
        Command::Account => super::account::apply(engine).await,
        Command::Campaign(command) => super::campaign::apply(engine, admin, command).await,
        Command::Trigger(command) => super::trigger::apply(engine, admin, command).await,
        Command::Drip(command) => super::drip::apply(engine, admin, command).await,
        Command::Status => super::status::apply(engine).await,
    }
}
