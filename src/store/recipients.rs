//! Recipient rows: claiming, recording outcomes, delivery statuses, replies, the tier ledger and
//! reports.
//!
//! A row's life: `queued` -> `claimed` (leased to one dispatcher) -> `sending` (written just before
//! the channel is called) -> `sent` -> `delivered` -> `read`; or `skipped` / `failed`. A row left in
//! `claimed` by a dead process goes back to `queued`; one left in `sending` may have reached the
//! customer, so it becomes `unknown` and is never sent again (a later status webhook can still
//! reconcile it).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{
    json_list, opt_time, Backend, Claimed, Consent, Contact, QueuePosition, RecipientRow, Report,
    Result, Store, StoreError,
};
use crate::clock::to_ms;
use crate::domain::actions::{PostAction, RecipientEvent};
use crate::domain::{Address, AttrKey, Lang, SkipReason};

/// A campaign and, for a recurring one, its runs (`$1` is the campaign id).
/// The live rows of a report: a summarised campaign's rows are read from its summary instead
/// (`store/retention.rs`), even while they are still being deleted.
const CAMPAIGN_AND_RUNS: &str =
    "SELECT id FROM campaigns WHERE (id = $1 OR parent_id = $1) AND summarised_at IS NULL";

/// An inbound message counted against the campaign the contact last received.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replied {
    pub campaign_id: i64,
    /// Whether it is the contact's first reply to that campaign.
    pub first: bool,
}

/// How a send attempt ended, as the dispatcher records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        provider_id: Option<String>,
        variant: Option<i64>,
        category: String,
        outside_window: bool,
    },
    Skipped {
        reason: SkipReason,
    },
    Failed {
        code: String,
        reason: String,
    },
    /// The request may have reached the channel but no answer came: never re-sent on its own.
    Unknown {
        code: String,
        reason: String,
    },
    /// Not now: back to the queue until `at` (tier budget, quiet hours, rate limits, retries).
    Retry {
        at: DateTime<Utc>,
        code: Option<String>,
        reason: Option<String>,
        /// The attempt `mark_sending` counted should not count (rate limits, campaign pauses).
        refund_attempt: bool,
    },
}

/// Why recovery calls a row `unknown`.
const INTERRUPTED: &str = "interrupted while sending: may have been delivered";

/// Most outcomes [`Store::record_many`] writes in one statement (the rows travel as one JSON
/// parameter, so no parameter limit applies): the dispatcher hands over no more at once, so each
/// of its batches is one statement.
pub const OUTCOMES_PER_STATEMENT: usize = 256;

/// One claimed row as a claim reads it back: the recipient's id, campaign, attempts before this
/// one and due time, then the contact's id, address, name, language, time zone, consent and
/// its time, last inbound message time, marketing stop, unreachable reason and attributes.
#[derive(serde::Deserialize)]
struct ClaimedJson(
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
    Option<i64>,
    i64,
    Option<String>,
    BTreeMap<String, String>,
);

impl ClaimedJson {
    fn into_claimed(self, lease: i64) -> Claimed {
        let ClaimedJson(
            recipient_id,
            campaign_id,
            attempts,
            due,
            contact_id,
            address,
            name,
            lang,
            tz,
            consent,
            consent_at,
            last_inbound_at,
            marketing_stopped,
            unreachable,
            attrs,
        ) = self;
        Claimed {
            recipient_id,
            campaign_id,
            attempts,
            contact: Contact {
                id: contact_id,
                address: Address::from_canonical(address),
                name,
                lang: lang.map(Lang::from_canonical),
                tz,
                consent: Consent::from_db(&consent),
                consent_at: consent_at.map(crate::clock::from_ms),
                last_inbound_at: last_inbound_at.map(crate::clock::from_ms),
                marketing_stopped: marketing_stopped != 0,
                unreachable,
                labels: Vec::new(),
                // Keys are stored canonical (written through `AttrKey`).
                attrs: attrs
                    .into_iter()
                    .map(|(k, v)| (AttrKey::from_canonical(k), v))
                    .collect(),
            },
            lease,
            position: QueuePosition {
                due,
                id: recipient_id,
            },
        }
    }
}

/// Binds the position a claim starts after, when it has one: the claim's last two parameters.
fn bind_after<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    after: Option<QueuePosition>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match after {
        Some(after) => query.bind(after.due).bind(after.id),
        None => query,
    }
}

/// What a claim makes of the rows it takes.
#[derive(Debug, Clone, Copy)]
enum ClaimAs {
    /// `claimed`: each is marked `sending` on its own right before it leaves (paced sends).
    Claimed,
    /// `sending` at once, looking only past `after` in the queue.
    Sending { after: Option<QueuePosition> },
}

