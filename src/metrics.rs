//! Process metrics served on `/metrics` in the Prometheus (OpenMetrics) text format: webhooks
//! received and rejected, messages sent and failed per channel, and campaigns sending.
//!
//! Counters live in this process (each `herald run` of a scale-out counts its own work, which is
//! what Prometheus sums across instances); the sending-campaigns gauge is read from the database
//! at scrape time, so every instance reports the same shared truth.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::channels::ChannelKind;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabels {
    channel: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    channel: String,
    kind: String,
}

/// Why a webhook was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Missing or wrong signature, or no secret configured to check one with.
    Signature,
    /// Signed, but not a webhook body we can read.
    Malformed,
    /// Read, but processing failed; the sender is asked to redeliver.
    Processing,
    /// Past the cap on requests in flight or the budget of bytes held: 503, redelivered later.
    Busy,
    /// The body is over the size limit (413).
    TooLarge,
    /// The body did not arrive whole in time (408).
    Timeout,
    /// The connection failed while the body was read.
    Read,
}

impl Rejection {
    fn as_str(self) -> &'static str {
        match self {
            Rejection::Signature => "signature",
            Rejection::Malformed => "malformed",
            Rejection::Processing => "processing",
            Rejection::Busy => "busy",
            Rejection::TooLarge => "too_large",
            Rejection::Timeout => "timeout",
            Rejection::Read => "read",
        }
    }
}

/// herald's metrics. Handles are cheap clones of shared atomics, so this is shared by `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    webhooks_received: Family<ChannelLabel, Counter>,
    webhooks_rejected: Family<RejectedLabels, Counter>,
    webhook_events: Family<EventLabels, Counter>,
    webhook_other_number: Family<ChannelLabel, Counter>,
    webhook_requests_in_flight: Gauge,
    webhook_buffered_bytes: Gauge,
    messages_sent: Family<ChannelLabel, Counter>,
    messages_failed: Family<ChannelLabel, Counter>,
    campaigns_sending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let webhooks_received = Family::<ChannelLabel, Counter>::default();
        let webhooks_rejected = Family::<RejectedLabels, Counter>::default();
        let webhook_events = Family::<EventLabels, Counter>::default();
        let webhook_other_number = Family::<ChannelLabel, Counter>::default();
        let webhook_requests_in_flight = Gauge::default();
        let webhook_buffered_bytes = Gauge::default();
        let messages_sent = Family::<ChannelLabel, Counter>::default();
        let messages_failed = Family::<ChannelLabel, Counter>::default();
        let campaigns_sending = Gauge::default();
        registry.register(
            "webhooks_received",
            "Webhook requests received (WhatsApp and Telegram), before any check",
            webhooks_received.clone(),
        );
        registry.register(
            "webhooks_rejected",
            "Webhook requests refused, by reason",
            webhooks_rejected.clone(),
        );
        registry.register(
            "webhook_events",
            "Events processed from accepted webhooks, by kind",
            webhook_events.clone(),
        );
        registry.register(
            "webhook_changes_other_number",
            "Changes in accepted webhooks left out because they are for another business number",
            webhook_other_number.clone(),
        );
        registry.register(
            "webhook_requests_in_flight",
            "Webhook requests being handled now",
            webhook_requests_in_flight.clone(),
        );
        registry.register(
            "webhook_buffered_bytes",
            "Bytes of webhook bodies held in memory now",
            webhook_buffered_bytes.clone(),
        );
        registry.register(
            "messages_sent",
            "Campaign messages a channel accepted",
            messages_sent.clone(),
        );
        registry.register(
            "messages_failed",
            "Campaign messages that failed for good (retries and holds not counted)",
            messages_failed.clone(),
        );
        registry.register(
            "campaigns_sending",
            "Campaigns in the sending state",
            campaigns_sending.clone(),
        );
        Metrics {
            registry,
            webhooks_received,
            webhooks_rejected,
            webhook_events,
            webhook_other_number,
            webhook_requests_in_flight,
            webhook_buffered_bytes,
            messages_sent,
            messages_failed,
            campaigns_sending,
        }
    }

    pub fn webhook_received(&self, channel: ChannelKind) {
        self.webhooks_received
            .get_or_create(&channel_label(channel))
            .inc();
    }

    pub fn webhook_rejected(&self, channel: ChannelKind, why: Rejection) {
        self.webhooks_rejected
            .get_or_create(&RejectedLabels {
                channel: channel.name().to_string(),
                reason: why.as_str().to_string(),
            })
            .inc();
    }

    /// One event of an accepted webhook (`inbound`, `status`, `preference`).
    pub fn webhook_event(&self, channel: ChannelKind, kind: &str) {
        self.webhook_events
            .get_or_create(&EventLabels {
                channel: channel.name().to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// `n` changes of an accepted webhook were for another business number.
    pub fn webhook_changes_other_number(&self, channel: ChannelKind, n: usize) {
        self.webhook_other_number
            .get_or_create(&channel_label(channel))
            .inc_by(n as u64);
    }

    /// Webhook requests in flight and bytes of their bodies held, read at scrape time.
    pub fn set_webhook_load(&self, requests: usize, bytes: usize) {
        self.webhook_requests_in_flight
            .set(i64::try_from(requests).unwrap_or(i64::MAX));
        self.webhook_buffered_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn message_sent(&self, channel: ChannelKind) {
        self.messages_sent
            .get_or_create(&channel_label(channel))
            .inc();
    }

    pub fn message_failed(&self, channel: ChannelKind) {
        self.messages_failed
            .get_or_create(&channel_label(channel))
            .inc();
    }

    pub fn set_campaigns_sending(&self, n: i64) {
        self.campaigns_sending.set(n);
    }

    /// The whole registry in the text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn channel_label(channel: ChannelKind) -> ChannelLabel {
    ChannelLabel {
        channel: channel.name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_in_the_text_format() {
        let m = Metrics::new();
        m.webhook_received(ChannelKind::WhatsApp);
        m.webhook_received(ChannelKind::WhatsApp);
        m.webhook_rejected(ChannelKind::WhatsApp, Rejection::Signature);
        m.message_sent(ChannelKind::WhatsApp);
        m.message_failed(ChannelKind::Telegram);
        m.set_campaigns_sending(3);
        let text = m.encode().unwrap();
        assert!(text.contains("herald_webhooks_received_total{channel=\"whatsapp\"} 2"));
        assert!(text.contains(
            "herald_webhooks_rejected_total{channel=\"whatsapp\",reason=\"signature\"} 1"
        ));
        assert!(text.contains("herald_messages_sent_total{channel=\"whatsapp\"} 1"));
        assert!(text.contains("herald_messages_failed_total{channel=\"telegram\"} 1"));
        assert!(text.contains("herald_campaigns_sending 3"));
        assert!(text.ends_with("# EOF\n"));
    }
}
