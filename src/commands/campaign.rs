//! `/campaign ...`: building, previewing, sending and reporting a campaign: its parser, its
//! handler and their tests. Grammar and examples: `commands/campaign.md`.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::campaign_media::{self, MediaArg};
use super::parse::{parse_tz, shorten, split_params, Args, ParseError, MAX_TEXT, MAX_TITLE};
use super::reply::{
    campaign, check_variables, editable, resolve_audience, said, usable_mapping, Refusal, Reply,
};
use super::AudienceSpec;
use crate::channels::OutboundFile;
use crate::domain::audience::parse_audience;
use crate::domain::interactive::{Choices, MAX_BODY_CHARS, MAX_HEADER_CHARS};
use crate::domain::schedule::Repeat;
use crate::domain::template::Mapping;
use crate::domain::{Address, Lang, SkipReason};
use crate::engine::eligibility::{verdict, Verdict};
use crate::engine::files::Delivery;
use crate::engine::lifecycle::{PauseBy, RetryWhich};
use crate::engine::render::render_for;
use crate::engine::Engine;
use crate::report;
use crate::store::{Campaign, CampaignKind, CampaignStatus, Pace};

#[derive(Debug, Clone, PartialEq)]
pub enum CampaignCommand {
    New {
        title: String,
    },
    Audience {
        id: i64,
        audience: AudienceSpec,
    },
    Text {
        id: i64,
        text: String,
    },
    Variant {
        id: i64,
        text: String,
    },
    Template {
        id: i64,
        name: String,
        lang: Lang,
        /// Literal text, `{{name}}` or `{{attr.KEY}}`, in `{{1}}..{{n}}` order; `name=value`
        /// for a NAMED template.
        params: Vec<String>,
        /// `header=`: a synced template's TEXT header parameter.
        header: Option<String>,
        /// `url=`: a synced template's URL button suffix.
        url: Option<String>,
    },
    Pace {
        id: i64,
        /// Messages per second; `Some(0.0)` turns campaign pacing off (channel ceilings still hold).
        rate: Option<f64>,
        /// Random delay between messages, seconds.
        delay: Option<(f64, f64)>,
        batch: Option<u32>,
        /// Pause between batches, seconds.
        pause: Option<f64>,
    },
    Schedule {
        id: i64,
        /// Local time as typed, `YYYY-MM-DD HH:MM`.
        at: chrono::NaiveDateTime,
        /// IANA zone if given; the admin's `TZ` otherwise.
        tz: Option<chrono_tz::Tz>,
    },
    /// Turns a campaign into a recurring one: each occurrence is its own run.
    Repeat {
        id: i64,
        repeat: crate::domain::schedule::Repeat,
    },
    Preview {
        id: i64,
    },
    Test {
        id: i64,
    },
    Send {
        id: i64,
    },
    Pause {
        id: i64,
    },
    Resume {
        id: i64,
    },
    Cancel {
        id: i64,
    },
    List {
        status: Option<String>,
    },
    Show {
        id: i64,
    },
    Report {
        id: i64,
        format: ReportFormat,
    },
    /// Reply buttons or a list menu under a text campaign's message, limits already checked.
    Choices {
        id: i64,
        choices: Choices,
    },
    /// `/campaign buttons <id> none`: the text goes without buttons, menu or products again.
    NoChoices {
        id: i64,
    },
    /// The image, video or document the campaign sends.
    Media {
        id: i64,
        media: MediaArg,
    },
    /// Sends again, on the admin's word, recipients left `unknown` or `failed`.
    Retry {
        id: i64,
        which: RetryWhich,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Csv,
    Chart,
}

const CAMPAIGN_STATUSES: [&str; 7] = [
    "draft",
    "scheduled",
    "sending",
    "completed",
    "paused",
    "cancelled",
    "failed",
];

/// Builds a campaign command that takes nothing but the campaign id.
type IdOnly = fn(i64) -> CampaignCommand;

pub(super) fn parse(args: &mut Args) -> Result<CampaignCommand, ParseError> {
    let sub = args.keyword("subcommand")?;
    // The subcommands that take only an id share one path; each keeps its own usage line.
    let id_only: Option<(&'static str, IdOnly)> = match sub.as_str() {
        "preview" => Some(("campaign preview", |id| CampaignCommand::Preview { id })),
        "test" => Some(("campaign test", |id| CampaignCommand::Test { id })),
        "send" => Some(("campaign send", |id| CampaignCommand::Send { id })),
        "pause" => Some(("campaign pause", |id| CampaignCommand::Pause { id })),
        "resume" => Some(("campaign resume", |id| CampaignCommand::Resume { id })),
        "cancel" => Some(("campaign cancel", |id| CampaignCommand::Cancel { id })),
        "show" => Some(("campaign show", |id| CampaignCommand::Show { id })),
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
            let args = args.with_usage("campaign new");
            let title = args.line_text("title")?;
            let title = args.within("title", title, MAX_TITLE)?;
            Ok(CampaignCommand::New { title })
        }
        "audience" => {
            let args = args.with_usage("campaign audience");
            let id = args.id("campaign id")?;
            // Addresses pasted one per line are still one audience.
            let audience = args.rest.split_whitespace().collect::<Vec<_>>().join(" ");
            if audience.is_empty() {
                return Err(args.err("missing label expression or addresses"));
            }
            Ok(CampaignCommand::Audience { id, audience })
        }
        "text" | "variant" => {
            let variant = sub == "variant";
            let args = args.with_usage(if variant {
                "campaign variant"
            } else {
                "campaign text"
            });
            let id = args.id("campaign id")?;
            let text = args.text_within("message", MAX_TEXT)?;
            Ok(if variant {
                CampaignCommand::Variant { id, text }
            } else {
                CampaignCommand::Text { id, text }
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
            Ok(CampaignCommand::List { status })
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
            Ok(CampaignCommand::Report { id, format })
        }
        "repeat" => campaign_repeat(args.with_usage("campaign repeat")),
        "buttons" => {
            let args = args.with_usage("campaign buttons");
            let id = args.id("campaign id")?;
            let typed = args.text("button titles")?;
            if typed.trim().eq_ignore_ascii_case("none") {
                return Ok(CampaignCommand::NoChoices { id });
            }
            let choices = Choices::buttons(&typed).map_err(|reason| args.err(reason))?;
            Ok(CampaignCommand::Choices { id, choices })
        }
        "product" => {
            let args = args.with_usage("campaign product");
            let id = args.id("campaign id")?;
            let catalog = args.require("catalog id")?;
            let items = args.text("retailer ids")?;
            // The header is the campaign's title, known when the command is applied.
            let choices =
                Choices::products(&catalog, &items, "").map_err(|reason| args.err(reason))?;
            Ok(CampaignCommand::Choices { id, choices })
        }
        "menu" => {
            let args = args.with_usage("campaign menu");
            let id = args.id("campaign id")?;
            let button = args.require("button text")?;
            let rows = args.text("rows")?;
            let choices = Choices::menu(&button, &rows).map_err(|reason| args.err(reason))?;
            Ok(CampaignCommand::Choices { id, choices })
        }
        "media" => {
            let args = args.with_usage("campaign media");
            let id = args.id("campaign id")?;
            let media = match args.word()? {
                None => MediaArg::Attached,
                Some(word) if word.eq_ignore_ascii_case("none") => MediaArg::Remove,
                Some(word) => MediaArg::Link(word),
            };
            args.end()?;
            Ok(CampaignCommand::Media { id, media })
        }
        "retry" => {
            let args = args.with_usage("campaign retry");
            let id = args.id("campaign id")?;
            let which = match args.require("unknown or failed")?.to_lowercase().as_str() {
                "unknown" => RetryWhich::Unknown,
                "failed" => RetryWhich::Failed,
                other => {
                    return Err(args.err(format!(
                        "retry unknown or failed recipients, got {}",
                        shorten(other)
                    )))
                }
            };
            args.end()?;
            Ok(CampaignCommand::Retry { id, which })
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

fn campaign_template(args: &mut Args) -> Result<CampaignCommand, ParseError> {
    let id = args.id("campaign id")?;
    let name = args.require("template name")?;
    let lang = args.lang()?;
    let rest = args.rest.trim();
    args.rest = "";
    let (rest, options) = split_options(rest, &["header", "url"]).map_err(|r| args.err(r))?;
    let params = split_params(rest).map_err(|reason| args.err(reason))?;
    let mut header = None;
    let mut url = None;
    for (key, raw) in options {
        let value = match split_params(raw).map_err(|r| args.err(format!("{key}=: {r}")))? {
            values if values.len() == 1 => values.into_iter().next(),
            _ => None,
        };
        let Some(value) = value else {
            return Err(args.err(format!("{key}= takes one value (quote it if it holds a |)")));
        };
        let slot = if key == "header" {
            &mut header
        } else {
            &mut url
        };
        if slot.replace(value).is_some() {
            return Err(args.err(format!("{key}= given twice")));
        }
    }
    Ok(CampaignCommand::Template {
        id,
        name,
        lang,
        params,
        header,
        url,
    })
}

/// WhatsApp refuses an interactive message whose text is longer than 1,024 characters, so a
/// campaign with buttons or a menu keeps its texts (as typed) within that.
fn fits_interactive(id: i64, text: &str) -> Result<(), Refusal> {
    let n = text.chars().count();
    if n > MAX_BODY_CHARS {
        return Err(Refusal::Said(format!(
            "campaign {id}: a message with buttons or a menu holds at most {MAX_BODY_CHARS} \
             characters, this text has {n}"
        )));
    }
    Ok(())
}

/// `key=value` options as typed: the key, and its value.
type Options<'a> = Vec<(&'static str, &'a str)>;

/// Cuts trailing `key=value` options (a word starting with one of `keys` and `=`, the value
/// running to the next such word) off `rest`: returns the text before the first one, and each
/// option as typed.
fn split_options<'a>(
    rest: &'a str,
    keys: &[&'static str],
) -> Result<(&'a str, Options<'a>), String> {
    let mut starts: Vec<(usize, &'static str)> = Vec::new();
    let mut at_word_start = true;
    for (i, c) in rest.char_indices() {
        if at_word_start {
            let tail = &rest[i..];
            if let Some(key) = keys.iter().find(|k| {
                tail.len() > k.len()
                    && tail.as_bytes()[k.len()] == b'='
                    && tail[..k.len()].eq_ignore_ascii_case(k)
            }) {
                starts.push((i, key));
            }
        }
        at_word_start = c.is_whitespace();
    }
    let Some(&(first, _)) = starts.first() else {
        return Ok((rest, Vec::new()));
    };
    let mut options = Vec::new();
    for (n, &(start, key)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(rest.len(), |(next, _)| *next);
        let value = rest[start + key.len() + 1..end].trim();
        if value.is_empty() {
            return Err(format!("{key}= needs a value"));
        }
        options.push((key, value));
    }
    Ok((rest[..first].trim(), options))
}

/// The furthest ahead a campaign or its first run may be scheduled (about five years): later
/// is a typo, like a year 9999.
const MAX_SCHEDULE_AHEAD: chrono::Duration = chrono::Duration::days(5 * 366);

/// Pacing bounds, as `commands/campaign.md` states them: anything beyond them is a typo or an
/// attack, and would overflow the engine's time arithmetic.
const MIN_RATE: f64 = 0.01;
const MAX_RATE: f64 = 1000.0;
const MAX_DELAY_SECS: f64 = 3600.0;
const MAX_BATCH: u32 = 100_000;
const MAX_PAUSE_SECS: f64 = 86_400.0;

fn campaign_pace(args: &mut Args) -> Result<CampaignCommand, ParseError> {
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
                let n = seconds_value(value)
                    .filter(|n| *n == 0.0 || (MIN_RATE..=MAX_RATE).contains(n))
                    .ok_or_else(|| {
                        args.err(format!(
                            "rate must be 0 (off) or {MIN_RATE} to {MAX_RATE} messages per \
                             second, got {}",
                            shorten(value)
                        ))
                    })?;
                if rate.replace(n).is_some() {
                    return Err(twice());
                }
            }
            "delay" => {
                let (min, max) = parse_delay(value)
                    .filter(|(_, max)| *max <= MAX_DELAY_SECS)
                    .ok_or_else(|| {
                        args.err(format!(
                            "delay must be <min>-<max> seconds up to {MAX_DELAY_SECS}, like 1-3, \
                             got {}",
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
                    .filter(|n| (1..=MAX_BATCH).contains(n))
                    .ok_or_else(|| {
                        args.err(format!(
                            "batch must be a whole number from 1 to {MAX_BATCH}, got {}",
                            shorten(value)
                        ))
                    })?;
                if batch.replace(n).is_some() {
                    return Err(twice());
                }
            }
            "pause" => {
                let secs = seconds_value(value.strip_suffix('s').unwrap_or(value))
                    .filter(|secs| *secs <= MAX_PAUSE_SECS)
                    .ok_or_else(|| {
                        args.err(format!(
                            "pause must be 0 to {MAX_PAUSE_SECS} seconds, got {}",
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
    Ok(CampaignCommand::Pace {
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

fn campaign_schedule(args: &mut Args) -> Result<CampaignCommand, ParseError> {
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
    Ok(CampaignCommand::Schedule { id, at, tz })
}

fn campaign_repeat(args: &mut Args) -> Result<CampaignCommand, ParseError> {
    let id = args.id("campaign id")?;
    let rule = args.rest.trim();
    args.rest = "";
    if rule.is_empty() {
        return Err(args.err("missing every <interval>"));
    }
    let repeat = rule
        .parse::<Repeat>()
        .map_err(|e| args.err(e.to_string()))?;
    Ok(CampaignCommand::Repeat { id, repeat })
}

pub(super) async fn apply(engine: &Engine, admin: &str, command: CampaignCommand) -> Reply {
    let now = engine.clock.now();
    let store = &engine.store;
    match command {
        CampaignCommand::New { title } => {
            let id = store.create_campaign(&title, Some(admin), now).await?;
            Ok(format!("campaign {id} created (draft)"))
        }
        CampaignCommand::Audience { id, audience } => {
            let campaign = editable(engine, id).await?;
            // Parsed and counted once before anything is written: an audience the store cannot
            // select is refused with nothing stored.
            let expr =
                parse_audience(&audience).map_err(|e| Refusal::Said(format!("audience: {e}")))?;
            store.count_audience(&expr).await?;
            let expr = resolve_audience(engine, &audience)?;
            let canonical = expr.to_string();
            let created = store.set_audience(campaign.id, &expr, now).await?;
            let size = store.count_audience(&expr).await?;
            let new = if created > 0 {
                format!(", {created} of them new and not opted in yet")
            } else {
                String::new()
            };
            Ok(format!(
                "campaign {id} audience: {canonical} ({size} contact(s) now{new})"
            ))
        }
        CampaignCommand::Text { id, text } => {
            let campaign = editable(engine, id).await?;
            check_variables(&text)?;
            if campaign.choices.is_some() {
                fits_interactive(id, &text)?;
            }
            campaign_media::caption_fits(&campaign, &text)?;
            store.set_text(campaign.id, &text).await?;
            Ok(format!("campaign {id} text set"))
        }
        CampaignCommand::Variant { id, text } => {
            let campaign = editable(engine, id).await?;
            if campaign.text.is_none() {
                return said(format!(
                    "campaign {id} has no main text yet: /campaign text {id} <message> first"
                ));
            }
            check_variables(&text)?;
            if campaign.choices.is_some() {
                fits_interactive(id, &text)?;
            }
            campaign_media::caption_fits(&campaign, &text)?;
            let n = store.add_variant(campaign.id, &text).await?;
            Ok(format!(
                "campaign {id} now has {} variants; each contact always gets the same one",
                n + 1
            ))
        }
        CampaignCommand::Template {
            id,
            name,
            lang,
            params,
            header,
            url,
        } => {
            let campaign = editable(engine, id).await?;
            let mapping = Mapping {
                params,
                header,
                url,
            };
            let (t, tref) = usable_mapping(engine, &name, &lang, mapping).await?;
            campaign_media::still_fits(
                engine,
                &Campaign {
                    template: Some(tref.clone()),
                    choices: None,
                    ..campaign.clone()
                },
            )
            .await?;
            store.set_template(campaign.id, &tref).await?;
            // Buttons and menus go with free text only.
            store.set_choices(campaign.id, None).await?;
            let mut reply = format!(
                "campaign {id} uses template {name} ({lang}, {})",
                t.category
            );
            if !t.status.is_sendable() {
                reply.push_str(&format!(
                    "; it is {} at Meta, and the campaign can be sent once it is APPROVED",
                    t.status
                ));
            } else if let Some(header) = t
                .spec
                .as_ref()
                .and_then(|s| s.header.as_ref())
                .filter(|h| h.kind.media().is_some())
            {
                reply.push_str(&format!(
                    "; its {} header needs the campaign's media before it can be sent",
                    header.kind.as_str()
                ));
            }
            Ok(reply)
        }
        CampaignCommand::Pace {
            id,
            rate,
            delay,
            batch,
            pause,
        } => {
            let campaign = campaign(engine, id).await?;
            if campaign.status.is_final() {
                return said(format!("campaign {id} is {}", campaign.status));
            }
            let mut pace: Pace = campaign.pace;
            if let Some(r) = rate {
                pace.rate = r;
            }
            if let Some((lo, hi)) = delay {
                pace.delay_min_ms = (lo * 1000.0) as i64;
                pace.delay_max_ms = (hi * 1000.0) as i64;
            }
            if let Some(b) = batch {
                pace.batch_size = i64::from(b);
                if pace.batch_pause_ms == 0 && pause.is_none() {
                    pace.batch_pause_ms = 60_000;
                }
            }
            if let Some(p) = pause {
                pace.batch_pause_ms = (p * 1000.0) as i64;
            }
            store.set_pace(campaign.id, &pace).await?;
            Ok(format!("campaign {id} pace: {}", describe_pace(&pace)))
        }
        CampaignCommand::Schedule { id, at, tz } => {
            let campaign = campaign(engine, id).await?;
            Engine::check_ready(&campaign)?;
            let tz = tz.unwrap_or(engine.config.admin_tz);
            let when = at
                .and_local_timezone(tz)
                .earliest()
                .ok_or_else(|| Refusal::Said(format!("{at} does not exist in {tz}")))?
                .with_timezone(&Utc);
            if when <= now {
                return said(format!(
                    "{} {tz} is in the past; to send now use /campaign send {id}",
                    at.format("%Y-%m-%d %H:%M")
                ));
            }
            if when > now + MAX_SCHEDULE_AHEAD {
                return said(format!(
                    "{} is more than {} days ahead; schedule closer to the day",
                    at.format("%Y-%m-%d %H:%M"),
                    MAX_SCHEDULE_AHEAD.num_days()
                ));
            }
            if !store.schedule(id, when).await? {
                return said(format!(
                    "campaign {id} is {}; only a draft or scheduled campaign can be scheduled",
                    campaign.status
                ));
            }
            Ok(format!(
                "campaign {id} scheduled for {} {tz} ({} UTC)",
                at.format("%Y-%m-%d %H:%M"),
                when.format("%Y-%m-%d %H:%M")
            ))
        }
        CampaignCommand::Repeat { id, repeat } => {
            let c = campaign(engine, id).await?;
            Engine::check_ready(&c)?;
            if let Some(parent) = c.parent_id {
                return said(format!(
                    "campaign {id} is run #{} of campaign {parent}; repeat that one",
                    c.run_no
                ));
            }
            if c.kind == CampaignKind::Triggered {
                return said(format!("campaign {id} is sent by its trigger"));
            }
            if !matches!(c.status, CampaignStatus::Draft | CampaignStatus::Scheduled) {
                return said(format!(
                    "campaign {id} is {}; only a draft or scheduled campaign can repeat",
                    c.status
                ));
            }
            // An explicit schedule without `at` is where the series starts.
            let first = match c.scheduled_at {
                Some(t) if t > now && repeat.at.is_none() => Some(t),
                _ => repeat.first(now, engine.config.admin_tz),
            };
            let until_passed = |first: DateTime<Utc>| {
                repeat.until.is_some_and(|until| {
                    first.with_timezone(&engine.config.admin_tz).date_naive() > until
                })
            };
            let Some(first) = first.filter(|first| !until_passed(*first)) else {
                return said("the until day is before the first run; nothing would be sent");
            };
            if first > now + MAX_SCHEDULE_AHEAD {
                return said(format!(
                    "the first run would be more than {} days ahead",
                    MAX_SCHEDULE_AHEAD.num_days()
                ));
            }
            if !store.set_repeat(id, &repeat.to_string(), first).await? {
                return said(format!("campaign {id} changed meanwhile; try again"));
            }
            Ok(format!(
                "campaign {id} repeats {repeat}; first run {}",
                engine.local_time(first)
            ))
        }
        CampaignCommand::Preview { id } => preview(engine, id, now).await,
        CampaignCommand::Test { id } => test_send(engine, admin, id).await,
        CampaignCommand::Send { id } => {
            let n = engine.send_now(id).await?;
            Ok(format!("campaign {id} sending to {n} recipient(s)"))
        }
        CampaignCommand::Pause { id } => {
            engine.pause(id, PauseBy::Admin).await?;
            let r = store.report(id).await?;
            Ok(format!(
                "campaign {id} paused: {} sent, {} waiting",
                r.sent, r.queued
            ))
        }
        CampaignCommand::Resume { id } => {
            let resumed = engine.resume(id).await?;
            let r = store.report(id).await?;
            Ok(format!(
                "campaign {id} resumed ({}): {} recipient(s) left",
                resumed.status, r.queued
            ))
        }
        CampaignCommand::Cancel { id } => {
            let dropped = engine.cancel(id).await?;
            Ok(format!(
                "campaign {id} cancelled; {dropped} recipient(s) will not be sent"
            ))
        }
        CampaignCommand::List { status } => {
            let status = match status {
                Some(s) => Some(
                    CampaignStatus::from_db(&s)
                        .ok_or_else(|| Refusal::Said(format!("unknown status {s}")))?,
                ),
                None => None,
            };
            let campaigns = store.campaigns(status).await?;
            if campaigns.is_empty() {
                return Ok("no campaigns".into());
            }
            let mut out = Vec::new();
            for c in campaigns {
                let r = store.report(c.id).await?;
                out.push(format!(
                    "{} [{}] {} ({} sent / {} targeted)",
                    c.id, c.status, c.title, r.sent, r.targeted
                ));
            }
            Ok(out.join("\n"))
        }
        CampaignCommand::Show { id } => {
            let c = campaign(engine, id).await?;
            let mut s = String::new();
            let _ = writeln!(s, "campaign: {}", c.id);
            let _ = writeln!(s, "title: {}", c.title);
            let _ = writeln!(s, "kind: {}", c.kind.as_str());
            let _ = writeln!(s, "status: {}", c.status);
            if let Some(r) = &c.status_reason {
                let _ = writeln!(s, "reason: {r}");
            }
            let _ = writeln!(s, "audience: {}", c.audience.as_deref().unwrap_or("-"));
            if let Some(t) = &c.text {
                let _ = writeln!(s, "text: {t}");
            }
            for (i, v) in c.variants.iter().enumerate() {
                let _ = writeln!(s, "variant {}: {v}", i + 1);
            }
            if let Some(choices) = &c.choices {
                let _ = writeln!(s, "{}", choices.describe());
            }
            if let Some(media) = &c.media {
                let _ = writeln!(s, "media: {}", media.describe());
            }
            if let Some(t) = &c.template {
                let _ = writeln!(
                    s,
                    "template: {} {} [{}]",
                    t.name,
                    t.lang,
                    t.params.join(" | ")
                );
            }
            let _ = writeln!(s, "pace: {}", describe_pace(&c.pace));
            if let Some(rule) = &c.repeat_rule {
                let _ = writeln!(s, "repeat: {rule}");
                for run in store.runs(id).await? {
                    let _ = writeln!(
                        s,
                        "run #{}: campaign {} [{}]",
                        run.run_no, run.id, run.status
                    );
                }
            }
            if let Some(parent) = c.parent_id {
                let _ = writeln!(s, "run: #{} of campaign {parent}", c.run_no);
            }
            for (event, action) in store.actions(id).await? {
                let _ = writeln!(s, "on {}: {}", event.key(), action.key());
            }
            if let Some(at) = c.scheduled_at {
                let _ = writeln!(s, "scheduled: {}", engine.local_time(at));
            }
            let _ = write!(s, "created: {}", engine.local_time(c.created_at));
            Ok(s)
        }
        CampaignCommand::Choices { id, choices } => {
            let campaign = editable(engine, id).await?;
            if campaign.template.is_some() {
                return said(format!(
                    "campaign {id} sends a template: buttons and menus go under a text set with \
                     /campaign text {id} <message>"
                ));
            }
            for text in campaign.texts() {
                fits_interactive(id, text)?;
            }
            let choices = match choices {
                Choices::Products { catalog, items, .. } => Choices::Products {
                    catalog,
                    items,
                    header: campaign.title.chars().take(MAX_HEADER_CHARS).collect(),
                },
                other => other,
            };
            campaign_media::still_fits(
                engine,
                &Campaign {
                    choices: Some(choices.clone()),
                    ..campaign.clone()
                },
            )
            .await?;
            store.set_choices(campaign.id, Some(&choices)).await?;
            let only = if choices.whatsapp_only() {
                "; WhatsApp only: Telegram contacts are skipped as channel_unsupported"
            } else {
                ""
            };
            Ok(format!(
                "campaign {id} {}; shown inside the 24-hour window only, like all text{only}",
                choices.describe()
            ))
        }
        CampaignCommand::NoChoices { id } => {
            let campaign = editable(engine, id).await?;
            if campaign.choices.is_none() {
                return Ok(format!("campaign {id} has no buttons, menu or products"));
            }
            store.set_choices(campaign.id, None).await?;
            Ok(format!(
                "campaign {id} sends its text without buttons, menu or products now"
            ))
        }
        CampaignCommand::Media { id, media } => {
            campaign_media::apply(engine, admin, id, media, now).await
        }
        CampaignCommand::Retry { id, which } => {
            let queued = engine.retry(id, which).await?;
            let what = match which {
                RetryWhich::Unknown => "unknown",
                RetryWhich::Failed => "failed",
            };
            Ok(if queued == 0 {
                format!("campaign {id}: no {what} recipient to send again")
            } else {
                format!("campaign {id}: {queued} {what} recipient(s) queued to send again")
            })
        }
        CampaignCommand::Report { id, format } => {
            let c = campaign(engine, id).await?;
            let r = store.report(id).await?;
            match format {
                ReportFormat::Text => Ok(report::text(engine, &c, &r)),
                ReportFormat::Csv => {
                    let rows = store.recipient_rows(id).await?;
                    let file = report::csv_file(&c, &rows)
                        .map_err(|e| Refusal::Said(format!("could not write the CSV: {e}")))?;
                    hand_over(engine, admin, &file, &format!("report of campaign {id}")).await
                }
                ReportFormat::Chart => {
                    let times = store.send_times(id).await?;
                    let file = report::chart_file(&c, &r, &times)
                        .map_err(|e| Refusal::Said(format!("could not draw the chart: {e}")))?;
                    hand_over(engine, admin, &file, &format!("chart of campaign {id}")).await
                }
            }
        }
    }
}

/// Sends an export to the admin who asked (the console, which cannot show files, has it
/// written under `REPORTS_DIR`), and says so.
async fn hand_over(engine: &Engine, admin: &str, file: &OutboundFile, what: &str) -> Reply {
    match engine.deliver_file(admin, file).await {
        Ok(Delivery::Sent) => Ok(format!("{what} sent as {}", file.name)),
        Ok(Delivery::Saved(path)) => Ok(format!("{what} written to {path}")),
        Err(e) => said(format!("{what} could not be sent: {e}")),
    }
}

fn describe_pace(p: &Pace) -> String {
    let mut parts = vec![if p.rate > 0.0 {
        format!("rate {} msg/s", p.rate)
    } else {
        "rate off (channel ceilings only)".to_string()
    }];
    if p.delay_max_ms > 0 {
        parts.push(format!(
            "delay {}-{} s",
            p.delay_min_ms as f64 / 1000.0,
            p.delay_max_ms as f64 / 1000.0
        ));
    }
    if p.batch_size > 0 {
        parts.push(format!(
            "batches of {} with {} s pauses",
            p.batch_size,
            p.batch_pause_ms as f64 / 1000.0
        ));
    }
    parts.join(", ")
}

async fn preview(engine: &Engine, id: i64, now: DateTime<Utc>) -> Reply {
    let c = campaign(engine, id).await?;
    Engine::check_ready(&c)?;
    let expr = parse_audience(c.audience.as_deref().unwrap_or_default())
        .map_err(|e| Refusal::Said(format!("audience: {e}")))?;
    let contacts = engine.store.audience_contacts(&expr).await?;
    let template = match &c.template {
        Some(t) => Some(
            engine
                .store
                .template(&t.name, &t.lang)
                .await?
                .ok_or_else(|| {
                    Refusal::Said(format!("template {} ({}) does not exist", t.name, t.lang))
                })?,
        ),
        None => None,
    };
    let media = engine.campaign_media(&c).await?;
    let media_problem = media.as_ref().and_then(|m| m.as_ref().err().cloned());
    let media = media.and_then(Result::ok);
    let mut eligible = Vec::new();
    let mut skipped: std::collections::BTreeMap<SkipReason, usize> = Default::default();
    let mut missing: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut outside = 0usize;
    for contact in &contacts {
        let channel = engine.channels().for_address(&contact.address);
        match verdict(
            &c,
            template.as_ref(),
            contact,
            media.as_ref(),
            channel.map(|ch| ch.kind()),
            now,
        ) {
            Verdict::Send {
                rendered,
                outside_window,
            } => {
                outside += usize::from(outside_window);
                eligible.push((contact, rendered));
            }
            Verdict::Skip {
                reason,
                missing: vars,
            } => {
                for v in vars {
                    missing
                        .entry(v)
                        .or_default()
                        .push(contact.address.to_string());
                }
                *skipped.entry(reason).or_default() += 1;
            }
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "campaign {} preview: {}", c.id, c.title);
    let _ = writeln!(
        s,
        "audience: {} contact(s) ({})",
        contacts.len(),
        c.audience.as_deref().unwrap_or("")
    );
    if let Some(m) = &c.media {
        let _ = writeln!(s, "media: {}", m.describe());
    }
    if let Some(why) = &media_problem {
        let _ = writeln!(s, "cannot send: {why}");
    }
    let _ = writeln!(s, "eligible: {}", eligible.len());
    for reason in SkipReason::previewed() {
        let _ = writeln!(
            s,
            "{reason}: {}",
            skipped.get(&reason).copied().unwrap_or(0)
        );
    }
    for (var, who) in &missing {
        let shown: Vec<&str> = who.iter().take(5).map(String::as_str).collect();
        let more = if who.len() > 5 {
            format!(" and {} more", who.len() - 5)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "missing {{{{{var}}}}} for {} contact(s): {}{more}",
            who.len(),
            shown.join(", ")
        );
    }
    for (contact, rendered) in eligible.iter().take(3) {
        let _ = writeln!(
            s,
            "sample {}: {}",
            contact.address,
            rendered.body.rendered()
        );
    }
    if let (Some(choices), None) = (&c.choices, &c.template) {
        let _ = writeln!(s, "under the text: {}", choices.describe());
    }
    let category = template
        .as_ref()
        .map(|t| t.category.as_str())
        .unwrap_or("free");
    let price = engine.config.price(category);
    let _ = writeln!(
        s,
        "estimated cost: {:.2} {} ({} x {category} at {price})",
        price * eligible.len() as f64,
        engine.config.currency,
        eligible.len()
    );
    let _ = writeln!(s, "{}", engine.tier_fit(outside, now).await?);
    if let Some(why) = template
        .as_ref()
        .and_then(|t| engine.template_problem(&c, t))
    {
        let _ = writeln!(s, "cannot send yet: {why}");
    }
    if let Some(until) = engine.restricted_until(now).await? {
        let _ = writeln!(
            s,
            "held: WhatsApp restricts business-initiated messages until {}",
            engine.local_time(until)
        );
    }
    let rate = c.pace.rate;
    if rate > 0.0 && !eligible.is_empty() {
        let secs = (eligible.len() as f64 / rate).ceil() as i64;
        let _ = writeln!(
            s,
            "sending time at {rate} msg/s: about {}",
            report::human_duration(secs)
        );
    }
    Ok(s.trim_end().to_string())
}

async fn test_send(engine: &Engine, admin: &str, id: i64) -> Reply {
    let c = campaign(engine, id).await?;
    let template = match &c.template {
        Some(t) => engine.store.template(&t.name, &t.lang).await?,
        None => None,
    };
    // Fill variables from the admin's own contact if there is one, else from the first
    // audience contact, so the test shows a realistic message.
    let mut sample = match Address::parse(admin) {
        Ok(address) => engine.store.find_contact(&address).await?,
        Err(_) => None,
    };
    if sample.is_none() {
        if let Ok(expr) = parse_audience(c.audience.as_deref().unwrap_or_default()) {
            sample = engine
                .store
                .audience_contacts(&expr)
                .await?
                .into_iter()
                .next();
        }
    }
    let Some(sample) = sample else {
        return said(format!(
            "campaign {id} has no contact to fill its variables from; set an audience first"
        ));
    };
    let media = match engine.campaign_media(&c).await? {
        Some(Err(why)) => return said(format!("campaign {id} cannot send: {why}")),
        Some(Ok(media)) => Some(media),
        None => None,
    };
    let rendered = render_for(&c, template.as_ref(), &sample, media.as_ref()).map_err(|e| {
        Refusal::Said(format!(
            "campaign {id} cannot render for {}: {e}",
            sample.address
        ))
    })?;
    let msg = crate::channels::Outbound {
        to: admin.to_string(),
        audience: crate::channels::Audience::Customer,
        body: rendered.body,
        callback: None,
    };
    let Some(channel) = engine.channels().for_address(admin) else {
        return said("no channel reaches you");
    };
    channel
        .send(&msg)
        .await
        .map_err(|e| Refusal::Said(format!("test send failed: {e}")))?;
    Ok(format!(
        "test of campaign {id} sent to you (variables from {})",
        sample.address
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::parse::test_support::*;

    use chrono::NaiveDate;

    group_ok!(Campaign, CampaignCommand);

    #[test]
    fn campaign_new_takes_the_rest_of_the_line() {
        assert_eq!(
            ok("/campaign new Spring sale 20% off"),
            CampaignCommand::New {
                title: "Spring sale 20% off".into()
            }
        );
        assert_eq!(
            ok("/campaign new \"Black Friday\""),
            CampaignCommand::New {
                title: "Black Friday".into()
            }
        );
        assert_eq!(
            ok("/campaign new \"Big\" sale"),
            CampaignCommand::New {
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
            CampaignCommand::Audience {
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
            CampaignCommand::Text {
                id: 3,
                text: "Hi {{name}},\n\n  20% off \"everything\"!".into()
            }
        );
        assert_eq!(
            ok("/campaign text 3\nHi {{name}}"),
            CampaignCommand::Text {
                id: 3,
                text: "Hi {{name}}".into()
            }
        );
        assert_eq!(
            ok("/campaign variant 3 \"Hey {{name}}\""),
            CampaignCommand::Variant {
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
            CampaignCommand::Template {
                id: 3,
                name: "spring_sale".into(),
                lang: "en".into(),
                params: vec![
                    "{{name}}".into(),
                    "Friday 9am".into(),
                    "{{attr.city}}".into()
                ],
                header: None,
                url: None,
            }
        );
        assert_eq!(
            ok("/campaign template 3 welcome pt_BR"),
            CampaignCommand::Template {
                id: 3,
                name: "welcome".into(),
                lang: "pt_BR".into(),
                params: vec![],
                header: None,
                url: None,
            }
        );
        assert_eq!(
            ok(
                "/campaign template 4 order_update en first_name={{name}}|order={{attr.order}} \
                header=Order {{attr.order}} URL=\"t/{{attr.token}}\""
            ),
            CampaignCommand::Template {
                id: 4,
                name: "order_update".into(),
                lang: "en".into(),
                params: vec!["first_name={{name}}".into(), "order={{attr.order}}".into()],
                header: Some("Order {{attr.order}}".into()),
                url: Some("t/{{attr.token}}".into()),
            }
        );
        let usage = "/campaign template <id> <name> <lang>";
        refused_with_usage("/campaign template 4 t en a header=", usage);
        refused_with_usage("/campaign template 4 t en a url=x url=y", usage);
        refused_with_usage("/campaign template 4 t en a header=x|y", usage);
        let CampaignCommand::Template { params, .. } =
            ok("/campaign template 3 promo en \"A | B\"|C")
        else {
            panic!("not a campaign template");
        };
        assert_eq!(params, vec!["A | B".to_string(), "C".to_string()]);
        let CampaignCommand::Template { params, .. } =
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
            CampaignCommand::Pace {
                id: 3,
                rate: Some(5.0),
                delay: Some((1.0, 3.0)),
                batch: Some(100),
                pause: Some(60.0)
            }
        );
        assert_eq!(
            ok("/campaign pace 4 RATE=0"),
            CampaignCommand::Pace {
                id: 4,
                rate: Some(0.0),
                delay: None,
                batch: None,
                pause: None
            }
        );
        assert_eq!(
            ok("/campaign pace 4 delay=0.5-2s pause=30s"),
            CampaignCommand::Pace {
                id: 4,
                rate: None,
                delay: Some((0.5, 2.0)),
                batch: None,
                pause: Some(30.0)
            }
        );
        let CampaignCommand::Pace { delay, .. } = ok("/campaign pace 4 delay=2") else {
            panic!("not a pace");
        };
        assert_eq!(delay, Some((2.0, 2.0)));
    }

    #[test]
    fn texts_are_held_to_the_channels_limits_when_typed() {
        ok(&format!("/campaign new {}", "t".repeat(200)));
        let text = refused_with_usage(
            &format!("/campaign new {}", "t".repeat(1_000_000)),
            "/campaign new <title>",
        );
        assert!(text.contains("at most 200"), "{text}");
        ok(&format!("/campaign text 3 {}", "é".repeat(4096)));
        refused_with_usage(
            &format!("/campaign text 3 {}", "x".repeat(4097)),
            "/campaign text",
        );
        refused_with_usage(
            &format!("/campaign variant 3 {}", "x".repeat(4097)),
            "/campaign variant",
        );
        ok(&format!(
            "/campaign template 3 promo en {}",
            "p".repeat(1024)
        ));
        refused_with_usage(
            &format!("/campaign template 3 promo en a|{}", "p".repeat(1025)),
            "/campaign template",
        );
        refused_with_usage(
            &format!("/campaign template 3 promo en {}", ["p"; 101].join("|")),
            "/campaign template",
        );
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
        // Absurd values that would overflow the engine's clock arithmetic.
        refused_with_usage("/campaign pace 3 pause=1e300", usage);
        refused_with_usage("/campaign pace 3 pause=86401", usage);
        refused_with_usage("/campaign pace 3 rate=1e-300", usage);
        refused_with_usage("/campaign pace 3 rate=0.001", usage);
        refused_with_usage("/campaign pace 3 rate=1001", usage);
        refused_with_usage("/campaign pace 3 delay=1-1e300", usage);
        refused_with_usage("/campaign pace 3 delay=0-3601", usage);
        refused_with_usage("/campaign pace 3 batch=100001", usage);
        refused_with_usage("/campaign pace 3 batch=99999999999", usage);
        // The bounds themselves are accepted.
        for line in [
            "/campaign pace 3 rate=0.01 delay=0-3600 batch=100000 pause=86400",
            "/campaign pace 3 rate=1000",
        ] {
            ok(line);
        }
    }

    #[test]
    fn campaign_schedule_with_and_without_zone() {
        let at = NaiveDate::from_ymd_opt(2027, 6, 1)
            .and_then(|d| d.and_hms_opt(9, 0, 0))
            .expect("valid date");
        assert_eq!(
            ok("/campaign schedule 3 2027-06-01 09:00"),
            CampaignCommand::Schedule {
                id: 3,
                at,
                tz: None
            }
        );
        assert_eq!(
            ok("/campaign schedule 3 2027-06-01 09:00 Europe/Lisbon"),
            CampaignCommand::Schedule {
                id: 3,
                at,
                tz: Some(chrono_tz::Europe::Lisbon)
            }
        );
        assert_eq!(
            ok("/campaign schedule 3 2027-06-01 09:00 europe/lisbon"),
            CampaignCommand::Schedule {
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
        let cases: [(&str, CampaignCommand); 7] = [
            ("preview", CampaignCommand::Preview { id: 3 }),
            ("test", CampaignCommand::Test { id: 3 }),
            ("send", CampaignCommand::Send { id: 3 }),
            ("pause", CampaignCommand::Pause { id: 3 }),
            ("resume", CampaignCommand::Resume { id: 3 }),
            ("cancel", CampaignCommand::Cancel { id: 3 }),
            ("show", CampaignCommand::Show { id: 3 }),
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
        assert_eq!(ok("/campaign list"), CampaignCommand::List { status: None });
        assert_eq!(
            ok("/campaign list Sending"),
            CampaignCommand::List {
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
            CampaignCommand::Report {
                id: 3,
                format: ReportFormat::Text
            }
        );
        assert_eq!(
            ok("/campaign report 3 CSV"),
            CampaignCommand::Report {
                id: 3,
                format: ReportFormat::Csv
            }
        );
        assert_eq!(
            ok("/campaign report 3 chart"),
            CampaignCommand::Report {
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
}
