//! Applies a parsed [`Command`] to the store and the engine and words the reply. Every path
//! answers with something a person can act on; a refusal is one line and changes nothing.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{parse, Command, ReportFormat, StepContent, TriggerPattern, TriggerTarget};
use crate::domain::audience::{parse_audience, AudienceExpr};
use crate::domain::content;
use crate::domain::csv_import::parse_contacts_csv;
use crate::domain::{Address, Label, SkipReason};
use crate::engine::eligibility::{verdict, Verdict};
use crate::engine::lifecycle::PauseBy;
use crate::engine::render::render_for;
use crate::engine::rules;
use crate::engine::{Engine, EngineError};
use crate::report;
use crate::store::{
    CampaignKind, CampaignStatus, Consent, Contact, ContactUpdate, Pace, StoreError, TemplateRef,
};

/// What a handler returns: the reply, or a one-line refusal.
type Reply = Result<String, Refusal>;

#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Said(String),
    #[error("something went wrong on our side; nothing was changed. Details are in the log.")]
    Internal(#[from] StoreError),
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => Refusal::Internal(e),
            EngineError::Rejected(why) => Refusal::Said(why),
            EngineError::StatusNotStored(why) => Refusal::Internal(StoreError::Invalid(why)),
        }
    }
}

fn said<T>(msg: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Said(msg.into()))
}

