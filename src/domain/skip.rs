//! Why a recipient was skipped: one word each, stored in `recipients.reason` and shown by
//! `/campaign preview` and `/campaign report` (SPEC section 3).

use std::fmt;
use std::str::FromStr;

/// A recipient that will not get this campaign's message, for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    OptedOut,
    NoConsent,
    /// WhatsApp free text with the 24-hour window closed.
    OutsideWindow,
    /// The user stopped marketing messages (131050) and this is a marketing template.
    MarketingStopped,
    /// The number cannot receive messages (131026 or a blocked bot).
    Unreachable,
    /// A `{{variable}}` the contact has no value for.
    MissingVariable,
    /// The campaign has no text or template.
    NoContent,
    /// No configured channel serves the contact's address.
    NoChannel,
    /// A drip step not sent because the contact replied.
    Replied,
    /// The campaign was cancelled before this recipient's turn.
    Cancelled,
    /// The contact's channel cannot show this message (a catalogue product on Telegram).
    ChannelUnsupported,
}

impl SkipReason {
    pub const ALL: [SkipReason; 11] = [
        SkipReason::OptedOut,
        SkipReason::NoConsent,
        SkipReason::OutsideWindow,
        SkipReason::MarketingStopped,
        SkipReason::Unreachable,
        SkipReason::MissingVariable,
        SkipReason::NoContent,
        SkipReason::NoChannel,
        SkipReason::Replied,
        SkipReason::Cancelled,
        SkipReason::ChannelUnsupported,
    ];

    /// The reasons a preview counts, in the order it lists them: the ones decided before a
    /// send (not a drip's reply or a cancel), except a campaign without content, which a
    /// preview refuses outright.
    pub fn previewed() -> impl Iterator<Item = SkipReason> {
        Self::ALL.into_iter().filter(|r| {
            !matches!(
                r,
                SkipReason::NoContent | SkipReason::Replied | SkipReason::Cancelled
            )
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OptedOut => "opted_out",
            SkipReason::NoConsent => "no_consent",
            SkipReason::OutsideWindow => "outside_window",
            SkipReason::MarketingStopped => "marketing_stopped",
            SkipReason::Unreachable => "unreachable",
            SkipReason::MissingVariable => "missing_variable",
            SkipReason::NoContent => "no_content",
            SkipReason::NoChannel => "no_channel",
            SkipReason::Replied => "replied",
            SkipReason::Cancelled => "cancelled",
            SkipReason::ChannelUnsupported => "channel_unsupported",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown skip reason '{0}'")]
pub struct UnknownSkipReason(pub String);

impl FromStr for SkipReason {
    type Err = UnknownSkipReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SkipReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownSkipReason(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_as_itself() {
        for r in SkipReason::ALL {
            assert_eq!(r.as_str().parse::<SkipReason>(), Ok(r));
        }
        assert!("Opted_Out".parse::<SkipReason>().is_err());
    }
}
