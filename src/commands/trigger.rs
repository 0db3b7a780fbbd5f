//! `/trigger add|list|remove`: keyword-triggered campaigns and drips: its parser, its
//! handler and their tests. Grammar and examples: `commands/trigger.md`.

use super::parse::{shorten, Args, ParseError};
use super::reply::{campaign, said, Reply};
use crate::domain::trigger::{compile_regex, PatternError, MAX_PATTERN_LEN};
use crate::engine::Engine;
use crate::store::{CampaignKind, CampaignStatus};

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerCommand {
    Add {
        pattern: TriggerPattern,
        target: TriggerTarget,
    },
    List,
    Remove {
        id: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerPattern {
    /// A whole word anywhere in the text, case-insensitive.
    Keyword(String),
    /// The source between the slashes of `/regex/` (already checked to compile).
    Regex(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerTarget {
    Campaign(i64),
    Drip(i64),
}

pub(super) fn parse(args: &mut Args) -> Result<TriggerCommand, ParseError> {
    let sub = args.keyword("subcommand")?;
    match sub.as_str() {
        "add" => trigger_add(args.with_usage("trigger add")),
        "list" => {
            args.with_usage("trigger list").end()?;
            Ok(TriggerCommand::List)
        }
        "remove" => {
            let args = args.with_usage("trigger remove");
            let id = args.id("trigger id")?;
            args.end()?;
            Ok(TriggerCommand::Remove { id })
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

/// Read from the right: a regex may contain spaces, the target is always the last two words.
fn trigger_add(args: &mut Args) -> Result<TriggerCommand, ParseError> {
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
    Ok(TriggerCommand::Add { pattern, target })
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
        return match compile_regex(source) {
            Ok(_) => Ok(TriggerPattern::Regex(source.to_string())),
            Err(PatternError::TooLong) => Err(format!(
                "the regex is longer than {MAX_PATTERN_LEN} characters"
            )),
            Err(PatternError::Regex(regex::Error::CompiledTooBig(_))) => Err(format!(
                "the regex {} is too large to match cheaply: use fewer or smaller repetitions",
                shorten(&format!("/{source}/"))
            )),
            Err(PatternError::Regex(e)) => {
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
    let keyword = match super::parse::next_token(pattern) {
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

pub(super) async fn apply(engine: &Engine, _admin: &str, command: TriggerCommand) -> Reply {
    let now = engine.clock.now();
    let store = &engine.store;
    match command {
        TriggerCommand::Add {
            pattern,
            target: TriggerTarget::Drip(id),
        } => {
            let d = super::drip::drip(engine, id).await?;
            if d.status.is_final() {
                return said(format!("drip {id} is {}", d.status));
            }
            if engine.drip_steps(id).await?.is_empty() {
                return said(format!(
                    "drip {id} has no steps yet: /drip step {id} 0m text <message>"
                ));
            }
            let (text, is_regex) = match &pattern {
                TriggerPattern::Keyword(k) => (k.clone(), false),
                TriggerPattern::Regex(r) => (r.clone(), true),
            };
            let trigger = store.add_trigger(&text, is_regex, id, now).await?;
            let shown = if is_regex { format!("/{text}/") } else { text };
            Ok(format!(
                "trigger {trigger} added: {shown} enrolls the contact in drip {id} (once per contact)"
            ))
        }
        TriggerCommand::Add {
            pattern,
            target: TriggerTarget::Campaign(id),
        } => {
            let c = campaign(engine, id).await?;
            if c.status.is_final() {
                return said(format!("campaign {id} is {}", c.status));
            }
            if c.text.is_none() && c.template.is_none() {
                return said(format!(
                    "campaign {id} has no message yet: /campaign text {id} <message> first"
                ));
            }
            if c.kind == CampaignKind::OneTime && !matches!(c.status, CampaignStatus::Draft) {
                return said(format!(
                    "campaign {id} is a one-time campaign already {}; create a new one for the trigger",
                    c.status
                ));
            }
            let (text, is_regex) = match &pattern {
                TriggerPattern::Keyword(k) => (k.clone(), false),
                TriggerPattern::Regex(r) => (r.clone(), true),
            };
            // A triggered campaign is live from now on: it sends whenever its trigger fires.
            let trigger = store.add_campaign_trigger(&text, is_regex, id, now).await?;
            let shown = if is_regex { format!("/{text}/") } else { text };
            Ok(format!(
                "trigger {trigger} added: {shown} sends campaign {id} (once per contact)"
            ))
        }
        TriggerCommand::List => {
            let triggers = store.triggers().await?;
            if triggers.is_empty() {
                return Ok("no triggers".into());
            }
            Ok(triggers
                .iter()
                .map(|t| {
                    let shown = if t.is_regex {
                        format!("/{}/", t.pattern)
                    } else {
                        t.pattern.clone()
                    };
                    format!("{} {} -> campaign {}", t.id, shown, t.campaign_id)
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        TriggerCommand::Remove { id } => {
            if store.remove_trigger(id).await? {
                Ok(format!("trigger {id} removed"))
            } else {
                said(format!("no trigger {id}; see /trigger list"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::parse::test_support::*;

    group_ok!(Trigger, TriggerCommand);

    #[test]
    fn trigger_add_keyword_and_regex() {
        assert_eq!(
            ok("/trigger add pizza campaign 3"),
            TriggerCommand::Add {
                pattern: TriggerPattern::Keyword("pizza".into()),
                target: TriggerTarget::Campaign(3)
            }
        );
        assert_eq!(
            ok("/TRIGGER ADD /order #?\\d+ now/ DRIP 2"),
            TriggerCommand::Add {
                pattern: TriggerPattern::Regex("order #?\\d+ now".into()),
                target: TriggerTarget::Drip(2)
            }
        );
        assert_eq!(
            ok("/trigger add \"Promo\" campaign 5"),
            TriggerCommand::Add {
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
        // Each would cost seconds of CPU for every customer message.
        let huge = format!("/trigger add /{}/ campaign 3", r"\w{200}x".repeat(20));
        let text = refused_with_usage(&huge, usage);
        assert!(text.contains("too large"), "{text}");
    }

    #[test]
    fn trigger_list_and_remove() {
        assert_eq!(ok("/trigger list"), TriggerCommand::List);
        assert_eq!(ok("/trigger remove 7"), TriggerCommand::Remove { id: 7 });
    }
}
