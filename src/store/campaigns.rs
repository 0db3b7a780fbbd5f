//! Templates, campaigns and triggers.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    opt_time, Campaign, CampaignKind, CampaignStatus, Pace, Result, StepMessage, Store, StoreError,
    Template, TemplateRef, Trigger,
};
use crate::clock::{from_ms, to_ms};
use crate::domain::audience::AudienceExpr;
use crate::domain::interactive::Choices;
use crate::domain::media::{CampaignMedia, MediaFile};
use crate::domain::template::{TemplateSpec, TemplateStatus};

const CAMPAIGN_COLUMNS: &str = "id, title, kind, status, owner, audience, text, variants, \
    template_name, template_lang, template_params, template_names, template_header, template_url, rate, delay_min_ms, delay_max_ms, batch_size, \
    batch_pause_ms, scheduled_at, status_reason, created_at, started_at, finished_at, repeat_rule, \
    parent_id, run_no, step_delay_ms, stop_on_reply, choices, media";

fn json_list(row: &AnyRow, col: &str) -> Result<Vec<String>> {
    let raw: String = row.try_get(col)?;
    serde_json::from_str(&raw)
        .map_err(|e| StoreError::Invalid(format!("campaign column {col} is not a JSON list: {e}")))
}

fn campaign_from_row(row: &AnyRow) -> Result<Campaign> {
    let status: String = row.try_get("status")?;
    let template_name: Option<String> = row.try_get("template_name")?;
    let template = match template_name {
        Some(name) => Some(TemplateRef {
            name,
            lang: row
                .try_get::<Option<String>, _>("template_lang")?
                .unwrap_or_default(),
            params: json_list(row, "template_params")?,
            names: json_list(row, "template_names")?,
            header: row.try_get("template_header")?,
            url: row.try_get("template_url")?,
        }),
        None => None,
    };
    Ok(Campaign {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        kind: CampaignKind::from_db(&row.try_get::<String, _>("kind")?),
        status: CampaignStatus::from_db(&status)
            .ok_or_else(|| StoreError::Invalid(format!("unknown campaign status {status:?}")))?,
        owner: row.try_get("owner")?,
        audience: row.try_get("audience")?,
        text: row.try_get("text")?,
        variants: json_list(row, "variants")?,
        template,
        pace: Pace {
            rate: row.try_get("rate")?,
            delay_min_ms: row.try_get("delay_min_ms")?,
            delay_max_ms: row.try_get("delay_max_ms")?,
            batch_size: row.try_get("batch_size")?,
            batch_pause_ms: row.try_get("batch_pause_ms")?,
        },
        scheduled_at: opt_time(row, "scheduled_at")?,
        status_reason: row.try_get("status_reason")?,
        created_at: from_ms(row.try_get("created_at")?),
        started_at: opt_time(row, "started_at")?,
        finished_at: opt_time(row, "finished_at")?,
        repeat_rule: row.try_get("repeat_rule")?,
        parent_id: row.try_get("parent_id")?,
        run_no: row.try_get("run_no")?,
        step_delay_ms: row.try_get("step_delay_ms")?,
        stop_on_reply: row.try_get::<i64, _>("stop_on_reply")? != 0,
        choices: match row.try_get::<Option<String>, _>("choices")? {
            Some(stored) => Some(Choices::from_stored(&stored).map_err(StoreError::Invalid)?),
            None => None,
        },
        media: match row.try_get::<Option<String>, _>("media")? {
            Some(stored) => Some(CampaignMedia::from_stored(&stored).map_err(StoreError::Invalid)?),
            None => None,
        },
    })
}

pub(super) fn template_from_row(row: &AnyRow) -> Result<Template> {
    let spec: Option<String> = row.try_get("spec")?;
    // A stored description this release cannot read is left out rather than failing every
    // lookup: the template then reads as a declared one, and a send with it is checked by Meta.
    let spec = spec.and_then(|json| match serde_json::from_str::<TemplateSpec>(&json) {
        Ok(spec) => Some(spec),
        Err(error) => {
            tracing::warn!(%error, "a synced template's stored description is unreadable");
            None
        }
    });
    Ok(Template {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        lang: row.try_get("lang")?,
        category: row.try_get("category")?,
        body: row.try_get("body")?,
        params: row.try_get("params")?,
        status: TemplateStatus::parse(&row.try_get::<String, _>("status")?),
        spec,
    })
}

