//! The WhatsApp Business account as herald last heard of it: templates synced from Meta, the
//! messaging limit and quality, restrictions in force, and what Meta billed each recipient.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::campaigns::template_from_row;
use super::{opt_time, Result, Store, StoreError, Template};
use crate::clock::to_ms;
use crate::domain::account::{Billing, MessagingLimit, Restriction};
use crate::domain::template::{TemplateSpec, TemplateStatus};

/// What a sync changed, each as `name (lang)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncDiff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Templates stored after the sync.
    pub total: usize,
}

/// The account's state: what `/account` shows and the dispatcher obeys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountState {
    /// The limit Meta reported; `None` while only the configured tier is known.
    pub tier: Option<MessagingLimit>,
    pub tier_at: Option<DateTime<Utc>>,
    pub quality_event: Option<String>,
    pub quality_at: Option<DateTime<Utc>>,
    /// The last account-wide stop (violation, ban), as Meta named it.
    pub account_event: Option<String>,
    pub account_at: Option<DateTime<Utc>>,
    pub synced_at: Option<DateTime<Utc>>,
    /// Why the last sync failed; `None` after a good one.
    pub sync_error: Option<String>,
    pub restrictions: Vec<Restriction>,
}

/// Account rows are one row, id 1.
const ACCOUNT_ROW: i64 = 1;

fn label(name: &str, lang: &str) -> String {
    format!("{name} ({lang})")
}

/// The body and parameter count a synced template is stored with, so every place that reads
/// `templates.body` (previews, the console, Telegram) shows its text.
fn body_and_count(spec: &TemplateSpec) -> (String, i64) {
    (spec.body.clone(), spec.parameter_count() as i64)
}

