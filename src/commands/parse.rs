//! The admin command parser: one chat message -> [`Command`], or a one-line reason with the
//! command's usage line (taken from `commands/*.md`, so errors and docs say the same thing).

use super::{
    account, campaign, contact, drip, help, label, on, status, template, trigger, Command,
    ConsentCommand,
};
use crate::domain::{Address, Label, Lang};
use std::str::FromStr;

use chrono_tz::Tz;

/// Length limits checked where text is typed, so a message is refused at once rather than by
/// the channel at send time: a WhatsApp text (and a Telegram message) holds 4,096 characters,
/// a template parameter and a template body 1,024; a title is a name, not a message.
pub(super) const MAX_TITLE: usize = 200;
pub(super) const MAX_TEXT: usize = 4096;
pub(super) const MAX_PARAM: usize = 1024;
pub(super) const MAX_TEMPLATE_BODY: usize = 1024;
/// Template parameters one command may give (WhatsApp bodies hold far fewer variables).
const MAX_PARAMS: usize = 100;

/// Values echoed back in an error are cut to this many characters: the reason stays one line.
const ECHO_LIMIT: usize = 40;

/// Why a command was refused, with the usage line of the command the admin was typing.
/// Displays as one line: `<reason>. Usage: <usage>`, or `<reason>. Try /help.`
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}. {}", hint(.usage.as_deref()))]
pub struct ParseError {
    reason: String,
    usage: Option<String>,
}

impl ParseError {
    fn new(reason: impl Into<String>, usage: Option<String>) -> Self {
        // Reasons can quote regex errors or user text; a chat reply must stay a single line.
        let reason = reason
            .into()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        ParseError { reason, usage }
    }

    /// The short reason, without the usage.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The usage line of the command (or group) being parsed, if it got that far.
    pub fn usage(&self) -> Option<&str> {
        self.usage.as_deref()
    }
}

fn hint(usage: Option<&str>) -> String {
    match usage {
        Some(usage) => format!("Usage: {usage}"),
        None => "Try /help.".to_string(),
    }
}

/// Parses one admin message (its first line starts with `/`). Pure: no I/O, no clock.
///
/// Free text (`/campaign text`, `/campaign variant`, `/template add`) runs to the end of the
/// message, newlines included; `/contact import` takes the lines after the first as CSV. Every
/// other command reads whitespace-separated words, where `"double quotes"` keep spaces together.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let text = line.trim();
    let Some(body) = text.strip_prefix('/') else {
        return Err(ParseError::new("admin commands start with /", None));
    };
    let word_end = body.find(char::is_whitespace).unwrap_or(body.len());
    // Telegram appends the bot's name in groups: `/help@herald_bot`.
    let word = body[..word_end]
        .split('@')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    let mut args = Args {
        rest: &body[word_end..],
        usage_key: "",
    };
    match word.as_str() {
        "help" => help::parse_command(args.with_usage("help")),
        "contact" => contact::parse(args.with_usage("contact")).map(Command::Contact),
        "label" => label::parse(args.with_usage("label")).map(Command::Label),
        "optin" => {
            let args = args.with_usage("optin");
            let address = args.address()?;
            args.end()?;
            Ok(Command::Consent(ConsentCommand::OptIn { address }))
        }
        "optout" => {
            let args = args.with_usage("optout");
            let address = args.address()?;
            args.end()?;
            Ok(Command::Consent(ConsentCommand::OptOut { address }))
        }
        "template" => template::parse(args.with_usage("template")).map(Command::Template),
        "account" => account::parse(args.with_usage("account")),
        "campaign" => campaign::parse(args.with_usage("campaign")).map(Command::Campaign),
        "trigger" => trigger::parse(args.with_usage("trigger")).map(Command::Trigger),
        "on" => on::parse(args.with_usage("on")),
        "drip" => drip::parse(args.with_usage("drip")).map(Command::Drip),
        "status" => status::parse(args.with_usage("status")),
        "" => Err(ParseError::new("missing command after /", None)),
        _ => Err(ParseError::new(
            format!("unknown command {}", shorten(&format!("/{word}"))),
            None,
        )),
    }
}

/// What is left of the message, and which usage line an error here should quote.
pub(super) struct Args<'a> {
    pub(super) rest: &'a str,
    pub(super) usage_key: &'static str,
}

impl<'a> Args<'a> {
    pub(super) fn with_usage(&mut self, usage_key: &'static str) -> &mut Self {
        self.usage_key = usage_key;
        self
    }

    pub(super) fn err(&self, reason: impl Into<String>) -> ParseError {
        ParseError::new(reason, help::usage_of(self.usage_key))
    }

