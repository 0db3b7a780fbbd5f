//! The admin command parser: one chat message -> [`Command`], or a one-line reason with the
//! command's usage line (taken from `commands/*.md`, so errors and docs say the same thing).

use std::str::FromStr;

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use super::{
    help, Command, PostAction, RecipientEvent, ReportFormat, StepContent, TemplateCategory,
    TriggerPattern, TriggerTarget,
};
use crate::domain::schedule::Repeat;
use crate::domain::{Address, AttrKey, Label, Lang};

const CAMPAIGN_STATUSES: [&str; 7] = [
    "draft",
    "scheduled",
    "sending",
    "completed",
    "paused",
    "cancelled",
    "failed",
];

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
        "help" => help_command(args.with_usage("help")),
        "contact" => contact(args.with_usage("contact")),
        "label" => label(args.with_usage("label")),
        "optin" => {
            let args = args.with_usage("optin");
            let address = args.address()?;
            args.end()?;
            Ok(Command::OptIn { address })
        }
        "optout" => {
            let args = args.with_usage("optout");
            let address = args.address()?;
            args.end()?;
            Ok(Command::OptOut { address })
        }
        "template" => template(args.with_usage("template")),
        "campaign" => campaign(args.with_usage("campaign")),
        "trigger" => trigger(args.with_usage("trigger")),
        "on" => on(args.with_usage("on")),
        "drip" => drip(args.with_usage("drip")),
        "" => Err(ParseError::new("missing command after /", None)),
        _ => Err(ParseError::new(
            format!("unknown command {}", shorten(&format!("/{word}"))),
            None,
        )),
    }
}

/// What is left of the message, and which usage line an error here should quote.
struct Args<'a> {
    rest: &'a str,
    usage_key: &'static str,
}

impl<'a> Args<'a> {
    fn with_usage(&mut self, usage_key: &'static str) -> &mut Self {
        self.usage_key = usage_key;
        self
    }

    fn err(&self, reason: impl Into<String>) -> ParseError {
        ParseError::new(reason, help::usage_of(self.usage_key))
    }

    /// The next word, with quotes removed; `None` at the end of the message.
    fn word(&mut self) -> Result<Option<String>, ParseError> {
        match next_token(self.rest) {
            Ok(Some((token, rest))) => {
                self.rest = rest;
                Ok(Some(token))
            }
            Ok(None) => Ok(None),
            Err(reason) => Err(self.err(reason)),
        }
    }

    fn require(&mut self, what: &str) -> Result<String, ParseError> {
        self.word()?
            .ok_or_else(|| self.err(format!("missing {what}")))
    }

    /// A subcommand or keyword, compared case-insensitively.
    fn keyword(&mut self, what: &str) -> Result<String, ParseError> {
        Ok(self.require(what)?.to_lowercase())
    }

    fn id(&mut self, what: &str) -> Result<i64, ParseError> {
        let word = self.require(what)?;
        self.number_id(what, &word)
    }

    fn number_id(&self, what: &str, word: &str) -> Result<i64, ParseError> {
        match word.parse::<i64>() {
            Ok(id) if id > 0 => Ok(id),
            Ok(_) => Err(self.err(format!(
                "{what} must be a positive number, got {}",
                shorten(word)
            ))),
            Err(_) => Err(self.err(format!("{what} must be a number, got {}", shorten(word)))),
        }
    }

    fn address(&mut self) -> Result<Address, ParseError> {
        let word = self.require("address")?;
        Address::parse(&word).map_err(|e| self.err(e.to_string()))
    }

    fn label(&mut self) -> Result<Label, ParseError> {
        let word = self.require("label")?;
        Label::parse(&word).map_err(|e| self.err(e.to_string()))
    }

    fn lang(&mut self) -> Result<Lang, ParseError> {
        let word = self.require("language")?;
        Lang::parse(&word).map_err(|e| self.err(e.to_string()))
    }

    fn end(&mut self) -> Result<(), ParseError> {
        match self.word()? {
            None => Ok(()),
            Some(extra) => Err(self.err(format!("unexpected {}", shorten(&extra)))),
        }
    }

