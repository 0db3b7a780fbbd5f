//! Campaign pacing: spaces one campaign's sends by its `rate`, a random `delay` range and
//! `batch` pauses. Slots are handed out in order under a lock, so concurrent sends of a window
//! still leave at the configured pace. Channel ceilings are enforced by the channels themselves.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::store::Pace;

/// The longest wait one send may add, whatever a stored pace says: the largest batch pause a
/// command accepts (a day) plus the largest delay (an hour). Pace stored by an older release
/// or edited by hand can hold anything; the clock arithmetic below must never overflow on it.
const MAX_GAP_MS: f64 = 90_000_000.0;

#[derive(Debug)]
pub struct Pacer {
    pace: Pace,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next: Option<DateTime<Utc>>,
    in_batch: i64,
    /// Extra spacing after a rate-limit answer, decaying as sends succeed.
    slowdown: f64,
}

impl Pacer {
    pub fn new(pace: Pace) -> Self {
        Pacer {
            pace,
            state: Mutex::new(State::default()),
        }
    }

    pub fn pace(&self) -> &Pace {
        &self.pace
    }

    /// Whether sends wait for each other at all (pacing off sends as fast as the channel takes).
    pub fn is_paced(&self) -> bool {
        self.pace.rate > 0.0 || self.pace.delay_max_ms > 0 || self.pace.batch_size > 0
    }

    /// Reserves the next send time at or after `now`.
    pub fn reserve(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut s = crate::lock(&self.state);
        let slot = match s.next {
            Some(next) if next > now => next,
            _ => now,
        };
        let mut gap_ms = if self.pace.rate > 0.0 {
            1000.0 / self.pace.rate
        } else {
            0.0
        };
        if self.pace.delay_max_ms > 0 {
            // A stored range may be upside down; the random draw must not panic on it.
            let low = self.pace.delay_min_ms.clamp(0, self.pace.delay_max_ms);
            let delay = rand::rng().random_range(low..=self.pace.delay_max_ms);
            gap_ms = gap_ms.max(delay as f64);
        }
        gap_ms *= 1.0 + s.slowdown;
        s.in_batch += 1;
        if self.pace.batch_size > 0 && s.in_batch >= self.pace.batch_size {
            s.in_batch = 0;
            gap_ms += self.pace.batch_pause_ms.max(0) as f64;
        }
        // NaN becomes 0 through the clamp and the cast.
        let gap = Duration::milliseconds(gap_ms.clamp(0.0, MAX_GAP_MS).round() as i64);
        s.next = Some(slot.checked_add_signed(gap).unwrap_or(slot));
        slot
    }

    /// A rate-limit answer: nothing leaves before `until`, and the pace slows (halves the rate
    /// each time, up to 1/8) until sends succeed again.
    pub fn back_off(&self, until: DateTime<Utc>) {
        let mut s = crate::lock(&self.state);
        if s.next.is_none_or(|n| n < until) {
            s.next = Some(until);
        }
        s.slowdown = (s.slowdown * 2.0 + 1.0).min(7.0);
    }

    pub fn succeeded(&self) {
        let mut s = crate::lock(&self.state);
        s.slowdown *= 0.9;
        if s.slowdown < 0.01 {
            s.slowdown = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn rate_spaces_slots_evenly() {
        let p = Pacer::new(Pace {
            rate: 4.0,
            ..Pace::default()
        });
        let slots: Vec<_> = (0..3).map(|_| p.reserve(t0())).collect();
        assert_eq!(slots[1] - slots[0], Duration::milliseconds(250));
        assert_eq!(slots[2] - slots[1], Duration::milliseconds(250));
    }

    #[test]
    fn delay_range_bounds_gaps() {
        let p = Pacer::new(Pace {
            rate: 0.0,
            delay_min_ms: 1000,
            delay_max_ms: 3000,
            ..Pace::default()
        });
        let mut last = p.reserve(t0());
        for _ in 0..50 {
            let next = p.reserve(t0());
            let gap = (next - last).num_milliseconds();
            assert!((1000..=3000).contains(&gap), "gap {gap}");
            last = next;
        }
    }

    #[test]
    fn batches_pause_between() {
        let p = Pacer::new(Pace {
            rate: 10.0,
            batch_size: 2,
            batch_pause_ms: 5000,
            ..Pace::default()
        });
        let s: Vec<_> = (0..4).map(|_| p.reserve(t0())).collect();
        assert_eq!((s[1] - s[0]).num_milliseconds(), 100);
        assert_eq!((s[2] - s[1]).num_milliseconds(), 5100);
        assert_eq!((s[3] - s[2]).num_milliseconds(), 100);
    }

    #[test]
    fn back_off_delays_and_slows() {
        let p = Pacer::new(Pace {
            rate: 10.0,
            ..Pace::default()
        });
        p.back_off(t0() + Duration::seconds(2));
        let a = p.reserve(t0());
        let b = p.reserve(t0());
        assert_eq!(a, t0() + Duration::seconds(2));
        assert_eq!((b - a).num_milliseconds(), 200);
    }

    #[test]
    fn absurd_stored_paces_never_overflow_the_clock() {
        for pace in [
            Pace {
                rate: 1e-300,
                ..Pace::default()
            },
            Pace {
                rate: f64::MIN_POSITIVE,
                batch_size: 1,
                batch_pause_ms: i64::MAX,
                ..Pace::default()
            },
            Pace {
                rate: 0.0,
                delay_min_ms: i64::MAX,
                delay_max_ms: 5,
                ..Pace::default()
            },
            Pace {
                rate: f64::NAN,
                delay_min_ms: -10,
                delay_max_ms: i64::MAX,
                batch_size: 1,
                batch_pause_ms: -1,
            },
        ] {
            let p = Pacer::new(pace);
            let first = p.reserve(t0());
            let second = p.reserve(t0());
            assert!(second >= first);
            assert!(second - first <= Duration::milliseconds(MAX_GAP_MS as i64));
        }
    }

    #[test]
    fn unpaced_never_waits() {
        let p = Pacer::new(Pace {
            rate: 0.0,
            ..Pace::default()
        });
        assert!(!p.is_paced());
        assert_eq!(p.reserve(t0()), t0());
        assert_eq!(p.reserve(t0()), t0());
    }
}
