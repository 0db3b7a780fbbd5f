//! Admin commands: text -> [`Command`] (pure; `parse` reads the command word and the group's
//! module the rest), then [`Command`] -> reply (`handlers` routes to the group's module). One
//! module per command group (`contact`, `label`, `consent`, `template`, `account`, `campaign`, `trigger`,
//! `drip`, `on`), each with its parser, its handler and their tests, the way mini-redis has one
//! file per command. The grammar is documented in the top-level `commands/` folder, from which
//! `/help` and the usage lines of parse errors are built.

/// A command group's test helper `ok`: parses a line and returns the group's command, failing
/// the test if it parsed as anything else.
#[cfg(test)]
macro_rules! group_ok {
    ($group:ident, $command:ty) => {
        fn ok(line: &str) -> $command {
            match crate::commands::parse(line) {
                Ok(crate::commands::Command::$group(command)) => command,
                other => panic!(
                    "{line:?} should parse as a {} command, got {other:?}",
                    stringify!($group)
                ),
            }
        }
    };
}

mod account;
mod campaign;
mod campaign_media;
mod consent;
mod contact;
mod drip;
pub mod handlers;
pub mod help;
mod label;
mod on;
pub mod parse;
mod reply;
pub mod status;
mod template;
mod trigger;

pub use crate::domain::actions::{PostAction, RecipientEvent};
pub use campaign::{CampaignCommand, ReportFormat};
pub use consent::ConsentCommand;
pub use contact::ContactCommand;
pub use drip::{DripCommand, StepContent};
pub use label::LabelCommand;
pub use parse::{parse, ParseError};
pub use template::{TemplateCategory, TemplateCommand};
pub use trigger::{TriggerCommand, TriggerPattern, TriggerTarget};

/// The command layer as the engine's [`crate::engine::AdminDesk`]: parses and applies one
/// admin message, and words the reply.
pub struct Desk;

#[async_trait::async_trait]
impl crate::engine::AdminDesk for Desk {
    async fn answer(&self, engine: &crate::engine::Engine, admin: &str, text: &str) -> String {
        handlers::run(engine, admin, text).await
    }
}

/// A label expression or explicit addresses, kept as typed; `domain::audience` compiles it.
pub type AudienceSpec = String;

/// One parsed admin command. Everything is validated for shape here (numbers are numbers, times
/// parse, keys are known); whether ids exist is the handler's business.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help {
        topic: Option<String>,
    },
    /// `/on <campaign> <event> <action>`: what to do to a recipient's contact when it happens.
    On {
        campaign_id: i64,
        event: RecipientEvent,
        action: PostAction,
    },
    Contact(ContactCommand),
    Label(LabelCommand),
    Consent(ConsentCommand),
    Template(TemplateCommand),
    /// `/account`: the WhatsApp Business account as Meta last described it.
    Account,
    Campaign(CampaignCommand),
    Trigger(TriggerCommand),
    Drip(DripCommand),
    /// `/status`: what herald is doing now.
    Status,
}
