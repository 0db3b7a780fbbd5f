//! `/status` (and `herald status`): what herald is doing, in one screen: the campaigns at work
//! and their queues (queued, in flight, held and why), the tier, campaigns by status, the
//! database's size and the oldest rows retention has yet to prune. Grammar and examples:
//! `commands/status.md`.

use std::fmt::Write as _;

use super::parse::{Args, ParseError};
use super::reply::Reply;
use super::Command;
use crate::engine::status::Overview;
use crate::engine::Engine;
use crate::store::{CampaignStatus, QueueState};

/// Campaigns listed per status; the rest are counted.
const LISTED: usize = 10;

pub(super) fn parse(args: &mut Args) -> Result<Command, ParseError> {
    args.end()?;
    Ok(Command::Status)
}

pub(super) async fn apply(engine: &Engine) -> Reply {
    let overview = engine.overview().await?;
    Ok(screen(engine, &overview))
}

/// `12,345`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// `11.2 MB`.
fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.0} kB", n / 1e3)
    }
}

fn age(d: chrono::Duration) -> String {
    crate::report::human_duration(d.num_seconds().max(0))
}

/// The held recipients, `tier_limit 300 (next 2026-12-04 09:12 UTC), retry 2 (...)`.
fn held_text(engine: &Engine, o: &Overview, campaign: Option<i64>) -> Option<String> {
    let held = o.held(campaign);
    if held.is_empty() {
        return None;
    }
    Some(
        held.iter()
            .map(|(why, n, next)| match next {
                Some(t) => format!("{why} {} (next {})", thousands(*n), engine.local_time(*t)),
                None => format!("{why} {}", thousands(*n)),
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The screen, from one snapshot.
pub fn screen(engine: &Engine, o: &Overview) -> String {
    let mut s = String::new();
    let backend = match o.backend {
        crate::store::Backend::Sqlite => "SQLite",
        crate::store::Backend::Postgres => "PostgreSQL",
    };
    let _ = writeln!(s, "herald status at {}", engine.local_time(o.now));
    for status in [
        CampaignStatus::Sending,
        CampaignStatus::Paused,
        CampaignStatus::Scheduled,
    ] {
        let listed: Vec<_> = o.active.iter().filter(|c| c.status == status).collect();
        if listed.is_empty() {
            let _ = writeln!(s, "{status}: none");
            continue;
        }
        let _ = writeln!(s, "{status}: {}", listed.len());
        for c in listed.iter().take(LISTED) {
            let id = Some(c.id);
            let mut line = format!(
                "  campaign {} {:?}: {} queued, {} in flight",
                c.id,
                c.title,
                thousands(o.count(id, &QueueState::Queued)),
                thousands(o.count(id, &QueueState::InFlight)),
            );
            if let Some(held) = held_text(engine, o, id) {
                let _ = write!(line, ", held: {held}");
            }
            if let (CampaignStatus::Scheduled, Some(at)) = (status, c.scheduled_at) {
                let _ = write!(line, "; starts {}", engine.local_time(at));
            }
            if let Some(why) = &c.status_reason {
                let _ = write!(line, "; why: {why}");
            }
            let _ = writeln!(s, "{line}");
        }
        if listed.len() > LISTED {
            let _ = writeln!(s, "  ... and {} more", listed.len() - LISTED);
        }
    }
    let mut queue = format!(
        "queue: {} queued, {} in flight",
        thousands(o.count(None, &QueueState::Queued)),
        thousands(o.count(None, &QueueState::InFlight)),
    );
    match held_text(engine, o, None) {
        Some(held) => {
            let _ = write!(queue, ", held: {held}");
        }
        None => queue.push_str(", none held"),
    }
    let _ = writeln!(s, "{queue}");
    match o.tier_limit {
        Some(limit) => {
            let _ = writeln!(
                s,
                "tier: {} of {} contacts outside their window in the last 24 h",
                thousands(o.tier_used),
                thousands(limit)
            );
        }
        None => {
            let _ = writeln!(
                s,
                "tier: unlimited ({} contacts outside their window in the last 24 h)",
                thousands(o.tier_used)
            );
        }
    }
    let counts = o
        .by_status
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(s, "campaigns: {counts}");
    let _ = writeln!(s, "database: {} ({backend})", bytes(o.database_bytes));
    let keep = age(o.dedup_keep);
    let _ = match o.oldest_seen {
        Some(t) => writeln!(
            s,
            "dedup: oldest message id seen {} ago (kept {keep})",
            age(o.now - t)
        ),
        None => writeln!(s, "dedup: no message id kept (kept {keep})"),
    };
    let (summaries, rows) = o.summarised;
    let _ = match o.oldest_unsummarised {
        Some(t) => write!(
            s,
            "retention: oldest finished campaign with recipient rows finished {} ago \
             (summarised after {}); {summaries} campaign(s) summarised ({} rows)",
            age(o.now - t),
            age(o.retention),
            thousands(rows)
        ),
        None => write!(
            s,
            "retention: no finished campaign holds recipient rows (summarised after {}); \
             {summaries} campaign(s) summarised ({} rows)",
            age(o.retention),
            thousands(rows)
        ),
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_takes_no_arguments() {
        assert_eq!(crate::commands::parse("/status"), Ok(Command::Status));
        assert_eq!(crate::commands::parse("/STATUS"), Ok(Command::Status));
        let refused = crate::commands::parse("/status now").unwrap_err();
        assert_eq!(refused.usage(), Some("/status"));
    }

    #[test]
    fn figures_read_naturally() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(bytes(11_200_000), "11.2 MB");
        assert_eq!(bytes(4_000), "4 kB");
    }
}
