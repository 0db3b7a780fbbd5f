//! Trigger patterns: a keyword (whole words, see [`super::consent::keyword_matches`]) or a
//! regex between slashes. A regex is compiled with one set of options and limits, both when an
//! admin adds it (so a pattern that is too large is refused there) and when messages are
//! matched against it (once per pattern: see [`CompiledTriggers`]).

use std::collections::HashMap;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use super::consent::{fold_for_search, folded_keyword_matches};

/// The most memory one compiled trigger regex may take. A pattern like `\w{200}` repeated is
/// megabytes once compiled and costs seconds per message; no real keyword pattern comes near.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// The longest pattern source accepted.
pub const MAX_PATTERN_LEN: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern is longer than {MAX_PATTERN_LEN} characters")]
    TooLong,
    #[error(transparent)]
    Regex(#[from] regex::Error),
}

/// Compiles a trigger regex: case-insensitive, within [`REGEX_SIZE_LIMIT`].
pub fn compile_regex(source: &str) -> Result<Regex, PatternError> {
    if source.chars().count() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong);
    }
    Ok(RegexBuilder::new(source)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()?)
}

/// An inbound text as triggers read it: as typed for regexes, folded once for keywords.
#[derive(Debug)]
pub struct MessageText<'a> {
    raw: &'a str,
    folded: String,
}

impl<'a> MessageText<'a> {
    pub fn new(raw: &'a str) -> Self {
        MessageText {
            raw,
            folded: fold_for_search(raw),
        }
    }
}

/// Patterns compiled once and kept across messages. A stored regex that no longer compiles
/// (stored by an older release, before the limits) is remembered as such and never matches,
/// rather than being compiled again for every message.
#[derive(Debug, Default)]
pub struct CompiledTriggers {
    regexes: HashMap<String, Option<Arc<Regex>>>,
    /// Keyword as stored -> folded for search.
    keywords: HashMap<String, String>,
}

impl CompiledTriggers {
    /// Whether `text` matches the trigger `pattern` (a regex source when `is_regex`).
    pub fn matches(&mut self, pattern: &str, is_regex: bool, text: &MessageText<'_>) -> bool {
        if is_regex {
            if !self.regexes.contains_key(pattern) {
                let compiled = compile_regex(pattern).ok().map(Arc::new);
                self.regexes.insert(pattern.to_string(), compiled);
            }
            self.regexes
                .get(pattern)
                .and_then(Option::as_ref)
                .is_some_and(|re| re.is_match(text.raw))
        } else {
            if !self.keywords.contains_key(pattern) {
                self.keywords
                    .insert(pattern.to_string(), fold_for_search(pattern));
            }
            self.keywords
                .get(pattern)
                .is_some_and(|needle| folded_keyword_matches(needle, &text.folded))
        }
    }

    /// Forgets the patterns not in `live` (removed triggers), once the cache has grown past
    /// twice their number.
    pub fn retain_only<'p>(&mut self, live: impl Iterator<Item = (&'p str, bool)> + Clone) {
        if self.regexes.len() + self.keywords.len() <= 2 * live.clone().count().max(8) {
            return;
        }
        let live: std::collections::HashSet<(&str, bool)> = live.collect();
        self.regexes
            .retain(|pattern, _| live.contains(&(pattern.as_str(), true)));
        self.keywords
            .retain(|pattern, _| live.contains(&(pattern.as_str(), false)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_too_large_to_match_cheaply_is_refused() {
        let huge = r"\w{200}x".repeat(20);
        assert!(compile_regex(&huge).is_err());
        assert!(compile_regex(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        assert!(compile_regex(r"order\s+\d+").is_ok());
    }

    #[test]
    fn regexes_ignore_case_and_keywords_match_whole_words() {
        let mut triggers = CompiledTriggers::default();
        let m = MessageText::new;
        assert!(triggers.matches(r"order\s+\d+", true, &m("ORDER 42 please")));
        assert!(!triggers.matches(r"order\s+\d+", true, &m("orders")));
        assert!(triggers.matches("pizza", false, &m("a Pizza!")));
        assert!(triggers.matches("Café", false, &m("CAFE hours?")));
        assert!(!triggers.matches("pizza", false, &m("pizzas")));
        // A stored pattern that does not compile never matches, and is not retried.
        assert!(!triggers.matches(&r"\w{200}x".repeat(20), true, &m("anything")));
        assert_eq!(triggers.regexes.len() + triggers.keywords.len(), 4);
    }

    #[test]
    fn removed_patterns_are_forgotten() {
        let mut triggers = CompiledTriggers::default();
        for i in 0..40 {
            triggers.matches(&format!("p{i}"), true, &MessageText::new("text"));
        }
        triggers.retain_only([("p1", true), ("p2", true)].into_iter());
        assert_eq!(triggers.regexes.len(), 2);
    }
}