/// Parses and runs one admin line; always returns the text to send back.
pub async fn run(engine: &Engine, admin: &str, line: &str) -> String {
    let command = match parse(line) {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    match apply(engine, admin, command).await {
        Ok(reply) => reply,
        Err(Refusal::Said(why)) => why,
        Err(Refusal::Internal(e)) => {
            tracing::error!(error = %e, line, "command failed");
            Refusal::Internal(e).to_string()
        }
    }
}

async fn apply(engine: &Engine, admin: &str, command: Command) -> Reply {
    let touched = match &command {
        Command::CampaignPause { id }
        | Command::CampaignResume { id }
        | Command::CampaignCancel { id }
        | Command::CampaignSend { id } => Some(*id),
        _ => None,
    };
    let reply = apply_command(engine, admin, command).await;
    if let Some(id) = touched {
        engine.status_changed(id);
    }
    reply
}

async fn apply_command(engine: &Engine, admin: &str, command: Command) -> Reply {
    let now = engine.clock.now();
    let store = &engine.store;
    match command {
        Command::Help { topic } => Ok(super::help::help(topic.as_deref())),
        Command::ContactAdd {
            address,
            name,
            labels,
            lang,
            tz,
            optin,
            attrs,
        } => {
            engine.check_reachable(&address)?;
            let (contact, created) = store.ensure_contact(&address, None, now).await?;
            let update = ContactUpdate {
                name,
                lang,
                tz,
                labels,
                attrs,
            };
            store.update_contact(contact.id, &update).await?;
            if optin && contact.consent != Consent::OptedIn {
                store
                    .record_consent(contact.id, true, "admin", None, now)
                    .await?;
            }
            let contact = find(engine, &address).await?;
            let verb = if created { "added" } else { "updated" };
            Ok(format!("contact {verb}: {}", describe_contact_line(&contact)))
        }
        Command::ContactShow { address } => {
            engine.check_reachable(&address)?;
            let contact = find(engine, &address).await?;
            show_contact(engine, &contact, now).await
        }
        Command::ContactImport { csv } => match csv {
            None => said(
                "attach a CSV file to /contact import (header row: address,name,labels,lang,tz,consent,...), \
                 or run: herald contacts import FILE.csv",
            ),
            Some(data) => import_csv(engine, &data, now).await,
        },
        Command::LabelAdd { label, addresses } => set_label(engine, &label, &addresses, true).await,
        Command::LabelRemove { label, addresses } => {
            set_label(engine, &label, &addresses, false).await
        }
        Command::OptIn { address } => {
            engine.check_reachable(&address)?;
            let contact = find(engine, &address).await?;
            if contact.consent == Consent::OptedIn {
                return Ok(format!("{address} is already opted in"));
            }
            store
                .record_consent(contact.id, true, "admin", None, now)
                .await?;
            Ok(format!("{address} opted in"))
        }
        Command::OptOut { address } => {
            engine.check_reachable(&address)?;
            let contact = find(engine, &address).await?;
            if contact.consent == Consent::OptedOut {
                return Ok(format!("{address} is already opted out"));
            }
            let dropped = store
                .record_consent(contact.id, false, "admin", None, now)
                .await?;
            Ok(format!(
                "{address} opted out; removed from {dropped} pending campaign send(s)"
            ))
        }
        Command::TemplateAdd {
            name,
            lang,
            category,
            body,
        } => {
            let params = content::template_param_count(&body)
                .map_err(|e| Refusal::Said(format!("template body: {e}")))?;
            let t = store
                .add_template(&name, &lang, category.as_str(), &body, params as i64)
                .await?;
            Ok(format!(
                "template {} ({}) saved: {}, {} parameter(s)",
                t.name, t.lang, t.category, t.params
            ))
        }
        Command::TemplateList => {
            let templates = store.templates().await?;
            if templates.is_empty() {
                return Ok("no templates yet: /template add <name> <lang> <category> <body>".into());
            }
            Ok(templates
                .iter()
                .map(|t| format!("{} {} [{}] {}", t.name, t.lang, t.category, t.body))
                .collect::<Vec<_>>()
                .join("\n"))
        }
        Command::CampaignNew { title } => {
            let id = store.create_campaign(&title, Some(admin), now).await?;
            Ok(format!("campaign {id} created (draft)"))
        }
        Command::CampaignAudience { id, audience } => {
            let campaign = editable(engine, id).await?;
            let (expr, created) = resolve_audience(engine, &audience, now).await?;
            let canonical = expr.to_string();
            store.set_audience(campaign.id, &canonical).await?;
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
        Command::CampaignText { id, text } => {
            let campaign = editable(engine, id).await?;
            check_variables(&text)?;
            store.set_text(campaign.id, &text).await?;
            Ok(format!("campaign {id} text set"))
        }
        Command::CampaignVariant { id, text } => {
            let campaign = editable(engine, id).await?;
            if campaign.text.is_none() {
                return said(format!(
                    "campaign {id} has no main text yet: /campaign text {id} <message> first"
                ));
            }
            check_variables(&text)?;
            let n = store.add_variant(campaign.id, &text).await?;
            Ok(format!(
                "campaign {id} now has {} variants; each contact always gets the same one",
                n + 1
            ))
        }
        Command::CampaignTemplate {
            id,
            name,
            lang,
            params,
        } => {
            let campaign = editable(engine, id).await?;
            let t = usable_template(engine, &name, &lang, &params).await?;
            store
                .set_template(
                    campaign.id,
                    &TemplateRef {
                        name: name.clone(),
                        lang: lang.to_string(),
                        params,
                    },
                )
                .await?;
            Ok(format!("campaign {id} uses template {name} ({lang}, {})", t.category))
        }
        Command::CampaignPace {
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
        Command::CampaignSchedule { id, at, tz } => {
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
        Command::CampaignRepeat { id, repeat } => {
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
            let Some(first) = first else {
                return said("the until day has already passed; nothing would be sent");
            };
            if !store.set_repeat(id, &repeat.to_string(), first).await? {
                return said(format!("campaign {id} changed meanwhile; try again"));
            }
            Ok(format!(
                "campaign {id} repeats {repeat}; first run {}",
                engine.local_time(first)
            ))
        }
        Command::CampaignPreview { id } => preview(engine, id, now).await,
        Command::CampaignTest { id } => test_send(engine, admin, id).await,
        Command::CampaignSend { id } => {
            let n = engine.send_now(id).await?;
            Ok(format!("campaign {id} sending to {n} recipient(s)"))
        }
        Command::CampaignPause { id } => {
            engine.pause(id, PauseBy::Admin).await?;
            let r = store.report(id).await?;
            Ok(format!(
                "campaign {id} paused: {} sent, {} waiting",
                r.sent, r.queued
            ))
        }
        Command::CampaignResume { id } => {
            let resumed = engine.resume(id).await?;
            let r = store.report(id).await?;
            Ok(format!(
                "campaign {id} resumed ({}): {} recipient(s) left",
                resumed.status, r.queued
            ))
        }
        Command::CampaignCancel { id } => {
            let dropped = engine.cancel(id).await?;
            Ok(format!(
                "campaign {id} cancelled; {dropped} recipient(s) will not be sent"
            ))
        }
        Command::CampaignList { status } => {
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
        Command::CampaignShow { id } => {
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
            if let Some(t) = &c.template {
                let _ = writeln!(s, "template: {} {} [{}]", t.name, t.lang, t.params.join(" | "));
            }
            let _ = writeln!(s, "pace: {}", describe_pace(&c.pace));
            if let Some(rule) = &c.repeat_rule {
                let _ = writeln!(s, "repeat: {rule}");
                for run in store.runs(id).await? {
                    let _ = writeln!(s, "run #{}: campaign {} [{}]", run.run_no, run.id, run.status);
                }
            }
            if let Some(parent) = c.parent_id {
                let _ = writeln!(s, "run: #{} of campaign {parent}", c.run_no);
            }
            for (event, action) in store.actions(id).await? {
                let _ = writeln!(s, "on {event}: {action}");
            }
            if let Some(at) = c.scheduled_at {
                let _ = writeln!(s, "scheduled: {}", engine.local_time(at));
            }
            let _ = write!(s, "created: {}", engine.local_time(c.created_at));
            Ok(s)
        }
        Command::CampaignReport { id, format } => {
            let c = campaign(engine, id).await?;
            let r = store.report(id).await?;
            match format {
                ReportFormat::Text => Ok(report::text(engine, &c, &r)),
                ReportFormat::Csv => {
                    let rows = store.recipient_rows(id).await?;
                    let path = report::write_csv(&engine.config.reports_dir, &c, &rows)
                        .map_err(|e| Refusal::Said(format!("could not write the CSV: {e}")))?;
                    Ok(format!("report of campaign {id} written to {path}"))
                }
                ReportFormat::Chart => {
                    let times = store.send_times(id).await?;
                    let path = report::write_chart(&engine.config.reports_dir, &c, &r, &times)
                        .map_err(|e| Refusal::Said(format!("could not draw the chart: {e}")))?;
                    Ok(format!("chart of campaign {id} written to {path}"))
                }
            }
        }
        Command::TriggerAdd {
            pattern,
            target: TriggerTarget::Drip(id),
        } => {
            let d = drip(engine, id).await?;
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
        Command::TriggerAdd {
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
            if c.kind == CampaignKind::OneTime
                && !matches!(c.status, CampaignStatus::Draft)
            {
                return said(format!(
                    "campaign {id} is a one-time campaign already {}; create a new one for the trigger",
                    c.status
                ));
            }
            let (text, is_regex) = match &pattern {
                TriggerPattern::Keyword(k) => (k.clone(), false),
                TriggerPattern::Regex(r) => (r.clone(), true),
            };
            store.set_kind(id, CampaignKind::Triggered).await?;
            // A triggered campaign is live from now on: it sends whenever its trigger fires.
            store
                .transition(id, &[CampaignStatus::Draft], CampaignStatus::Sending, None, now)
                .await?;
            let trigger = store.add_trigger(&text, is_regex, id, now).await?;
            let shown = if is_regex { format!("/{text}/") } else { text };
            Ok(format!(
                "trigger {trigger} added: {shown} sends campaign {id} (once per contact)"
            ))
        }
        Command::On {
            campaign_id,
            event,
            action,
        } => {
            let c = campaign(engine, campaign_id).await?;
            if c.status.is_final() && c.kind != CampaignKind::Recurring {
                // Statuses and replies still arrive after a campaign completes, so a rule on a
                // completed campaign still has work to do; only cancelled ones are refused.
                if c.status == CampaignStatus::Cancelled {
                    return said(format!("campaign {campaign_id} is cancelled"));
                }
            }
            let rule = store
                .add_action(campaign_id, &event.key(), &action.key(), now)
                .await?;
            Ok(format!(
                "rule {rule} added: on {} of campaign {campaign_id}, {}",
                event.key(),
                action.key()
            ))
        }
        Command::DripNew { title } => {
            let id = store.create_campaign(&title, Some(admin), now).await?;
            store.set_kind(id, CampaignKind::Drip).await?;
            Ok(format!(
                "drip {id} created: add steps with /drip step {id} <delay> text <message>"
            ))
        }
        Command::DripStep {
            id,
            delay_ms,
            content,
        } => {
            let d = drip(engine, id).await?;
            if d.status.is_final() {
                return said(format!("drip {id} is {}", d.status));
            }
            let described = match &content {
                StepContent::Text(text) => {
                    check_variables(text)?;
                    "text".to_string()
                }
                StepContent::Template { name, lang, params } => {
                    let t = usable_template(engine, name, lang, params).await?;
                    format!("template {} ({}, {})", t.name, t.lang, t.category)
                }
            };
            let step_no = engine.drip_steps(id).await?.len() as i64 + 1;
            let step = store.add_drip_step(&d, step_no, delay_ms, now).await?;
            match content {
                StepContent::Text(text) => store.set_text(step, &text).await?,
                StepContent::Template { name, lang, params } => {
                    store
                        .set_template(
                            step,
                            &TemplateRef {
                                name,
                                lang: lang.into(),
                                params,
                            },
                        )
                        .await?
                }
            }
            let after = if step_no == 1 { "enrolment" } else { "the previous step" };
            Ok(format!(
                "drip {id} step {step_no}: {described}, {} after {after}",
                report::human_duration(delay_ms / 1000)
            ))
        }
        Command::DripEnroll { id, audience } => {
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
            let (expr, _) = resolve_audience(engine, &audience, now).await?;
            let due = now + chrono::Duration::milliseconds(first.step_delay_ms);
            let enrolled = store.enroll_audience(first.id, &expr, due, now).await?;
            let selected = store.count_audience(&expr).await?;
            engine.make_live(&d).await?;
            Ok(format!(
                "{enrolled} contact(s) enrolled in drip {id} ({} were already)",
                selected - enrolled as i64
            ))
        }
        Command::DripStopOnReply { id, on } => {
            drip(engine, id).await?;
            store.set_stop_on_reply(id, on).await?;
            Ok(if on {
                format!("drip {id}: a contact who writes in gets no further steps")
            } else {
                format!("drip {id}: replies no longer stop the sequence")
            })
        }
        Command::DripShow { id } => {
            let d = drip(engine, id).await?;
            let mut s = String::new();
            let _ = writeln!(s, "drip: {id}");
            let _ = writeln!(s, "title: {}", d.title);
            let _ = writeln!(s, "status: {}", d.status);
            let _ = writeln!(s, "stop_on_reply: {}", if d.stop_on_reply { "on" } else { "off" });
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
        Command::TriggerList => {
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
        Command::TriggerRemove { id } => {
            if store.remove_trigger(id).await? {
                Ok(format!("trigger {id} removed"))
            } else {
                said(format!("no trigger {id}; see /trigger list"))
            }
        }
    }
}

/// Parses an audience; explicit addresses are normalised and created as contacts when new, so
/// they are targeted (and reported, as no_consent until they opt in) instead of vanishing.
/// Returns the expression and how many contacts were created.
async fn resolve_audience(
    engine: &Engine,
    spec: &str,
    now: DateTime<Utc>,
) -> Result<(AudienceExpr, usize), Refusal> {
    let expr = parse_audience(spec).map_err(|e| Refusal::Said(format!("audience: {e}")))?;
    let mut created = 0;
    if let AudienceExpr::Addresses(list) = &expr {
        for address in list.iter() {
            engine.check_reachable(address)?;
            if engine.store.ensure_contact(address, None, now).await?.1 {
                created += 1;
            }
        }
    }
    Ok((expr, created))
}

/// A template that exists and takes exactly `params.len()` parameters made of known variables.
async fn usable_template(
    engine: &Engine,
    name: &str,
    lang: &str,
    params: &[String],
) -> Result<crate::store::Template, Refusal> {
    let Some(t) = engine.store.template(name, lang).await? else {
        return said(format!(
            "no template {name} ({lang}): add it with /template add {name} {lang} <category> <body>"
        ));
    };
    if params.len() as i64 != t.params {
        return said(format!(
            "template {name} takes {} parameter(s), {} given (separate them with |)",
            t.params,
            params.len()
        ));
    }
    for p in params {
        check_variables(p)?;
    }
    Ok(t)
}

/// A drip, or a one-line refusal.
async fn drip(engine: &Engine, id: i64) -> Result<crate::store::Campaign, Refusal> {
    let c = campaign(engine, id).await?;
    if c.kind != CampaignKind::Drip {
        return said(format!("{id} is a campaign, not a drip; see /drip new"));
    }
    Ok(c)
}

async fn find(engine: &Engine, address: &Address) -> Result<Contact, Refusal> {
    engine.store.find_contact(address).await?.ok_or_else(|| {
        Refusal::Said(format!(
            "no contact {address}; add it with /contact add {address}"
        ))
    })
}

async fn campaign(engine: &Engine, id: i64) -> Result<crate::store::Campaign, Refusal> {
    engine
        .store
        .campaign(id)
        .await?
        .ok_or_else(|| Refusal::Said(format!("no campaign {id}; see /campaign list")))
}

/// A campaign whose content and audience may still change: not yet started.
async fn editable(engine: &Engine, id: i64) -> Result<crate::store::Campaign, Refusal> {
    let c = campaign(engine, id).await?;
    match c.status {
        CampaignStatus::Draft | CampaignStatus::Scheduled => Ok(c),
        s => said(format!(
            "campaign {id} is {s}; its message and audience can only change before it starts"
        )),
    }
}

/// Refuses a text with variables herald cannot fill (typos like `{{nmae}}`).
fn check_variables(text: &str) -> Result<(), Refusal> {
    let unknown: Vec<String> = content::variables(text)
        .into_iter()
        .filter(|v| !(v == "name" || v == "lang" || v == "address" || v.starts_with("attr.")))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        said(format!(
            "unknown variable(s) {}: use {{{{name}}}}, {{{{lang}}}}, {{{{address}}}} or {{{{attr.KEY}}}}",
            unknown.join(", ")
        ))
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

fn describe_contact_line(c: &Contact) -> String {
    let mut s = c.address.to_string();
    if let Some(n) = &c.name {
        let _ = write!(s, " {n}");
    }
    let _ = write!(s, " [{}]", c.consent.as_str());
    if !c.labels.is_empty() {
        let _ = write!(s, " labels={}", c.labels.join(","));
    }
    s
}

async fn show_contact(engine: &Engine, c: &Contact, now: DateTime<Utc>) -> Reply {
    let mut s = String::new();
    let _ = writeln!(s, "contact: {}", c.address);
    let _ = writeln!(s, "name: {}", c.name.as_deref().unwrap_or("-"));
    let _ = writeln!(s, "lang: {}", c.lang.as_deref().unwrap_or("-"));
    let _ = writeln!(s, "tz: {}", c.tz.as_deref().unwrap_or("-"));
    let _ = writeln!(
        s,
        "labels: {}",
        if c.labels.is_empty() {
            "-".to_string()
        } else {
            c.labels.join(",")
        }
    );
    for (k, v) in &c.attrs {
        let _ = writeln!(s, "attr.{k}: {v}");
    }
    let _ = writeln!(s, "consent: {}", c.consent.as_str());
    let window = match c.last_inbound_at {
        Some(t) if rules::in_window(c, now) => format!(
            "open until {}",
            engine.local_time(t + rules::SERVICE_WINDOW)
        ),
        Some(t) => format!("closed (last message {})", engine.local_time(t)),
        None => "closed (never wrote)".into(),
    };
    let _ = writeln!(s, "window: {window}");
    if c.marketing_stopped {
        let _ = writeln!(s, "marketing: stopped by the user");
    }
    if let Some(why) = &c.unreachable {
        let _ = writeln!(s, "unreachable: {why}");
    }
    let history = engine.store.consent_history(c.id).await?;
    for h in history {
        let _ = writeln!(
            s,
            "history: {} via {}{} at {}",
            h.kind,
            h.source,
            h.keyword.map(|k| format!(" ({k})")).unwrap_or_default(),
            engine.local_time(h.at)
        );
    }
    Ok(s.trim_end().to_string())
}

async fn set_label(engine: &Engine, label: &Label, addresses: &[Address], present: bool) -> Reply {
    let mut ids = Vec::new();
    let mut unknown = Vec::new();
    for address in addresses {
        match engine.store.find_contact(address).await? {
            Some(c) => ids.push(c.id),
            None => unknown.push(address.as_str()),
        }
    }
    if !unknown.is_empty() {
        return said(format!(
            "no contact {}; nothing changed (add them with /contact add)",
            unknown.join(", ")
        ));
    }
    let changed = engine.store.set_label(label, &ids, present).await?;
    let verb = if present { "added to" } else { "removed from" };
    Ok(format!("label {label} {verb} {changed} contact(s)"))
}

/// Imports a CSV: good rows are written, bad rows are reported by line and skipped.
async fn import_csv(engine: &Engine, data: &str, now: DateTime<Utc>) -> Reply {
    let (records, errors) = parse_contacts_csv(data);
    let (mut added, mut updated) = (0, 0);
    for r in &records {
        let (contact, created) = engine.store.ensure_contact(&r.address, None, now).await?;
        let update = ContactUpdate {
            name: r.name.clone(),
            lang: r.lang.clone(),
            tz: r.tz.clone(),
            labels: r.labels.clone(),
            attrs: r.attrs.clone(),
        };
        engine.store.update_contact(contact.id, &update).await?;
        match r.consent {
            Some(true) if contact.consent != Consent::OptedIn => {
                engine
                    .store
                    .record_consent(contact.id, true, "import", None, now)
                    .await?;
            }
            Some(false) if contact.consent != Consent::OptedOut => {
                engine
                    .store
                    .record_consent(contact.id, false, "import", None, now)
                    .await?;
            }
            _ => {}
        }
        if created {
            added += 1;
        } else {
            updated += 1;
        }
    }
    let mut reply = format!(
        "imported {} contact(s): {added} added, {updated} updated, {} row(s) rejected",
        added + updated,
        errors.len()
    );
    for e in errors.iter().take(20) {
        let _ = write!(reply, "\n{e}");
    }
    if errors.len() > 20 {
        let _ = write!(reply, "\n... and {} more", errors.len() - 20);
    }
    Ok(reply)
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
    let _ = writeln!(s, "eligible: {}", eligible.len());
    for reason in SkipReason::PREVIEWED {
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
    let rendered = render_for(&c, template.as_ref(), &sample).map_err(|e| {
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
