//! `/drip ...`: drip sequences: its parser, its
//! handler and their tests. Grammar and examples: `commands/drip.md`.

use std::fmt::Write as _;

use super::parse::{shorten, split_params, Args, ParseError, MAX_TEXT, MAX_TITLE};
use super::reply::{
    campaign, check_variables, resolve_audience, said, usable_mapping, Refusal, Reply,
};
use super::AudienceSpec;
use crate::domain::template::Mapping;
use crate::domain::Lang;
use crate::engine::Engine;
use crate::report;
use crate::store::{CampaignKind, StepMessage};

#[derive(Debug, Clone, PartialEq)]
pub enum DripCommand {
    New {
        title: String,
    },
    /// Appends a step: sent `delay_ms` after the previous step (after enrolment for the first).
    Step {
        id: i64,
        delay_ms: i64,
        content: StepContent,
    },
    Enroll {
        id: i64,
        audience: AudienceSpec,
    },
    StopOnReply {
        id: i64,
        on: bool,
    },
    Show {
        id: i64,
    },
}

/// What one drip step sends.
#[derive(Debug, Clone, PartialEq)]
pub enum StepContent {
    Text(String),
    Template {
        name: String,
        lang: Lang,
        params: Vec<String>,
    },
}

pub(super) fn parse(args: &mut Args) -> Result<DripCommand, ParseError> {
    let sub = args.keyword("subcommand")?;
    match sub.as_str() {
        "new" => {
            let args = args.with_usage("drip new");
            let title = args.text_within("title", MAX_TITLE)?;
            if title.contains('\n') {
                return Err(args.err("the title must be one line"));
            }
            Ok(DripCommand::New { title })
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
            Ok(DripCommand::Enroll { id, audience })
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
            Ok(DripCommand::StopOnReply { id, on })
        }
        "show" => {
            let args = args.with_usage("drip show");
            let id = args.id("drip id")?;
            args.end()?;
            Ok(DripCommand::Show { id })
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

/// `<delay> text <message>` or `<delay> template <name> <lang> [params]`.
fn drip_step(args: &mut Args) -> Result<DripCommand, ParseError> {
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
        "text" => StepContent::Text(args.text_within("message", MAX_TEXT)?),
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
    Ok(DripCommand::Step {
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

pub(super) async fn apply(engine: &Engine, admin: &str, command: DripCommand) -> Reply {
    let now = engine.clock.now();
    let store = &engine.store;
    match command {
        DripCommand::New { title } => {
            let id = store
                .create_campaign_of(CampaignKind::Drip, &title, Some(admin), now)
                .await?;
            Ok(format!(
                "drip {id} created: add steps with /drip step {id} <delay> text <message>"
            ))
        }
        DripCommand::Step {
            id,
            delay_ms,
            content,
        } => {
            let d = drip(engine, id).await?;
            if d.status.is_final() {
                return said(format!("drip {id} is {}", d.status));
            }
            // A template step is checked like `/campaign template` (a synced NAMED template
            // takes `name=value` pairs), before anything is stored.
            let (described, mapped) = match &content {
                StepContent::Text(text) => {
                    check_variables(text)?;
                    ("text".to_string(), None)
                }
                StepContent::Template { name, lang, params } => {
                    let mapping = Mapping {
                        params: params.clone(),
                        ..Mapping::default()
                    };
                    let (t, tref) = usable_mapping(engine, name, lang, mapping).await?;
                    (
                        format!("template {} ({}, {})", t.name, t.lang, t.category),
                        Some(tref),
                    )
                }
            };
            let step_no = engine.drip_steps(id).await?.len() as i64 + 1;
            let message = match (&content, &mapped) {
                (_, Some(tref)) => StepMessage::Template(tref),
                (StepContent::Text(text), None) => StepMessage::Text(text),
                (StepContent::Template { name, lang, .. }, None) => {
                    return said(format!("no template {name} ({lang})"));
                }
            };
            store
                .add_drip_step(&d, step_no, delay_ms, message, now)
                .await?;
            let after = if step_no == 1 {
                "enrolment"
            } else {
                "the previous step"
            };
            Ok(format!(
                "drip {id} step {step_no}: {described}, {} after {after}",
                report::human_duration(delay_ms / 1000)
            ))
        }
        DripCommand::Enroll { id, audience } => {
            let d = drip(engine, id).await?;
            if d.status.is_final() {
                return said(format!("drip {id} is {}", d.status));
            }
            let steps = engine.drip_steps(id).await?;
            let Some(first) = steps.first() else {
                return said(format!(
                    "drip {id} has no steps yet: /drip step {id} 0m text <message>"
                ));
            };
            let expr = resolve_audience(engine, &audience)?;
            let due = now + chrono::Duration::milliseconds(first.step_delay_ms);
            let enrolled = store.enroll_audience(first.id, &expr, due, now).await?;
            let selected = store.count_audience(&expr).await?;
            engine.make_live(&d).await?;
            Ok(format!(
                "{enrolled} contact(s) enrolled in drip {id} ({} were already)",
                selected - enrolled as i64
            ))
        }
        DripCommand::StopOnReply { id, on } => {
            drip(engine, id).await?;
            store.set_stop_on_reply(id, on).await?;
            Ok(if on {
                format!("drip {id}: a contact who writes in gets no further steps")
            } else {
                format!("drip {id}: replies no longer stop the sequence")
            })
        }
        DripCommand::Show { id } => {
            let d = drip(engine, id).await?;
            let mut s = String::new();
            let _ = writeln!(s, "drip: {id}");
            let _ = writeln!(s, "title: {}", d.title);
            let _ = writeln!(s, "status: {}", d.status);
            let _ = writeln!(
                s,
                "stop_on_reply: {}",
                if d.stop_on_reply { "on" } else { "off" }
            );
            for step in engine.drip_steps(id).await? {
                let what = match (&step.text, &step.template) {
                    (_, Some(t)) => format!("template {} {}", t.name, t.lang),
                    (Some(text), None) => format!("text {text}"),
                    (None, None) => "-".into(),
                };
                let r = store.report(step.id).await?;
                let _ = writeln!(
                    s,
                    "step {} after {}: {what} ({} sent, {} waiting)",
                    step.run_no,
                    report::human_duration(step.step_delay_ms / 1000),
                    r.sent,
                    r.queued
                );
            }
            Ok(s.trim_end().to_string())
        }
    }
}

/// A drip, or a one-line refusal.
pub(super) async fn drip(engine: &Engine, id: i64) -> Result<crate::store::Campaign, Refusal> {
    let c = campaign(engine, id).await?;
    if c.kind != CampaignKind::Drip {
        return said(format!("{id} is a campaign, not a drip; see /drip new"));
    }
    Ok(c)
}
