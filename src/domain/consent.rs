//! Consent keywords and keyword triggers: whether an inbound text is an opt-out (`STOP`) or an
//! opt-in (`START`) word (SPEC §2), and whether a trigger keyword occurs in a text (SPEC §3).
//!
//! Accents are folded by hand for Latin-1 and Latin Extended-A (plus Romanian ș/ț), which covers
//! the languages of the default words; decomposed input (`E` + combining `^`) folds too, since
//! combining marks count as punctuation and are dropped.

use unicode_normalization::UnicodeNormalization;

/// Opt-out words of SPEC §2, already in [`normalize`]d form.
pub const DEFAULT_OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "PARAR",
    "SAIR",
    "CANCELAR",
    "BAJA",
    "ALTO",
    "ARRET",
    "ABMELDEN",
];

/// Opt-in words of SPEC §2, already in [`normalize`]d form.
pub const DEFAULT_OPT_IN: &[&str] = &["START", "SUBSCRIBE", "YES"];

/// The form a text is compared in: accents folded, uppercase, punctuation and symbols (emoji
/// included) removed, whitespace trimmed and collapsed to single spaces. So `" Stop! "`,
/// `"stop."`, `"/stop"` and `"STOP 🛑"` give `STOP`, and `"Arrêt"` gives `ARRET`.
pub fn normalize(text: &str) -> String {
    let text = without_command_mention(text);
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for ch in fold_accents(&text).chars() {
        if ch.is_whitespace() {
            pending_space = !out.is_empty();
        } else if ch.is_alphanumeric() {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.extend(ch.to_uppercase());
        }
        // Anything else is punctuation or a symbol: dropped without splitting the word, so
        // "stop-all" reads as STOPALL and "don't" as DONT.
    }
    out
}

/// A chat command addressed to a bot by name reads as the bare command: `/stop@herald_bot` is
/// `/stop` (the Telegram channel has already dropped commands naming another bot).
fn without_command_mention(text: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = text.trim();
    match trimmed.split_once('@') {
        Some((command, mention))
            if command.starts_with('/')
                && !command.contains(char::is_whitespace)
                && !mention.is_empty()
                && !mention.contains(char::is_whitespace) =>
        {
            std::borrow::Cow::Owned(command.to_string())
        }
        _ => std::borrow::Cow::Borrowed(text),
    }
}

/// Unicode compatibility folding (NFKC: full-width `ＳＴＯＰ` and styled `𝐒𝐓𝐎𝐏` read as
/// `STOP`), then accented Latin letters replaced by their plain ASCII letters (`ã` → `a`,
/// `ß` → `ss`, `Œ` → `OE`); every other character is kept.
pub fn fold_accents(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        // The Latin table first: NFKC would turn `Ŀ` into `L·` before it could fold to `L`.
        if let Some(plain) = fold_char(ch) {
            out.push_str(plain);
            continue;
        }
        for compatible in std::iter::once(ch).nfkc() {
            match fold_char(compatible) {
                Some(plain) => out.push_str(plain),
                None => out.push(compatible),
            }
        }
    }
    out
}

/// The opt-out and opt-in words in force, normalised once when configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentWords {
    opt_out: Vec<String>,
    opt_in: Vec<String>,
}

impl ConsentWords {
    /// Normalises the words; blank ones are dropped and repeats removed.
    pub fn new(opt_out: &[impl AsRef<str>], opt_in: &[impl AsRef<str>]) -> Self {
        Self {
            opt_out: normalize_all(opt_out),
            opt_in: normalize_all(opt_in),
        }
    }

    /// The words of SPEC §2.
    pub fn defaults() -> Self {
        Self::new(DEFAULT_OPT_OUT, DEFAULT_OPT_IN)
    }

    /// Whether the whole text is an opt-out word. A word configured in both lists counts as
    /// opt-out first: callers check this before [`ConsentWords::is_opt_in`].
    pub fn is_opt_out(&self, text: &str) -> bool {
        self.opt_out_word(text).is_some()
    }

    /// Whether the whole text is an opt-in word.
    pub fn is_opt_in(&self, text: &str) -> bool {
        self.opt_in_word(text).is_some()
    }

    /// The opt-out word the text is, as configured (normalised): the keyword recorded in the
    /// contact's consent history.
    pub fn opt_out_word(&self, text: &str) -> Option<&str> {
        find_word(&self.opt_out, text)
    }

