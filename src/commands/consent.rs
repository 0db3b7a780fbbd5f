//! `/optin` and `/optout`: consent recorded by an admin: its parser, its
//! handler and their tests. Grammar and examples: `commands/consent.md`.

use super::reply::{find, Reply};
use crate::domain::consent::ConsentSource;
use crate::domain::Address;
use crate::engine::Engine;
use crate::store::Consent;

#[derive(Debug, Clone, PartialEq)]
pub enum ConsentCommand {
    OptIn { address: Address },
    OptOut { address: Address },
}

pub(super) async fn apply(engine: &Engine, _admin: &str, command: ConsentCommand) -> Reply {
    let now = engine.clock.now();
    let store = &engine.store;
    match command {
        ConsentCommand::OptIn { address } => {
            engine.check_reachable(&address)?;
            let contact = find(engine, &address).await?;
            if contact.consent == Consent::OptedIn {
                return Ok(format!("{address} is already opted in"));
            }
            store
                .record_consent(contact.id, true, ConsentSource::Admin, None, now)
                .await?;
            Ok(format!("{address} opted in"))
        }
        ConsentCommand::OptOut { address } => {
            engine.check_reachable(&address)?;
            let contact = find(engine, &address).await?;
            if contact.consent == Consent::OptedOut {
                return Ok(format!("{address} is already opted out"));
            }
            let dropped = store
                .record_consent(contact.id, false, ConsentSource::Admin, None, now)
                .await?;
            Ok(format!(
                "{address} opted out; removed from {dropped} pending campaign send(s)"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::parse::test_support::*;

    group_ok!(Consent, ConsentCommand);

    #[test]
    fn optin_and_optout() {
        assert_eq!(
            ok("/optin +15550001"),
            ConsentCommand::OptIn {
                address: "+15550001".into()
            }
        );
        assert_eq!(
            ok("/OptOut wa:+15550002"),
            ConsentCommand::OptOut {
                address: "wa:+15550002".into()
            }
        );
        refused_with_usage("/optin", "/optin <address>");
        refused_with_usage("/optout +15550001 now", "/optout <address>");
    }
}
