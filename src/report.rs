//! Campaign reports: `key: value` lines for people and scripts, a per-recipient CSV export, and
//! a PNG chart of sends over time. The exports are files in memory ([`OutboundFile`]): the
//! engine sends them to the admin who asked, or writes them where their channel cannot.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::channels::{FileKind, OutboundFile};
use crate::engine::Engine;
use crate::store::{Campaign, RecipientRow, Report};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Csv(#[from] csv::Error),
    #[error("{0}")]
    Write(String),
    #[error("{0}")]
    Chart(String),
}

fn pct(part: i64, whole: i64) -> String {
    if whole == 0 {
        "0.0%".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// Turns a free-form reason into a key a script can read (`131026 Message undeliverable` stays
/// readable in the value; the key keeps only the code or the reason word).
fn reason_key(reason: &str) -> String {
    reason
        .split_whitespace()
        .next()
        .unwrap_or("unknown")
        .trim_end_matches(':')
        .to_string()
}

pub fn text(engine: &Engine, c: &Campaign, r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "campaign: {}", c.id);
    let _ = writeln!(s, "title: {}", c.title);
    let _ = writeln!(s, "status: {}", c.status);
    if let Some(why) = &c.status_reason {
        let _ = writeln!(s, "status_reason: {why}");
    }
    let _ = writeln!(s, "targeted: {}", r.targeted);
    let _ = writeln!(s, "queued: {}", r.queued);
    let _ = writeln!(s, "sent: {}", r.sent);
    let _ = writeln!(s, "delivered: {}", r.delivered);
    let _ = writeln!(s, "read: {}", r.read);
    let _ = writeln!(s, "replied: {}", r.replied);
    let _ = writeln!(s, "failed: {}", r.failed);
    let _ = writeln!(s, "skipped: {}", r.skipped);
    if r.unknown > 0 {
        let _ = writeln!(s, "unknown: {}", r.unknown);
    }
    for (reason, n) in &r.skipped_by_reason {
        let _ = writeln!(s, "skipped.{}: {n}", reason_key(reason));
    }
    for (reason, n) in &r.failed_by_reason {
        let _ = writeln!(s, "failed.{}: {n} ({reason})", reason_key(reason));
    }
    // Every button or row the campaign offers, tapped or not, so a script sees each key.
    for title in c.choices.iter().flat_map(|choices| choices.titles()) {
        let n = r
            .clicked_by_title
            .iter()
            .find(|(t, _)| t == title)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(s, "clicked.{title}: {n}");
    }
    let _ = writeln!(s, "delivery_rate: {}", pct(r.delivered, r.sent));
    let _ = writeln!(s, "read_rate: {}", pct(r.read, r.sent));
    let _ = writeln!(s, "reply_rate: {}", pct(r.replied, r.sent));
    let mut cost = 0.0;
    for (category, n) in &r.sent_by_category {
        cost += engine.config.price(category) * *n as f64;
    }
    let _ = writeln!(s, "estimated_cost: {cost:.2} {}", engine.config.currency);
    for (category, n) in &r.sent_by_category {
        let _ = writeln!(s, "sent.{category}: {n}");
    }
    // Meta's own words on what it charged, next to the estimate: they win where they differ.
    for (category, n) in &r.billed_by_category {
        let _ = writeln!(s, "billed.{category}: {n}");
    }
    if let Some(t) = r.first_sent_at {
        let _ = writeln!(s, "first_sent: {}", engine.local_time(t));
    }
    if let Some(t) = r.last_sent_at {
        let _ = writeln!(s, "last_sent: {}", engine.local_time(t));
    }
    s.trim_end().to_string()
}

fn time_cell(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a tab or carriage return
/// before one) gets a leading `'`, which spreadsheets show as text (OWASP's advice against CSV
/// injection). Reasons and codes come from channels and addresses from users: none is trusted.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// One line per recipient, as `campaign-<id>.csv`.
pub fn csv_file(c: &Campaign, rows: &[RecipientRow]) -> Result<OutboundFile, ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "address",
        "status",
        "reason",
        "error_code",
        "attempts",
        "variant",
        "sent_at",
        "delivered_at",
        "read_at",
        "replied_at",
        "clicked",
    ])?;
    for r in rows {
        w.write_record(
            [
                r.address.as_str(),
                r.status.as_str(),
                r.reason.as_deref().unwrap_or(""),
                r.error_code.as_deref().unwrap_or(""),
                &r.attempts.to_string(),
                &r.variant.map(|v| v.to_string()).unwrap_or_default(),
                &time_cell(r.sent_at),
                &time_cell(r.delivered_at),
                &time_cell(r.read_at),
                &time_cell(r.replied_at),
                r.clicked.as_deref().unwrap_or(""),
            ]
            .iter()
            .map(|cell| neutralise(cell).into_owned()),
        )?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ExportError::Write(e.to_string()))?;
    Ok(OutboundFile {
        name: format!("campaign-{}.csv", c.id),
        mime: "text/csv".into(),
        kind: FileKind::Document,
        bytes,
        caption: Some(format!(
            "campaign {}: {} recipient(s), one line each",
            c.id,
            rows.len()
        )),
    })
}

/// The campaign's funnel and sends over time, as `campaign-<id>.png`.
pub fn chart_file(
    c: &Campaign,
    r: &Report,
    send_times: &[DateTime<Utc>],
) -> Result<OutboundFile, ExportError> {
    let bytes = crate::chart::draw(c, r, send_times).map_err(ExportError::Chart)?;
    Ok(OutboundFile {
        name: format!("campaign-{}.png", c.id),
        mime: "image/png".into(),
        kind: FileKind::Image,
        bytes,
        caption: Some(format!("campaign {}: {}", c.id, c.title)),
    })
}

/// `3725` -> `1h 2m`.
pub fn human_duration(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m 5s");
        assert_eq!(human_duration(3725), "1h 2m");
        assert_eq!(human_duration(90_000), "1d 1h");
    }

    #[test]
    fn cells_a_spreadsheet_would_run_are_neutralised() {
        assert_eq!(neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralise("+15550001"), "'+15550001");
        assert_eq!(neutralise("-2+3"), "'-2+3");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\t=1"), "'\t=1");
        assert_eq!(neutralise("wa:15550001"), "wa:15550001");
        assert_eq!(neutralise(""), "");
    }

    #[test]
    fn reason_keys_are_single_words() {
        assert_eq!(reason_key("131026 Message undeliverable"), "131026");
        assert_eq!(reason_key("no_consent"), "no_consent");
    }
}
