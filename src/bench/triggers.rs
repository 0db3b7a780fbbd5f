//! `herald bench --only triggers`: what matching one inbound message against 1,000 triggers
//! costs (half keywords, half regexes), with the patterns compiled once as the engine keeps them.

use std::time::Instant;

use crate::domain::trigger::{CompiledTriggers, MessageText};

const TRIGGERS: usize = 1000;
const MESSAGES: usize = 2000;

pub fn measure() -> String {
    let patterns: Vec<(String, bool)> = (0..TRIGGERS)
        .map(|i| {
            if i % 2 == 0 {
                (format!("promo{i}"), false)
            } else {
                (format!(r"order\s*#?{i}\d{{2,6}}|track(ing)?\s+{i}"), true)
            }
        })
        .collect();
    let messages: Vec<String> = (0..MESSAGES)
        .map(|i| {
            format!(
                "Hi! Where is my order #{}88 from last week? Also, is promo{} still on? {}",
                i % TRIGGERS,
                (i * 7) % TRIGGERS,
                "Thanks a lot, see you soon.".repeat(i % 4)
            )
        })
        .collect();
    let mut compiled = CompiledTriggers::default();
    let started = Instant::now();
    let mut matched = 0usize;
    // The first message compiles every regex; the engine does that once, not per message.
    for (pattern, is_regex) in &patterns {
        compiled.matches(pattern, *is_regex, &MessageText::new("warm up"));
    }
    let compile = started.elapsed();
    let started = Instant::now();
    for text in &messages {
        let text = MessageText::new(text);
        for (pattern, is_regex) in &patterns {
            matched += usize::from(compiled.matches(pattern, *is_regex, &text));
        }
    }
    let per_message = started.elapsed() / MESSAGES as u32;
    format!(
        "triggers: {TRIGGERS} ({} keywords, {} regexes) compiled once in {:.1} ms; matching one \
         message against all of them: {:.0} us ({matched} matches in {MESSAGES} messages)",
        TRIGGERS / 2,
        TRIGGERS / 2,
        compile.as_secs_f64() * 1e3,
        per_message.as_secs_f64() * 1e6,
    )
}
