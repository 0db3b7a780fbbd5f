//! Retention: the rows that grow with traffic are pruned or summarised, in small batches.
//!
//! - `inbound_seen` (webhook de-duplication) and `tier_usage` (the rolling tier budget) are
//!   deleted once they are older than what they guard, oldest first, a bounded batch per
//!   statement so a pass never holds the writer for long.
//! - A finished campaign's recipient rows are summarised into `campaign_summaries` (every figure
//!   of its report, its chart's send times, its CSV export deflated), then deleted in batches.
//!   Reports read live rows of campaigns not yet summarised plus the summaries, so they read
//!   the same before, during and after.
//! - Consent history (`consent_events`) is never pruned: it is the evidence of an opt-in.

use std::io::{Read as _, Write as _};

use chrono::{DateTime, Utc};
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{opt_time, RecipientRow, Report, Result, Store, StoreError};
use crate::clock::{from_ms, to_ms};

/// Recipient rows read per page while a campaign is summarised: bounds the memory of one pass.
const SUMMARY_PAGE: i64 = 5_000;

/// Every figure of a campaign's report, as stored in `campaign_summaries.report`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredReport {
    targeted: i64,
    queued: i64,
    sent: i64,
    delivered: i64,
    read: i64,
    replied: i64,
    failed: i64,
    skipped: i64,
    unknown: i64,
    skipped_by_reason: Vec<(String, i64)>,
    failed_by_reason: Vec<(String, i64)>,
    sent_by_category: Vec<(String, i64)>,
    /// What Meta billed (absent from summaries written before billing was recorded).
    #[serde(default)]
    billed_by_category: Vec<(String, i64)>,
    /// Taps per button or row (absent from summaries written before taps were recorded).
    #[serde(default)]
    clicked_by_title: Vec<(String, i64)>,
    first_sent_at: Option<i64>,
    last_sent_at: Option<i64>,
}

impl From<&Report> for StoredReport {
    fn from(r: &Report) -> Self {
        StoredReport {
            targeted: r.targeted,
            queued: r.queued,
            sent: r.sent,
            delivered: r.delivered,
            read: r.read,
            replied: r.replied,
            failed: r.failed,
            skipped: r.skipped,
            unknown: r.unknown,
            skipped_by_reason: r.skipped_by_reason.clone(),
            failed_by_reason: r.failed_by_reason.clone(),
            sent_by_category: r.sent_by_category.clone(),
            billed_by_category: r.billed_by_category.clone(),
            clicked_by_title: r.clicked_by_title.clone(),
            first_sent_at: r.first_sent_at.map(to_ms),
            last_sent_at: r.last_sent_at.map(to_ms),
        }
    }
}

/// One line of a summarised campaign's CSV export (short keys: it is stored deflated, once per
/// recipient).
#[derive(Debug, Serialize, Deserialize)]
struct ArchivedRow {
    a: String,
    s: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    r: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    e: Option<String>,
    n: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    v: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    sent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    dlv: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    rd: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    rep: Option<i64>,
    /// Absent in summaries written before taps were exported.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    clk: Option<String>,
}

impl ArchivedRow {
    fn into_row(self) -> Result<RecipientRow> {
        Ok(RecipientRow {
            address: self.a,
            status: self.s.parse().map_err(
                |e: crate::domain::recipient_status::UnknownStatus| corrupt("export", e),
            )?,
            reason: self.r,
            error_code: self.e,
            attempts: self.n,
            variant: self.v,
            sent_at: self.sent.map(from_ms),
            delivered_at: self.dlv.map(from_ms),
            read_at: self.rd.map(from_ms),
            replied_at: self.rep.map(from_ms),
            clicked: self.clk,
        })
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("campaign summary {what} unreadable: {e}"))
}

/// Adds `more` into `into` key by key.
fn merge_counts(into: &mut Vec<(String, i64)>, more: &[(String, i64)]) {
    for (key, n) in more {
        match into.iter_mut().find(|(k, _)| k == key) {
            Some((_, m)) => *m += n,
            None => into.push((key.clone(), *n)),
        }
    }
}

/// Largest first, then by key (bytewise): one order whichever database sorted the live rows, so
/// a report reads the same before and after its rows are summarised.
fn sort_counts(counts: &mut [(String, i64)]) {
    counts.sort_by(|(ka, a), (kb, b)| b.cmp(a).then_with(|| ka.as_bytes().cmp(kb.as_bytes())));
}

