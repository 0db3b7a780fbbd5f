//! The send rules of SPEC section 3, checked per recipient at send time, in this order:
//! opted out, no consent, outside the service window, tier budget, quiet hours. The first three
//! skip the recipient for good (see [`super::eligibility`], which adds the render); the last two
//! hold them for later (the dispatcher's `prepare`).

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::channels::ChannelKind;
use crate::config::{Config, QuietHours};
use crate::domain::SkipReason;
use crate::store::{Consent, Contact};

pub const SERVICE_WINDOW: Duration = Duration::hours(24);

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send; `outside_window` marks a business-initiated message that counts against the tier.
    Send {
        outside_window: bool,
    },
    Skip(SkipReason),
}

/// What the message is, as far as the rules care.
#[derive(Debug, Clone, Copy)]
pub struct MessageKind<'a> {
    pub template_category: Option<&'a str>,
    /// A keyword-triggered reply to the contact's own message: it answers them, so it needs no
    /// prior opt-in (an opt-out still wins).
    pub triggered: bool,
}

pub fn in_window(contact: &Contact, now: DateTime<Utc>) -> bool {
    contact
        .last_inbound_at
        .is_some_and(|t| now - t < SERVICE_WINDOW && t <= now + Duration::minutes(5))
}

/// The rules that need nothing but the contact: consent, reachability, the window.
pub fn check_contact(
    contact: &Contact,
    channel: ChannelKind,
    msg: MessageKind<'_>,
    now: DateTime<Utc>,
) -> Decision {
    if contact.consent == Consent::OptedOut {
        return Decision::Skip(SkipReason::OptedOut);
    }
    if contact.consent != Consent::OptedIn && !msg.triggered {
        return Decision::Skip(SkipReason::NoConsent);
    }
    if contact.unreachable.is_some() {
        return Decision::Skip(SkipReason::Unreachable);
    }
    if contact.marketing_stopped && msg.template_category == Some("marketing") {
        return Decision::Skip(SkipReason::MarketingStopped);
    }
    let open = in_window(contact, now);
    if channel.has_service_window() && msg.template_category.is_none() && !open {
        return Decision::Skip(SkipReason::OutsideWindow);
    }
    Decision::Send {
        outside_window: channel.has_service_window() && !open,
    }
}

/// Quiet hours in the contact's timezone (the admins' when the contact has none): when inside
/// them, the time they end.
pub fn quiet_until(
    config: &Config,
    contact: &Contact,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let quiet = config.quiet_hours?;
    let tz: Tz = contact
        .tz
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(config.admin_tz);
    quiet_end(&quiet, tz, now)
}

fn quiet_end(quiet: &QuietHours, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&tz);
    if !quiet.contains(local.time()) {
        return None;
    }
    let mut day = local.date_naive();
    if local.time() >= quiet.end {
        day = day.succ_opt()?;
    }
    let end = day.and_time(quiet.end);
    // A DST gap can swallow the end time; an hour later always exists.
    let resolved = tz.from_local_datetime(&end).earliest().or_else(|| {
        tz.from_local_datetime(&(end + Duration::hours(1)))
            .earliest()
    })?;
    Some(resolved.with_timezone(&Utc))
}

/// Quiet hours as typed in config, e.g. "21:00-08:00".
pub fn describe_quiet(q: &QuietHours) -> String {
    let f = |t: NaiveTime| t.format("%H:%M").to_string();
    format!("{}-{}", f(q.start), f(q.end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn contact(consent: Consent, last_inbound: Option<DateTime<Utc>>) -> Contact {
        Contact {
            id: 1,
            address: "+15550001".into(),
            name: Some("Ann".into()),
            lang: None,
            tz: None,
            consent,
            consent_at: None,
            last_inbound_at: last_inbound,
            marketing_stopped: false,
            unreachable: None,
            labels: vec![],
            attrs: BTreeMap::new(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    const TEXT: MessageKind<'static> = MessageKind {
        template_category: None,
        triggered: false,
    };
    const MARKETING: MessageKind<'static> = MessageKind {
        template_category: Some("marketing"),
        triggered: false,
    };

    #[test]
    fn rules_apply_in_order() {
        let open = Some(now() - Duration::hours(1));
        let closed = Some(now() - Duration::hours(25));
        let wa = ChannelKind::WhatsApp;
        assert_eq!(
            check_contact(&contact(Consent::OptedOut, open), wa, TEXT, now()),
            Decision::Skip(SkipReason::OptedOut)
        );
        assert_eq!(
            check_contact(&contact(Consent::Unknown, closed), wa, TEXT, now()),
            Decision::Skip(SkipReason::NoConsent)
        );
        assert_eq!(
            check_contact(&contact(Consent::OptedIn, closed), wa, TEXT, now()),
            Decision::Skip(SkipReason::OutsideWindow)
        );
        assert_eq!(
            check_contact(&contact(Consent::OptedIn, closed), wa, MARKETING, now()),
            Decision::Send {
                outside_window: true
            }
        );
        assert_eq!(
            check_contact(&contact(Consent::OptedIn, open), wa, TEXT, now()),
            Decision::Send {
                outside_window: false
            }
        );
    }

    #[test]
    fn telegram_has_no_window() {
        let c = contact(Consent::OptedIn, None);
        assert_eq!(
            check_contact(&c, ChannelKind::Telegram, TEXT, now()),
            Decision::Send {
                outside_window: false
            }
        );
    }

    #[test]
    fn triggered_replies_need_no_opt_in_but_respect_opt_out() {
        let kind = MessageKind {
            template_category: None,
            triggered: true,
        };
        let open = Some(now() - Duration::minutes(1));
        assert!(matches!(
            check_contact(
                &contact(Consent::Unknown, open),
                ChannelKind::Console,
                kind,
                now()
            ),
            Decision::Send { .. }
        ));
        assert_eq!(
            check_contact(
                &contact(Consent::OptedOut, open),
                ChannelKind::Console,
                kind,
                now()
            ),
            Decision::Skip(SkipReason::OptedOut)
        );
    }

    #[test]
    fn marketing_stop_blocks_marketing_only() {
        let mut c = contact(Consent::OptedIn, Some(now()));
        c.marketing_stopped = true;
        assert_eq!(
            check_contact(&c, ChannelKind::WhatsApp, MARKETING, now()),
            Decision::Skip(SkipReason::MarketingStopped)
        );
        assert!(matches!(
            check_contact(&c, ChannelKind::WhatsApp, TEXT, now()),
            Decision::Send { .. }
        ));
    }

    #[test]
    fn quiet_hours_hold_until_local_morning() {
        let config = Config {
            quiet_hours: QuietHours::parse("21:00-08:00"),
            ..Config::default()
        };
        let mut c = contact(Consent::OptedIn, None);
        c.tz = Some("America/New_York".into());
        // 02:00 UTC is 21:00 in New York (EST): quiet until 08:00 EST = 13:00 UTC.
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        assert_eq!(
            quiet_until(&config, &c, at),
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 13, 0, 0).unwrap())
        );
        // 18:00 UTC is 13:00 in New York: not quiet.
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 18, 0, 0).unwrap();
        assert_eq!(quiet_until(&config, &c, at), None);
    }
}