    /// The rest of the message as typed (newlines kept), unquoted if it is one quoted string.
    fn text(&mut self, what: &str) -> Result<String, ParseError> {
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

    /// Like [`Args::text`], for values that must fit on one line (titles).
    fn line_text(&mut self, what: &str) -> Result<String, ParseError> {
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
fn next_token(s: &str) -> Result<Option<(String, &str)>, String> {
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
fn shorten(value: &str) -> String {
    if value.chars().count() <= ECHO_LIMIT {
        return format!("{value:?}");
    }
    let cut: String = value.chars().take(ECHO_LIMIT).collect();
    format!("{:?}", format!("{cut}…"))
}

/// IANA names, in any case: phones capitalise or not as they please.
fn parse_tz(zone: &str) -> Result<Tz, String> {
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

fn help_command(args: &mut Args) -> Result<Command, ParseError> {
    let mut words = Vec::new();
    while let Some(word) = args.word()? {
        words.push(word);
    }
    let topic = words
        .join(" ")
        .trim_start_matches('/')
        .trim()
        .to_lowercase();
    Ok(Command::Help {
        topic: (!topic.is_empty()).then_some(topic),
    })
}

fn contact(args: &mut Args) -> Result<Command, ParseError> {
    let sub = args.keyword("subcommand")?;
    match sub.as_str() {
        "add" => contact_add(args.with_usage("contact add")),
        "show" => {
            let args = args.with_usage("contact show");
            let address = args.address()?;
            args.end()?;
            Ok(Command::ContactShow { address })
        }
        "import" => {
            let args = args.with_usage("contact import");
            let (first_line, csv) = match args.rest.split_once('\n') {
                Some((first, csv)) => (first, csv.trim()),
                None => (args.rest, ""),
            };
            if let Some(extra) = first_line.split_whitespace().next() {
                return Err(args.err(format!(
                    "unexpected {} (attach the CSV, or paste it on the next lines)",
                    shorten(extra)
                )));
            }
            Ok(Command::ContactImport {
                csv: (!csv.is_empty()).then(|| csv.to_string()),
            })
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

fn contact_add(args: &mut Args) -> Result<Command, ParseError> {
    let address = args.address()?;
    let mut name = None;
    let mut labels: Option<Vec<Label>> = None;
    let mut lang = None;
    let mut tz = None;
    let mut optin = false;
    let mut attrs: Vec<(AttrKey, String)> = Vec::new();

    while let Some(word) = args.word()? {
        if word.eq_ignore_ascii_case("optin") {
            if optin {
                return Err(args.err("optin given twice"));
            }
            optin = true;
            continue;
        }
        let Some((key, value)) = word.split_once('=') else {
            return Err(args.err(format!(
                "unexpected {} (options are name=, labels=, lang=, tz=, optin, attr.KEY=)",
                shorten(&word)
            )));
        };
        let key_lower = key.to_lowercase();
        let value = value.trim();
        if value.is_empty() {
            return Err(args.err(format!("{key} needs a value")));
        }
        let twice = || args.err(format!("{key} given twice"));
        match key_lower.as_str() {
            "name" => {
                if name.replace(value.to_string()).is_some() {
                    return Err(twice());
                }
            }
            "labels" => {
                let mut list: Vec<Label> = Vec::new();
                for raw in value.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                    let label = Label::parse(raw).map_err(|e| args.err(e.to_string()))?;
                    if !list.contains(&label) {
                        list.push(label);
                    }
                }
                if list.is_empty() {
                    return Err(args.err("labels needs a value"));
                }
                if labels.replace(list).is_some() {
                    return Err(twice());
                }
            }
            "lang" => {
                let value = Lang::parse(value).map_err(|e| args.err(e.to_string()))?;
                if lang.replace(value).is_some() {
                    return Err(twice());
                }
            }
            "tz" => {
                let zone = parse_tz(value).map_err(|reason| args.err(reason))?;
                if tz.replace(zone.name().to_string()).is_some() {
                    return Err(twice());
                }
            }
            _ => {
                let Some(attr) = key_lower.strip_prefix("attr.") else {
                    return Err(args.err(format!(
                        "unknown option {} (options are name=, labels=, lang=, tz=, optin, attr.KEY=)",
                        shorten(key)
                    )));
                };
                let attr = AttrKey::parse(attr).map_err(|e| args.err(e.to_string()))?;
                if attrs.iter().any(|(k, _)| *k == attr) {
                    return Err(twice());
                }
                attrs.push((attr, value.to_string()));
            }
        }
    }
    Ok(Command::ContactAdd {
        address,
        name,
        labels: labels.unwrap_or_default(),
        lang,
        tz,
        optin,
        attrs,
    })
}

fn label(args: &mut Args) -> Result<Command, ParseError> {
    let sub = args.keyword("subcommand")?;
    let add = match sub.as_str() {
        "add" => true,
        "remove" => false,
        other => return Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    };
    let args = args.with_usage(if add { "label add" } else { "label remove" });
    let label = args.label()?;
    let mut addresses = vec![args.address()?];
    while let Some(word) = args.word()? {
        let address = Address::parse(&word).map_err(|e| args.err(e.to_string()))?;
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(if add {
        Command::LabelAdd { label, addresses }
    } else {
        Command::LabelRemove { label, addresses }
    })
}

fn template(args: &mut Args) -> Result<Command, ParseError> {
    let sub = args.keyword("subcommand")?;
    match sub.as_str() {
        "add" => {
            let args = args.with_usage("template add");
            let name = args.require("template name")?;
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(args.err(format!(
                    "template name must be letters, digits and _, got {}",
                    shorten(&name)
                )));
            }
            let lang = args.lang()?;
            let category_word = args.require("category")?;
            let category = TemplateCategory::from_name(&category_word).ok_or_else(|| {
                args.err(format!(
                    "category must be marketing, utility or authentication, got {}",
                    shorten(&category_word)
                ))
            })?;
            let body = args.text("template body")?;
            check_placeholders(&body).map_err(|reason| args.err(reason))?;
            Ok(Command::TemplateAdd {
                name,
                lang,
                category,
                body,
            })
        }
        "list" => {
            args.with_usage("template list").end()?;
            Ok(Command::TemplateList)
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

/// WhatsApp rejects a template whose parameters are not numbered `{{1}}..{{n}}` without gaps.
fn check_placeholders(body: &str) -> Result<(), String> {
    let mut numbers = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("template body has an unclosed {{".to_string());
        };
        let inner = after[..end].trim();
        match inner.parse::<u32>() {
            Ok(n) if n >= 1 => numbers.push(n),
            _ => {
                return Err(format!(
                    "template parameters are numbered {{{{1}}}}..{{{{n}}}}, got {}",
                    shorten(&format!("{{{{{inner}}}}}"))
                ))
            }
        }
        rest = &after[end + 2..];
    }
    numbers.sort_unstable();
    numbers.dedup();
    for (expected, n) in (1..).zip(&numbers) {
        if *n != expected {
            return Err(format!(
                "template parameters must run from {{{{1}}}} without gaps; {{{{{expected}}}}} is missing"
            ));
        }
    }
    Ok(())
}

/// Builds a campaign command that takes nothing but the campaign id.
type IdOnly = fn(i64) -> Command;

fn campaign(args: &mut Args) -> Result<Command, ParseError> {
    let sub = args.keyword("subcommand")?;
    // The subcommands that take only an id share one path; each keeps its own usage line.
    let id_only: Option<(&'static str, IdOnly)> = match sub.as_str() {
        "preview" => Some(("campaign preview", |id| Command::CampaignPreview { id })),
        "test" => Some(("campaign test", |id| Command::CampaignTest { id })),
        "send" => Some(("campaign send", |id| Command::CampaignSend { id })),
        "pause" => Some(("campaign pause", |id| Command::CampaignPause { id })),
        "resume" => Some(("campaign resume", |id| Command::CampaignResume { id })),
        "cancel" => Some(("campaign cancel", |id| Command::CampaignCancel { id })),
        "show" => Some(("campaign show", |id| Command::CampaignShow { id })),
        _ => None,
    };
    if let Some((usage_key, build)) = id_only {
        let args = args.with_usage(usage_key);
        let id = args.id("campaign id")?;
        args.end()?;
        return Ok(build(id));
    }
    match sub.as_str() {
        "new" => {
            let title = args.with_usage("campaign new").line_text("title")?;
            Ok(Command::CampaignNew { title })
        }
        "audience" => {
            let args = args.with_usage("campaign audience");
            let id = args.id("campaign id")?;
            // Addresses pasted one per line are still one audience.
            let audience = args.rest.split_whitespace().collect::<Vec<_>>().join(" ");
            if audience.is_empty() {
                return Err(args.err("missing label expression or addresses"));
            }
            Ok(Command::CampaignAudience { id, audience })
        }
        "text" | "variant" => {
            let variant = sub == "variant";
            let args = args.with_usage(if variant {
                "campaign variant"
            } else {
                "campaign text"
            });
            let id = args.id("campaign id")?;
            let text = args.text("message")?;
            Ok(if variant {
                Command::CampaignVariant { id, text }
            } else {
                Command::CampaignText { id, text }
            })
        }
        "template" => campaign_template(args.with_usage("campaign template")),
        "pace" => campaign_pace(args.with_usage("campaign pace")),
        "schedule" => campaign_schedule(args.with_usage("campaign schedule")),
        "list" => {
            let args = args.with_usage("campaign list");
            let status = match args.word()? {
                None => None,
                Some(word) => {
                    let status = word.to_lowercase();
                    if !CAMPAIGN_STATUSES.contains(&status.as_str()) {
                        return Err(args.err(format!(
                            "status must be one of {}, got {}",
                            CAMPAIGN_STATUSES.join(", "),
                            shorten(&word)
                        )));
                    }
                    Some(status)
                }
            };
            args.end()?;
            Ok(Command::CampaignList { status })
        }
        "report" => {
            let args = args.with_usage("campaign report");
            let id = args.id("campaign id")?;
            let format = match args.word()? {
                None => ReportFormat::Text,
                Some(word) => match word.to_lowercase().as_str() {
                    "csv" => ReportFormat::Csv,
                    "chart" => ReportFormat::Chart,
                    _ => {
                        return Err(args.err(format!(
                            "report format must be csv or chart, got {}",
                            shorten(&word)
                        )))
                    }
                },
            };
            args.end()?;
            Ok(Command::CampaignReport { id, format })
        }
        "repeat" => campaign_repeat(args.with_usage("campaign repeat")),
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

fn campaign_template(args: &mut Args) -> Result<Command, ParseError> {
    let id = args.id("campaign id")?;
    let name = args.require("template name")?;
    let lang = args.lang()?;
    let rest = args.rest.trim();
    args.rest = "";
    let params = split_params(rest).map_err(|reason| args.err(reason))?;
    Ok(Command::CampaignTemplate {
        id,
        name,
        lang,
        params,
    })
}

/// Splits on `|` outside quotes, so a quoted parameter may contain one.
fn split_params(rest: &str) -> Result<Vec<String>, String> {
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
    raw.iter()
        .enumerate()
        .map(|(i, param)| {
            let param = param.trim();
            let value = match next_token(param) {
                Ok(Some((token, tail))) if starts_quoted(param) && tail.trim().is_empty() => token,
                _ => param.to_string(),
            };
            if value.is_empty() {
                Err(format!("parameter {} is empty", i + 1))
            } else {
                Ok(value)
            }
        })
        .collect()
}

fn campaign_pace(args: &mut Args) -> Result<Command, ParseError> {
    let id = args.id("campaign id")?;
    let mut rate = None;
    let mut delay = None;
    let mut batch = None;
    let mut pause = None;
    let mut any = false;
    while let Some(word) = args.word()? {
        any = true;
        let Some((key, value)) = word.split_once('=') else {
            return Err(args.err(format!(
                "unexpected {} (settings are rate=, delay=, batch=, pause=)",
                shorten(&word)
            )));
        };
        let key = key.to_lowercase();
        let twice = || args.err(format!("{key} given twice"));
        match key.as_str() {
            "rate" => {
                let n = seconds_value(value).ok_or_else(|| {
                    args.err(format!(
                        "rate must be a number of messages per second, 0 or more, got {}",
                        shorten(value)
                    ))
                })?;
                if rate.replace(n).is_some() {
                    return Err(twice());
                }
            }
            "delay" => {
                let (min, max) = parse_delay(value).ok_or_else(|| {
                    args.err(format!(
                        "delay must be <min>-<max> seconds, like 1-3, got {}",
                        shorten(value)
                    ))
                })?;
                if min > max {
                    return Err(args.err(format!(
                        "delay minimum must not exceed maximum, got {}",
                        shorten(value)
                    )));
                }
                if delay.replace((min, max)).is_some() {
                    return Err(twice());
                }
            }
            "batch" => {
                let n = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        args.err(format!(
                            "batch must be a whole number, 1 or more, got {}",
                            shorten(value)
                        ))
                    })?;
                if batch.replace(n).is_some() {
                    return Err(twice());
                }
            }
            "pause" => {
                let secs =
                    seconds_value(value.strip_suffix('s').unwrap_or(value)).ok_or_else(|| {
                        args.err(format!(
                            "pause must be a number of seconds, 0 or more, got {}",
                            shorten(value)
                        ))
                    })?;
                if pause.replace(secs).is_some() {
                    return Err(twice());
                }
            }
            _ => {
                return Err(args.err(format!(
                    "unknown setting {} (settings are rate=, delay=, batch=, pause=)",
                    shorten(&key)
                )))
            }
        }
    }
    if !any {
        return Err(args.err("give at least one of rate=, delay=, batch=, pause="));
    }
    Ok(Command::CampaignPace {
        id,
        rate,
        delay,
        batch,
        pause,
    })
}

/// A finite, non-negative number (`"3"`, `"0.5"`).
fn seconds_value(value: &str) -> Option<f64> {
    value
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

/// `1-3` or `1-3s`; a single `2` means exactly 2 seconds.
fn parse_delay(value: &str) -> Option<(f64, f64)> {
    let value = value.strip_suffix('s').unwrap_or(value);
    match value.split_once('-') {
        Some((min, max)) => Some((seconds_value(min)?, seconds_value(max)?)),
        None => {
            let n = seconds_value(value)?;
            Some((n, n))
        }
    }
}

fn campaign_schedule(args: &mut Args) -> Result<Command, ParseError> {
    let id = args.id("campaign id")?;
    let date = args.require("date and time")?;
    let time = args.require("time (HH:MM)")?;
    let typed = format!("{date} {time}");
    let at = NaiveDateTime::parse_from_str(&typed, "%Y-%m-%d %H:%M").map_err(|_| {
        args.err(format!(
            "time must be YYYY-MM-DD HH:MM, got {}",
            shorten(&typed)
        ))
    })?;
    let tz = match args.word()? {
        None => None,
        Some(zone) => Some(parse_tz(&zone).map_err(|reason| args.err(reason))?),
    };
    args.end()?;
    Ok(Command::CampaignSchedule { id, at, tz })
}

fn campaign_repeat(args: &mut Args) -> Result<Command, ParseError> {
    let id = args.id("campaign id")?;
    let rule = args.rest.trim();
    args.rest = "";
    if rule.is_empty() {
        return Err(args.err("missing every <interval>"));
    }
    let repeat = rule
        .parse::<Repeat>()
        .map_err(|e| args.err(e.to_string()))?;
    Ok(Command::CampaignRepeat { id, repeat })
}

fn drip(args: &mut Args) -> Result<Command, ParseError> {
    let sub = args.keyword("subcommand")?;
    match sub.as_str() {
        "new" => {
            let args = args.with_usage("drip new");
            let title = args.text("title")?;
            if title.contains('\n') {
                return Err(args.err("the title must be one line"));
            }
            Ok(Command::DripNew { title })
        }
        "step" => drip_step(args.with_usage("drip step")),
        "enroll" => {
            let args = args.with_usage("drip enroll");
            let id = args.id("drip id")?;
            let audience = args.rest.split_whitespace().collect::<Vec<_>>().join(" ");
            args.rest = "";
            if audience.is_empty() {
                return Err(args.err("missing label expression or addresses"));
            }
            Ok(Command::DripEnroll { id, audience })
        }
        "stop-on-reply" => {
            let args = args.with_usage("drip stop-on-reply");
            let id = args.id("drip id")?;
            let word = args.require("on or off")?;
            let on = match word.to_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(args.err(format!("expected on or off, got {}", shorten(&word)))),
            };
            args.end()?;
            Ok(Command::DripStopOnReply { id, on })
        }
        "show" => {
            let args = args.with_usage("drip show");
            let id = args.id("drip id")?;
            args.end()?;
            Ok(Command::DripShow { id })
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

/// `<delay> text <message>` or `<delay> template <name> <lang> [params]`.
fn drip_step(args: &mut Args) -> Result<Command, ParseError> {
    let id = args.id("drip id")?;
    let delay = args.require("delay (e.g. 0m, 2h, 3d)")?;
    let delay_ms = parse_step_delay(&delay).ok_or_else(|| {
        args.err(format!(
            "delay must be a number with s, m, h, d or w (0m, 2h, 3d), got {}",
            shorten(&delay)
        ))
    })?;
    let kind = args.keyword("text or template")?;
    let content = match kind.as_str() {
        "text" => StepContent::Text(args.text("message")?),
        "template" => {
            let name = args.require("template name")?;
            let lang = args.lang()?;
            let rest = args.rest.trim();
            args.rest = "";
            let params = split_params(rest).map_err(|reason| args.err(reason))?;
            StepContent::Template { name, lang, params }
        }
        other => return Err(args.err(format!("expected text or template, got {}", shorten(other)))),
    };
    Ok(Command::DripStep {
        id,
        delay_ms,
        content,
    })
}

/// `0m`, `90s`, `2h`, `3d`, `1w` in milliseconds.
fn parse_step_delay(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    // A year is plenty for one step; more is a typo.
    (n <= 366 * 86_400_000 / unit_ms).then_some(n * unit_ms)
}

fn on(args: &mut Args) -> Result<Command, ParseError> {
    let campaign_id = args.id("campaign id")?;
    let event_word = args.require("event")?;
    let event = RecipientEvent::from_key(&event_word).ok_or_else(|| {
        args.err(format!(
            "event must be delivered, read, replied, clicked:<button> or failed, got {}",
            shorten(&event_word)
        ))
    })?;
    let action_word = args.rest.trim();
    args.rest = "";
    if action_word.is_empty() {
        return Err(args.err("missing action"));
    }
    let action = PostAction::from_key(action_word).ok_or_else(|| {
        args.err(format!(
            "action must be label+=<label>, label-=<label>, attr.KEY=<value> or optout, got {}",
            shorten(action_word)
        ))
    })?;
    Ok(Command::On {
        campaign_id,
        event,
        action,
    })
}

fn trigger(args: &mut Args) -> Result<Command, ParseError> {
    let sub = args.keyword("subcommand")?;
    match sub.as_str() {
        "add" => trigger_add(args.with_usage("trigger add")),
        "list" => {
            args.with_usage("trigger list").end()?;
            Ok(Command::TriggerList)
        }
        "remove" => {
            let args = args.with_usage("trigger remove");
            let id = args.id("trigger id")?;
            args.end()?;
            Ok(Command::TriggerRemove { id })
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

/// Read from the right: a regex may contain spaces, the target is always the last two words.
fn trigger_add(args: &mut Args) -> Result<Command, ParseError> {
    let rest = args.rest.trim();
    args.rest = "";
    let missing_target = || args.err("missing target: end with campaign <id> or drip <id>");
    let (head, id_word) = rest
        .rsplit_once(char::is_whitespace)
        .ok_or_else(missing_target)?;
    let (pattern, target_word) = match head.trim_end().rsplit_once(char::is_whitespace) {
        Some((pattern, target)) => (pattern.trim(), target),
        None if head.trim().eq_ignore_ascii_case("campaign")
            || head.trim().eq_ignore_ascii_case("drip") =>
        {
            return Err(args.err("missing keyword or /regex/"));
        }
        None => return Err(missing_target()),
    };
    let target_kind = target_word.to_lowercase();
    if target_kind != "campaign" && target_kind != "drip" {
        return Err(missing_target());
    }
    let id_what = format!("{target_kind} id");
    let id = args.number_id(&id_what, id_word)?;
    let target = if target_kind == "drip" {
        TriggerTarget::Drip(id)
    } else {
        TriggerTarget::Campaign(id)
    };
    let pattern = trigger_pattern(pattern).map_err(|reason| args.err(reason))?;
    Ok(Command::TriggerAdd { pattern, target })
}

fn trigger_pattern(pattern: &str) -> Result<TriggerPattern, String> {
    if let Some(inner) = pattern.strip_prefix('/') {
        let Some(source) = inner.strip_suffix('/') else {
            return Err(format!(
                "a regex is written between slashes, like /order \\d+/, got {}",
                shorten(pattern)
            ));
        };
        if source.trim().is_empty() {
            return Err("the regex between the slashes is empty".to_string());
        }
        return match regex::Regex::new(source) {
            Ok(_) => Ok(TriggerPattern::Regex(source.to_string())),
            Err(e) => {
                // regex's message spans lines with a caret diagram; its last line names the problem.
                let text = e.to_string();
                let last = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim()
                    .trim_start_matches("error: ")
                    .to_string();
                Err(format!(
                    "invalid regex {}: {last}",
                    shorten(&format!("/{source}/"))
                ))
            }
        };
    }
    let keyword = match next_token(pattern) {
        Ok(Some((token, tail))) if tail.trim().is_empty() => token,
        Ok(_) => {
            return Err(format!(
                "a keyword is one word (use /regex/ for phrases), got {}",
                shorten(pattern)
            ))
        }
        Err(reason) => return Err(reason),
    };
    if keyword.is_empty() || keyword.chars().any(char::is_whitespace) {
        return Err(format!(
            "a keyword is one word (use /regex/ for phrases), got {}",
            shorten(pattern)
        ));
    }
    if !keyword.chars().any(char::is_alphanumeric) {
        return Err(format!(
            "a keyword needs a letter or digit, got {}",
            shorten(&keyword)
        ));
    }
    Ok(TriggerPattern::Keyword(keyword))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn ok(line: &str) -> Command {
        match parse(line) {
            Ok(command) => command,
            Err(e) => panic!("{line:?} should parse, got: {e}"),
        }
    }

    /// Every refusal is one line naming a reason and the usage (or pointing at /help).
    fn refused(line: &str) -> String {
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

    fn refused_with_usage(line: &str, usage_start: &str) -> String {
        let text = refused(line);
        assert!(
            text.contains(&format!(". Usage: {usage_start}")),
            "{line:?} gave {text:?}, expected usage starting {usage_start:?}"
        );
        text
    }

    // ---- help ----

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

    // ---- contacts ----

    #[test]
    fn contact_add_minimal() {
        assert_eq!(
            ok("/contact add +15550001"),
            Command::ContactAdd {
                address: "+15550001".into(),
                name: None,
                labels: vec![],
                lang: None,
                tz: None,
                optin: false,
                attrs: vec![],
            }
        );
    }

    #[test]
    fn contact_add_everything() {
        assert_eq!(
            ok(
                r#"/Contact ADD wa:15550002 name="Ann Lee" labels=vip,new lang=pt_BR tz=america/sao_paulo OPTIN attr.city=Lisbon attr.Note="likes tea""#
            ),
            Command::ContactAdd {
                address: "wa:15550002".into(),
                name: Some("Ann Lee".into()),
                labels: vec!["vip".into(), "new".into()],
                lang: Some("pt_BR".into()),
                tz: Some("America/Sao_Paulo".into()),
                optin: true,
                attrs: vec![
                    ("city".into(), "Lisbon".into()),
                    ("Note".into(), "likes tea".into())
                ],
            }
        );
    }

    #[test]
    fn contact_add_accepts_curly_quotes_and_escapes() {
        let Command::ContactAdd { name, attrs, .. } = ok(
            "/contact add tg:123456 name=\u{201C}Chen Wei\u{201D} attr.quote=\"say \\\"hi\\\"\"",
        ) else {
            panic!("not a contact add");
        };
        assert_eq!(name.as_deref(), Some("Chen Wei"));
        assert_eq!(attrs, vec![("quote".into(), "say \"hi\"".into())]);
    }

    #[test]
    fn contact_add_refusals() {
        let usage = "/contact add <address>";
        refused_with_usage("/contact add", usage);
        refused_with_usage("/contact add name=Ann", usage);
        refused_with_usage("/contact add +1555x", usage);
        refused_with_usage("/contact add tg:abc", usage);
        refused_with_usage("/contact add +15550001 color=red", usage);
        refused_with_usage("/contact add +15550001 Ann", usage);
        refused_with_usage("/contact add +15550001 tz=Mars/Olympus", usage);
        refused_with_usage("/contact add +15550001 tz=", usage);
        refused_with_usage("/contact add +15550001 lang=english", usage);
        refused_with_usage("/contact add +15550001 labels=vip,+new", usage);
        refused_with_usage("/contact add +15550001 labels=,", usage);
        refused_with_usage("/contact add +15550001 name=\"Ann Lee", usage);
        refused_with_usage("/contact add +15550001 name=A name=B", usage);
        refused_with_usage("/contact add +15550001 optin optin", usage);
        refused_with_usage("/contact add +15550001 attr.=x", usage);
        refused_with_usage("/contact add +15550001 attr.a=1 attr.a=2", usage);
        let text = refused("/contact add +15550001 tz=Mars/Olympus");
        assert!(
            text.starts_with("unknown time zone \"Mars/Olympus\""),
            "{text}"
        );
    }

    #[test]
    fn contact_show() {
        assert_eq!(
            ok("/contact show tg:-100123"),
            Command::ContactShow {
                address: "tg:-100123".into()
            }
        );
        refused_with_usage("/contact show", "/contact show <address>");
        refused_with_usage(
            "/contact show +15550001 +15550002",
            "/contact show <address>",
        );
    }

    #[test]
    fn contact_import_with_and_without_pasted_csv() {
        assert_eq!(ok("/contact import"), Command::ContactImport { csv: None });
        assert_eq!(
            ok("/contact import\naddress,name\n+15550001,Ann\n"),
            Command::ContactImport {
                csv: Some("address,name\n+15550001,Ann".into())
            }
        );
        refused_with_usage("/contact import people.csv", "/contact import");
    }

    #[test]
    fn contact_group_refusals_quote_the_group_usage() {
        refused_with_usage("/contact", "/contact add|show|import");
        refused_with_usage("/contact delete +15550001", "/contact add|show|import");
    }

    // ---- labels and consent ----

    #[test]
    fn label_add_and_remove() {
        assert_eq!(
            ok("/label add vip +15550001 tg:123456"),
            Command::LabelAdd {
                label: "vip".into(),
                addresses: vec!["+15550001".into(), "tg:123456".into()]
            }
        );
        assert_eq!(
            ok("/LABEL Remove new wa:15550002"),
            Command::LabelRemove {
                label: "new".into(),
                addresses: vec!["wa:15550002".into()]
            }
        );
    }

    #[test]
    fn label_refusals() {
        refused_with_usage("/label add vip", "/label add <label> <address>...");
        refused_with_usage("/label add", "/label add <label> <address>...");
        refused_with_usage("/label add -vip +15550001", "/label add <label>");
        refused_with_usage("/label remove vip +15550001 x=y", "/label remove <label>");
        refused_with_usage("/label rename a b", "/label add|remove");
    }

    #[test]
    fn optin_and_optout() {
        assert_eq!(
            ok("/optin +15550001"),
            Command::OptIn {
                address: "+15550001".into()
            }
        );
        assert_eq!(
            ok("/OptOut wa:+15550002"),
            Command::OptOut {
                address: "wa:+15550002".into()
            }
        );
        refused_with_usage("/optin", "/optin <address>");
        refused_with_usage("/optout +15550001 now", "/optout <address>");
    }

    // ---- templates ----

    #[test]
    fn template_add_and_list() {
        assert_eq!(
            ok("/template add spring_sale en MARKETING Hi {{1}}, sale starts {{2}}."),
            Command::TemplateAdd {
                name: "spring_sale".into(),
                lang: "en".into(),
                category: TemplateCategory::Marketing,
                body: "Hi {{1}}, sale starts {{2}}.".into()
            }
        );
        let Command::TemplateAdd { category, body, .. } =
            ok("/template add code en authentication {{1}} is your code.\nDo not share it.")
        else {
            panic!("not a template add");
        };
        assert_eq!(category, TemplateCategory::Authentication);
        assert_eq!(body, "{{1}} is your code.\nDo not share it.");
        assert_eq!(ok("/template list"), Command::TemplateList);
    }

    #[test]
    fn template_refusals() {
        let usage = "/template add <name> <lang> <marketing|utility|authentication>";
        refused_with_usage("/template add", usage);
        refused_with_usage("/template add promo en", usage);
        refused_with_usage("/template add promo en promo Hi", usage);
        refused_with_usage("/template add promo en utility", usage);
        refused_with_usage("/template add promo-1 en utility Hi", usage);
        refused_with_usage("/template add promo xx-toolong utility Hi", usage);
        refused_with_usage("/template add promo en utility Hi {{2}}", usage);
        refused_with_usage("/template add promo en utility Hi {{name}}", usage);
        refused_with_usage("/template add promo en utility Hi {{1", usage);
        refused_with_usage("/template list all", "/template list");
        refused_with_usage("/template remove x", "/template add|list");
    }

    // ---- campaigns ----

    #[test]
    fn campaign_new_takes_the_rest_of_the_line() {
        assert_eq!(
            ok("/campaign new Spring sale 20% off"),
            Command::CampaignNew {
                title: "Spring sale 20% off".into()
            }
        );
        assert_eq!(
            ok("/campaign new \"Black Friday\""),
            Command::CampaignNew {
                title: "Black Friday".into()
            }
        );
        assert_eq!(
            ok("/campaign new \"Big\" sale"),
            Command::CampaignNew {
                title: "\"Big\" sale".into()
            }
        );
        refused_with_usage("/campaign new", "/campaign new <title>");
        refused_with_usage("/campaign new   ", "/campaign new <title>");
        refused_with_usage("/campaign new Spring\nsale", "/campaign new <title>");
    }

    #[test]
    fn campaign_audience() {
        assert_eq!(
            ok("/campaign audience 3 vip,new  -blocked\nattr.city=Lisbon"),
            Command::CampaignAudience {
                id: 3,
                audience: "vip,new -blocked attr.city=Lisbon".into()
            }
        );
        refused_with_usage("/campaign audience 3", "/campaign audience <id>");
        refused_with_usage("/campaign audience vip", "/campaign audience <id>");
    }

    #[test]
    fn campaign_text_and_variant_keep_the_message_as_typed() {
        assert_eq!(
            ok("/campaign text 3 Hi {{name}},\n\n  20% off \"everything\"!"),
            Command::CampaignText {
                id: 3,
                text: "Hi {{name}},\n\n  20% off \"everything\"!".into()
            }
        );
        assert_eq!(
            ok("/campaign text 3\nHi {{name}}"),
            Command::CampaignText {
                id: 3,
                text: "Hi {{name}}".into()
            }
        );
        assert_eq!(
            ok("/campaign variant 3 \"Hey {{name}}\""),
            Command::CampaignVariant {
                id: 3,
                text: "Hey {{name}}".into()
            }
        );
        refused_with_usage("/campaign text 3", "/campaign text <id> <message>");
        refused_with_usage("/campaign text Hi there", "/campaign text <id> <message>");
        refused_with_usage("/campaign variant", "/campaign variant <id> <message>");
    }

    #[test]
    fn campaign_template_params() {
        assert_eq!(
            ok("/campaign template 3 spring_sale en {{name}} | Friday 9am |{{attr.city}}"),
            Command::CampaignTemplate {
                id: 3,
                name: "spring_sale".into(),
                lang: "en".into(),
                params: vec![
                    "{{name}}".into(),
                    "Friday 9am".into(),
                    "{{attr.city}}".into()
                ]
            }
        );
        assert_eq!(
            ok("/campaign template 3 welcome pt_BR"),
            Command::CampaignTemplate {
                id: 3,
                name: "welcome".into(),
                lang: "pt_BR".into(),
                params: vec![]
            }
        );
        let Command::CampaignTemplate { params, .. } =
            ok("/campaign template 3 promo en \"A | B\"|C")
        else {
            panic!("not a campaign template");
        };
        assert_eq!(params, vec!["A | B".to_string(), "C".to_string()]);
        let Command::CampaignTemplate { params, .. } =
            ok("/campaign template 3 promo en 5\" screens|{{name}}")
        else {
            panic!("not a campaign template");
        };
        assert_eq!(
            params,
            vec!["5\" screens".to_string(), "{{name}}".to_string()]
        );
        let usage = "/campaign template <id> <name> <lang>";
        refused_with_usage("/campaign template 3 promo", usage);
        refused_with_usage("/campaign template 3 promo english", usage);
        refused_with_usage("/campaign template 3 promo en a||b", usage);
        refused_with_usage("/campaign template x promo en", usage);
    }

    #[test]
    fn campaign_pace_settings() {
        assert_eq!(
            ok("/campaign pace 3 rate=5 delay=1-3 batch=100 pause=60"),
            Command::CampaignPace {
                id: 3,
                rate: Some(5.0),
                delay: Some((1.0, 3.0)),
                batch: Some(100),
                pause: Some(60.0)
            }
        );
        assert_eq!(
            ok("/campaign pace 4 RATE=0"),
            Command::CampaignPace {
                id: 4,
                rate: Some(0.0),
                delay: None,
                batch: None,
                pause: None
            }
        );
        assert_eq!(
            ok("/campaign pace 4 delay=0.5-2s pause=30s"),
            Command::CampaignPace {
                id: 4,
                rate: None,
                delay: Some((0.5, 2.0)),
                batch: None,
                pause: Some(30.0)
            }
        );
        let Command::CampaignPace { delay, .. } = ok("/campaign pace 4 delay=2") else {
            panic!("not a pace");
        };
        assert_eq!(delay, Some((2.0, 2.0)));
    }

    #[test]
    fn campaign_pace_refusals() {
        let usage = "/campaign pace <id> [rate=<n>]";
        refused_with_usage("/campaign pace 3", usage);
        refused_with_usage("/campaign pace", usage);
        refused_with_usage("/campaign pace 3 rate=-1", usage);
        refused_with_usage("/campaign pace 3 rate=fast", usage);
        refused_with_usage("/campaign pace 3 rate=NaN", usage);
        refused_with_usage("/campaign pace 3 rate=inf", usage);
        refused_with_usage("/campaign pace 3 delay=3-1", usage);
        refused_with_usage("/campaign pace 3 delay=-1-3", usage);
        refused_with_usage("/campaign pace 3 delay=1-", usage);
        refused_with_usage("/campaign pace 3 batch=0", usage);
        refused_with_usage("/campaign pace 3 batch=2.5", usage);
        refused_with_usage("/campaign pace 3 pause=-5", usage);
        refused_with_usage("/campaign pace 3 speed=5", usage);
        refused_with_usage("/campaign pace 3 rate=5 rate=6", usage);
        refused_with_usage("/campaign pace 3 5", usage);
    }

    #[test]
    fn campaign_schedule_with_and_without_zone() {
        let at = NaiveDate::from_ymd_opt(2027, 6, 1)
            .and_then(|d| d.and_hms_opt(9, 0, 0))
            .expect("valid date");
        assert_eq!(
            ok("/campaign schedule 3 2027-06-01 09:00"),
            Command::CampaignSchedule {
                id: 3,
                at,
                tz: None
            }
        );
        assert_eq!(
            ok("/campaign schedule 3 2027-06-01 09:00 Europe/Lisbon"),
            Command::CampaignSchedule {
                id: 3,
                at,
                tz: Some(chrono_tz::Europe::Lisbon)
            }
        );
        assert_eq!(
            ok("/campaign schedule 3 2027-06-01 09:00 europe/lisbon"),
            Command::CampaignSchedule {
                id: 3,
                at,
                tz: Some(chrono_tz::Europe::Lisbon)
            }
        );
        let usage = "/campaign schedule <id> <YYYY-MM-DD HH:MM>";
        refused_with_usage("/campaign schedule 3", usage);
        refused_with_usage("/campaign schedule 3 2027-06-01", usage);
        refused_with_usage("/campaign schedule 3 tomorrow 09:00", usage);
        refused_with_usage("/campaign schedule 3 2027-13-01 09:00", usage);
        refused_with_usage("/campaign schedule 3 2027-06-01 25:00", usage);
        refused_with_usage("/campaign schedule 3 2027-06-01 09:00 Lisbon", usage);
        refused_with_usage("/campaign schedule 3 2027-06-01 09:00 UTC extra", usage);
    }

    #[test]
    fn campaign_id_only_subcommands() {
        let cases: [(&str, Command); 7] = [
            ("preview", Command::CampaignPreview { id: 3 }),
            ("test", Command::CampaignTest { id: 3 }),
            ("send", Command::CampaignSend { id: 3 }),
            ("pause", Command::CampaignPause { id: 3 }),
            ("resume", Command::CampaignResume { id: 3 }),
            ("cancel", Command::CampaignCancel { id: 3 }),
            ("show", Command::CampaignShow { id: 3 }),
        ];
        for (sub, expected) in cases {
            assert_eq!(ok(&format!("/campaign {sub} 3")), expected);
            assert_eq!(ok(&format!("/CAMPAIGN {} 3", sub.to_uppercase())), expected);
            let usage = format!("/campaign {sub} <id>");
            refused_with_usage(&format!("/campaign {sub}"), &usage);
            refused_with_usage(&format!("/campaign {sub} x"), &usage);
            refused_with_usage(&format!("/campaign {sub} 0"), &usage);
            refused_with_usage(&format!("/campaign {sub} -2"), &usage);
            refused_with_usage(&format!("/campaign {sub} 3 4"), &usage);
        }
    }

    #[test]
    fn campaign_id_error_reads_as_documented() {
        assert_eq!(
            refused("/campaign send x"),
            "campaign id must be a number, got \"x\". Usage: /campaign send <id>"
        );
    }

    #[test]
    fn campaign_list_and_report() {
        assert_eq!(ok("/campaign list"), Command::CampaignList { status: None });
        assert_eq!(
            ok("/campaign list Sending"),
            Command::CampaignList {
                status: Some("sending".into())
            }
        );
        for status in CAMPAIGN_STATUSES {
            ok(&format!("/campaign list {status}"));
        }
        refused_with_usage("/campaign list running", "/campaign list");
        refused_with_usage("/campaign list draft paused", "/campaign list");

        assert_eq!(
            ok("/campaign report 3"),
            Command::CampaignReport {
                id: 3,
                format: ReportFormat::Text
            }
        );
        assert_eq!(
            ok("/campaign report 3 CSV"),
            Command::CampaignReport {
                id: 3,
                format: ReportFormat::Csv
            }
        );
        assert_eq!(
            ok("/campaign report 3 chart"),
            Command::CampaignReport {
                id: 3,
                format: ReportFormat::Chart
            }
        );
        refused_with_usage(
            "/campaign report 3 pdf",
            "/campaign report <id> [csv|chart]",
        );
        refused_with_usage("/campaign report", "/campaign report <id> [csv|chart]");
    }

    #[test]
    fn campaign_group_refusals() {
        refused_with_usage("/campaign", "/campaign new|");
        refused_with_usage("/campaign launch 3", "/campaign new|");
    }

    // ---- triggers ----

    #[test]
    fn trigger_add_keyword_and_regex() {
        assert_eq!(
            ok("/trigger add pizza campaign 3"),
            Command::TriggerAdd {
                pattern: TriggerPattern::Keyword("pizza".into()),
                target: TriggerTarget::Campaign(3)
            }
        );
        assert_eq!(
            ok("/TRIGGER ADD /order #?\\d+ now/ DRIP 2"),
            Command::TriggerAdd {
                pattern: TriggerPattern::Regex("order #?\\d+ now".into()),
                target: TriggerTarget::Drip(2)
            }
        );
        assert_eq!(
            ok("/trigger add \"Promo\" campaign 5"),
            Command::TriggerAdd {
                pattern: TriggerPattern::Keyword("Promo".into()),
                target: TriggerTarget::Campaign(5)
            }
        );
    }

    #[test]
    fn trigger_refusals() {
        let usage = "/trigger add <keyword or /regex/> campaign <id> | drip <id>";
        refused_with_usage("/trigger add", usage);
        refused_with_usage("/trigger add pizza", usage);
        refused_with_usage("/trigger add pizza 3", usage);
        refused_with_usage("/trigger add campaign 3", usage);
        refused_with_usage("/trigger add pizza campaign", usage);
        refused_with_usage("/trigger add pizza campaign x", usage);
        refused_with_usage("/trigger add pizza list 3", usage);
        refused_with_usage("/trigger add free pizza campaign 3", usage);
        refused_with_usage("/trigger add /(unclosed/ campaign 3", usage);
        refused_with_usage("/trigger add /abc/i campaign 3", usage);
        refused_with_usage("/trigger add // campaign 3", usage);
        refused_with_usage("/trigger add !!! campaign 3", usage);
        refused_with_usage("/trigger remove", "/trigger remove <trigger id>");
        refused_with_usage("/trigger remove seven", "/trigger remove <trigger id>");
        refused_with_usage("/trigger list all", "/trigger list");
        refused_with_usage("/trigger delete 3", "/trigger add|list|remove");
        let text = refused("/trigger add /(unclosed/ campaign 3");
        assert!(
            text.starts_with("invalid regex \"/(unclosed/\": "),
            "{text}"
        );
    }

    #[test]
    fn trigger_list_and_remove() {
        assert_eq!(ok("/trigger list"), Command::TriggerList);
        assert_eq!(ok("/trigger remove 7"), Command::TriggerRemove { id: 7 });
    }

    // ---- whole-message rules ----

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
            Command::CampaignSend { id: 3 }
        );
    }
}