impl Store {
    /// Leases up to `limit` due recipients of one campaign to `worker` until `now + lease`, the
    /// earliest due first, as one claim with one lease row (see [`Store::renew`]). On PostgreSQL
    /// concurrent workers skip each other's rows (`FOR UPDATE SKIP LOCKED`), so any number of
    /// processes share a campaign without waiting on each other; SQLite has a single writer. The
    /// outer `status = 'queued'` re-check keeps a row another worker claimed in between from
    /// being claimed twice. The claimed rows come back with their contacts' attributes folded in
    /// as JSON.
    pub async fn claim(
        &self,
        campaign_id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<Claimed>> {
        self.claim_as(campaign_id, worker, now, lease, limit, ClaimAs::Claimed)
            .await
    }

    /// Claims like [`Store::claim`] and marks the rows `sending` in the same durable statement,
    /// as [`Store::mark_sending`] would: for rows about to be sent at once (pacing off), which
    /// then cost one write fewer each. `attempts` of each row is still the count before this
    /// attempt. A row the caller then decides not to send must be recorded (skip, or a hold
    /// that refunds the attempt), or recovery reports it `unknown`.
    ///
    /// `after` skips the queue up to and including a position an earlier claim of the same run
    /// reached: on PostgreSQL the rows in flight stay at the head of the queue's index (a claim
    /// leaves their due time as it is, so it can write them in place), and every claim would
    /// otherwise walk past all of them. A row put back behind that position is found by the next
    /// run, which starts from the head.
    pub async fn claim_for_sending(
        &self,
        campaign_id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
        after: Option<QueuePosition>,
    ) -> Result<Vec<Claimed>> {
        self.claim_as(
            campaign_id,
            worker,
            now,
            lease,
            limit,
            ClaimAs::Sending { after },
        )
        .await
    }

    async fn claim_as(
        &self,
        campaign_id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
        how: ClaimAs,
    ) -> Result<Vec<Claimed>> {
        let (sending, after) = match how {
            ClaimAs::Claimed => (false, None),
            ClaimAs::Sending { after } => (true, after),
        };
        let (status, set_attempts, pool) = if sending {
            ("sending", ", attempts = attempts + 1", &self.pool)
        } else {
            ("claimed", "", &self.relaxed)
        };
        // A claim changes `status` and `claimed_by` alone, neither of them indexed: PostgreSQL
        // writes the row in place. There `work_due` (migration 0007) is the due time of a row
        // that needs work, so the index walks the campaign's due rows in order, passing over the
        // few in flight at its head; on SQLite rows in flight are -1 and not even passed over.
        // Either way the LIMIT stops after one window.
        // With `after`, its two values follow the limit's parameter.
        let due = |first: usize| {
            let after = match after {
                Some(_) => format!(" AND (work_due, id) > (${}, ${})", first + 3, first + 4),
                None => String::new(),
            };
            format!(
                "SELECT id FROM recipients WHERE campaign_id = ${first} \
                 AND work_due BETWEEN 0 AND ${}{after} AND status = 'queued' \
                 ORDER BY work_due, id LIMIT ${}",
                first + 1,
                first + 2
            )
        };
        let set = |worker: usize| {
            format!(
                "UPDATE recipients SET status = '{status}', claimed_by = ${worker}{set_attempts} \
                 WHERE status = 'queued'"
            )
        };
        // Each claimed row comes back as a JSON array of what rendering and the send rules need
        // (see `ClaimedJson`), all of a claim's rows in one array: one value to hand over and
        // decode rather than a row of fifteen columns per recipient. The contact's attributes
        // are a JSON object in it; its labels are not read: nothing after a claim looks at them.
        let columns = |attrs: &str| {
            format!(
                "r.id, r.campaign_id, r.attempts - {before}, r.next_attempt_at, c.id, \
                 c.address, c.name, c.lang, c.tz, c.consent, c.consent_at, c.last_inbound_at, \
                 c.marketing_stopped, c.unreachable, {attrs}",
                before = i64::from(sending),
            )
        };
        let until = to_ms(now + lease);
        let (claimed, lease): (Option<String>, Option<i64>) = match self.backend {
            Backend::Postgres => {
                // One statement: the claimed rows feed their lease and the read-back directly.
                // `= ANY(ARRAY(...))` runs the locking subquery exactly once; an `IN (...)`
                // semi-join may be re-scanned by the planner and lock more rows than the limit.
                let sql = format!(
                    "WITH r AS ({} AND id = ANY(ARRAY({} FOR UPDATE SKIP LOCKED)) \
                     RETURNING id, campaign_id, attempts, contact_id, next_attempt_at), \
                     l AS (INSERT INTO leases (worker, until, recipient_ids) \
                     SELECT $2, $1, json_agg(id)::text FROM r HAVING COUNT(*) > 0 RETURNING id) \
                     SELECT json_agg(json_build_array({}))::text AS claimed, MAX(l.id) AS lease \
                     FROM r JOIN contacts c ON c.id = r.contact_id CROSS JOIN l",
                    set(2),
                    due(3),
                    columns(
                        "(SELECT COALESCE(json_object_agg(a.key, a.value), '{}') \
                         FROM contact_attrs a WHERE a.contact_id = c.id)"
                    ),
                );
                let query = sqlx::query(&sql)
                    .bind(until)
                    .bind(worker)
                    .bind(campaign_id)
                    .bind(to_ms(now))
                    .bind(limit);
                let row = super::written_row(bind_after(query, after), pool).await?;
                (row.try_get("claimed")?, row.try_get("lease")?)
            }
            Backend::Sqlite => {
                // The same in three statements in one transaction, each answering with one row
                // at most: every row handed over from SQLite's thread costs a wake-up.
                let mut tx = pool.begin_with(self.begin_write()).await?;
                let sql = format!(
                    "INSERT INTO leases (worker, until, recipient_ids) \
                     SELECT $1, $2, json_group_array(id) FROM ({}) HAVING COUNT(*) > 0 \
                     RETURNING id, recipient_ids",
                    due(3)
                );
                let query = sqlx::query(&sql)
                    .bind(worker)
                    .bind(until)
                    .bind(campaign_id)
                    .bind(to_ms(now))
                    .bind(limit);
                let Some(lease) = bind_after(query, after).fetch_optional(&mut *tx).await? else {
                    return Ok(Vec::new());
                };
                let ids: String = lease.try_get("recipient_ids")?;
                let lease: i64 = lease.try_get("id")?;
                // The rows were read `queued` inside this write transaction: all of them change.
                let sql = format!("{} AND {}", set(1), self.in_json_ids("id", 2));
                sqlx::query(&sql)
                    .bind(worker)
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
                let sql = format!(
                    "SELECT json_group_array(json_array({})) AS claimed FROM recipients r \
                     JOIN contacts c ON c.id = r.contact_id WHERE {}",
                    columns(
                        "json((SELECT json_group_object(a.key, a.value) FROM contact_attrs a \
                         WHERE a.contact_id = c.id))"
                    ),
                    self.in_json_ids("r.id", 1),
                );
                let claimed: String = sqlx::query(&sql)
                    .bind(&ids)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("claimed")?;
                tx.commit().await?;
                (Some(claimed), Some(lease))
            }
        };
        let (Some(claimed), Some(lease)) = (claimed, lease) else {
            return Ok(Vec::new());
        };
        let claimed: Vec<ClaimedJson> = serde_json::from_str(&claimed)
            .map_err(|e| StoreError::Invalid(format!("claimed rows are not valid JSON: {e}")))?;
        let mut claimed: Vec<Claimed> =
            claimed.into_iter().map(|c| c.into_claimed(lease)).collect();
        claimed.sort_unstable_by_key(|c| c.recipient_id);
        Ok(claimed)
    }

    /// Marks claimed rows as possibly sent, right before the channel is called. Returns the ids
    /// still ours: a row an opt-out or a cancel took away in the meantime is not returned and
    /// must not be sent. This is the one dispatcher write that must be durable before the
    /// message leaves, so it is committed with a full flush (and flushes every write before it).
    pub async fn mark_sending(&self, ids: &[i64], worker: &str) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = json_list(ids);
        let sql = format!(
            "UPDATE recipients SET status = 'sending', attempts = attempts + 1 \
             WHERE status = 'claimed' AND claimed_by = $1 AND {}",
            self.in_json_ids("id", 2)
        );
        let marked = sqlx::query(&sql)
            .bind(worker)
            .bind(&list)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let mut ours: Vec<i64> = if marked == ids.len() as u64 {
            ids.to_vec()
        } else {
            // Some were taken away (the rare case): ask which are ours. Rows this worker marked
            // stay `sending` until it records them, so the answer cannot change meanwhile.
            let sql = format!(
                "SELECT id FROM recipients WHERE status = 'sending' AND claimed_by = $1 \
                 AND {}",
                self.in_json_ids("id", 2)
            );
            sqlx::query(&sql)
                .bind(worker)
                .bind(&list)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>("id"))
                .collect::<Result<_, _>>()?
        };
        ours.sort_unstable();
        Ok(ours)
    }

    /// Extends `worker`'s leases (a heartbeat while a window is in flight), so a lease can be
    /// short and a dead process's rows come back soon. Returns how many were still there: a
    /// lease recovery already took is gone.
    pub async fn renew(&self, leases: &[i64], worker: &str, until: DateTime<Utc>) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE leases SET until = $1 WHERE worker = $2 AND {}",
            self.in_json_ids("id", 3)
        );
        Ok(sqlx::query(&sql)
            .bind(to_ms(until))
            .bind(worker)
            .bind(json_list(leases))
            .execute(&self.relaxed)
            .await?
            .rows_affected())
    }

    /// Ends `worker`'s leases once every row they covered is recorded (or given back). A lease
    /// left behind by a failure runs out instead, and recovery settles what it still holds; so
    /// does a lease that still covers a row `worker` holds in flight (`claimed` or `sending`):
    /// ended, nothing would ever bring that row back, and its campaign would never finish.
    /// Returns how many leases were kept for that reason (0 when all is well).
    pub async fn end_leases(&self, leases: &[i64], worker: &str) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "DELETE FROM leases WHERE worker = $1 AND {} AND NOT EXISTS (SELECT 1 FROM \
             recipients r WHERE {})",
            self.in_json_ids("id", 2),
            self.held_under_lease(),
        );
        let ended = sqlx::query(&sql)
            .bind(worker)
            .bind(json_list(leases))
            .execute(&self.relaxed)
            .await?
            .rows_affected();
        Ok((leases.len() as u64).saturating_sub(ended))
    }

    /// Records how an attempt by `worker` ended. Only a row `worker` still holds is touched, so a
    /// late answer never overwrites a newer state or another worker's claim. A row this worker
    /// was sending that a recovery already called `unknown` (its lease ran out while the process
    /// lived) takes the real outcome.
    pub async fn record(
        &self,
        recipient_id: i64,
        outcome: &Outcome,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let ours = "claimed_by = $1 AND status IN ('claimed', 'sending', 'unknown')";
        let sql;
        let q = match outcome {
            Outcome::Sent {
                provider_id,
                variant,
                category,
                outside_window,
            } => {
                sql = format!(
                    "UPDATE recipients SET status = 'sent', provider_id = $2, variant = $3, \
                 cost_category = $4, outside_window = $5, sent_at = $6, \
                 reason = NULL, error_code = NULL WHERE id = $7 AND {ours}"
                );
                sqlx::query(&sql)
                    .bind(worker)
                    .bind(provider_id.as_deref())
                    .bind(*variant)
                    .bind(category.as_str())
                    .bind(i64::from(*outside_window))
                    .bind(to_ms(now))
                    .bind(recipient_id)
            }
            Outcome::Skipped { reason } => {
                sql = format!(
                    "UPDATE recipients SET status = 'skipped', reason = $2 \
                 WHERE id = $3 AND {ours}"
                );
                sqlx::query(&sql)
                    .bind(worker)
                    .bind(reason.as_str())
                    .bind(recipient_id)
            }
            Outcome::Failed { code, reason } => {
                sql = format!(
                    "UPDATE recipients SET status = 'failed', error_code = $2, reason = $3, \
                 failed_at = $4 WHERE id = $5 AND {ours}"
                );
                sqlx::query(&sql)
                    .bind(worker)
                    .bind(code.as_str())
                    .bind(reason.as_str())
                    .bind(to_ms(now))
                    .bind(recipient_id)
            }
            Outcome::Unknown { code, reason } => {
                sql = format!(
                    "UPDATE recipients SET status = 'unknown', error_code = $2, reason = $3 \
                 WHERE id = $4 AND {ours}"
                );
                sqlx::query(&sql)
                    .bind(worker)
                    .bind(code.as_str())
                    .bind(format!("may have been delivered: {reason}"))
                    .bind(recipient_id)
            }
            Outcome::Retry {
                at,
                code,
                reason,
                refund_attempt,
            } => {
                sql = format!(
                    "UPDATE recipients SET status = 'queued', next_attempt_at = $2, \
                 error_code = COALESCE($3, error_code), reason = COALESCE($4, reason), \
                 attempts = attempts - $5, claimed_by = NULL \
                 WHERE id = $6 AND {ours}"
                );
                sqlx::query(&sql)
                    .bind(worker)
                    .bind(to_ms(*at))
                    .bind(code.as_deref())
                    .bind(reason.as_deref())
                    .bind(i64::from(*refund_attempt))
                    .bind(recipient_id)
            }
        };
        q.execute(&self.relaxed).await?;
        Ok(())
    }

    /// Records many outcomes of `worker`'s attempts with as few statements as possible: sends
    /// and skips (nearly every outcome of a big campaign) go in multi-row updates, the rare rest
    /// one by one. Same rules as [`Store::record`].
    pub async fn record_many(
        &self,
        outcomes: &[(i64, Outcome, DateTime<Utc>)],
        worker: &str,
    ) -> Result<()> {
        let mut sent = Vec::new();
        let mut skipped = Vec::new();
        for (id, outcome, at) in outcomes {
            match outcome {
                Outcome::Sent { .. } => sent.push((*id, outcome, *at)),
                Outcome::Skipped { .. } => skipped.push((*id, outcome, *at)),
                other => self.record(*id, other, worker, *at).await?,
            }
        }
        let ours = "r.claimed_by = $1 AND r.status IN ('claimed', 'sending', 'unknown')";
        let pin = self.json_rows_keyed("r.id", 2, 0, "bigint");
        for chunk in sent.chunks(OUTCOMES_PER_STATEMENT) {
            // The rows travel as one JSON parameter, so each gets its own wamid and variant while
            // the statement text never changes.
            // Serialised straight from borrowed tuples: no JSON tree is built per row.
            type SentRow<'a> = (i64, Option<&'a str>, Option<i64>, &'a str, i64, i64);
            let rows: Vec<SentRow> = chunk
                .iter()
                .filter_map(|(id, outcome, at)| match outcome {
                    Outcome::Sent {
                        provider_id,
                        variant,
                        category,
                        outside_window,
                    } => Some((
                        *id,
                        provider_id.as_deref(),
                        *variant,
                        category.as_str(),
                        i64::from(*outside_window),
                        to_ms(*at),
                    )),
                    _ => None,
                })
                .collect();
            let v = self.json_rows(
                2,
                &[
                    ("id", "bigint"),
                    ("provider_id", "text"),
                    ("variant", "bigint"),
                    ("category", "text"),
                    ("outside_window", "bigint"),
                    ("sent_at", "bigint"),
                ],
            );
            let sql = format!(
                "UPDATE recipients AS r SET status = 'sent', provider_id = v.provider_id, \
                 variant = v.variant, cost_category = v.category, \
                 outside_window = v.outside_window, sent_at = v.sent_at, \
                 reason = NULL, error_code = NULL FROM {v} WHERE r.id = v.id{pin} AND {ours}"
            );
            let json = serde_json::to_string(&rows)
                .map_err(|e| StoreError::Invalid(format!("outcomes as JSON: {e}")))?;
            let written = sqlx::query(&sql)
                .bind(worker)
                .bind(json)
                .execute(&self.relaxed)
                .await?
                .rows_affected();
            if written < rows.len() as u64 {
                // Rows this worker claimed and sent that it no longer holds: another worker
                // took them after a recovery, or a bug. Either way, say which (the outcomes
                // that matched are written: looking does not fail the batch).
                let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
                let held = self.in_flight_elsewhere(&ids, worker).await;
                tracing::warn!(
                    given = rows.len(),
                    written,
                    ?held,
                    "sent messages whose rows this worker no longer holds: their outcome is not written"
                );
            }
        }
        for chunk in skipped.chunks(OUTCOMES_PER_STATEMENT) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .filter_map(|(id, outcome, _)| match outcome {
                    Outcome::Skipped { reason } => Some(serde_json::json!([id, reason.as_str()])),
                    _ => None,
                })
                .collect();
            let v = self.json_rows(2, &[("id", "bigint"), ("reason", "text")]);
            let sql = format!(
                "UPDATE recipients AS r SET status = 'skipped', reason = v.reason \
                 FROM {v} WHERE r.id = v.id{pin} AND {ours}"
            );
            sqlx::query(&sql)
                .bind(worker)
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&self.relaxed)
                .await?;
        }
        Ok(())
    }

    /// Of `ids`, the rows not `sent` as `(id, status, claimed_by)`, at most 20: what the log
    /// shows when outcomes or leases do not add up.
    pub async fn in_flight_elsewhere(
        &self,
        ids: &[i64],
        worker: &str,
    ) -> Result<Vec<(i64, String, Option<String>)>> {
        let sql = format!(
            "SELECT id, status, claimed_by FROM recipients WHERE {} \
             AND NOT (status = 'sent' AND claimed_by = $1) ORDER BY id LIMIT 20",
            self.in_json_ids("id", 2)
        );
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(json_list(ids))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("status")?,
                    r.try_get("claimed_by")?,
                ))
            })
            .collect()
    }

    /// Row `r` is one of the rows of the lease `leases` and worker `$1` still holds it in
    /// flight: what keeps a lease from ending, and what the log then names.
    fn held_under_lease(&self) -> String {
        format!(
            "{} AND r.claimed_by = $1 AND r.status IN ('claimed', 'sending')",
            self.in_ids_of("r.id", &self.json_ids("leases.recipient_ids"))
        )
    }

    /// The rows of `leases` that `worker` still holds `claimed` or `sending`, as `(id, status)`,
    /// at most 20, with their count: what the log shows when a step keeps a lease.
    pub async fn held_by_leases(
        &self,
        leases: &[i64],
        worker: &str,
    ) -> Result<(i64, Vec<(i64, String)>)> {
        let sql = format!(
            "SELECT r.id, r.status FROM leases, recipients r WHERE {} AND {} ORDER BY r.id",
            self.in_json_ids("leases.id", 2),
            self.held_under_lease(),
        );
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(json_list(leases))
            .fetch_all(&self.pool)
            .await?;
        let count = rows.len() as i64;
        let first = rows
            .iter()
            .take(20)
            .map(|r| Ok((r.try_get("id")?, r.try_get("status")?)))
            .collect::<Result<_>>()?;
        Ok((count, first))
    }

    /// Returns rows `worker` claimed straight into `sending` but never handed to a channel (the
    /// work on them stopped at an error first) to the queue, giving back the attempt the claim
    /// counted. Left alone, their lease would run out and they would be reported `unknown`.
    pub async fn release_unsent(&self, ids: &[i64], worker: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE recipients SET status = 'queued', attempts = attempts - 1, \
             claimed_by = NULL \
             WHERE status = 'sending' AND claimed_by = $1 AND {}",
            self.in_json_ids("id", 2)
        );
        sqlx::query(&sql)
            .bind(worker)
            .bind(json_list(ids))
            .execute(&self.relaxed)
            .await?;
        Ok(())
    }

    /// Returns claimed rows nobody will send (pause, cancel, shutdown) to the queue without an
    /// attempt.
    pub async fn release(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE recipients SET status = 'queued', claimed_by = NULL \
             WHERE status = 'claimed' AND {}",
            self.in_json_ids("id", 1)
        );
        sqlx::query(&sql)
            .bind(json_list(ids))
            .execute(&self.relaxed)
            .await?;
        Ok(())
    }

    /// After a crash or a lost worker: leases that ran out come back. `claimed` rows were never
    /// handed to a channel and are queued again; `sending` rows may have left, so they become
    /// `unknown` (a status webhook can still reconcile them) and are never sent again. With
    /// `everything`, every lease counts as run out (a single-process SQLite start: nobody else
    /// can hold one). The leases recovered are deleted. Returns (requeued, unknown).
    pub async fn recover(&self, now: DateTime<Utc>, everything: bool) -> Result<(u64, u64)> {
        let cutoff = if everything { i64::MAX } else { to_ms(now) };
        if self.backend == Backend::Postgres {
            return self.recover_postgres(cutoff).await;
        }
        // SQLite: one writer, and this transaction takes the write lock first (`BEGIN
        // IMMEDIATE`), so no lease can come or go between its statements. The recipients of the
        // leases that ran out, each with the worker that held it: a row another worker has
        // claimed since (it was recorded and queued again) is not touched.
        let expired = "(SELECT l.worker, e.value AS id FROM leases l, \
                       json_each(l.recipient_ids) AS e WHERE l.until <= $1) AS x";
        let mut tx = self.relaxed.begin_with(self.begin_write()).await?;
        let requeued = sqlx::query(&format!(
            "UPDATE recipients AS r SET status = 'queued', claimed_by = NULL FROM {expired} \
             WHERE r.id = x.id AND r.claimed_by = x.worker AND r.status = 'claimed'"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let unknown = sqlx::query(&format!(
            "UPDATE recipients AS r SET status = 'unknown', reason = '{INTERRUPTED}' FROM {expired} \
             WHERE r.id = x.id AND r.claimed_by = x.worker AND r.status = 'sending'"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM leases WHERE until <= $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((requeued, unknown))
    }

    /// [`Store::recover`] on PostgreSQL, as one statement: the leases it deletes are exactly the
    /// ones whose rows it settles. In separate statements a claim committed between them, with a
    /// lease already run out (its process stalled for longer than a lease), would lose its lease
    /// without its rows being settled; killed then, its process left them in flight for ever.
    /// A lease renewed meanwhile is re-read under its row lock and kept, rows and all.
    async fn recover_postgres(&self, cutoff: i64) -> Result<(u64, u64)> {
        let sql = format!(
            "WITH gone AS (DELETE FROM leases WHERE until <= $1 RETURNING worker, recipient_ids), \
             x AS (SELECT g.worker, e::bigint AS id FROM gone g, \
             json_array_elements_text(g.recipient_ids::json) AS e), \
             settled AS (UPDATE recipients AS r SET \
             status = CASE WHEN r.status = 'claimed' THEN 'queued' ELSE 'unknown' END, \
             claimed_by = CASE WHEN r.status = 'claimed' THEN NULL ELSE r.claimed_by END, \
             reason = CASE WHEN r.status = 'claimed' THEN r.reason ELSE '{INTERRUPTED}' END \
             FROM x WHERE r.id = x.id AND r.claimed_by = x.worker \
             AND r.status IN ('claimed', 'sending') RETURNING r.status) \
             SELECT COUNT(*) FILTER (WHERE status = 'queued') AS requeued, \
             COUNT(*) FILTER (WHERE status = 'unknown') AS unknown FROM settled"
        );
        let query = sqlx::query(&sql).bind(cutoff);
        let row = super::written_row(query, &self.relaxed).await?;
        let count = |column: &str| -> Result<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
        };
        Ok((count("requeued")?, count("unknown")?))
    }

    /// Whether any recipient still needs work (queued now or later, or in flight). Stops at the
    /// first one, so it is cheap on a campaign of any size.
    pub async fn has_pending(&self, campaign_id: i64) -> Result<bool> {
        let row = sqlx::query(
            "SELECT id FROM recipients WHERE campaign_id = $1 AND work_due IS NOT NULL LIMIT 1",
        )
        .bind(campaign_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Recipients that still need work (queued now or later, or in flight).
    pub async fn pending(&self, campaign_id: i64) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM recipients WHERE campaign_id = $1 AND work_due IS NOT NULL",
        )
        .bind(campaign_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    /// When the next held recipient of a campaign becomes due, if any is waiting.
    pub async fn next_due(&self, campaign_id: i64) -> Result<Option<DateTime<Utc>>> {
        // On PostgreSQL rows in flight keep their due time (`work_due`), and come first: passed
        // over.
        let row = sqlx::query(
            "SELECT work_due AS t FROM recipients WHERE campaign_id = $1 AND work_due >= 0 \
             AND status = 'queued' ORDER BY work_due LIMIT 1",
        )
        .bind(campaign_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map_or(Ok(None), |row| opt_time(&row, "t"))
    }

    /// Queues one contact on a campaign (a trigger firing). False if they were on it already:
    /// each trigger fires at most once per contact per campaign.
    pub async fn enqueue(
        &self,
        campaign_id: i64,
        contact_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.enqueue_at(campaign_id, contact_id, now, now).await
    }

    /// Queues one contact on a campaign, due at `due` (a drip step's delay).
    pub async fn enqueue_at(
        &self,
        campaign_id: i64,
        contact_id: i64,
        now: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "INSERT INTO recipients (campaign_id, contact_id, queued_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id, contact_id) DO NOTHING",
        )
        .bind(campaign_id)
        .bind(contact_id)
        .bind(to_ms(now))
        .bind(to_ms(due))
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// A contact wrote in: their pending steps of drips that stop on reply are dropped.
    pub async fn stop_drips_on_reply(&self, contact_id: i64) -> Result<u64> {
        Ok(sqlx::query(&format!(
            "UPDATE recipients SET status = 'skipped', reason = $2 \
             WHERE contact_id = $1 AND status IN ('queued', 'claimed') AND {}",
            self.in_ids_of(
                "campaign_id",
                "SELECT s.id FROM campaigns s JOIN campaigns d ON d.id = s.parent_id \
                 WHERE s.kind = 'drip_step' AND d.stop_on_reply = 1"
            )
        ))
        .bind(contact_id)
        .bind(SkipReason::Replied.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Cancelling drops everything not yet handed to a channel.
    pub async fn skip_pending(&self, campaign_id: i64, reason: SkipReason) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE recipients SET status = 'skipped', reason = $1 \
             WHERE campaign_id = $2 AND work_due IS NOT NULL AND status IN ('queued', 'claimed')",
        )
        .bind(reason.as_str())
        .bind(campaign_id)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Counts an inbound message as a reply to the campaign the contact last received (sent in
    /// the last `within`). Returns that campaign if this is its first reply from the contact.
    pub async fn mark_replied(
        &self,
        contact_id: i64,
        at: DateTime<Utc>,
        within: chrono::Duration,
    ) -> Result<Option<Replied>> {
        // Channels stamp messages in whole seconds (WhatsApp's `timestamp`), so a reply in the
        // same second as the send reads as slightly older than it: allow for the truncation.
        let row = sqlx::query(
            "SELECT id, campaign_id, replied_at FROM recipients WHERE contact_id = $1 \
             AND sent_at IS NOT NULL AND sent_at <= $2 AND sent_at >= $3 \
             ORDER BY sent_at DESC, id DESC LIMIT 1",
        )
        .bind(contact_id)
        .bind(to_ms(at) + 999)
        .bind(to_ms(at - within))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let campaign_id = row.try_get("campaign_id")?;
        if row.try_get::<Option<i64>, _>("replied_at")?.is_some() {
            return Ok(Some(Replied {
                campaign_id,
                first: false,
            }));
        }
        let first = sqlx::query(
            "UPDATE recipients SET replied_at = $1 WHERE id = $2 AND replied_at IS NULL",
        )
        .bind(to_ms(at))
        .bind(row.try_get::<i64, _>("id")?)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        Ok(Some(Replied { campaign_id, first }))
    }

    /// Adds a post-campaign trigger.
    pub async fn add_action(
        &self,
        campaign_id: i64,
        event: &RecipientEvent,
        action: &PostAction,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let query = sqlx::query(
            "INSERT INTO campaign_actions (campaign_id, event, action, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(campaign_id)
        .bind(event.key())
        .bind(action.key())
        .bind(to_ms(now));
        Ok(super::written_row(query, &self.pool).await?.try_get("id")?)
    }

    /// The actions for `event` on a campaign, including those set on the recurring campaign it
    /// is a run of.
    pub async fn actions_for(
        &self,
        campaign_id: i64,
        event: &RecipientEvent,
    ) -> Result<Vec<PostAction>> {
        let stored: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM campaign_actions WHERE event = $2 AND campaign_id IN \
             (SELECT id FROM campaigns WHERE id = $1 UNION \
              SELECT parent_id FROM campaigns WHERE id = $1 AND parent_id IS NOT NULL) ORDER BY id",
        )
        .bind(campaign_id)
        .bind(event.key())
        .fetch_all(&self.pool)
        .await?;
        Ok(stored
            .iter()
            .filter_map(|action| read_action(campaign_id, &event.key(), action))
            .map(|(_, action)| action)
            .collect())
    }

    /// Every rule of a campaign as `(event, action)`.
    pub async fn actions(&self, campaign_id: i64) -> Result<Vec<(RecipientEvent, PostAction)>> {
        let rows = sqlx::query(
            "SELECT event, action FROM campaign_actions WHERE campaign_id = $1 ORDER BY id",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        let mut rules = Vec::with_capacity(rows.len());
        for row in &rows {
            let (event, action): (String, String) = (row.try_get("event")?, row.try_get("action")?);
            rules.extend(read_action(campaign_id, &event, &action));
        }
        Ok(rules)
    }

    /// Among the given recipients (the quality guard's window of one campaign), those finished:
    /// (attempts, failures, opt-outs), each row's status and its contact's consent as they are
    /// now. Key lookups only, whatever the campaign's size: the rows are not filtered by
    /// campaign as well, since SQLite would then walk the campaign's rows instead (measured).
    pub async fn quality(&self, ids: &[i64]) -> Result<(i64, i64, i64)> {
        let sql = format!(
            "SELECT COUNT(*) AS n, \
             COUNT(*) FILTER (WHERE r.status = 'failed') AS failed, \
             COUNT(*) FILTER (WHERE c.consent = 'opted_out' AND r.status <> 'failed') AS opted_out \
             FROM recipients r JOIN contacts c ON c.id = r.contact_id \
             WHERE COALESCE(r.sent_at, r.failed_at) IS NOT NULL AND {}",
            self.in_json_ids("r.id", 1)
        );
        let row = sqlx::query(&sql)
            .bind(json_list(ids))
            .fetch_one(&self.pool)
            .await?;
        Ok((
            row.try_get("n")?,
            row.try_get("failed")?,
            row.try_get("opted_out")?,
        ))
    }

    /// Counts of a campaign, or of all runs of a recurring one.
    pub async fn report(&self, campaign_id: i64) -> Result<Report> {
        let sql = format!(
            "SELECT COUNT(*) AS targeted, \
             COUNT(*) FILTER (WHERE status IN ('queued', 'claimed', 'sending')) AS queued, \
             COUNT(*) FILTER (WHERE status IN ('sent', 'delivered', 'read')) AS sent, \
             COUNT(*) FILTER (WHERE status IN ('delivered', 'read')) AS delivered, \
             COUNT(*) FILTER (WHERE status = 'read') AS read, \
             COUNT(*) FILTER (WHERE replied_at IS NOT NULL) AS replied, \
             COUNT(*) FILTER (WHERE status = 'failed') AS failed, \
             COUNT(*) FILTER (WHERE status = 'skipped') AS skipped, \
             COUNT(*) FILTER (WHERE status = 'unknown') AS unknown, \
             MIN(sent_at) AS first_sent, MAX(sent_at) AS last_sent \
             FROM recipients WHERE campaign_id IN ({CAMPAIGN_AND_RUNS})"
        );
        let row = sqlx::query(&sql)
            .bind(campaign_id)
            .fetch_one(&self.pool)
            .await?;
        let mut report = Report {
            targeted: row.try_get("targeted")?,
            queued: row.try_get("queued")?,
            sent: row.try_get("sent")?,
            delivered: row.try_get("delivered")?,
            read: row.try_get("read")?,
            replied: row.try_get("replied")?,
            failed: row.try_get("failed")?,
            skipped: row.try_get("skipped")?,
            unknown: row.try_get("unknown")?,
            first_sent_at: opt_time(&row, "first_sent")?,
            last_sent_at: opt_time(&row, "last_sent")?,
            ..Report::default()
        };
        report.skipped_by_reason = self
            .breakdown(
                campaign_id,
                "status = 'skipped'",
                "COALESCE(reason, 'unknown')",
            )
            .await?;
        report.failed_by_reason = self
            .breakdown(
                campaign_id,
                "status = 'failed'",
                "COALESCE(error_code, '') || CASE WHEN error_code IS NULL THEN '' ELSE ' ' END \
                 || COALESCE(reason, 'unknown')",
            )
            .await?;
        report.sent_by_category = self
            .breakdown(
                campaign_id,
                "status IN ('sent', 'delivered', 'read')",
                "COALESCE(cost_category, 'free')",
            )
            .await?;
        report.clicked_by_title = self
            .breakdown(campaign_id, "clicked IS NOT NULL", "clicked")
            .await?;
        report.billed_by_category = self.billed(campaign_id).await?;
        self.add_summaries(campaign_id, &mut report).await?;
        Ok(report)
    }

    /// Records the button or row the contact tapped under a campaign's message (the latest tap
    /// is their choice).
    pub async fn record_click(&self, campaign_id: i64, contact_id: i64, title: &str) -> Result<()> {
        sqlx::query(
            "UPDATE recipients SET clicked = $1 WHERE campaign_id = $2 AND contact_id = $3",
        )
        .bind(title)
        .bind(campaign_id)
        .bind(contact_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn breakdown(
        &self,
        campaign_id: i64,
        filter: &str,
        key: &str,
    ) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT {key} AS k, COUNT(*) AS n FROM recipients \
             WHERE campaign_id IN ({CAMPAIGN_AND_RUNS}) AND {filter} \
             GROUP BY 1 ORDER BY 2 DESC, 1"
        );
        let rows = sqlx::query(&sql)
            .bind(campaign_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("k")?, r.try_get("n")?)))
            .collect()
    }

    /// Every recipient of a campaign, for the CSV export.
    pub async fn recipient_rows(&self, campaign_id: i64) -> Result<Vec<RecipientRow>> {
        if let Some(archived) = self.archived_rows(campaign_id).await? {
            return Ok(archived);
        }
        let rows = sqlx::query(
            "SELECT c.address, r.status, r.reason, r.error_code, r.attempts, r.variant, \
             r.sent_at, r.delivered_at, r.read_at, r.replied_at, r.clicked FROM recipients r \
             JOIN contacts c ON c.id = r.contact_id WHERE r.campaign_id = $1 ORDER BY r.id",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RecipientRow {
                    address: r.try_get("address")?,
                    status: super::recipient_status(r)?,
                    reason: r.try_get("reason")?,
                    error_code: r.try_get("error_code")?,
                    attempts: r.try_get("attempts")?,
                    variant: r.try_get("variant")?,
                    sent_at: opt_time(r, "sent_at")?,
                    delivered_at: opt_time(r, "delivered_at")?,
                    read_at: opt_time(r, "read_at")?,
                    replied_at: opt_time(r, "replied_at")?,
                    clicked: r.try_get("clicked")?,
                })
            })
            .collect()
    }

    /// Send times of a campaign's recipients, for the progress chart.
    pub async fn send_times(&self, campaign_id: i64) -> Result<Vec<DateTime<Utc>>> {
        if let Some(archived) = self.archived_send_times(campaign_id).await? {
            return Ok(archived);
        }
        let rows = sqlx::query(
            "SELECT sent_at FROM recipients WHERE campaign_id = $1 AND sent_at IS NOT NULL \
             ORDER BY sent_at",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(crate::clock::from_ms(r.try_get("sent_at")?)))
            .collect()
    }
}

/// A stored `/on` rule read back into its types. Rules are parsed when typed, so one that no
/// longer reads (written by hand, or by a release with other words) is logged and left out.
pub(super) fn read_action(
    campaign_id: i64,
    event: &str,
    action: &str,
) -> Option<(RecipientEvent, PostAction)> {
    match (
        RecipientEvent::from_key(event),
        PostAction::from_key(action),
    ) {
        (Some(event), Some(action)) => Some((event, action)),
        _ => {
            tracing::warn!(campaign_id, event, action, "unreadable /on rule left out");
            None
        }
    }
}