impl Store {
    /// Replaces the synced templates with `specs` (Meta's whole list), in one transaction: new
    /// ones are added, differing ones updated, synced ones Meta no longer lists removed. A
    /// declared template of the same name and language becomes the synced one; other declared
    /// templates stay.
    pub async fn sync_templates(&self, specs: &[TemplateSpec]) -> Result<SyncDiff> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let rows = sqlx::query("SELECT * FROM templates")
            .fetch_all(&mut *tx)
            .await?;
        let mut existing: Vec<(Template, String)> = Vec::with_capacity(rows.len());
        for row in &rows {
            existing.push((template_from_row(row)?, row.try_get("source")?));
        }
        let mut diff = SyncDiff::default();
        let mut seen: Vec<(String, String)> = Vec::new();
        for spec in specs {
            let key = (spec.name.clone(), spec.lang.clone());
            if seen.contains(&key) {
                continue; // Meta lists a template once; a repeat on a later page changes nothing
            }
            seen.push(key);
            let json =
                serde_json::to_string(spec).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let (body, count) = body_and_count(spec);
            let before = existing
                .iter()
                .find(|(t, _)| t.name == spec.name && t.lang == spec.lang);
            match before {
                Some((t, source)) if source == "synced" && t.spec.as_ref() == Some(spec) => {}
                Some(_) => diff.changed.push(label(&spec.name, &spec.lang)),
                None => diff.added.push(label(&spec.name, &spec.lang)),
            }
            sqlx::query(
                "INSERT INTO templates (name, lang, category, body, params, status, source, spec) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'synced', $7) \
                 ON CONFLICT (name, lang) DO UPDATE SET category = excluded.category, \
                 body = excluded.body, params = excluded.params, status = excluded.status, \
                 source = 'synced', spec = excluded.spec",
            )
            .bind(spec.name.as_str())
            .bind(spec.lang.as_str())
            .bind(spec.category.as_str())
            .bind(body)
            .bind(count)
            .bind(spec.status.as_str())
            .bind(json)
            .execute(&mut *tx)
            .await?;
        }
        for (t, source) in &existing {
            if source == "synced" && !seen.contains(&(t.name.clone(), t.lang.clone())) {
                sqlx::query("DELETE FROM templates WHERE id = $1")
                    .bind(t.id)
                    .execute(&mut *tx)
                    .await?;
                diff.removed.push(label(&t.name, &t.lang));
            }
        }
        diff.total = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM templates")
            .fetch_one(&mut *tx)
            .await? as usize;
        tx.commit().await?;
        Ok(diff)
    }

    /// Records Meta's new status of a template (declared or synced); returns the status it had,
    /// `None` when herald does not know the template.
    pub async fn set_template_status(
        &self,
        name: &str,
        lang: &str,
        status: &TemplateStatus,
    ) -> Result<Option<TemplateStatus>> {
        let Some(template) = self.template(name, lang).await? else {
            return Ok(None);
        };
        let spec = match template.spec.clone() {
            Some(mut spec) => {
                spec.status = status.clone();
                Some(serde_json::to_string(&spec).map_err(|e| StoreError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        sqlx::query("UPDATE templates SET status = $1, spec = COALESCE($2, spec) WHERE id = $3")
            .bind(status.as_str())
            .bind(spec)
            .bind(template.id)
            .execute(&self.pool)
            .await?;
        Ok(Some(template.status))
    }

    pub async fn account(&self) -> Result<AccountState> {
        let mut state = AccountState::default();
        if let Some(row) = sqlx::query("SELECT * FROM business_account WHERE id = $1")
            .bind(ACCOUNT_ROW)
            .fetch_optional(&self.pool)
            .await?
        {
            let tier: Option<String> = row.try_get("tier")?;
            state.tier = tier.as_deref().and_then(MessagingLimit::from_text);
            state.tier_at = opt_time(&row, "tier_at")?;
            state.quality_event = row.try_get("quality_event")?;
            state.quality_at = opt_time(&row, "quality_at")?;
            state.account_event = row.try_get("account_event")?;
            state.account_at = opt_time(&row, "account_at")?;
            state.synced_at = opt_time(&row, "synced_at")?;
            state.sync_error = row.try_get("sync_error")?;
        }
        let rows = sqlx::query("SELECT kind, expires_at FROM account_restrictions ORDER BY kind")
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            state.restrictions.push(Restriction {
                kind: row.try_get("kind")?,
                expires: opt_time(&row, "expires_at")?,
            });
        }
        Ok(state)
    }

    /// Sets one column pair of the account row (`<column>`, `<column's time>`), creating the row.
    async fn set_account(
        &self,
        column: &'static str,
        time_column: &'static str,
        value: Option<&str>,
        at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO business_account (id, {column}, {time_column}) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET {column} = excluded.{column}, \
             {time_column} = excluded.{time_column}"
        );
        sqlx::query(&sql)
            .bind(ACCOUNT_ROW)
            .bind(value)
            .bind(at.map(to_ms))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The messaging limit Meta reported, from now on in place of the configured tier.
    pub async fn set_tier(&self, limit: MessagingLimit, at: DateTime<Utc>) -> Result<()> {
        self.set_account("tier", "tier_at", Some(&limit.as_text()), Some(at))
            .await
    }

    pub async fn set_quality_event(&self, event: &str, at: DateTime<Utc>) -> Result<()> {
        self.set_account("quality_event", "quality_at", Some(event), Some(at))
            .await
    }

    pub async fn set_account_event(&self, event: &str, at: DateTime<Utc>) -> Result<()> {
        self.set_account("account_event", "account_at", Some(event), Some(at))
            .await
    }

    /// The outcome of a template sync: its time, and why it failed (`None` when it did not).
    pub async fn set_sync_result(&self, at: DateTime<Utc>, error: Option<&str>) -> Result<()> {
        self.set_account("sync_error", "synced_at", error, Some(at))
            .await
    }

    /// Replaces the restrictions in force with `restrictions` (Meta lists them all each time).
    pub async fn set_restrictions(
        &self,
        restrictions: &[Restriction],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        sqlx::query("DELETE FROM account_restrictions")
            .execute(&mut *tx)
            .await?;
        for r in restrictions {
            sqlx::query(
                "INSERT INTO account_restrictions (kind, expires_at, since) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(r.kind.as_str())
            .bind(r.expires.map(to_ms))
            .bind(to_ms(at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records what Meta billed for each message on the recipient it went to, matched like a
    /// status: by the callback data herald attached (`r<recipient>:c<campaign>`, trusted when
    /// the row's message id is unknown or the same), or else by the message id. One statement
    /// per way of matching, whatever the count: Meta repeats `pricing` on every status of a
    /// message, so this runs as often as statuses do. Writing the same billing again changes
    /// nothing. Returns how many rows changed.
    pub async fn record_billings(&self, billings: &[Billing]) -> Result<u64> {
        let mut by_callback = Vec::new();
        let mut by_message = Vec::new();
        for b in billings {
            let billed = b.pricing.billed_as();
            let model = b.pricing.model.clone();
            match b
                .callback
                .as_deref()
                .and_then(super::statuses::parse_callback)
            {
                Some((recipient, campaign)) => by_callback.push(serde_json::json!([
                    recipient,
                    campaign,
                    b.provider_id,
                    billed,
                    model
                ])),
                None if !b.provider_id.is_empty() => {
                    by_message.push(serde_json::json!([b.provider_id, billed, model]))
                }
                None => {}
            }
        }
        let mut changed = 0;
        if !by_callback.is_empty() {
            let v = self.json_rows(
                1,
                &[
                    ("id", "bigint"),
                    ("campaign_id", "bigint"),
                    ("provider_id", "text"),
                    ("billed", "text"),
                    ("model", "text"),
                ],
            );
            let pin = self.json_rows_keyed("r.id", 1, 0, "bigint");
            let sql = format!(
                "UPDATE recipients AS r SET billed_category = v.billed, pricing_model = v.model \
                 FROM {v} WHERE r.id = v.id{pin} AND r.campaign_id = v.campaign_id \
                 AND (r.provider_id IS NULL OR r.provider_id = v.provider_id) \
                 AND (r.billed_category IS NULL OR r.billed_category <> v.billed)"
            );
            changed += sqlx::query(&sql)
                .bind(serde_json::Value::Array(by_callback).to_string())
                .execute(&self.relaxed)
                .await?
                .rows_affected();
        }
        if !by_message.is_empty() {
            let v = self.json_rows(
                1,
                &[
                    ("provider_id", "text"),
                    ("billed", "text"),
                    ("model", "text"),
                ],
            );
            let pin = self.json_rows_keyed("r.provider_id", 1, 0, "text");
            let sql = format!(
                "UPDATE recipients AS r SET billed_category = v.billed, pricing_model = v.model \
                 FROM {v} WHERE r.provider_id = v.provider_id{pin} \
                 AND (r.billed_category IS NULL OR r.billed_category <> v.billed)"
            );
            changed += sqlx::query(&sql)
                .bind(serde_json::Value::Array(by_message).to_string())
                .execute(&self.relaxed)
                .await?
                .rows_affected();
        }
        Ok(changed)
    }

    /// Recipients of a campaign (and its runs) by the category Meta billed them in.
    pub async fn billed(&self, campaign_id: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT billed_category AS k, COUNT(*) AS n FROM recipients \
             WHERE campaign_id IN (SELECT id FROM campaigns WHERE (id = $1 OR parent_id = $1) \
             AND summarised_at IS NULL) \
             AND billed_category IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("k")?, r.try_get("n")?)))
            .collect()
    }

    /// Makes recipients held for `reason` (`tier_limit`) due at `now`, when what held them has
    /// gone (the tier rose); returns how many.
    pub async fn release_held(&self, reason: &str, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE recipients SET next_attempt_at = $1 \
             WHERE status = 'queued' AND reason = $2 AND next_attempt_at > $1",
        )
        .bind(to_ms(now))
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Campaign messages that left in the period since `since` (sent, delivered or read).
    pub async fn sent_since(&self, since: DateTime<Utc>) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM recipients WHERE sent_at > $1")
                .bind(to_ms(since))
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
