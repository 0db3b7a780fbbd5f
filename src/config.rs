//! Typed settings, read from environment variables and optionally a `herald.toml` (environment
//! wins). Every key and default is listed in the README. Secrets never appear in `Debug`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;

use crate::domain::consent::{ConsentWords, DEFAULT_OPT_IN, DEFAULT_OPT_OUT};
use crate::domain::{Address, AddressKind};

const MIB: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot read {path}: {message}")]
    File { path: String, message: String },
}

/// WhatsApp's messaging tier: distinct contacts reached outside their window per rolling 24 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Limited(u64),
    Unlimited,
}

impl Tier {
    pub fn parse(s: &str) -> Option<Tier> {
        let s = s.trim().to_ascii_lowercase().replace(['_', ','], "");
        match s.as_str() {
            "unlimited" | "none" => Some(Tier::Unlimited),
            "1k" => Some(Tier::Limited(1_000)),
            "2k" => Some(Tier::Limited(2_000)),
            "10k" => Some(Tier::Limited(10_000)),
            "100k" => Some(Tier::Limited(100_000)),
            n => n.parse::<u64>().ok().map(Tier::Limited),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tier::Limited(n) => write!(f, "{n}"),
            Tier::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Local hours during which nothing is sent to a contact (in the contact's own timezone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    pub fn parse(s: &str) -> Option<QuietHours> {
        let (a, b) = s.trim().split_once('-')?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
        Some(QuietHours { start, end })
    }

    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            t >= self.start && t < self.end
        } else {
            // Wraps midnight, e.g. 21:00-08:00.
            t >= self.start || t < self.end
        }
    }
}

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    /// The admins' timezone for typed times.
    pub admin_tz: Tz,
    pub http_addr: String,
    pub whatsapp_token: Option<String>,
    pub whatsapp_phone_number_id: Option<String>,
    pub whatsapp_app_secret: Option<String>,
    pub whatsapp_verify_token: Option<String>,
    /// The WhatsApp Business account (WABA) id: templates, tier and restrictions come from
    /// Meta when it is set.
    pub whatsapp_business_account_id: Option<String>,
    pub whatsapp_api_url: String,
    pub whatsapp_mps: f64,
    pub tier: Tier,
    pub admin_whatsapp: Vec<String>,
    pub telegram_token: Option<String>,
    pub telegram_api_url: Option<String>,
    pub telegram_webhook_url: Option<String>,
    pub telegram_secret_token: Option<String>,
    pub admin_telegram: Vec<String>,
    pub consent_words: ConsentWords,
    pub quiet_hours: Option<QuietHours>,
    /// Quality guard: pause when failures exceed this share of the last `quality_window` sends.
    pub quality_max_failure: f64,
    pub quality_max_optout: f64,
    pub quality_window: i64,
    /// Fewest sends before the guard judges (a handful of early failures is not a trend).
    pub quality_min_sample: i64,
    /// Price per message by template category, for cost estimates.
    pub price_marketing: f64,
    pub price_utility: f64,
    pub price_authentication: f64,
    pub currency: String,
    /// Attempts before a transient error fails a recipient.
    pub max_attempts: i64,
    /// Where CSV and chart exports are written.
    pub reports_dir: String,
    /// How long a claimed recipient stays leased without a heartbeat (`LEASE_SECS`). A running
    /// process renews its leases; a dead one's rows come back this long after it died.
    pub lease_secs: u64,
    /// How often `herald run` brings back the rows of processes that died
    /// (`RECOVER_EVERY_SECS`).
    pub recover_every_secs: u64,
    /// Webhook requests (WhatsApp and Telegram together) handled at once
    /// (`WEBHOOK_MAX_IN_FLIGHT`); past it herald answers 503 and the sender redelivers later.
    pub webhook_max_in_flight: usize,
    /// Bytes of webhook bodies held in memory at once, all requests together
    /// (`WEBHOOK_BUFFER_MB`): the bound on what a flood of large bodies can pin.
    pub webhook_buffer_bytes: usize,
    /// How long a webhook body may take to arrive whole (`WEBHOOK_BODY_TIMEOUT_SECS`), so
    /// stalled senders do not pile up.
    pub webhook_body_timeout: Duration,
    /// Recipient rows of campaigns finished longer ago than this are summarised into their
    /// campaign's counts and removed (`RETENTION_DAYS`).
    pub retention: Duration,
    /// How long a webhook message id is remembered to recognise a redelivery
    /// (`DEDUP_KEEP_HOURS`): Meta redelivers for up to 7 days.
    pub dedup_keep: Duration,
    /// How often `herald run` prunes, summarises and refreshes statistics
    /// (`MAINTENANCE_EVERY_SECS`).
    pub maintenance_every: Duration,
    /// How long a client may take to send a request's headers (`HTTP_HEADER_TIMEOUT_SECS`);
    /// past it the connection is closed, so slow senders cannot hold sockets open.
    pub http_header_timeout: Duration,
    /// How long fetching an admin's attached file may take, lookup and download together
    /// (`FILE_TIMEOUT_SECS`); past it the command answers that the download timed out.
    pub file_timeout: Duration,
    /// How many contact ids one page of a campaign's resolution covers (`RESOLVE_PAGE`): the
    /// first page is written with the start, the rest while the campaign sends. Larger pages
    /// resolve a big audience in fewer transactions; each holds the resolution longer.
    pub resolve_page: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("admin_tz", &self.admin_tz)
            .field("http_addr", &self.http_addr)
            .field("whatsapp_token", &secret(&self.whatsapp_token))
            .field("whatsapp_phone_number_id", &self.whatsapp_phone_number_id)
            .field("whatsapp_app_secret", &secret(&self.whatsapp_app_secret))
            .field(
                "whatsapp_verify_token",
                &secret(&self.whatsapp_verify_token),
            )
            .field(
                "whatsapp_business_account_id",
                &self.whatsapp_business_account_id,
            )
            .field("whatsapp_api_url", &self.whatsapp_api_url)
            .field("whatsapp_mps", &self.whatsapp_mps)
            .field("tier", &self.tier)
            .field("admin_whatsapp", &self.admin_whatsapp)
            .field("telegram_token", &secret(&self.telegram_token))
            .field("telegram_api_url", &self.telegram_api_url)
            .field("admin_telegram", &self.admin_telegram)
            .field("quiet_hours", &self.quiet_hours)
            .field("webhook_max_in_flight", &self.webhook_max_in_flight)
            .field("webhook_buffer_bytes", &self.webhook_buffer_bytes)
            .field("webhook_body_timeout", &self.webhook_body_timeout)
            .field("retention", &self.retention)
            .field("dedup_keep", &self.dedup_keep)
            .field("maintenance_every", &self.maintenance_every)
            .field("http_header_timeout", &self.http_header_timeout)
            .field("file_timeout", &self.file_timeout)
            .field("resolve_page", &self.resolve_page)
            .finish_non_exhaustive()
    }
}