    /// The next word, with quotes removed; `None` at the end of the message.
    pub(super) fn word(&mut self) -> Result<Option<String>, ParseError> {
        match next_token(self.rest) {
            Ok(Some((token, rest))) => {
                self.rest = rest;
                Ok(Some(token))
            }
            Ok(None) => Ok(None),
            Err(reason) => Err(self.err(reason)),
        }
    }

    pub(super) fn require(&mut self, what: &str) -> Result<String, ParseError> {
        self.word()?
            .ok_or_else(|| self.err(format!("missing {what}")))
    }

    /// A subcommand or keyword, compared case-insensitively.
    pub(super) fn keyword(&mut self, what: &str) -> Result<String, ParseError> {
        Ok(self.require(what)?.to_lowercase())
    }

    pub(super) fn id(&mut self, what: &str) -> Result<i64, ParseError> {
        let word = self.require(what)?;
        self.number_id(what, &word)
    }

    pub(super) fn number_id(&self, what: &str, word: &str) -> Result<i64, ParseError> {
        match word.parse::<i64>() {
            Ok(id) if id > 0 => Ok(id),
            Ok(_) => Err(self.err(format!(
                "{what} must be a positive number, got {}",
                shorten(word)
            ))),
            Err(_) => Err(self.err(format!("{what} must be a number, got {}", shorten(word)))),
        }
    }

    pub(super) fn address(&mut self) -> Result<Address, ParseError> {
        let word = self.require("address")?;
        Address::parse(&word).map_err(|e| self.err(e.to_string()))
    }

    pub(super) fn label(&mut self) -> Result<Label, ParseError> {
        let word = self.require("label")?;
        Label::parse(&word).map_err(|e| self.err(e.to_string()))
    }

    pub(super) fn lang(&mut self) -> Result<Lang, ParseError> {
        let word = self.require("language")?;
        Lang::parse(&word).map_err(|e| self.err(e.to_string()))
    }

    pub(super) fn end(&mut self) -> Result<(), ParseError> {
        match self.word()? {
            None => Ok(()),
            Some(extra) => Err(self.err(format!("unexpected {}", shorten(&extra)))),
        }
    }

    /// The rest of the message as typed (newlines kept), unquoted if it is one quoted string.
    pub(super) fn text(&mut self, what: &str) -> Result<String, ParseError> {
        let raw = self.rest.trim();
        self.rest = "";
        let text = match next_token(raw) {
            Ok(Some((token, rest))) if starts_quoted(raw) && rest.trim().is_empty() => token,
            _ => raw.to_string(),
        };
        if text.trim().is_empty() {
            return Err(self.err(format!("missing {what}")));
        }
        Ok(text)
    }

    /// [`Args::text`] of at most `max` characters.
    pub(super) fn text_within(&mut self, what: &str, max: usize) -> Result<String, ParseError> {
        let text = self.text(what)?;
        self.within(what, text, max)
    }

    /// Refuses `text` longer than `max` characters.
    pub(super) fn within(
        &self,
        what: &str,
        text: String,
        max: usize,
    ) -> Result<String, ParseError> {
        let n = text.chars().count();
        if n > max {
            return Err(self.err(format!("the {what} is {n} characters; at most {max}")));
        }
        Ok(text)
    }

    /// Like [`Args::text`], for values that must fit on one line (titles).
    pub(super) fn line_text(&mut self, what: &str) -> Result<String, ParseError> {
        let text = self.text(what)?;
        if text.contains('\n') {
            return Err(self.err(format!("{what} must be on one line")));
        }
        Ok(text)
    }
}

fn is_quote(c: char) -> bool {
    // Phones turn " into curly quotes as the admin types.
    matches!(c, '"' | '\u{201C}' | '\u{201D}')
}

fn starts_quoted(s: &str) -> bool {
    s.chars().next().is_some_and(is_quote)
}

/// Splits off the next whitespace-separated token. Quotes may appear anywhere in it
/// (`name="Ann Lee"` gives `name=Ann Lee`); inside quotes, `\"` and `\\` are escapes.
pub(super) fn next_token(s: &str) -> Result<Option<(String, &str)>, String> {
    let s = s.trim_start();
    if s.is_empty() {
        return Ok(None);
    }
    let mut token = String::new();
    let mut quoted = false;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if quoted {
            if c == '\\' {
                match chars.peek() {
                    Some(&(_, next)) if is_quote(next) || next == '\\' => {
                        token.push(next);
                        chars.next();
                    }
                    _ => token.push(c),
                }
            } else if is_quote(c) {
                quoted = false;
            } else {
                token.push(c);
            }
        } else if c.is_whitespace() {
            return Ok(Some((token, &s[i..])));
        } else if is_quote(c) {
            quoted = true;
        } else {
            token.push(c);
        }
    }
    if quoted {
        return Err("unclosed quote".to_string());
    }
    Ok(Some((token, "")))
}

