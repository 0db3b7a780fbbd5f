//! Repeat specifications for recurring campaigns (`every 1d at 09:00 until 2026-12-31`) and the
//! arithmetic of their next occurrence, done in the admin's time zone so `at 09:00` stays 09:00
//! across daylight-saving changes.

use std::fmt;

use chrono::{
    DateTime, Days, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Hour,
    Day,
    Week,
    Month,
}

/// `every N<unit>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub n: u32,
    pub unit: Unit,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("interval must look like 1d, 12h, 2w or 1mo, got {0:?}")]
    BadInterval(String),
    #[error("the interval must be at least 1 hour")]
    TooShort,
    #[error("expected every <interval> [at HH:MM] [until YYYY-MM-DD], got {0:?}")]
    BadRule(String),
    #[error("time must be HH:MM, got {0:?}")]
    BadTime(String),
    #[error("date must be YYYY-MM-DD, got {0:?}")]
    BadDate(String),
    #[error("at HH:MM needs an interval of days, weeks or months")]
    AtNeedsDays,
}

impl Every {
    pub fn parse(s: &str) -> Result<Every, ScheduleError> {
        let lower = s.trim().to_ascii_lowercase();
        let bad = || ScheduleError::BadInterval(s.to_string());
        let split = lower.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, unit) = lower.split_at(split);
        let n: u32 = digits.parse().map_err(|_| bad())?;
        let unit = match unit {
            "h" => Unit::Hour,
            "d" => Unit::Day,
            "w" => Unit::Week,
            "mo" => Unit::Month,
            _ => return Err(bad()),
        };
        if n == 0 {
            return Err(ScheduleError::TooShort);
        }
        if n > 1000 {
            return Err(bad());
        }
        Ok(Every { n, unit })
    }

    /// One step forward from a local time.
    fn add(self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        match self.unit {
            Unit::Hour => t.checked_add_signed(Duration::hours(i64::from(self.n))),
            Unit::Day => t.checked_add_days(Days::new(u64::from(self.n))),
            Unit::Week => t.checked_add_days(Days::new(7 * u64::from(self.n))),
            Unit::Month => t.checked_add_months(Months::new(self.n)),
        }
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            Unit::Hour => "h",
            Unit::Day => "d",
            Unit::Week => "w",
            Unit::Month => "mo",
        };
        write!(f, "{}{unit}", self.n)
    }
}

/// A whole repeat rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeat {
    pub every: Every,
    /// Local time of day each run starts (daily and longer intervals).
    pub at: Option<NaiveTime>,
    /// Last local day a run may start on.
    pub until: Option<NaiveDate>,
}

impl Repeat {
    /// The first run at or after `now`: today's `at` if still ahead, else the next one.
    pub fn first(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&tz).naive_local();
        let start = match self.at {
            None => local,
            Some(at) => {
                let today = local.date().and_time(at);
                if today >= local {
                    today
                } else {
                    today.checked_add_days(Days::new(1))?
                }
            }
        };
        self.within_until(resolve(tz, start)?, tz)
    }

    /// The run after the one that was due at `prev`.
    pub fn next_after(&self, prev: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = prev.with_timezone(&tz).naive_local();
        let mut next = self.every.add(local)?;
        if let (Some(at), Unit::Day | Unit::Week | Unit::Month) = (self.at, self.every.unit) {
            next = next.date().and_time(at);
        }
        self.within_until(resolve(tz, next)?, tz)
    }

    fn within_until(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self.until {
            Some(last) if t.with_timezone(&tz).date_naive() > last => None,
            _ => Some(t),
        }
    }
}