/// Hides a password in a database URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Contact ids per page of a resolution: about 0.1 s of writing on PostgreSQL on two cores.
pub const DEFAULT_RESOLVE_PAGE: u64 = 10_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://herald.db".into(),
            admin_tz: Tz::UTC,
            http_addr: "0.0.0.0:8080".into(),
            whatsapp_token: None,
            whatsapp_phone_number_id: None,
            whatsapp_app_secret: None,
            whatsapp_verify_token: None,
            whatsapp_business_account_id: None,
            whatsapp_api_url: "https://graph.facebook.com/v21.0".into(),
            whatsapp_mps: 80.0,
            tier: Tier::Limited(250),
            admin_whatsapp: Vec::new(),
            telegram_token: None,
            telegram_api_url: None,
            telegram_webhook_url: None,
            telegram_secret_token: None,
            admin_telegram: Vec::new(),
            consent_words: ConsentWords::new(DEFAULT_OPT_OUT, DEFAULT_OPT_IN),
            quiet_hours: None,
            quality_max_failure: 0.20,
            quality_max_optout: 0.05,
            quality_window: 200,
            quality_min_sample: 20,
            price_marketing: 0.025,
            price_utility: 0.004,
            price_authentication: 0.0135,
            currency: "USD".into(),
            max_attempts: 5,
            reports_dir: "reports".into(),
            lease_secs: 30,
            recover_every_secs: 30,
            webhook_max_in_flight: 64,
            webhook_buffer_bytes: 64 * MIB,
            webhook_body_timeout: Duration::from_secs(15),
            retention: Duration::from_secs(180 * 86_400),
            dedup_keep: Duration::from_secs(7 * 24 * 3600),
            maintenance_every: Duration::from_secs(60),
            http_header_timeout: Duration::from_secs(10),
            file_timeout: Duration::from_secs(60),
            resolve_page: DEFAULT_RESOLVE_PAGE,
        }
    }
}

