//! Where one recipient of a campaign stands, and the order statuses move in.
//!
//! The store keeps the status as text (one word per value, below); every rule that compares or
//! moves statuses works on this enum, so a misspelt status cannot reach a query or a decision.

use std::fmt;
use std::str::FromStr;

/// The status of a recipient row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecipientStatus {
    /// Waiting for its turn (or for its retry time).
    Queued,
    /// Taken by one dispatcher under a lease, not yet handed to the channel.
    Claimed,
    /// Written before the channel is called: after a crash it may have left, so it becomes
    /// `Unknown` instead of being sent again.
    Sending,
    /// Handed to the channel and the answer was lost (crash, timeout after the request left).
    Unknown,
    Sent,
    Delivered,
    Read,
    Failed,
    /// Never sent: a rule said no (see `SkipReason`).
    Skipped,
}

impl RecipientStatus {
    pub const ALL: [RecipientStatus; 9] = [
        Self::Queued,
        Self::Claimed,
        Self::Sending,
        Self::Unknown,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
        Self::Skipped,
    ];

    /// The word stored and shown (`/campaign report`, the CSV export).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Claimed => "claimed",
            Self::Sending => "sending",
            Self::Unknown => "unknown",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Where the status sits in the order delivery statuses move: handed to the channel
    /// (`sending`, `unknown`) < sent < delivered < read. `None` for a status no delivery status
    /// can move (not yet handed over, failed, skipped).
    pub fn progress(self) -> Option<u8> {
        match self {
            Self::Sending | Self::Unknown => Some(1),
            Self::Sent => Some(2),
            Self::Delivered => Some(3),
            Self::Read => Some(4),
            Self::Queued | Self::Claimed | Self::Failed | Self::Skipped => None,
        }
    }
}

impl fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a recipient status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown recipient status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for RecipientStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_word() {
        for status in RecipientStatus::ALL {
            assert_eq!(status.as_str().parse::<RecipientStatus>(), Ok(status));
        }
        assert!("Sent".parse::<RecipientStatus>().is_err());
        assert!("".parse::<RecipientStatus>().is_err());
    }

    #[test]
    fn delivery_order_is_sending_sent_delivered_read() {
        use RecipientStatus::*;
        let order: Vec<_> = [Sending, Sent, Delivered, Read]
            .iter()
            .map(|s| s.progress())
            .collect();
        assert_eq!(order, vec![Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(Unknown.progress(), Sending.progress());
        for closed in [Queued, Claimed, Failed, Skipped] {
            assert_eq!(closed.progress(), None, "{closed}");
        }
    }
}
