//! What a channel reports about a message herald sent: delivery progress, in herald's terms.
//! The store records it and the engine acts on it; the channels only translate their wire
//! format into it.

use chrono::{DateTime, Utc};

/// Delivery progress of a message herald sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The channel's id of the sent message (WhatsApp wamid).
    pub provider_id: String,
    /// What herald attached to the send (`biz_opaque_callback_data`), if echoed back.
    pub callback: Option<String>,
    pub status: DeliveryStatus,
    pub at: DateTime<Utc>,
    /// The recipient's address as the channel reports it.
    pub recipient: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed { code: String, title: String },
}