    /// The opt-in word the text is, as configured (normalised).
    pub fn opt_in_word(&self, text: &str) -> Option<&str> {
        find_word(&self.opt_in, text)
    }

    /// The opt-out words, normalised, for help texts and confirmations.
    pub fn opt_out_words(&self) -> &[String] {
        &self.opt_out
    }

    /// The opt-in words, normalised.
    pub fn opt_in_words(&self) -> &[String] {
        &self.opt_in
    }

    /// Splits a configured list such as `"STOP, QUIT;PARAR"` on commas or semicolons, trimming
    /// each word and dropping blanks. [`ConsentWords::new`] normalises them.
    pub fn parse_list(csv: &str) -> Vec<String> {
        csv.split([',', ';'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Default for ConsentWords {
    fn default() -> Self {
        Self::defaults()
    }
}

/// Whether `keyword` occurs in `text` as whole words, ignoring case and accents: `price` matches
/// "What's the PRICE?" but not "prices" or "caprice"; `free trial` matches "a Free  Trial!".
/// A keyword edge that is not a letter or digit (`c++`, `#promo`) needs no boundary there.
pub fn keyword_matches(keyword: &str, text: &str) -> bool {
    folded_keyword_matches(&fold_for_search(keyword), &fold_for_search(text))
}

/// [`keyword_matches`] on both sides already passed through [`fold_for_search`]: a message
/// matched against many keywords is folded once.
pub fn folded_keyword_matches(needle: &str, haystack: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let bounded_start = needle.chars().next().is_some_and(is_word_char);
    let bounded_end = needle.chars().next_back().is_some_and(is_word_char);
    let mut from = 0;
    // Every start is tried (not just non-overlapping matches), since a rejected match can
    // overlap an accepted one: `a a` in "xa a a".
    while let Some(offset) = haystack[from..].find(needle) {
        let start = from + offset;
        let end = start + needle.len();
        let start_ok = !bounded_start
            || !haystack[..start]
                .chars()
                .next_back()
                .is_some_and(is_word_char);
        let end_ok = !bounded_end || !haystack[end..].chars().next().is_some_and(is_word_char);
        if start_ok && end_ok {
            return true;
        }
        // Step one character, staying on a char boundary.
        from = start + haystack[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Accent-folded, lowercase, whitespace collapsed: both sides of a keyword search.
pub fn fold_for_search(text: &str) -> String {
    fold_accents(text)
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn normalize_all(words: &[impl AsRef<str>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in words {
        let word = normalize(word.as_ref());
        if !word.is_empty() && !out.contains(&word) {
            out.push(word);
        }
    }
    out
}

fn find_word<'a>(words: &'a [String], text: &str) -> Option<&'a str> {
    let text = normalize(text);
    words.iter().find(|w| **w == text).map(String::as_str)
}

/// ASCII for U+00C0..=U+00FF; `""` keeps the character (× and ÷).
const LATIN_1: [&str; 64] = [
    "A", "A", "A", "A", "A", "A", "AE", "C", "E", "E", "E", "E", "I", "I", "I", "I", // C0
    "D", "N", "O", "O", "O", "O", "O", "", "O", "U", "U", "U", "U", "Y", "TH", "ss", // D0
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i", // E0
    "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "y", // F0
];

/// ASCII for U+0100..=U+017F (Latin Extended-A), in code point order.
const LATIN_EXTENDED_A: [&str; 128] = [
    "A", "a", "A", "a", "A", "a", "C", "c", "C", "c", "C", "c", "C", "c", "D", "d", // 0100
    "D", "d", "E", "e", "E", "e", "E", "e", "E", "e", "E", "e", "G", "g", "G", "g", // 0110
    "G", "g", "G", "g", "H", "h", "H", "h", "I", "i", "I", "i", "I", "i", "I", "i", // 0120
    "I", "i", "IJ", "ij", "J", "j", "K", "k", "k", "L", "l", "L", "l", "L", "l", "L", // 0130
    "l", "L", "l", "N", "n", "N", "n", "N", "n", "n", "N", "n", "O", "o", "O", "o", // 0140
    "O", "o", "OE", "oe", "R", "r", "R", "r", "R", "r", "S", "s", "S", "s", "S", "s", // 0150
    "S", "s", "T", "t", "T", "t", "T", "t", "U", "u", "U", "u", "U", "u", "U", "u", // 0160
    "U", "u", "U", "u", "W", "w", "Y", "y", "Y", "Z", "z", "Z", "z", "Z", "z", "s", // 0170
];

fn fold_char(ch: char) -> Option<&'static str> {
    let code = ch as u32;
    let plain = match code {
        0xC0..=0xFF => LATIN_1[(code - 0xC0) as usize],
        0x100..=0x17F => LATIN_EXTENDED_A[(code - 0x100) as usize],
        0x218 => "S",
        0x219 => "s",
        0x21A => "T",
        0x21B => "t",
        0x1E9E => "SS",
        _ => "",
    };
    (!plain.is_empty()).then_some(plain)
}

/// What one consent history row records: the contact opted in or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentChange {
    OptIn,
    OptOut,
}

impl ConsentChange {
    pub fn new(opt_in: bool) -> ConsentChange {
        if opt_in {
            ConsentChange::OptIn
        } else {
            ConsentChange::OptOut
        }
    }

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentChange::OptIn => "opt_in",
            ConsentChange::OptOut => "opt_out",
        }
    }

    /// Reads a stored word back; `None` for one no release writes.
    pub fn from_stored(word: &str) -> Option<ConsentChange> {
        [ConsentChange::OptIn, ConsentChange::OptOut]
            .into_iter()
            .find(|c| c.as_str() == word)
    }
}

impl std::fmt::Display for ConsentChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who or what changed a contact's consent: kept with every consent history row (SPEC §2), as
/// evidence of where an opt-in came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentSource {
    /// `/optin`, `/optout` or `/contact add ... optin` by an admin.
    Admin,
    /// The contact wrote an opt-in or opt-out word.
    Keyword,
    /// Telegram's `/start`.
    TelegramStart,
    /// A CSV import.
    Import,
    /// A `/on <campaign> <event> optout` rule.
    CampaignRule,
}

impl ConsentSource {
    pub const ALL: [ConsentSource; 5] = [
        ConsentSource::Admin,
        ConsentSource::Keyword,
        ConsentSource::TelegramStart,
        ConsentSource::Import,
        ConsentSource::CampaignRule,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentSource::Admin => "admin",
            ConsentSource::Keyword => "keyword",
            ConsentSource::TelegramStart => "telegram_start",
            ConsentSource::Import => "import",
            ConsentSource::CampaignRule => "campaign_rule",
        }
    }

    /// Reads a stored word back; `None` for one this release does not write.
    pub fn from_stored(word: &str) -> Option<ConsentSource> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

impl std::fmt::Display for ConsentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_sources_read_back_as_themselves() {
        for source in ConsentSource::ALL {
            assert_eq!(ConsentSource::from_stored(source.as_str()), Some(source));
        }
        assert_eq!(ConsentSource::from_stored("Admin"), None);
    }

    #[test]
    fn normalizes_what_customers_type() {
        let cases = [
            ("STOP", "STOP"),
            ("stop", "STOP"),
            ("Stop.", "STOP"),
            (" stop! ", "STOP"),
            ("/stop", "STOP"),
            ("\"Stop\"", "STOP"),
            ("STOP 🛑", "STOP"),
            ("¡Baja!", "BAJA"),
            ("ARRÊT", "ARRET"),
            ("arrêt", "ARRET"),
            ("ARRE\u{0302}T", "ARRET"),
            ("stop-all", "STOPALL"),
            ("stop   all", "STOP ALL"),
            ("\tplease\n stop ", "PLEASE STOP"),
            ("Straße", "STRASSE"),
            ("Łódź", "LODZ"),
            ("Œuvre", "OEUVRE"),
            ("ștergeți", "STERGETI"),
            ("...", ""),
            ("", ""),
            ("123", "123"),
            // Only Latin letters are folded: other scripts keep their accents.
            ("σταμάτα", "ΣΤΑΜΆΤΑ"),
        ];
        for (text, want) in cases {
            assert_eq!(normalize(text), want, "{text:?}");
        }
    }

    #[test]
    fn folds_all_of_latin_1_and_extended_a_to_ascii() {
        for code in (0xC0u32..=0x17F).filter(|c| *c != 0xD7 && *c != 0xF7) {
            let ch = char::from_u32(code).expect("valid code point");
            let folded = fold_accents(&ch.to_string());
            assert!(
                folded.chars().all(|c| c.is_ascii_alphabetic()),
                "U+{code:04X} {ch} -> {folded}"
            );
            // Case survives folding, so uppercase letters fold to uppercase ASCII.
            if ch.is_uppercase() {
                assert!(
                    folded.chars().all(|c| c.is_ascii_uppercase()),
                    "U+{code:04X}"
                );
            }
        }
        assert_eq!(fold_accents("× ÷"), "× ÷");
        assert_eq!(fold_accents("São Paulo, Čeština"), "Sao Paulo, Cestina");
    }

    #[test]
    fn defaults_recognise_every_spec_word() {
        let words = ConsentWords::defaults();
        for word in DEFAULT_OPT_OUT {
            assert!(words.is_opt_out(word), "{word}");
            assert!(
                words.is_opt_out(&format!(" {}! ", word.to_lowercase())),
                "{word}"
            );
            assert!(!words.is_opt_in(word), "{word}");
        }
        for word in DEFAULT_OPT_IN {
            assert!(words.is_opt_in(word), "{word}");
            assert!(!words.is_opt_out(word), "{word}");
        }
        assert!(words.is_opt_out("Arrêt."));
        assert!(words.is_opt_in("yes!"));
        assert!(words.is_opt_in("/start"));
        assert_eq!(ConsentWords::default(), words);
        assert_eq!(words.opt_out_word("  quit. "), Some("QUIT"));
        // Full-width, styled and bot-addressed spellings of the same word.
        for text in ["ＳＴＯＰ", "𝐒𝐓𝐎𝐏", "𝑠𝑡𝑜𝑝", "/stop@herald_bot", "Ｓｔｏｐ！"]
        {
            assert_eq!(words.opt_out_word(text), Some("STOP"), "{text}");
        }
        assert!(!words.is_opt_out("/stop @ 5pm"));
        assert_eq!(words.opt_in_word("nope"), None);
    }

    #[test]
    fn only_the_whole_text_counts() {
        let words = ConsentWords::defaults();
        for text in [
            "please stop",
            "stop sending",
            "don't stop",
            "stopping",
            "STOP ALL",
            "",
            "!!!",
            "yes please",
        ] {
            assert!(!words.is_opt_out(text), "{text:?}");
            assert!(!words.is_opt_in(text), "{text:?}");
        }
    }

    #[test]
    fn configured_words_are_normalised() {
        let words = ConsentWords::new(&[" halt ", "Arrêt", "", "HALT"], &["go!"]);
        assert_eq!(words.opt_out_words(), ["HALT", "ARRET"]);
        assert_eq!(words.opt_in_words(), ["GO"]);
        assert!(words.is_opt_out("Halt"));
        assert!(words.is_opt_out("arret"));
        assert!(!words.is_opt_out("stop"));
        assert!(words.is_opt_in("go"));
        // A `Vec<String>` as read from configuration works too.
        let from_config = ConsentWords::new(
            &ConsentWords::parse_list("STOP, QUIT"),
            &ConsentWords::parse_list("START"),
        );
        assert!(from_config.is_opt_out("quit"));
    }

    #[test]
    fn parses_configured_lists() {
        assert_eq!(
            ConsentWords::parse_list(" STOP,QUIT ; PARAR,, ;"),
            vec!["STOP", "QUIT", "PARAR"]
        );
        assert!(ConsentWords::parse_list("  ").is_empty());
    }

    #[test]
    fn keyword_matches_whole_words_only() {
        let yes = [
            ("price", "What's the PRICE?"),
            ("price", "price"),
            ("price", "price, please"),
            ("price", "(price)"),
            ("Price", "the price"),
            ("café", "CAFE hours?"),
            ("cafe", "Café hours?"),
            ("free trial", "a Free  Trial!"),
            ("c++", "do you teach C++?"),
            ("#promo", "send #promo now"),
            ("a a", "xa a a"),
            ("hours", "hours\nplease"),
            ("42", "order 42 status"),
        ];
        for (keyword, text) in yes {
            assert!(keyword_matches(keyword, text), "{keyword:?} in {text:?}");
        }
        let no = [
            ("price", "prices"),
            ("price", "caprice"),
            ("price", "price_list"),
            ("price", ""),
            ("", "anything"),
            ("  ", "anything"),
            ("free trial", "freetrial"),
            ("42", "order 420"),
            ("ação", "acao2"),
        ];
        for (keyword, text) in no {
            assert!(!keyword_matches(keyword, text), "{keyword:?} in {text:?}");
        }
    }

    #[test]
    fn keyword_search_survives_multibyte_text() {
        assert!(keyword_matches("olá", "Olá, tudo bem? 😀"));
        assert!(!keyword_matches("ola", "😀ólaf"));
        assert!(keyword_matches("日本", "日本 travel"));
    }
}