impl Store {
    /// Deletes up to `batch` webhook de-duplication rows first seen before `before`, oldest
    /// first; returns how many went.
    pub async fn prune_seen(&self, before: DateTime<Utc>, batch: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM inbound_seen WHERE provider_id IN \
             (SELECT provider_id FROM inbound_seen WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .bind(to_ms(before))
        .bind(batch)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Deletes about `batch` tier-budget rows taken before `before` (rows in the same
    /// millisecond go together: the table has no key to split them by).
    pub async fn prune_tier_usage(&self, before: DateTime<Utc>, batch: i64) -> Result<u64> {
        let edge: Option<i64> = sqlx::query_scalar(
            "SELECT at FROM tier_usage WHERE at < $1 ORDER BY at LIMIT 1 OFFSET $2",
        )
        .bind(to_ms(before))
        .bind(batch.max(1) - 1)
        .fetch_optional(&self.pool)
        .await?;
        let edge = edge.unwrap_or(to_ms(before) - 1);
        Ok(
            sqlx::query("DELETE FROM tier_usage WHERE at <= $1 AND at < $2")
                .bind(edge)
                .bind(to_ms(before))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Deletes attached media files stored before `before` that no campaign shows any more (its
    /// media was replaced or removed); returns how many.
    pub async fn prune_media_files(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM media_files WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM campaigns c WHERE c.media LIKE '%' || media_files.sha256 || '%')",
        )
        .bind(to_ms(before))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// When the oldest de-duplication row was seen, if any is kept.
    pub async fn oldest_seen(&self) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query("SELECT MIN(at) AS t FROM inbound_seen")
            .fetch_one(&self.pool)
            .await?;
        opt_time(&row, "t")
    }

    /// When the longest-finished campaign that still has recipient rows finished, if any.
    pub async fn oldest_unsummarised(&self) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MIN(finished_at) AS t FROM campaigns \
             WHERE summarised_at IS NULL AND finished_at IS NOT NULL \
             AND status IN ('completed', 'cancelled', 'failed') AND kind = 'one_time'",
        )
        .fetch_one(&self.pool)
        .await?;
        opt_time(&row, "t")
    }

    /// Finished one-time campaigns (and runs of recurring ones) that ended before `before` and
    /// still have their recipient rows, oldest first. Triggered campaigns and drip steps keep
    /// theirs: a row there is what makes a trigger fire once per contact.
    pub async fn campaigns_to_summarise(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM campaigns WHERE summarised_at IS NULL AND kind = 'one_time' \
             AND status IN ('completed', 'cancelled', 'failed') AND finished_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.campaign_id = campaigns.id \
                             AND r.status IN ('claimed', 'sending')) \
             ORDER BY finished_at, id LIMIT $2",
        )
        .bind(to_ms(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Summarises one campaign's recipient rows (see the module comment); returns how many rows
    /// it summarised, or `None` if it was summarised already. The rows themselves are deleted
    /// later, in batches, by [`Store::delete_summarised`].
    ///
    /// The rows are read before the summary is written, outside one transaction (SQLite's single
    /// connection could not read them while a transaction holds it): a campaign finished months
    /// ago gets no more statuses, and the summary is written only if no one summarised it since.
    pub async fn summarise_campaign(
        &self,
        campaign_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let done: Option<Option<i64>> =
            sqlx::query_scalar("SELECT summarised_at FROM campaigns WHERE id = $1")
                .bind(campaign_id)
                .fetch_optional(&self.pool)
                .await?;
        if !matches!(done, Some(None)) {
            return Ok(None);
        }
        let report = StoredReport::from(&self.report(campaign_id).await?);
        let report = serde_json::to_string(&report).map_err(|e| corrupt("report", e))?;
        let times = sqlx::query(
            "SELECT sent_at, COUNT(*) AS n FROM recipients \
             WHERE campaign_id = $1 AND sent_at IS NOT NULL GROUP BY sent_at ORDER BY sent_at",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<i64, _>("sent_at")?, r.try_get::<i64, _>("n")?)))
        .collect::<Result<Vec<_>>>()?;
        let times = serde_json::to_string(&times).map_err(|e| corrupt("send times", e))?;

        let mut export = DeflateEncoder::new(Vec::new(), Compression::default());
        let (mut after, mut count) = (0i64, 0u64);
        loop {
            let rows = sqlx::query(
                "SELECT r.id, c.address, r.status, r.reason, r.error_code, r.attempts, r.variant, \
                 r.sent_at, r.delivered_at, r.read_at, r.replied_at, r.clicked FROM recipients r \
                 JOIN contacts c ON c.id = r.contact_id \
                 WHERE r.campaign_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
            )
            .bind(campaign_id)
            .bind(after)
            .bind(SUMMARY_PAGE)
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                after = r.try_get("id")?;
                let line = ArchivedRow {
                    a: r.try_get("address")?,
                    s: r.try_get("status")?,
                    r: r.try_get("reason")?,
                    e: r.try_get("error_code")?,
                    n: r.try_get("attempts")?,
                    v: r.try_get("variant")?,
                    sent: r.try_get("sent_at")?,
                    dlv: r.try_get("delivered_at")?,
                    rd: r.try_get("read_at")?,
                    rep: r.try_get("replied_at")?,
                    clk: r.try_get("clicked")?,
                };
                let line = serde_json::to_vec(&line).map_err(|e| corrupt("export", e))?;
                export
                    .write_all(&line)
                    .and_then(|()| export.write_all(b"\n"))
                    .map_err(|e| corrupt("export", e))?;
                count += 1;
            }
            if (rows.len() as i64) < SUMMARY_PAGE {
                break;
            }
        }
        let export = export.finish().map_err(|e| corrupt("export", e))?;

        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let won = sqlx::query(
            "UPDATE campaigns SET summarised_at = $1 WHERE id = $2 AND summarised_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(campaign_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !won {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO campaign_summaries \
             (campaign_id, report, send_times, export, recipients, summarised_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(campaign_id)
        .bind(report)
        .bind(times)
        .bind(export)
        .bind(count as i64)
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(count))
    }

