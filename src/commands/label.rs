//! `/label add|remove`: labels on contacts: its parser, its
//! handler and their tests. Grammar and examples: `commands/label.md`.

use super::parse::{shorten, Args, ParseError};
use super::reply::{said, Reply};
use crate::domain::{Address, Label};
use crate::engine::Engine;

#[derive(Debug, Clone, PartialEq)]
pub enum LabelCommand {
    Add {
        label: Label,
        addresses: Vec<Address>,
    },
    Remove {
        label: Label,
        addresses: Vec<Address>,
    },
}

pub(super) fn parse(args: &mut Args) -> Result<LabelCommand, ParseError> {
    let sub = args.keyword("subcommand")?;
    let add = match sub.as_str() {
        "add" => true,
        "remove" => false,
        other => return Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    };
    let args = args.with_usage(if add { "label add" } else { "label remove" });
    let label = args.label()?;
    let mut addresses = vec![args.address()?];
    while let Some(word) = args.word()? {
        let address = Address::parse(&word).map_err(|e| args.err(e.to_string()))?;
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(if add {
        LabelCommand::Add { label, addresses }
    } else {
        LabelCommand::Remove { label, addresses }
    })
}

pub(super) async fn apply(engine: &Engine, _admin: &str, command: LabelCommand) -> Reply {
    let _now = engine.clock.now();
    let _store = &engine.store;
    match command {
        LabelCommand::Add { label, addresses } => set_label(engine, &label, &addresses, true).await,
        LabelCommand::Remove { label, addresses } => {
            set_label(engine, &label, &addresses, false).await
        }
    }
}

async fn set_label(engine: &Engine, label: &Label, addresses: &[Address], present: bool) -> Reply {
    let mut ids = Vec::new();
    let mut unknown = Vec::new();
    for address in addresses {
        match engine.store.find_contact(address).await? {
            Some(c) => ids.push(c.id),
            None => unknown.push(address.as_str()),
        }
    }
    if !unknown.is_empty() {
        return said(format!(
            "no contact {}; nothing changed (add them with /contact add)",
            unknown.join(", ")
        ));
    }
    let changed = engine.store.set_label(label, &ids, present).await?;
    let verb = if present { "added to" } else { "removed from" };
    Ok(format!("label {label} {verb} {changed} contact(s)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::parse::test_support::*;

    group_ok!(Label, LabelCommand);

    #[test]
    fn label_add_and_remove() {
        assert_eq!(
            ok("/label add vip +15550001 tg:123456"),
            LabelCommand::Add {
                label: "vip".into(),
                addresses: vec!["+15550001".into(), "tg:123456".into()]
            }
        );
        assert_eq!(
            ok("/LABEL Remove new wa:15550002"),
            LabelCommand::Remove {
                label: "new".into(),
                addresses: vec!["wa:15550002".into()]
            }
        );
    }

    #[test]
    fn label_refusals() {
        refused_with_usage("/label add vip", "/label add <label> <address>...");
        refused_with_usage("/label add", "/label add <label> <address>...");
        refused_with_usage("/label add -vip +15550001", "/label add <label>");
        refused_with_usage("/label remove vip +15550001 x=y", "/label remove <label>");
        refused_with_usage("/label rename a b", "/label add|remove");
    }
}