impl Store {
    /// Adds a template, or replaces the body of the one with the same name and language.
    pub async fn add_template(
        &self,
        name: &str,
        lang: &str,
        category: &str,
        body: &str,
        params: i64,
    ) -> Result<Template> {
        sqlx::query(
            "INSERT INTO templates (name, lang, category, body, params) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name, lang) DO UPDATE SET category = excluded.category, \
             body = excluded.body, params = excluded.params, status = 'APPROVED', \
             source = 'declared', spec = NULL",
        )
        .bind(name)
        .bind(lang)
        .bind(category)
        .bind(body)
        .bind(params)
        .execute(&self.pool)
        .await?;
        self.template(name, lang)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("template {name} vanished")))
    }

    pub async fn template(&self, name: &str, lang: &str) -> Result<Option<Template>> {
        let row = sqlx::query("SELECT * FROM templates WHERE name = $1 AND lang = $2")
            .bind(name)
            .bind(lang)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(template_from_row).transpose()
    }

    pub async fn templates(&self) -> Result<Vec<Template>> {
        let rows = sqlx::query("SELECT * FROM templates ORDER BY name, lang")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(template_from_row).collect()
    }

    pub async fn create_campaign(
        &self,
        title: &str,
        owner: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.create_campaign_of(CampaignKind::OneTime, title, owner, now)
            .await
    }

    /// A new draft of `kind`, in one statement (a drip never exists as a one-time draft).
    pub async fn create_campaign_of(
        &self,
        kind: CampaignKind,
        title: &str,
        owner: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let query = sqlx::query(
            "INSERT INTO campaigns (title, owner, kind, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(title)
        .bind(owner)
        .bind(kind.as_str())
        .bind(to_ms(now));
        let row = super::written_row(query, &self.pool).await?;
        Ok(row.try_get("id")?)
    }

    pub async fn campaign(&self, id: i64) -> Result<Option<Campaign>> {
        let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    pub async fn campaigns(&self, status: Option<CampaignStatus>) -> Result<Vec<Campaign>> {
        let rows = match status {
            Some(s) => {
                let sql = format!(
                    "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE status = $1 ORDER BY id"
                );
                sqlx::query(&sql)
                    .bind(s.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id");
                sqlx::query(&sql).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(campaign_from_row).collect()
    }

    /// Sets a campaign's audience. Addresses listed one by one that are not contacts yet are
    /// created (not opted in) in the same transaction, so they are targeted and reported instead
    /// of vanishing, and a failure leaves neither the contacts nor the audience half-written.
    /// Returns how many contacts were created.
    pub async fn set_audience(
        &self,
        id: i64,
        audience: &AudienceExpr,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let created = new_contacts(&mut tx, audience, now).await?;
        sqlx::query("UPDATE campaigns SET audience = $1 WHERE id = $2")
            .bind(audience.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Sets free text; a campaign has either text or a template, so this clears the template.
    pub async fn set_text(&self, id: i64, text: &str) -> Result<()> {
        sqlx::query("UPDATE campaigns SET text = $1, template_name = NULL WHERE id = $2")
            .bind(text)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_variant(&self, id: i64, text: &str) -> Result<usize> {
        let campaign = self
            .campaign(id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("no campaign {id}")))?;
        let mut variants = campaign.variants;
        variants.push(text.to_string());
        let json =
            serde_json::to_string(&variants).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.set_column(id, "variants", &json).await?;
        Ok(variants.len())
    }

    /// Sets (or with `None` removes) the buttons or menu offered under a text campaign's message.
    pub async fn set_choices(&self, id: i64, choices: Option<&Choices>) -> Result<()> {
        sqlx::query("UPDATE campaigns SET choices = $1 WHERE id = $2")
            .bind(choices.map(Choices::to_stored))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets (or with `None` removes) a campaign's media; an attached file's bytes are stored
    /// with it, in one transaction (once per distinct file: they are keyed by their SHA-256).
    pub async fn set_media(
        &self,
        id: i64,
        media: Option<&CampaignMedia>,
        file: Option<&MediaFile>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        if let Some(file) = file {
            sqlx::query(
                "INSERT INTO media_files (sha256, bytes, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&file.sha256)
            .bind(file.bytes.to_vec())
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE campaigns SET media = $1 WHERE id = $2")
            .bind(media.map(CampaignMedia::to_stored))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The bytes of an attached media file, by its SHA-256.
    pub async fn media_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT bytes FROM media_files WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn set_template(&self, id: i64, template: &TemplateRef) -> Result<()> {
        let params = serde_json::to_string(&template.params)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let names = serde_json::to_string(&template.names)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query(
            "UPDATE campaigns SET template_name = $1, template_lang = $2, template_params = $3, \
             template_names = $4, template_header = $5, template_url = $6, \
             text = NULL, variants = '[]' WHERE id = $7",
        )
        .bind(template.name.as_str())
        .bind(template.lang.as_str())
        .bind(params)
        .bind(names)
        .bind(template.header.as_deref())
        .bind(template.url.as_deref())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_pace(&self, id: i64, pace: &Pace) -> Result<()> {
        sqlx::query(
            "UPDATE campaigns SET rate = $1, delay_min_ms = $2, delay_max_ms = $3, \
             batch_size = $4, batch_pause_ms = $5 WHERE id = $6",
        )
        .bind(pace.rate)
        .bind(pace.delay_min_ms)
        .bind(pace.delay_max_ms)
        .bind(pace.batch_size)
        .bind(pace.batch_pause_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_kind(&self, id: i64, kind: CampaignKind) -> Result<()> {
        self.set_column(id, "kind", kind.as_str()).await
    }

    async fn set_column(&self, id: i64, column: &'static str, value: &str) -> Result<()> {
        let sql = format!("UPDATE campaigns SET {column} = $1 WHERE id = $2");
        sqlx::query(&sql)
            .bind(value)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Schedules a draft (or re-schedules a scheduled) campaign.
    pub async fn schedule(&self, id: i64, at: DateTime<Utc>) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE campaigns SET status = 'scheduled', scheduled_at = $1 \
             WHERE id = $2 AND status IN ('draft', 'scheduled')",
        )
        .bind(to_ms(at))
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Moves a campaign from one of `from` to `to`. Returns false when it was in none of them
    /// (another process or command got there first), which makes every transition race-free.
    pub async fn transition(
        &self,
        id: i64,
        from: &[CampaignStatus],
        to: CampaignStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let list = super::placeholders(5, from.len());
        let finished = if to.is_final() {
            Some(to_ms(now))
        } else {
            None
        };
        let sql = format!(
            "UPDATE campaigns SET status = $1, status_reason = $2, \
             finished_at = COALESCE($3, finished_at) WHERE id = $4 AND status IN ({list})"
        );
        let mut q = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(reason)
            .bind(finished)
            .bind(id);
        for s in from {
            q = q.bind(s.as_str());
        }
        Ok(q.execute(&self.pool).await?.rows_affected() > 0)
    }

    /// Completes a sending campaign with nothing left to do. One transaction holds the campaign's
    /// row while it looks for pending recipients, and a deferral that queues a recipient again
    /// holds the same row (see [`Store::apply_statuses`]): so either the deferral's recipient is
    /// seen here, or the deferral finds the campaign completed and makes it send again. Never a
    /// queued recipient on a completed campaign.
    pub async fn complete_if_done(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        // A campaign whose audience is still being resolved is not done, however empty its
        // queue is for the moment: the page that writes a half's last rows moves its cursor in
        // the same transaction, so cursors at their ends mean every row is visible here.
        let row = sqlx::query(&format!(
            "SELECT status, CAST(CASE WHEN {} THEN 1 ELSE 0 END \
             AS BIGINT) AS resolving FROM campaigns WHERE id = $1{}",
            super::resolution::RESOLVING,
            self.lock_rows()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let status: String = row.try_get("status")?;
        if status != CampaignStatus::Sending.as_str() || row.try_get::<i64, _>("resolving")? != 0 {
            return Ok(false);
        }
        let pending = sqlx::query(
            "SELECT id FROM recipients WHERE campaign_id = $1 AND work_due IS NOT NULL LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if pending {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE campaigns SET status = $1, status_reason = NULL, finished_at = $2 WHERE id = $3",
        )
        .bind(CampaignStatus::Completed.as_str())
        .bind(to_ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Makes a campaign recurring, its first run due at `first`.
    pub async fn set_repeat(&self, id: i64, rule: &str, first: DateTime<Utc>) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE campaigns SET kind = 'recurring', repeat_rule = $1, status = 'scheduled', \
             scheduled_at = $2 WHERE id = $3 AND status IN ('draft', 'scheduled')",
        )
        .bind(rule)
        .bind(to_ms(first))
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Spawns the run of a recurring campaign that was due at `due`: moves the parent on to
    /// `next` (or completes it when there is none) and creates the run, due now, in one
    /// transaction. Only the process whose update still sees `due` wins, so a run is spawned
    /// once however many processes schedule. Returns the run's id.
    pub async fn spawn_run(
        &self,
        parent: i64,
        due: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let moved = sqlx::query(
            "UPDATE campaigns SET scheduled_at = COALESCE($1, scheduled_at), \
             status = CASE WHEN $2 = 1 THEN status ELSE 'completed' END, \
             finished_at = CASE WHEN $2 = 1 THEN finished_at ELSE $3 END, \
             started_at = COALESCE(started_at, $3) \
             WHERE id = $4 AND status = 'scheduled' AND scheduled_at = $5",
        )
        .bind(next.map(to_ms))
        .bind(i64::from(next.is_some()))
        .bind(to_ms(now))
        .bind(parent)
        .bind(to_ms(due))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !moved {
            return Ok(None);
        }
        let run_no: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(run_no), 0) + 1 FROM campaigns WHERE parent_id = $1",
        )
        .bind(parent)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (title, kind, status, owner, audience, text, variants, \
             template_name, template_lang, template_params, template_names, template_header, \
             template_url, rate, delay_min_ms, delay_max_ms, \
             batch_size, batch_pause_ms, scheduled_at, created_at, parent_id, run_no, choices, media) \
             SELECT title || $1, 'one_time', 'scheduled', owner, audience, text, variants, \
             template_name, template_lang, template_params, template_names, template_header, \
             template_url, rate, delay_min_ms, delay_max_ms, \
             batch_size, batch_pause_ms, $2, $2, id, $3, choices, media FROM campaigns WHERE id = $4 \
             RETURNING id",
        )
        .bind(format!(" #{run_no}"))
        .bind(to_ms(now))
        .bind(run_no)
        .bind(parent)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Appends a step to a drip; the step is live at once (contacts are queued on it when they
    /// reach it). Returns the step's campaign id.
    /// Adds step `step_no` of a drip with its message, in one statement: a step never exists
    /// without its message.
    pub async fn add_drip_step(
        &self,
        drip: &Campaign,
        step_no: i64,
        delay_ms: i64,
        message: StepMessage<'_>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let (text, template) = match message {
            StepMessage::Text(text) => (Some(text), None),
            StepMessage::Template(t) => (None, Some(t)),
        };
        let params = serde_json::to_string(template.map_or(&[][..], |t| &t.params[..]))
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let names = serde_json::to_string(template.map_or(&[][..], |t| &t.names[..]))
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let query = sqlx::query(
            "INSERT INTO campaigns (title, kind, status, owner, parent_id, run_no, step_delay_ms, \
             created_at, started_at, text, template_name, template_lang, template_params, \
             template_names, template_header, template_url) \
             VALUES ($1, 'drip_step', 'sending', $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, $11, \
             $12, $13) RETURNING id",
        )
        .bind(format!("{} step {step_no}", drip.title))
        .bind(drip.owner.as_deref())
        .bind(drip.id)
        .bind(step_no)
        .bind(delay_ms)
        .bind(to_ms(now))
        .bind(text)
        .bind(template.map(|t| t.name.as_str()))
        .bind(template.map(|t| t.lang.as_str()))
        .bind(params)
        .bind(names)
        .bind(template.and_then(|t| t.header.as_deref()))
        .bind(template.and_then(|t| t.url.as_deref()));
        Ok(super::written_row(query, &self.pool).await?.try_get("id")?)
    }

    pub async fn set_stop_on_reply(&self, drip_id: i64, on: bool) -> Result<()> {
        sqlx::query("UPDATE campaigns SET stop_on_reply = $1 WHERE id = $2")
            .bind(i64::from(on))
            .bind(drip_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Enrolls every contact of an audience on a drip's first step, due at `due`. A contact
    /// already enrolled stays as they are. Returns how many were enrolled now.
    pub async fn enroll_audience(
        &self,
        step_id: i64,
        audience: &AudienceExpr,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        // Listed addresses become contacts in the same transaction as the enrolment.
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        new_contacts(&mut tx, audience, now).await?;
        let (audience_sql, binds) = super::audience::condition(audience, 4);
        let sql = format!(
            "INSERT INTO recipients (campaign_id, contact_id, queued_at, next_attempt_at) \
             SELECT $1, c.id, $2, $3 FROM contacts c WHERE {audience_sql} \
             ON CONFLICT (campaign_id, contact_id) DO NOTHING"
        );
        let mut q = sqlx::query(&sql)
            .bind(step_id)
            .bind(to_ms(now))
            .bind(to_ms(due));
        for b in &binds {
            q = q.bind(b.as_str());
        }
        let enrolled = q.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(enrolled)
    }

    /// Runs of a recurring campaign, oldest first.
    pub async fn runs(&self, parent: i64) -> Result<Vec<Campaign>> {
        let sql = format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE parent_id = $1 ORDER BY run_no"
        );
        let rows = sqlx::query(&sql).bind(parent).fetch_all(&self.pool).await?;
        rows.iter().map(campaign_from_row).collect()
    }

    /// Campaigns whose scheduled time has come.
    pub async fn due_campaigns(&self, now: DateTime<Utc>) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT id FROM campaigns WHERE status = 'scheduled' AND scheduled_at <= $1 ORDER BY id",
        )
        .bind(to_ms(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("id")?))
            .collect()
    }

    /// Adds a trigger that enrolls in drip `campaign_id`.
    pub async fn add_trigger(
        &self,
        pattern: &str,
        is_regex: bool,
        campaign_id: i64,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        insert_trigger(&mut conn, pattern, is_regex, campaign_id, now).await
    }

    /// Adds a trigger that sends campaign `campaign_id`, which becomes a triggered campaign and,
    /// from a draft, goes live: all of it in one transaction, so a campaign is never live without
    /// its trigger.
    pub async fn add_campaign_trigger(
        &self,
        pattern: &str,
        is_regex: bool,
        campaign_id: i64,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        sqlx::query("UPDATE campaigns SET kind = $1 WHERE id = $2")
            .bind(CampaignKind::Triggered.as_str())
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE campaigns SET status = 'sending', status_reason = NULL \
             WHERE id = $1 AND status = 'draft'",
        )
        .bind(campaign_id)
        .execute(&mut *tx)
        .await?;
        let id = insert_trigger(&mut tx, pattern, is_regex, campaign_id, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn triggers(&self) -> Result<Vec<Trigger>> {
        let rows =
            sqlx::query("SELECT id, pattern, is_regex, campaign_id FROM triggers ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(Trigger {
                    id: r.try_get("id")?,
                    pattern: r.try_get("pattern")?,
                    is_regex: r.try_get::<i64, _>("is_regex")? != 0,
                    campaign_id: r.try_get("campaign_id")?,
                })
            })
            .collect()
    }

    pub async fn remove_trigger(&self, id: i64) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM triggers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }
}

/// The contacts an audience of listed addresses names that do not exist yet, created.
async fn new_contacts(
    conn: &mut sqlx::AnyConnection,
    audience: &AudienceExpr,
    now: DateTime<Utc>,
) -> Result<usize> {
    match audience {
        AudienceExpr::Addresses(list) => super::contacts::insert_missing(conn, list, now).await,
        _ => Ok(0),
    }
}

async fn insert_trigger(
    conn: &mut sqlx::AnyConnection,
    pattern: &str,
    is_regex: bool,
    campaign_id: i64,
    now: DateTime<Utc>,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO triggers (pattern, is_regex, campaign_id, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(pattern)
    .bind(i64::from(is_regex))
    .bind(campaign_id)
    .bind(to_ms(now))
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}