    /// Deletes up to `batch` recipient rows of summarised campaigns; returns how many went.
    pub async fn delete_summarised(&self, batch: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM recipients WHERE id IN (SELECT r.id FROM campaigns c \
             JOIN recipients r ON r.campaign_id = c.id \
             WHERE c.summarised_at IS NOT NULL LIMIT $1)",
        )
        .bind(batch)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Adds the summaries of a campaign (or of the runs of a recurring one) to the figures its
    /// live rows gave, and puts every breakdown in one order.
    pub(super) async fn add_summaries(&self, campaign_id: i64, report: &mut Report) -> Result<()> {
        let stored: Vec<String> = sqlx::query_scalar(
            "SELECT s.report FROM campaign_summaries s JOIN campaigns c ON c.id = s.campaign_id \
             WHERE c.id = $1 OR c.parent_id = $1",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        for raw in &stored {
            let s: StoredReport = serde_json::from_str(raw).map_err(|e| corrupt("report", e))?;
            report.targeted += s.targeted;
            report.queued += s.queued;
            report.sent += s.sent;
            report.delivered += s.delivered;
            report.read += s.read;
            report.replied += s.replied;
            report.failed += s.failed;
            report.skipped += s.skipped;
            report.unknown += s.unknown;
            merge_counts(&mut report.skipped_by_reason, &s.skipped_by_reason);
            merge_counts(&mut report.failed_by_reason, &s.failed_by_reason);
            merge_counts(&mut report.sent_by_category, &s.sent_by_category);
            merge_counts(&mut report.billed_by_category, &s.billed_by_category);
            merge_counts(&mut report.clicked_by_title, &s.clicked_by_title);
            let first = s.first_sent_at.map(from_ms);
            let last = s.last_sent_at.map(from_ms);
            report.first_sent_at = match (report.first_sent_at, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            report.last_sent_at = match (report.last_sent_at, last) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        sort_counts(&mut report.skipped_by_reason);
        sort_counts(&mut report.failed_by_reason);
        sort_counts(&mut report.sent_by_category);
        Ok(())
    }

    /// A summarised campaign's CSV export lines, or `None` when its rows are live.
    pub(super) async fn archived_rows(
        &self,
        campaign_id: i64,
    ) -> Result<Option<Vec<RecipientRow>>> {
        let export: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT export FROM campaign_summaries WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(export) = export else {
            return Ok(None);
        };
        let mut text = String::new();
        DeflateDecoder::new(export.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| corrupt("export", e))?;
        text.lines()
            .map(|line| {
                serde_json::from_str::<ArchivedRow>(line)
                    .map_err(|e| corrupt("export", e))
                    .and_then(ArchivedRow::into_row)
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A summarised campaign's send times (one per message), or `None` when its rows are live.
    pub(super) async fn archived_send_times(
        &self,
        campaign_id: i64,
    ) -> Result<Option<Vec<DateTime<Utc>>>> {
        let raw: Option<String> =
            sqlx::query_scalar("SELECT send_times FROM campaign_summaries WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(raw) = raw else { return Ok(None) };
        let pairs: Vec<(i64, i64)> =
            serde_json::from_str(&raw).map_err(|e| corrupt("send times", e))?;
        let mut times = Vec::new();
        for (at, n) in pairs {
            times.extend(std::iter::repeat_n(from_ms(at), n.max(0) as usize));
        }
        Ok(Some(times))
    }

    /// Summarised campaigns and the recipient rows they stand for: (campaigns, rows).
    pub async fn summarised_counts(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(recipients), 0) AS BIGINT) AS rows FROM campaign_summaries",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("rows")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_by_key_and_sort_one_way() {
        let mut a = vec![("no_consent".to_string(), 2), ("opted_out".to_string(), 1)];
        merge_counts(
            &mut a,
            &[("opted_out".to_string(), 1), ("B".to_string(), 2)],
        );
        sort_counts(&mut a);
        assert_eq!(
            a,
            vec![
                ("B".to_string(), 2),
                ("no_consent".to_string(), 2),
                ("opted_out".to_string(), 2)
            ]
        );
    }
}
