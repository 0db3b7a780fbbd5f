//! Whether one contact gets a campaign's message: the single decision the dispatcher applies to
//! every claimed recipient and `/campaign preview` counts ahead of a send, so a preview's
//! `eligible` is what the send reaches. Holds (tier budget, quiet hours) are not part of it: they
//! delay a message, they do not decide whether it goes.

use chrono::{DateTime, Utc};

use super::render::{render_for, RenderError, Rendered};
use super::rules::{self, Decision, MessageKind};
use crate::channels::{ChannelKind, MediaRef};
use crate::domain::SkipReason;
use crate::store::{Campaign, CampaignKind, Contact, Template};

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send `rendered`; `outside_window` marks a business-initiated message (tier, cost).
    Send {
        rendered: Rendered,
        outside_window: bool,
    },
    /// Skip for good; `missing` names the variables when the reason is a missing variable.
    Skip {
        reason: SkipReason,
        missing: Vec<String>,
    },
}

/// The send rules in SPEC order, then the render: `channel` is the kind of the channel serving
/// the contact's address, `None` when no configured channel does.
pub fn verdict(
    campaign: &Campaign,
    template: Option<&Template>,
    contact: &Contact,
    media: Option<&MediaRef>,
    channel: Option<ChannelKind>,
    now: DateTime<Utc>,
) -> Verdict {
    let skip = |reason| Verdict::Skip {
        reason,
        missing: Vec::new(),
    };
    let Some(channel) = channel else {
        return skip(SkipReason::NoChannel);
    };
    let kind = MessageKind {
        template_category: template.map(|t| t.category.as_str()),
        triggered: campaign.kind == CampaignKind::Triggered,
    };
    let outside_window = match rules::check_contact(contact, channel, kind, now) {
        Decision::Skip(reason) => return skip(reason),
        Decision::Send { outside_window } => outside_window,
    };
    // A catalogue product exists on WhatsApp only (the console stands in for WhatsApp).
    let whatsapp_only = campaign.template.is_none()
        && campaign
            .choices
            .as_ref()
            .is_some_and(|choices| choices.whatsapp_only());
    if whatsapp_only && channel == ChannelKind::Telegram {
        return skip(SkipReason::ChannelUnsupported);
    }
    match render_for(campaign, template, contact, media) {
        Ok(rendered) => Verdict::Send {
            rendered,
            outside_window,
        },
        Err(RenderError::Missing(missing)) => Verdict::Skip {
            reason: SkipReason::MissingVariable,
            missing,
        },
        Err(RenderError::NoTemplate(_) | RenderError::NoContent) => skip(SkipReason::NoContent),
    }
}