impl Config {
    /// Reads `herald.toml` (if `file` exists) and then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Some(path) = file {
            if path.exists() {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                let table: toml::Table =
                    text.parse()
                        .map_err(|e: toml::de::Error| ConfigError::File {
                            path: path.display().to_string(),
                            message: e.message().to_string(),
                        })?;
                for (k, v) in table {
                    let v = match v {
                        toml::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    vars.insert(k.to_ascii_uppercase(), v);
                }
            }
        }
        for (k, v) in std::env::vars() {
            vars.insert(k, v);
        }
        Config::from_vars(&vars)
    }

    /// Builds a configuration from `KEY -> value` pairs (the environment's names).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        let float = |key: &str, default: f64| -> Result<f64, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .ok_or_else(|| {
                        invalid(key, format!("expected a non-negative number, got {v:?}"))
                    }),
            }
        };
        let list = |k: &str| -> Vec<String> {
            get(k)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };

        if let Some(v) = get("DATABASE_URL") {
            c.database_url = v;
        }
        if let Some(v) = get("TZ") {
            c.admin_tz = v
                .parse::<Tz>()
                .map_err(|_| invalid("TZ", format!("unknown timezone {v:?}")))?;
        }
        if let Some(v) = get("HTTP_ADDR") {
            c.http_addr = v;
        }
        c.whatsapp_token = get("WHATSAPP_TOKEN");
        c.whatsapp_phone_number_id = get("WHATSAPP_PHONE_NUMBER_ID");
        c.whatsapp_app_secret = get("WHATSAPP_APP_SECRET");
        c.whatsapp_verify_token = get("WHATSAPP_VERIFY_TOKEN");
        c.whatsapp_business_account_id = get("WHATSAPP_BUSINESS_ACCOUNT_ID");
        if let Some(id) = &c.whatsapp_business_account_id {
            if !id.chars().all(|ch| ch.is_ascii_digit()) {
                return Err(ConfigError::Invalid {
                    key: "WHATSAPP_BUSINESS_ACCOUNT_ID".into(),
                    message: format!("{id:?} is not a Business account id (digits only)"),
                });
            }
        }
        if let Some(v) = get("WHATSAPP_API_URL") {
            c.whatsapp_api_url = v.trim_end_matches('/').to_string();
        }
        c.whatsapp_mps = float("WHATSAPP_MPS", c.whatsapp_mps)?;
        if let Some(v) = get("WHATSAPP_TIER") {
            c.tier = Tier::parse(&v).ok_or_else(|| {
                invalid(
                    "WHATSAPP_TIER",
                    format!("expected 250, 2000, 10000, 100000 or unlimited, got {v:?}"),
                )
            })?;
        }
        // Admin numbers go through the one address parser, so `+1 555-777-0001` is the number
        // the webhook reports as `15557770001`; a typo stops the start instead of locking out.
        c.admin_whatsapp = list("ADMIN_WHATSAPP")
            .into_iter()
            .map(|n| match Address::parse(&n) {
                Ok(a) if a.kind() == AddressKind::Phone => Ok(a.into_string()),
                _ => Err(invalid(
                    "ADMIN_WHATSAPP",
                    format!("expected phone numbers like +15557770001, got {n:?}"),
                )),
            })
            .collect::<Result<_, _>>()?;
        c.telegram_token = get("TELEGRAM_TOKEN");
        c.telegram_api_url = get("TELEGRAM_API_URL");
        c.telegram_webhook_url = get("TELEGRAM_WEBHOOK_URL");
        c.telegram_secret_token = get("TELEGRAM_SECRET_TOKEN");
        c.admin_telegram = list("ADMIN_TELEGRAM")
            .into_iter()
            .map(|id| {
                let qualified = format!("tg:{}", id.trim().trim_start_matches("tg:"));
                match Address::parse(&qualified) {
                    Ok(a) => Ok(a.into_string()),
                    Err(_) => Err(invalid(
                        "ADMIN_TELEGRAM",
                        format!("expected Telegram user ids like 123456, got {id:?}"),
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
        let opt_out = get("OPTOUT_WORDS").map(|v| ConsentWords::parse_list(&v));
        let opt_in = get("OPTIN_WORDS").map(|v| ConsentWords::parse_list(&v));
        if opt_out.is_some() || opt_in.is_some() {
            let defaults = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            c.consent_words = ConsentWords::new(
                &opt_out.unwrap_or_else(|| defaults(DEFAULT_OPT_OUT)),
                &opt_in.unwrap_or_else(|| defaults(DEFAULT_OPT_IN)),
            );
        }
        if let Some(v) = get("QUIET_HOURS") {
            c.quiet_hours = Some(QuietHours::parse(&v).ok_or_else(|| {
                invalid("QUIET_HOURS", format!("expected HH:MM-HH:MM, got {v:?}"))
            })?);
        }
        c.quality_max_failure = float("QUALITY_MAX_FAILURE", c.quality_max_failure)?;
        c.quality_max_optout = float("QUALITY_MAX_OPTOUT", c.quality_max_optout)?;
        c.price_marketing = float("PRICE_MARKETING", c.price_marketing)?;
        c.price_utility = float("PRICE_UTILITY", c.price_utility)?;
        c.price_authentication = float("PRICE_AUTHENTICATION", c.price_authentication)?;
        if let Some(v) = get("REPORTS_DIR") {
            c.reports_dir = v;
        }
        if let Some(v) = get("CURRENCY") {
            c.currency = v;
        }
        let seconds =
            |key: &str, default: u64| -> Result<u64, ConfigError> {
                match get(key) {
                    None => Ok(default),
                    Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid(key, format!("expected whole seconds > 0, got {v:?}"))
                    }),
                }
            };
        c.lease_secs = seconds("LEASE_SECS", c.lease_secs)?;
        c.recover_every_secs = seconds("RECOVER_EVERY_SECS", c.recover_every_secs)?;
        let whole =
            |key: &str, default: usize| -> Result<usize, ConfigError> {
                match get(key) {
                    None => Ok(default),
                    Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid(key, format!("expected a whole number > 0, got {v:?}"))
                    }),
                }
            };
        c.webhook_max_in_flight = whole("WEBHOOK_MAX_IN_FLIGHT", c.webhook_max_in_flight)?;
        c.resolve_page = whole("RESOLVE_PAGE", c.resolve_page as usize)? as u64;
        c.webhook_buffer_bytes = whole("WEBHOOK_BUFFER_MB", c.webhook_buffer_bytes / MIB)?
            .checked_mul(MIB)
            .ok_or_else(|| invalid("WEBHOOK_BUFFER_MB", "too large".into()))?;
        c.webhook_body_timeout = Duration::from_secs(seconds(
            "WEBHOOK_BODY_TIMEOUT_SECS",
            c.webhook_body_timeout.as_secs(),
        )?);
        let count =
            |key: &str, unit: &str, default: u64| -> Result<u64, ConfigError> {
                match get(key) {
                    None => Ok(default),
                    Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid(key, format!("expected whole {unit} > 0, got {v:?}"))
                    }),
                }
            };
        c.retention = Duration::from_secs(
            count("RETENTION_DAYS", "days", c.retention.as_secs() / 86_400)?
                .checked_mul(86_400)
                .ok_or_else(|| invalid("RETENTION_DAYS", "too large".into()))?,
        );
        c.dedup_keep = Duration::from_secs(
            count("DEDUP_KEEP_HOURS", "hours", c.dedup_keep.as_secs() / 3600)?
                .checked_mul(3600)
                .ok_or_else(|| invalid("DEDUP_KEEP_HOURS", "too large".into()))?,
        );
        c.maintenance_every = Duration::from_secs(seconds(
            "MAINTENANCE_EVERY_SECS",
            c.maintenance_every.as_secs(),
        )?);
        c.http_header_timeout = Duration::from_secs(seconds(
            "HTTP_HEADER_TIMEOUT_SECS",
            c.http_header_timeout.as_secs(),
        )?);
        c.file_timeout =
            Duration::from_secs(seconds("FILE_TIMEOUT_SECS", c.file_timeout.as_secs())?);
        Ok(c)
    }

    pub fn is_admin(&self, address: &str) -> bool {
        self.admin_whatsapp.iter().any(|a| a == address)
            || self.admin_telegram.iter().any(|a| a == address)
    }

    pub fn price(&self, category: &str) -> f64 {
        match category {
            "marketing" => self.price_marketing,
            "utility" => self.price_utility,
            "authentication" => self.price_authentication,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn admin_numbers_are_parsed_like_every_other_number() {
        let c = Config::from_vars(&vars(&[
            ("ADMIN_WHATSAPP", "+1 555-777-0001, wa:15557770002"),
            ("ADMIN_TELEGRAM", "42,tg:-7"),
        ]))
        .expect("valid");
        assert_eq!(c.admin_whatsapp, ["wa:15557770001", "wa:15557770002"]);
        assert!(c.is_admin("wa:15557770001"));
        assert_eq!(c.admin_telegram, ["tg:42", "tg:-7"]);
        for (key, bad) in [("ADMIN_WHATSAPP", "alice"), ("ADMIN_TELEGRAM", "@alice")] {
            let err = Config::from_vars(&vars(&[(key, bad)])).expect_err(bad);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn defaults_hold_without_variables() {
        let c = Config::from_vars(&HashMap::new()).unwrap();
        assert_eq!(c.database_url, "sqlite://herald.db");
        assert_eq!(c.tier, Tier::Limited(250));
        assert_eq!(c.whatsapp_mps, 80.0);
    }

    #[test]
    fn admins_are_channel_qualified() {
        let c = Config::from_vars(&vars(&[
            ("ADMIN_WHATSAPP", "+15550100, 15550101"),
            ("ADMIN_TELEGRAM", "42"),
        ]))
        .unwrap();
        assert!(c.is_admin("wa:15550100"));
        assert!(c.is_admin("wa:15550101"));
        assert!(c.is_admin("tg:42"));
        assert!(!c.is_admin("tg:43"));
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_vars(&vars(&[("WHATSAPP_TIER", "lots")])).unwrap_err();
        assert!(e.to_string().starts_with("WHATSAPP_TIER:"));
        let e = Config::from_vars(&vars(&[("TZ", "Mars/Base")])).unwrap_err();
        assert!(e.to_string().starts_with("TZ:"));
    }

    #[test]
    fn webhook_limits_have_defaults_and_read_their_units() {
        let c = Config::from_vars(&HashMap::new()).unwrap();
        assert_eq!(c.webhook_max_in_flight, 64);
        assert_eq!(c.webhook_buffer_bytes, 64 * MIB);
        assert_eq!(c.webhook_body_timeout, Duration::from_secs(15));
        let c = Config::from_vars(&vars(&[
            ("WEBHOOK_MAX_IN_FLIGHT", "8"),
            ("WEBHOOK_BUFFER_MB", "16"),
            ("WEBHOOK_BODY_TIMEOUT_SECS", "10"),
        ]))
        .unwrap();
        assert_eq!(c.webhook_max_in_flight, 8);
        assert_eq!(c.webhook_buffer_bytes, 16 * MIB);
        assert_eq!(c.webhook_body_timeout, Duration::from_secs(10));
        for key in [
            "WEBHOOK_MAX_IN_FLIGHT",
            "WEBHOOK_BUFFER_MB",
            "WEBHOOK_BODY_TIMEOUT_SECS",
        ] {
            let e = Config::from_vars(&vars(&[(key, "0")])).unwrap_err();
            assert!(e.to_string().starts_with(key), "{e}");
        }
    }

    #[test]
    fn file_timeout_defaults_to_a_minute_and_takes_whole_seconds() {
        assert_eq!(Config::default().file_timeout, Duration::from_secs(60));
        let c = Config::from_vars(&vars(&[("FILE_TIMEOUT_SECS", "5")])).unwrap();
        assert_eq!(c.file_timeout, Duration::from_secs(5));
        for bad in ["0", "1.5", "soon"] {
            let e = Config::from_vars(&vars(&[("FILE_TIMEOUT_SECS", bad)])).unwrap_err();
            assert!(e.to_string().starts_with("FILE_TIMEOUT_SECS"), "{e}");
        }
    }

    #[test]
    fn retention_settings_have_defaults_and_read_their_units() {
        let c = Config::from_vars(&HashMap::new()).unwrap();
        assert_eq!(c.retention, Duration::from_secs(180 * 86_400));
        assert_eq!(c.dedup_keep, Duration::from_secs(7 * 86_400));
        assert_eq!(c.maintenance_every, Duration::from_secs(60));
        let c = Config::from_vars(&vars(&[
            ("RETENTION_DAYS", "30"),
            ("DEDUP_KEEP_HOURS", "200"),
            ("MAINTENANCE_EVERY_SECS", "5"),
        ]))
        .unwrap();
        assert_eq!(c.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.dedup_keep, Duration::from_secs(200 * 3600));
        assert_eq!(c.maintenance_every, Duration::from_secs(5));
        for (key, bad) in [
            ("RETENTION_DAYS", "0"),
            ("RETENTION_DAYS", "half a year"),
            ("DEDUP_KEEP_HOURS", "-1"),
            ("MAINTENANCE_EVERY_SECS", "0"),
            ("RETENTION_DAYS", "99999999999999999"),
        ] {
            let e = Config::from_vars(&vars(&[(key, bad)])).unwrap_err();
            assert!(e.to_string().starts_with(key), "{e}");
            assert_eq!(e.to_string().lines().count(), 1);
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = Config::from_vars(&vars(&[
            ("WHATSAPP_TOKEN", "EAAG-secret"),
            ("DATABASE_URL", "postgres://app:hunter2@db/herald"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("EAAG-secret"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q = QuietHours::parse("21:00-08:00").unwrap();
        assert!(q.contains(NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
        assert!(q.contains(NaiveTime::from_hms_opt(7, 59, 0).unwrap()));
        assert!(!q.contains(NaiveTime::from_hms_opt(12, 0, 0).unwrap()));
    }
}
