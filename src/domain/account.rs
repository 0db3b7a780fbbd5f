//! What Meta says about the WhatsApp Business account, in herald's terms: a template's status
//! changed, the number's messaging limit or quality changed, the account was restricted, and
//! what a delivered message was billed. The WhatsApp channel decodes these from webhooks; the
//! engine acts on them; the store keeps them.

use chrono::{DateTime, Utc};

use super::template::TemplateStatus;

/// The messaging limit: distinct contacts reached outside their window per rolling 24 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingLimit {
    Limited(u64),
    Unlimited,
}

impl MessagingLimit {
    /// Meta's `TIER_250`, `TIER_1K`, `TIER_2K`, `TIER_10K`, `TIER_100K`, `TIER_UNLIMITED`, or
    /// a plain number. `TIER_NOT_SET` and anything else say nothing.
    pub fn parse(word: &str) -> Option<MessagingLimit> {
        let word = word.trim().to_ascii_uppercase();
        if let Ok(n) = word.parse::<u64>() {
            return (n > 0).then_some(MessagingLimit::Limited(n));
        }
        let tier = word.strip_prefix("TIER_")?;
        if tier == "UNLIMITED" {
            return Some(MessagingLimit::Unlimited);
        }
        let (digits, scale) = match tier.strip_suffix('K') {
            Some(d) => (d, 1_000),
            None => (tier, 1),
        };
        digits
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| MessagingLimit::Limited(n * scale))
    }

    /// How herald stores and shows it: the number, or `unlimited`.
    pub fn as_text(self) -> String {
        match self {
            MessagingLimit::Limited(n) => n.to_string(),
            MessagingLimit::Unlimited => "unlimited".into(),
        }
    }

    pub fn from_text(text: &str) -> Option<MessagingLimit> {
        match text.trim() {
            "unlimited" => Some(MessagingLimit::Unlimited),
            n => n
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(MessagingLimit::Limited),
        }
    }

    /// Whether it lets more contacts through than `other`.
    pub fn is_above(self, other: MessagingLimit) -> bool {
        match (self, other) {
            (MessagingLimit::Unlimited, MessagingLimit::Limited(_)) => true,
            (MessagingLimit::Limited(a), MessagingLimit::Limited(b)) => a > b,
            _ => false,
        }
    }
}

/// One restriction Meta placed on the account, until `expires` (for good when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// `RESTRICTED_BIZ_INITIATED_MESSAGING`, `RESTRICTED_ADD_PHONE_NUMBER_ACTION`, ...
    pub kind: String,
    pub expires: Option<DateTime<Utc>>,
}

/// The restriction that holds business-initiated messages.
pub const BIZ_INITIATED_RESTRICTION: &str = "RESTRICTED_BIZ_INITIATED_MESSAGING";

impl Restriction {
    pub fn holds_business_initiated(&self) -> bool {
        self.kind.eq_ignore_ascii_case(BIZ_INITIATED_RESTRICTION)
    }

    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_none_or(|until| until > now)
    }
}

/// Something Meta said about the account or its templates.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountEvent {
    /// `message_template_status_update`.
    TemplateStatus {
        name: String,
        lang: String,
        status: TemplateStatus,
        /// Meta's reason (`INVALID_FORMAT`, `NONE`) and its explanation, when it gives them.
        reason: Option<String>,
    },
    /// `phone_number_quality_update`: `event` is FLAGGED, UNFLAGGED, DOWNGRADE, UPGRADE,
    /// ONBOARDING, THROUGHPUT_UPGRADE...; `limit` the messaging limit Meta now reports.
    Quality {
        event: String,
        limit: Option<MessagingLimit>,
        at: DateTime<Utc>,
    },
    /// `account_update` `ACCOUNT_RESTRICTION`: the restrictions in force from now on.
    Restricted {
        restrictions: Vec<Restriction>,
        at: DateTime<Utc>,
    },
    /// `account_update` `ACCOUNT_VIOLATION` or `DISABLED_UPDATE` (and account bans): every
    /// sending campaign stops. `detail` is what Meta gave as the kind of violation or ban.
    Stopped {
        event: String,
        detail: Option<String>,
        at: DateTime<Utc>,
    },
}

/// A status webhook's `pricing` object: what Meta charges (or not) for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub billable: Option<bool>,
    pub model: Option<String>,
    /// `marketing`, `utility`, `authentication`, `service`, `referral_conversion`, ...
    pub category: Option<String>,
    /// Per-message pricing's `regular`, `free_customer_service`, `free_entry_point`.
    pub kind: Option<String>,
}

impl Pricing {
    /// The report's key: the category Meta billed, or `free` for what it did not bill (free
    /// entry points, service inside the window).
    pub fn billed_as(&self) -> String {
        let free_kind = self
            .kind
            .as_deref()
            .is_some_and(|k| k.to_ascii_lowercase().starts_with("free"));
        if self.billable == Some(false) || free_kind {
            return "free".into();
        }
        let category: String = self
            .category
            .as_deref()
            .unwrap_or("unknown")
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        if category.is_empty() {
            "unknown".into()
        } else {
            category
        }
    }
}

/// A message's billing as Meta reported it, matched to the recipient like a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Billing {
    pub provider_id: String,
    pub callback: Option<String>,
    pub pricing: Pricing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_meta_tiers_and_numbers() {
        use MessagingLimit::*;
        assert_eq!(MessagingLimit::parse("TIER_250"), Some(Limited(250)));
        assert_eq!(MessagingLimit::parse("TIER_1K"), Some(Limited(1_000)));
        assert_eq!(MessagingLimit::parse("tier_100k"), Some(Limited(100_000)));
        assert_eq!(MessagingLimit::parse("TIER_UNLIMITED"), Some(Unlimited));
        assert_eq!(MessagingLimit::parse("2000"), Some(Limited(2_000)));
        assert_eq!(MessagingLimit::parse("TIER_NOT_SET"), None);
        assert_eq!(MessagingLimit::parse("0"), None);
        assert!(Limited(1_000).is_above(Limited(250)));
        assert!(Unlimited.is_above(Limited(250)));
        assert!(!Limited(250).is_above(Unlimited));
        assert_eq!(
            MessagingLimit::from_text(&Unlimited.as_text()),
            Some(Unlimited)
        );
    }

    #[test]
    fn pricing_names_the_billed_category_or_free() {
        let p = |billable, category: &str, kind: Option<&str>| Pricing {
            billable,
            model: Some("PMP".into()),
            category: Some(category.into()),
            kind: kind.map(str::to_string),
        };
        assert_eq!(
            p(Some(true), "MARKETING", Some("regular")).billed_as(),
            "marketing"
        );
        assert_eq!(p(Some(false), "service", None).billed_as(), "free");
        assert_eq!(
            p(Some(true), "utility", Some("free_entry_point")).billed_as(),
            "free"
        );
        assert_eq!(
            p(None, "auth entication!", None).billed_as(),
            "authentication"
        );
    }
}
