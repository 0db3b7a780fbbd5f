//! Process metrics served on `/metrics` in the Prometheus (OpenMetrics) text format: webhooks
//! received, rejected and how long they took; messages sent, failed and how long a send took;
//! channel errors by code and class; the queue, the tier, campaigns by status and the database.
//!
//! Counters and histograms live in this process (each `herald run` of a scale-out counts its own
//! work, which is what Prometheus sums across instances); the gauges of shared state (queue,
//! tier, campaigns, database) are read from the database at scrape time, so every instance
//! reports the same shared truth (aggregate them with `max`, not `sum`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::channels::{ChannelKind, ErrorClass};

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    channel: String,
    code: String,
    class: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

type Timings = Family<ChannelLabel, Histogram, fn() -> Histogram>;

/// 5 ms to about 20 s, doubling: a send or a webhook is a few milliseconds when well, seconds
/// when a channel or the database struggles.
fn timings() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The shared state read from the database at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedGauges {
    pub queued: i64,
    pub in_flight: i64,
    /// Held recipients by reason (`tier_limit`, `quiet_hours`, `retry`, `scheduled`).
    pub held: Vec<(String, i64)>,
    pub tier_used: i64,
    /// `None` when the tier is unlimited.
    pub tier_limit: Option<i64>,
    pub campaigns: Vec<(String, i64)>,
    pub database_bytes: i64,
    /// Age of the oldest webhook de-duplication row, in seconds (0 when none is kept).
    pub oldest_dedup_secs: i64,
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
    send_duration: Timings,
    webhook_duration: Timings,
    channel_errors: Family<ErrorLabels, Counter>,
    recipients_queued: Gauge,
    recipients_in_flight: Gauge,
    recipients_held: Family<ReasonLabel, Gauge>,
    tier_used: Gauge,
    tier_limit: Gauge,
    campaigns: Family<StatusLabel, Gauge>,
    database_bytes: Gauge,
    oldest_dedup: Gauge,
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
        let send_duration = Timings::new_with_constructor(timings);
        let webhook_duration = Timings::new_with_constructor(timings);
        let channel_errors = Family::<ErrorLabels, Counter>::default();
        let recipients_queued = Gauge::default();
        let recipients_in_flight = Gauge::default();
        let recipients_held = Family::<ReasonLabel, Gauge>::default();
        let tier_used = Gauge::default();
        let tier_limit = Gauge::default();
        let campaigns = Family::<StatusLabel, Gauge>::default();
        let database_bytes = Gauge::default();
        let oldest_dedup = Gauge::default();
        registry.register_with_unit(
            "send_duration",
            "Time a channel took to answer one campaign send, by channel",
            prometheus_client::registry::Unit::Seconds,
            send_duration.clone(),
        );
        registry.register_with_unit(
            "webhook_processing_duration",
            "Time from a webhook's last byte to its answer (verified, decoded, stored), by channel",
            prometheus_client::registry::Unit::Seconds,
            webhook_duration.clone(),
        );
        registry.register(
            "channel_errors",
            "Errors a channel answered to a send, by code and class (retried ones included)",
            channel_errors.clone(),
        );
        registry.register(
            "recipients_queued",
            "Recipients due now, waiting for a sender",
            recipients_queued.clone(),
        );
        registry.register(
            "recipients_in_flight",
            "Recipients claimed or being sent",
            recipients_in_flight.clone(),
        );
        registry.register(
            "recipients_held",
            "Recipients put back for later, by reason (tier_limit, quiet_hours, retry, scheduled)",
            recipients_held.clone(),
        );
        registry.register(
            "tier_used",
            "Distinct contacts reached outside their service window in the last 24 hours",
            tier_used.clone(),
        );
        registry.register(
            "tier_limit",
            "The messaging tier's limit of such contacts (-1 when unlimited)",
            tier_limit.clone(),
        );
        registry.register("campaigns", "Campaigns by status", campaigns.clone());
        registry.register_with_unit(
            "database_size",
            "The database's size on disk",
            prometheus_client::registry::Unit::Bytes,
            database_bytes.clone(),
        );
        registry.register_with_unit(
            "dedup_oldest_age",
            "Age of the oldest webhook de-duplication row kept (pruning keeps it under DEDUP_KEEP_HOURS)",
            prometheus_client::registry::Unit::Seconds,
            oldest_dedup.clone(),
        );
        Metrics {
            registry,
            send_duration,
            webhook_duration,
            channel_errors,
            recipients_queued,
            recipients_in_flight,
            recipients_held,
            tier_used,
            tier_limit,
            campaigns,
            database_bytes,
            oldest_dedup,
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

    /// How long one send took the channel to answer.
    pub fn send_took(&self, channel: ChannelKind, took: std::time::Duration) {
        self.send_duration
            .get_or_create(&channel_label(channel))
            .observe(took.as_secs_f64());
    }

    /// How long one accepted webhook took from its last byte to its answer.
    pub fn webhook_took(&self, channel: ChannelKind, took: std::time::Duration) {
        self.webhook_duration
            .get_or_create(&channel_label(channel))
            .observe(took.as_secs_f64());
    }

    /// One error a channel answered to a send; `class` is its place in the taxonomy.
    pub fn channel_error(&self, channel: ChannelKind, code: &str, class: ErrorClass) {
        // Codes are the channel's short codes (`131026`, `429`, `timeout`); anything longer is
        // cut so that a strange answer cannot mint unbounded label values.
        let code: String = code.chars().take(16).collect();
        self.channel_errors
            .get_or_create(&ErrorLabels {
                channel: channel.name().to_string(),
                code,
                class: class_name(class).to_string(),
            })
            .inc();
    }

    /// The gauges of shared state, as read from the database just now.
    pub fn set_shared(&self, g: &SharedGauges) {
        self.recipients_queued.set(g.queued);
        self.recipients_in_flight.set(g.in_flight);
        // Cleared first: a reason no recipient is held for any more reads as gone, not stuck.
        self.recipients_held.clear();
        for reason in ["tier_limit", "quiet_hours", "retry"] {
            self.recipients_held
                .get_or_create(&ReasonLabel {
                    reason: reason.into(),
                })
                .set(0);
        }
        for (reason, n) in &g.held {
            self.recipients_held
                .get_or_create(&ReasonLabel {
                    reason: reason.clone(),
                })
                .set(*n);
        }
        self.tier_used.set(g.tier_used);
        self.tier_limit.set(g.tier_limit.unwrap_or(-1));
        for (status, n) in &g.campaigns {
            self.campaigns
                .get_or_create(&StatusLabel {
                    status: status.clone(),
                })
                .set(*n);
        }
        self.database_bytes.set(g.database_bytes);
        self.oldest_dedup.set(g.oldest_dedup_secs);
    }

    /// The whole registry in the text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The `class` label: SPEC's error taxonomy in snake case.
fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::RateLimited => "rate_limited",
        ErrorClass::Transient => "transient",
        ErrorClass::Unknown => "unknown",
        ErrorClass::Defer => "defer",
        ErrorClass::Permanent => "permanent",
        ErrorClass::Unreachable => "unreachable",
        ErrorClass::MarketingStopped => "marketing_stopped",
        ErrorClass::PauseCampaign => "pause_campaign",
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