/// A user value quoted for an error message: escaped (so it stays on one line) and cut short.
pub(super) fn shorten(value: &str) -> String {
    if value.chars().count() <= ECHO_LIMIT {
        return format!("{value:?}");
    }
    let cut: String = value.chars().take(ECHO_LIMIT).collect();
    format!("{:?}", format!("{cut}…"))
}

/// IANA names, in any case: phones capitalise or not as they please.
pub(super) fn parse_tz(zone: &str) -> Result<Tz, String> {
    Tz::from_str(zone)
        .ok()
        .or_else(|| {
            chrono_tz::TZ_VARIANTS
                .iter()
                .copied()
                .find(|tz| tz.name().eq_ignore_ascii_case(zone))
        })
        .ok_or_else(|| {
            format!(
                "unknown time zone {} (use a name like Europe/Lisbon)",
                shorten(zone)
            )
        })
}

/// Splits on `|` outside quotes, so a quoted parameter may contain one.
pub(super) fn split_params(rest: &str) -> Result<Vec<String>, String> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut raw = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        if c == '|' && !quoted {
            raw.push(std::mem::take(&mut current));
            continue;
        }
        // Only a parameter that starts with a quote is quoted: `5" screens` is literal text.
        if is_quote(c) && (quoted || current.trim().is_empty()) {
            quoted = !quoted;
        }
        current.push(c);
    }
    raw.push(current);
    if raw.len() > MAX_PARAMS {
        return Err(format!("{} parameters; at most {MAX_PARAMS}", raw.len()));
    }
    raw.iter()
        .enumerate()
        .map(|(i, param)| {
            let param = param.trim();
            let value = match next_token(param) {
                Ok(Some((token, tail))) if starts_quoted(param) && tail.trim().is_empty() => token,
                _ => param.to_string(),
            };
            let n = value.chars().count();
            if value.is_empty() {
                Err(format!("parameter {} is empty", i + 1))
            } else if n > MAX_PARAM {
                Err(format!(
                    "parameter {} is {n} characters; at most {MAX_PARAM}",
                    i + 1
                ))
            } else {
                Ok(value)
            }
        })
        .collect()
}

#[cfg(test)]
pub(super) mod test_support {
    use super::*;

    /// Every refusal is one line naming a reason and the usage (or pointing at /help).
    pub fn refused(line: &str) -> String {
        let Err(e) = parse(line) else {
            panic!("{line:?} should be refused, parsed as {:?}", parse(line));
        };
        let text = e.to_string();
        assert!(
            !text.contains('\n'),
            "{line:?} gave a multi-line error: {text:?}"
        );
        assert!(!e.reason().is_empty());
        text
    }

    pub fn refused_with_usage(line: &str, usage_start: &str) -> String {
        let text = refused(line);
        assert!(
            text.contains(&format!(". Usage: {usage_start}")),
            "{line:?} gave {text:?}, expected usage starting {usage_start:?}"
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::commands::CampaignCommand;

    fn ok(line: &str) -> Command {
        match parse(line) {
            Ok(command) => command,
            Err(e) => panic!("{line:?} should parse, got: {e}"),
        }
    }

    #[test]
    fn help_with_and_without_topic() {
        assert_eq!(ok("/help"), Command::Help { topic: None });
        assert_eq!(
            ok("/HELP Campaign  Send"),
            Command::Help {
                topic: Some("campaign send".into())
            }
        );
        assert_eq!(
            ok("/help /optout"),
            Command::Help {
                topic: Some("optout".into())
            }
        );
        assert_eq!(ok("/help@herald_bot"), Command::Help { topic: None });
    }

    #[test]
    fn unknown_and_unavailable_commands_point_to_help() {
        for line in ["/launch", "/", "/ help", "hello"] {
            let text = refused(line);
            assert!(text.ends_with("Try /help."), "{line:?} gave {text:?}");
        }
        assert_eq!(
            refused("/launch"),
            "unknown command \"/launch\". Try /help."
        );
    }

    #[test]
    fn errors_stay_one_line_and_short_whatever_was_typed() {
        let long = "x".repeat(500);
        let text = refused(&format!("/campaign send {long}"));
        assert!(text.len() < 150, "{text}");
        let text = refused("/campaign send \"a\nb\"");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(
            ok("  /campaign send 3  \n"),
            Command::Campaign(CampaignCommand::Send { id: 3 })
        );
    }
}
