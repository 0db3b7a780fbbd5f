//! `/account`: the WhatsApp Business account as Meta last described it: tier and its source,
//! quality, restrictions, templates by status, and the tier's use. Grammar and examples:
//! `commands/account.md`.

use std::collections::BTreeMap;

use super::parse::{Args, ParseError};
use super::reply::Reply;
use super::Command;
use crate::engine::account::TierSource;
use crate::engine::rules::SERVICE_WINDOW;
use crate::engine::Engine;

pub(super) fn parse(args: &mut Args) -> Result<Command, ParseError> {
    args.end()?;
    Ok(Command::Account)
}

pub(super) async fn apply(engine: &Engine) -> Reply {
    let now = engine.clock.now();
    let state = engine.store.account().await?;
    let (tier, source) = engine.tier().await?;
    let mut lines = Vec::new();
    lines.push(match (source, state.tier_at) {
        (TierSource::Meta, Some(at)) => format!(
            "tier: {tier} contacts per 24 h (from Meta, {})",
            engine.local_time(at)
        ),
        _ => format!("tier: {tier} contacts per 24 h (configured WHATSAPP_TIER)"),
    });
    let used = engine.store.tier_used(now - SERVICE_WINDOW).await?;
    lines.push(format!(
        "last 24 h: {used} contact(s) reached outside their window, of {tier}; {} message(s) sent",
        engine.store.sent_since(now - SERVICE_WINDOW).await?
    ));
    lines.push(match (&state.quality_event, state.quality_at) {
        (Some(event), Some(at)) => format!("quality: {event} ({})", engine.local_time(at)),
        _ => "quality: no event from Meta yet".to_string(),
    });
    let in_force: Vec<String> = state
        .restrictions
        .iter()
        .filter(|r| r.in_force(now))
        .map(|r| match r.expires {
            Some(until) => format!("{} until {}", r.kind, engine.local_time(until)),
            None => format!("{} until Meta lifts it", r.kind),
        })
        .collect();
    lines.push(if in_force.is_empty() {
        "restrictions: none".to_string()
    } else {
        format!("restrictions: {}", in_force.join("; "))
    });
    if let (Some(event), Some(at)) = (&state.account_event, state.account_at) {
        lines.push(format!("account: {event} ({})", engine.local_time(at)));
    }
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let templates = engine.store.templates().await?;
    for t in &templates {
        *by_status.entry(t.status.to_string()).or_default() += 1;
    }
    let counts: Vec<String> = by_status
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect();
    lines.push(if counts.is_empty() {
        "templates: none".to_string()
    } else {
        format!("templates: {}", counts.join(", "))
    });
    if engine.has_template_catalog() {
        lines.push(match (state.synced_at, &state.sync_error) {
            (Some(at), None) => format!("last sync: {}", engine.local_time(at)),
            (Some(at), Some(why)) => {
                format!("last sync: failed {}: {why}", engine.local_time(at))
            }
            (None, _) => "last sync: not yet".to_string(),
        });
    } else {
        lines.push(
            "templates are declared with /template add (set WHATSAPP_BUSINESS_ACCOUNT_ID to \
             sync them from Meta)"
                .to_string(),
        );
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use crate::commands::parse::test_support::*;
    use crate::commands::{parse, Command};

    #[test]
    fn account_takes_no_arguments() {
        assert_eq!(parse("/account").unwrap(), Command::Account);
        refused_with_usage("/account now", "/account");
    }
}
