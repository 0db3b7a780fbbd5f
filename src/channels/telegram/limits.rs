//! Telegram's sending ceilings, kept in one place: at most 30 messages a second from the bot and
//! one a second into any single chat (Bot API FAQ, "broadcasting to users").
//!
//! Why herald paces here rather than with teloxide's `Throttle` adaptor: `Throttle` queues
//! requests inside teloxide and retries 429s on its own, so the dispatcher would never see a
//! `retry_after` and could not slow the campaign down or record why a recipient waited. Herald's
//! campaign pacing (rate, delay, batch) runs in the dispatcher; this limiter only adds the
//! channel's hard ceilings underneath it, and a 429 still comes back as a `RateLimited` error.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{from_ms, to_ms, SharedClock};

/// Width of one global send slot. One message per 35 ms slot means any one-second span touches
/// at most 30 slots (1000 / 35 = 28.6, plus the two partial slots at its ends), so the
/// "30 per second" ceiling holds for every window, not just on average.
pub const GLOBAL_SLOT: Duration = Duration::from_millis(35);
/// Gap between two messages into the same chat.
pub const PER_CHAT_GAP: Duration = Duration::from_secs(1);
/// Above this many remembered chats, chats whose next slot has passed are forgotten (they would
/// not wait anyway), so a large broadcast does not leave a map entry per recipient behind.
const PRUNE_CHATS_ABOVE: usize = 10_000;

/// Hands out send times that respect both ceilings. Slots are reserved under a lock, so many
/// concurrent sends (the dispatcher sends a window concurrently) leave in an orderly way; each
/// caller then sleeps until its own slot on the injected clock, which tests move by hand.
pub struct Limiter {
    clock: SharedClock,
    slot_ms: i64,
    chat_gap: chrono::Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Global slots already handed out (slot index = ms since epoch / slot width). A set, not a
    /// single "next" time, because a message held back by its chat's gap must not hold up the
    /// messages for other chats behind it.
    taken: BTreeSet<i64>,
    /// Earliest time the next message may go into each chat.
    chats: HashMap<i64, DateTime<Utc>>,
}

impl Limiter {
    pub fn new(clock: SharedClock) -> Self {
        Limiter {
            clock,
            slot_ms: GLOBAL_SLOT.as_millis() as i64,
            chat_gap: chrono::Duration::from_std(PER_CHAT_GAP)
                .unwrap_or(chrono::Duration::seconds(1)),
            state: Mutex::new(State::default()),
        }
    }

    /// Reserves the earliest time a message may go to `chat`.
    pub fn reserve(&self, chat: i64) -> DateTime<Utc> {
        let now = self.clock.now();
        let mut s = crate::lock(&self.state);
        let earliest = s
            .chats
            .get(&chat)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        let now_slot = to_ms(now).div_euclid(self.slot_ms);
        // Slots in the past can never be handed out again.
        s.taken = s.taken.split_off(&now_slot);
        let mut slot = to_ms(earliest).div_euclid(self.slot_ms);
        while s.taken.contains(&slot) {
            slot += 1;
        }
        s.taken.insert(slot);
        let at = from_ms(slot * self.slot_ms).max(earliest);
        s.chats.insert(chat, at + self.chat_gap);
        if s.chats.len() > PRUNE_CHATS_ABOVE {
            s.chats.retain(|_, next| *next > now);
        }
        at
    }

    /// Waits until a message may go to `chat`.
    pub async fn wait(&self, chat: i64) {
        let at = self.reserve(chat);
        if let Ok(wait) = (at - self.clock.now()).to_std() {
            if !wait.is_zero() {
                self.clock.sleep(wait).await;
            }
        }
    }

    /// Telegram answered 429 for `chat`: nothing more goes there before `until`.
    pub fn hold_chat(&self, chat: i64, until: DateTime<Utc>) {
        let mut s = crate::lock(&self.state);
        let next = s.chats.entry(chat).or_insert(until);
        if *next < until {
            *next = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::clock::ManualClock;

    fn limiter() -> (Limiter, ManualClock) {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap());
        (Limiter::new(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn one_message_per_second_into_a_chat() {
        let (l, _clock) = limiter();
        let a = l.reserve(7);
        let b = l.reserve(7);
        let c = l.reserve(7);
        assert_eq!(b - a, chrono::Duration::seconds(1));
        assert_eq!(c - b, chrono::Duration::seconds(1));
    }

    #[test]
    fn at_most_thirty_per_second_overall() {
        let (l, clock) = limiter();
        let start = clock.now_for_test();
        let slots: Vec<_> = (0..300).map(|chat| l.reserve(chat)).collect();
        for (i, t) in slots.iter().enumerate() {
            let in_window = slots
                .iter()
                .filter(|u| **u >= *t && **u < *t + chrono::Duration::seconds(1))
                .count();
            assert!(
                in_window <= 30,
                "{in_window} sends in the second after slot {i}"
            );
        }
        // And it does not crawl: 300 messages to distinct chats fit in about 10.5 s.
        let last = *slots.last().unwrap();
        assert!(
            last - start <= chrono::Duration::milliseconds(10_500),
            "{}",
            last - start
        );
    }

    #[test]
    fn a_chat_waiting_for_its_gap_does_not_block_other_chats() {
        let (l, _clock) = limiter();
        let first = l.reserve(1);
        let again = l.reserve(1);
        let other = l.reserve(2);
        assert!(again - first >= chrono::Duration::seconds(1));
        assert!(
            other - first < chrono::Duration::milliseconds(100),
            "{}",
            other - first
        );
    }

    #[test]
    fn a_held_chat_waits_until_the_hold_ends() {
        let (l, clock) = limiter();
        let until = clock.now_for_test() + chrono::Duration::seconds(3);
        l.hold_chat(9, until);
        assert_eq!(l.reserve(9), until);
        assert!(l.reserve(10) < until);
    }

    trait Now {
        fn now_for_test(&self) -> DateTime<Utc>;
    }

    impl Now for ManualClock {
        fn now_for_test(&self) -> DateTime<Utc> {
            crate::clock::Clock::now(self)
        }
    }
}