impl fmt::Display for Repeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "every {}", self.every)?;
        if let Some(at) = self.at {
            write!(f, " at {}", at.format("%H:%M"))?;
        }
        if let Some(until) = self.until {
            write!(f, " until {until}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Repeat {
    type Err = ScheduleError;

    /// `every 1d [at 09:00] [until 2027-12-31]` (`at` and `until` in either order).
    fn from_str(s: &str) -> Result<Repeat, ScheduleError> {
        let mut words = s.split_whitespace();
        if !words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("every"))
        {
            return Err(ScheduleError::BadRule(s.to_string()));
        }
        let every = Every::parse(words.next().unwrap_or_default())?;
        let (mut at, mut until) = (None, None);
        while let Some(word) = words.next() {
            let value = words.next().unwrap_or_default();
            match word.to_ascii_lowercase().as_str() {
                "at" if at.is_none() => {
                    at = Some(
                        NaiveTime::parse_from_str(value, "%H:%M")
                            .map_err(|_| ScheduleError::BadTime(value.to_string()))?,
                    );
                }
                "until" if until.is_none() => {
                    until = Some(
                        NaiveDate::parse_from_str(value, "%Y-%m-%d")
                            .map_err(|_| ScheduleError::BadDate(value.to_string()))?,
                    );
                }
                _ => return Err(ScheduleError::BadRule(s.to_string())),
            }
        }
        if at.is_some() && every.unit == Unit::Hour {
            return Err(ScheduleError::AtNeedsDays);
        }
        Ok(Repeat { every, at, until })
    }
}

/// A local time as UTC; a time inside a DST gap moves an hour later.
fn resolve(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn intervals_parse_and_print() {
        for s in ["1d", "15d", "12h", "2w", "1mo"] {
            assert_eq!(Every::parse(s).unwrap().to_string(), s);
        }
        assert!(Every::parse("0d").is_err());
        assert!(Every::parse("d").is_err());
        assert!(Every::parse("3y").is_err());
    }

    #[test]
    fn daily_at_a_local_time_keeps_it_across_dst() {
        let r = Repeat {
            every: Every::parse("1d").unwrap(),
            at: NaiveTime::from_hms_opt(9, 0, 0),
            until: None,
        };
        let tz: Tz = "Europe/Lisbon".parse().unwrap();
        // 2026-10-24 10:00 UTC is 11:00 in Lisbon (summer time): today's 09:00 has passed.
        let first = r.first(utc(2026, 10, 24, 10, 0), tz).unwrap();
        assert_eq!(first, utc(2026, 10, 25, 9, 0), "winter time from the 25th");
        let second = r.next_after(first, tz).unwrap();
        assert_eq!(second, utc(2026, 10, 26, 9, 0));
    }

    #[test]
    fn monthly_runs_and_until_ends_them() {
        let r = Repeat {
            every: Every::parse("1mo").unwrap(),
            at: None,
            until: NaiveDate::from_ymd_opt(2027, 1, 31),
        };
        let start = utc(2026, 11, 30, 8, 0);
        let dec = r.next_after(start, Tz::UTC).unwrap();
        assert_eq!(dec, utc(2026, 12, 30, 8, 0));
        let jan = r.next_after(dec, Tz::UTC).unwrap();
        assert_eq!(jan, utc(2027, 1, 30, 8, 0));
        assert_eq!(r.next_after(jan, Tz::UTC), None);
    }

    #[test]
    fn rules_round_trip_through_text() {
        for rule in [
            "every 1d at 09:00",
            "every 15d",
            "every 1mo at 10:30 until 2027-12-31",
        ] {
            let r: Repeat = rule.parse().unwrap();
            assert_eq!(r.to_string(), rule);
        }
        assert!("every 2h at 09:00".parse::<Repeat>().is_err());
        assert!("every 1d at 9".parse::<Repeat>().is_err());
        assert!("each 1d".parse::<Repeat>().is_err());
    }

    #[test]
    fn hourly_ignores_at() {
        let r = Repeat {
            every: Every::parse("6h").unwrap(),
            at: None,
            until: None,
        };
        let t = utc(2026, 11, 22, 10, 0);
        assert_eq!(r.next_after(t, Tz::UTC), Some(utc(2026, 11, 22, 16, 0)));
        assert_eq!(r.first(t, Tz::UTC), Some(t));
    }
}
