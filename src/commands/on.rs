//! `/on <campaign> <event> <action>`: what a recipient event does to the contact: its parser, its
//! handler and their tests. Grammar and examples: `commands/on.md`.

use super::parse::{shorten, Args, ParseError};
use super::reply::{campaign, said, Reply};
use super::{Command, PostAction, RecipientEvent};
use crate::engine::Engine;
use crate::store::{CampaignKind, CampaignStatus};

pub(super) fn parse(args: &mut Args) -> Result<Command, ParseError> {
    let campaign_id = args.id("campaign id")?;
    let event_word = args.require("event")?;
    let event = RecipientEvent::from_key(&event_word).ok_or_else(|| {
        args.err(format!(
            "event must be delivered, read, replied, clicked:<button> or failed, got {}",
            shorten(&event_word)
        ))
    })?;
    let action_word = args.rest.trim();
    args.rest = "";
    if action_word.is_empty() {
        return Err(args.err("missing action"));
    }
    let action = PostAction::from_key(action_word).ok_or_else(|| {
        args.err(format!(
            "action must be label+=<label>, label-=<label>, attr.KEY=<value> or optout, got {}",
            shorten(action_word)
        ))
    })?;
    Ok(Command::On {
        campaign_id,
        event,
        action,
    })
}

pub(super) async fn apply(
    engine: &Engine,
    campaign_id: i64,
    event: RecipientEvent,
    action: PostAction,
) -> Reply {
    let now = engine.clock.now();
    let store = &engine.store;
    let c = campaign(engine, campaign_id).await?;
    if c.status.is_final() && c.kind != CampaignKind::Recurring {
        // Statuses and replies still arrive after a campaign completes, so a rule on a
        // completed campaign still has work to do; only cancelled ones are refused.
        if c.status == CampaignStatus::Cancelled {
            return said(format!("campaign {campaign_id} is cancelled"));
        }
    }
    let rule = store.add_action(campaign_id, &event, &action, now).await?;
    Ok(format!(
        "rule {rule} added: on {} of campaign {campaign_id}, {}",
        event.key(),
        action.key()
    ))
}
