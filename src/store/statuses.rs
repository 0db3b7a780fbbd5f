//! Delivery statuses (sent, delivered, read, failed) applied to recipient rows, many at a time.
//!
//! Statuses arrive in the thousands per second during a big campaign, so they are applied in
//! batches: one statement reads every row the batch touches, the rules run in memory, and one
//! statement writes the result. The rules are those of a single status applied in order:
//! - a status moves only forward (sent < delivered < read), and a replay changes nothing;
//! - a failure overrides anything short of read; nothing moves a failed row;
//! - reaching a later state fills in the times of the earlier ones that are missing;
//! - a row is matched by the callback data herald attached (`r<recipient>:c<campaign>`), which
//!   also reconciles a send whose answer was lost, or else by the channel's message id.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Connection, Row};

use super::{json_list, Result, Store, StoreError};
use crate::clock::to_ms;
use crate::domain::account::Billing;
use crate::domain::actions::{PostAction, RecipientEvent};
use crate::domain::delivery::{DeliveryStatus, StatusUpdate};
use crate::domain::RecipientStatus;

/// A delivery status that changed a recipient, the events it means for `/on` rules, and the
/// rules of its campaign those events fire.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub campaign_id: i64,
    pub recipient_id: i64,
    pub contact_id: i64,
    pub events: Vec<RecipientEvent>,
    /// `(event, action)`: the campaign's `/on` rules for these events, in the order added.
    pub rules: Vec<(RecipientEvent, PostAction)>,
    /// The status was a failure the channel asked to retry later, and the recipient went back
    /// to the queue instead of failing (no events).
    pub deferred: bool,
    /// That deferral made its completed campaign send again (set on the first such change of
    /// each campaign in a batch).
    pub reopened: bool,
}

/// What to do with a failure the channel asks to retry hours later (WhatsApp 131049, the
/// per-user marketing limit) instead of failing the recipient: queue it again, due at `until`,
/// while it has had fewer than `max_attempts` sends and its campaign was not cancelled or failed
/// (a completed one sends again). Past that, the failure stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Deferral {
    pub until: DateTime<Utc>,
    pub max_attempts: i64,
}

/// `r<recipient id>:c<campaign id>`, the callback data the dispatcher attaches to each send.
pub(super) fn parse_callback(callback: &str) -> Option<(i64, i64)> {
    let (recipient, campaign) = callback.trim().split_once(':')?;
    let number = |s: &str, prefix: char| {
        s.strip_prefix(prefix)
            .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
            .and_then(|d| d.parse::<i64>().ok())
    };
    Some((number(recipient, 'r')?, number(campaign, 'c')?))
}

/// One status applied to a row whose status is `current`: the new status and the events it
/// means, or `None` when it changes nothing.
fn step(
    current: RecipientStatus,
    status: &DeliveryStatus,
) -> Option<(RecipientStatus, Vec<RecipientEvent>)> {
    let now = current.progress()?;
    let target = match status {
        DeliveryStatus::Failed { .. } => {
            // Anything short of read may still fail; a read message plainly arrived.
            return (now < 4).then(|| (RecipientStatus::Failed, vec![RecipientEvent::Failed]));
        }
        DeliveryStatus::Sent => RecipientStatus::Sent,
        DeliveryStatus::Delivered => RecipientStatus::Delivered,
        DeliveryStatus::Read => RecipientStatus::Read,
    };
    let to = target.progress()?;
    if now >= to {
        return None;
    }
    // Reaching `read` straight from before `delivered` was a delivery too.
    let events = match target {
        RecipientStatus::Delivered => vec![RecipientEvent::Delivered],
        RecipientStatus::Read if now < 3 => vec![RecipientEvent::Delivered, RecipientEvent::Read],
        RecipientStatus::Read => vec![RecipientEvent::Read],
        _ => vec![],
    };
    Some((target, events))
}

/// A recipient row as the batch found it, then as the batch leaves it.
#[derive(Debug, Clone)]
struct RowState {
    campaign_id: i64,
    contact_id: i64,
    /// The status read from the database; the write is guarded by it.
    before: RecipientStatus,
    /// Whether the row already had its send time and message id.
    recorded: bool,
    /// Sends made so far, counting the one the statuses are about.
    attempts: i64,
    /// Where the batch leaves it (equal to `before` until a status changes it).
    status: RecipientStatus,
    changed: bool,
    /// The time of the first status that reached sent / delivered / read (filled where the row
    /// has none yet, as each status would have done in turn).
    sent_at: Option<i64>,
    delivered_at: Option<i64>,
    read_at: Option<i64>,
    provider_id: Option<String>,
    failure: Option<(String, String, i64)>,
    /// Back to the queue: (code, reason, due), see [`Deferral`].
    deferred: Option<(String, String, i64)>,
    /// What the channel billed for the message (category, pricing model), when a billing of
    /// the batch rides on this row's status write.
    billing: Option<(String, Option<String>)>,
}

impl RowState {
    /// Applies one status; `defer` is set when a failure may send the row back to the queue
    /// (and its campaign is still open).
    fn apply(
        &mut self,
        update: &StatusUpdate,
        defer: Option<&Deferral>,
    ) -> Option<(Vec<RecipientEvent>, bool)> {
        let (next, events) = step(self.status, &update.status)?;
        let tries_left = defer.filter(|d| self.attempts < d.max_attempts);
        if let (DeliveryStatus::Failed { code, title }, Some(d)) = (&update.status, tries_left) {
            self.deferred = Some((code.clone(), title.clone(), to_ms(d.until)));
            self.status = RecipientStatus::Queued;
            self.changed = true;
            return Some((Vec::new(), true));
        }
        let t = to_ms(update.at);
        match &update.status {
            DeliveryStatus::Failed { code, title } => {
                self.failure = Some((code.clone(), title.clone(), t));
            }
            _ => {
                let reached = next.progress().unwrap_or(0);
                self.sent_at.get_or_insert(t);
                if reached >= 3 {
                    self.delivered_at.get_or_insert(t);
                }
                if reached >= 4 {
                    self.read_at.get_or_insert(t);
                }
            }
        }
        self.provider_id
            .get_or_insert_with(|| update.provider_id.clone());
        self.status = next;
        self.changed = true;
        Some((events, false))
    }
}

/// Puts each billing of `left` on the row it is for, when a status of the batch moves that row
/// forward with the plain progress statement (recorded, not failed, not deferred): matched by
/// its callback data (recipient and campaign agreeing, and the message id when the row has one)
/// or by the message id. Returns the billings attached, with their rows; `left` keeps the rest.
fn attach_billings(
    rows: &mut BTreeMap<i64, RowState>,
    billings: &[Billing],
    left: &mut Vec<usize>,
) -> Vec<(usize, i64)> {
    if left.is_empty() {
        return Vec::new();
    }
    let by_provider: HashMap<&str, i64> = rows
        .iter()
        .filter_map(|(id, row)| Some((row.provider_id.as_deref()?, *id)))
        .collect();
    let mut attached = Vec::new();
    let mut targets = Vec::new();
    left.retain(|&j| {
        let b = &billings[j];
        let by_callback = b
            .callback
            .as_deref()
            .and_then(parse_callback)
            .filter(|(r, c)| {
                rows.get(r).is_some_and(|row| {
                    row.campaign_id == *c
                        && row
                            .provider_id
                            .as_deref()
                            .is_none_or(|p| p == b.provider_id)
                })
            })
            .map(|(r, _)| r);
        let target = by_callback.or_else(|| by_provider.get(b.provider_id.as_str()).copied());
        let rides = target.filter(|id| {
            rows.get(id).is_some_and(|row| {
                row.changed && row.recorded && row.failure.is_none() && row.deferred.is_none()
            })
        });
        match rides {
            Some(id) => {
                targets.push((j, id));
                false
            }
            None => true,
        }
    });
    for (j, id) in targets {
        if let Some(row) = rows.get_mut(&id) {
            let pricing = &billings[j].pricing;
            row.billing = Some((pricing.billed_as(), pricing.model.clone()));
            attached.push((j, id));
        }
    }
    attached
}

/// Adds rows read by the batch (a row found by both callback and message id is kept once).
fn read_rows(
    found: Vec<sqlx::any::AnyRow>,
    rows: &mut BTreeMap<i64, RowState>,
    by_provider: &mut HashMap<String, i64>,
) -> Result<()> {
    for row in found {
        let id: i64 = row.try_get("id")?;
        let provider_id: Option<String> = row.try_get("provider_id")?;
        let sent_at: Option<i64> = row.try_get("sent_at")?;
        if let Some(p) = &provider_id {
            by_provider.insert(p.clone(), id);
        }
        if rows.contains_key(&id) {
            continue;
        }
        let before = super::recipient_status(&row)?;
        rows.insert(
            id,
            RowState {
                campaign_id: row.try_get("campaign_id")?,
                contact_id: row.try_get("contact_id")?,
                before,
                recorded: sent_at.is_some() && provider_id.is_some(),
                attempts: row.try_get("attempts")?,
                status: before,
                changed: false,
                sent_at: None,
                delivered_at: None,
                read_at: None,
                provider_id,
                failure: None,
                deferred: None,
                billing: None,
            },
        );
    }
    Ok(())
}

/// Campaigns whose recipients a deferral may queue again: sending or paused ones, and completed
/// ones, which start sending again (a cancelled campaign is over for good).
const OPEN_FOR_DEFERRAL: &str = "'sending', 'paused', 'completed'";

/// How many times a status whose row moved under it (another batch or process wrote it between
/// read and write) is read and applied again before the batch gives up.
const PASSES: usize = 4;

impl Store {
    /// Applies `updates` in order and returns for each what it changed, if anything (a replay,
    /// an older status, or a message that is not herald's changes nothing).
    ///
    /// No transaction and no row locks: the rows are read, the statuses applied in memory, and
    /// each row written by a statement guarded by the status it was read in, which returns the
    /// rows it wrote. A row that moved meanwhile (two statuses of one message handled at once,
    /// by two batches or two processes) fails its guard and its statuses go round again. A
    /// single statement is atomic, so whatever was written is whole.
    ///
    /// `deferrals[i]`, when given, says how a failure in `updates[i]` sends its recipient back
    /// to the queue instead (see [`Deferral`]).
    pub async fn apply_statuses(
        &self,
        updates: &[StatusUpdate],
        deferrals: &[Option<Deferral>],
    ) -> Result<Vec<Option<StatusChange>>> {
        Ok(self.apply_statuses_billed(updates, deferrals, &[]).await?.0)
    }

    /// [`Self::apply_statuses`] with the billings that came with the statuses (Meta puts a
    /// message's pricing on its status): a billing for a row a status of the batch moves
    /// forward is written by that same statement, so the row is written once, not twice.
    /// Returns the changes, and the indexes of the billings not written (their row was not
    /// moved forward by this batch: [`Self::record_billings`] writes them).
    pub async fn apply_statuses_billed(
        &self,
        updates: &[StatusUpdate],
        deferrals: &[Option<Deferral>],
        billings: &[Billing],
    ) -> Result<(Vec<Option<StatusChange>>, Vec<usize>)> {
        let mut billings_left: Vec<usize> = (0..billings.len()).collect();
        let mut changes = vec![None; updates.len()];
        let mut pending: Vec<usize> = (0..updates.len()).collect();
        // One connection for the whole batch: each acquire from the pool costs a round trip.
        let mut conn = self.pool.acquire().await?;
        let mut reopened = HashSet::new();
        for _ in 0..PASSES {
            if pending.is_empty() {
                break;
            }
            let (mut rows, targets) = self.read_targets(&mut conn, updates, &pending).await?;
            let deferral = |i: usize| deferrals.get(i).and_then(Option::as_ref);
            let open = self
                .open_campaigns(
                    &mut conn,
                    &rows,
                    targets.iter().filter(|(i, _)| deferral(*i).is_some()),
                )
                .await?;
            let mut applied = Vec::new();
            for &(i, id) in &targets {
                if let Some(row) = rows.get_mut(&id) {
                    let defer = deferral(i).filter(|_| open.contains(&row.campaign_id));
                    if let Some((events, deferred)) = row.apply(&updates[i], defer) {
                        applied.push((i, id, events, deferred));
                    }
                }
            }
            let riding = attach_billings(&mut rows, billings, &mut billings_left);
            let written = self.write_rows(&mut conn, &rows, &mut reopened).await?;
            // A billing whose row moved under it waits for the next pass (or record_billings).
            for (j, id) in riding {
                if !written.contains(&id) {
                    billings_left.push(j);
                }
            }
            billings_left.sort_unstable();
            let moved: HashSet<i64> = rows
                .iter()
                .filter(|(id, row)| row.changed && !written.contains(id))
                .map(|(id, _)| *id)
                .collect();
            for (i, id, events, deferred) in applied {
                if let (false, Some(row)) = (moved.contains(&id), rows.get(&id)) {
                    changes[i] = Some(StatusChange {
                        campaign_id: row.campaign_id,
                        recipient_id: id,
                        contact_id: row.contact_id,
                        events,
                        rules: Vec::new(),
                        deferred,
                        reopened: deferred && reopened.remove(&row.campaign_id),
                    });
                }
            }
            pending = targets
                .iter()
                .filter(|(_, id)| moved.contains(id))
                .map(|(i, _)| *i)
                .collect();
        }
        if !pending.is_empty() {
            return Err(StoreError::Conflict(format!(
                "{} statuses found their recipients moving under them {PASSES} times",
                pending.len()
            )));
        }
        self.fill_rules(&mut conn, &mut changes).await?;
        Ok((changes, billings_left))
    }

    /// The rows the updates at `pending` are for, and which row each is for (an update that
    /// matches no row of herald's is left out).
    async fn read_targets(
        &self,
        conn: &mut AnyConnection,
        updates: &[StatusUpdate],
        pending: &[usize],
    ) -> Result<(BTreeMap<i64, RowState>, Vec<(usize, i64)>)> {
        let columns = "id, campaign_id, contact_id, status, provider_id, sent_at, attempts";
        let mut rows: BTreeMap<i64, RowState> = BTreeMap::new();
        let mut by_provider: HashMap<String, i64> = HashMap::new();
        let callback = |i: usize| updates[i].callback.as_deref().and_then(parse_callback);
        let mut ids: Vec<i64> = pending
            .iter()
            .filter_map(|&i| callback(i))
            .map(|(r, _)| r)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            let sql = format!(
                "SELECT {columns} FROM recipients WHERE {}",
                self.in_json_ids("id", 1)
            );
            let found = sqlx::query(&sql)
                .bind(json_list(&ids))
                .fetch_all(&mut *conn)
                .await?;
            read_rows(found, &mut rows, &mut by_provider)?;
        }
        // Callback data is trusted only when recipient and campaign agree; anything else
        // (another app's data on the same number, or none) falls back to the message id.
        // A row that already has a message id other than the status's is past that message (a
        // deferred recipient sent again, a retry after a lost answer): news of the old message
        // must not move it.
        let by_callback = |i: usize, rows: &BTreeMap<i64, RowState>| {
            let update = &updates[i];
            callback(i)
                .filter(|(r, c)| {
                    rows.get(r).is_some_and(|row| {
                        row.campaign_id == *c
                            && (update.provider_id.is_empty()
                                || row
                                    .provider_id
                                    .as_deref()
                                    .is_none_or(|p| p == update.provider_id))
                    })
                })
                .map(|(r, _)| r)
        };
        let mut wanted: Vec<&str> = pending
            .iter()
            .filter(|&&i| by_callback(i, &rows).is_none())
            .map(|&i| updates[i].provider_id.as_str())
            .filter(|p| !p.is_empty() && !by_provider.contains_key(*p))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if !wanted.is_empty() {
            let sql = format!(
                "SELECT {columns} FROM recipients WHERE {}",
                self.in_json_texts("provider_id", 1)
            );
            let wanted =
                serde_json::to_string(&wanted).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let found = sqlx::query(&sql).bind(wanted).fetch_all(&mut *conn).await?;
            read_rows(found, &mut rows, &mut by_provider)?;
        }
        let targets = pending
            .iter()
            .filter_map(|&i| {
                by_callback(i, &rows)
                    .or_else(|| by_provider.get(updates[i].provider_id.as_str()).copied())
                    .map(|id| (i, id))
            })
            .collect();
        Ok((rows, targets))
    }

    /// Writes every changed row, each guarded by the status it was read in; returns the ids
    /// written. Campaigns a deferral made send again are added to `reopened`.
    async fn write_rows(
        &self,
        conn: &mut AnyConnection,
        rows: &BTreeMap<i64, RowState>,
        reopened: &mut HashSet<i64>,
    ) -> Result<HashSet<i64>> {
        // Most statuses only move a row the dispatcher recorded as sent forward: those are
        // written touching only the columns that change, which spares the indexes on the rest
        // (SQLite updates an index only when a column of it is assigned). Failures and rows that
        // still lack their send time or message id (reconciled after a lost answer) take the
        // full statement. Rows go in id order, so two writers never wait on each other in a
        // circle.
        let (deferred, changed): (Vec<_>, Vec<_>) = rows
            .iter()
            .filter(|(_, row)| row.changed)
            .partition(|(_, row)| row.deferred.is_some());
        let (progress, full): (Vec<_>, Vec<_>) = changed
            .into_iter()
            .partition(|(_, row)| row.recorded && row.failure.is_none());
        let groups = [&deferred, &progress, &full]
            .iter()
            .filter(|group| !group.is_empty())
            .count();
        if groups < 2 {
            return self
                .write_groups(conn, &deferred, &progress, &full, reopened)
                .await;
        }
        // Several statements: all or nothing. A batch that fails half-written would be tried
        // again, and the statuses already written would then read as replays and never fire
        // their `/on` rules.
        let mut tx = conn.begin_with(self.begin_write()).await?;
        let mut opened = HashSet::new();
        let written = self
            .write_groups(&mut tx, &deferred, &progress, &full, &mut opened)
            .await?;
        tx.commit().await?;
        reopened.extend(opened);
        Ok(written)
    }

    /// [`Self::write_rows`]'s statements, one per group of rows that is not empty.
    async fn write_groups(
        &self,
        conn: &mut AnyConnection,
        deferred: &[(&i64, &RowState)],
        progress: &[(&i64, &RowState)],
        full: &[(&i64, &RowState)],
        reopened: &mut HashSet<i64>,
    ) -> Result<HashSet<i64>> {
        let mut written = HashSet::new();
        if !deferred.is_empty() {
            let writes: Vec<serde_json::Value> = deferred
                .iter()
                .filter_map(|(id, row)| {
                    let (code, reason, due) = row.deferred.as_ref()?;
                    Some(serde_json::json!([
                        id,
                        row.before.as_str(),
                        code,
                        reason,
                        due
                    ]))
                })
                .collect();
            let v = self.json_rows(
                1,
                &[
                    ("rid", "bigint"),
                    ("before", "text"),
                    ("error_code", "text"),
                    ("reason", "text"),
                    ("due", "bigint"),
                ],
            );
            let pin = self.json_rows_keyed("r.id", 1, 0, "bigint");
            // The message never arrived: the row goes back to the queue as if never sent, and
            // keeps the code and reason until it is. A campaign that completed meanwhile (the
            // usual case for a small one: the news comes after its last send) is sending again
            // until the retry is done; the two writes commit together, so a crash cannot leave
            // a queued recipient on a completed campaign, and the transaction holds the
            // campaign's row, so neither can a campaign completing at the same moment.
            let sql = format!(
                "UPDATE recipients AS r SET status = 'queued', next_attempt_at = v.due, \
                 error_code = v.error_code, reason = v.reason, sent_at = NULL, \
                 provider_id = NULL, delivered_at = NULL, read_at = NULL, \
                 claimed_by = NULL FROM {v} WHERE r.id = v.rid{pin} AND r.status = v.before \
                 AND r.campaign_id IN (SELECT id FROM campaigns \
                 WHERE status IN ({OPEN_FOR_DEFERRAL})) RETURNING id"
            );
            let mut campaigns: Vec<i64> = deferred.iter().map(|(_, row)| row.campaign_id).collect();
            campaigns.sort_unstable();
            campaigns.dedup();
            let mut tx = conn.begin_with(self.begin_write()).await?;
            // The campaigns' rows first, as completing a campaign does (`complete_if_done`).
            let lock = format!(
                "SELECT id FROM campaigns WHERE {} ORDER BY id{}",
                self.in_json_ids("id", 1),
                self.lock_rows()
            );
            sqlx::query(&lock)
                .bind(json_list(&campaigns))
                .fetch_all(&mut *tx)
                .await?;
            let ids = self.write_guarded(&mut tx, &sql, writes).await?;
            let sql = format!(
                "UPDATE campaigns SET status = 'sending', finished_at = NULL, \
                 status_reason = NULL WHERE status = 'completed' AND id IN \
                 (SELECT campaign_id FROM recipients WHERE {}) RETURNING id",
                self.in_json_ids("id", 1)
            );
            let campaigns: Vec<i64> = sqlx::query_scalar(&sql)
                .bind(json_list(&ids))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            reopened.extend(campaigns);
            written.extend(ids);
        }
        if !progress.is_empty() {
            let writes: Vec<serde_json::Value> = progress
                .iter()
                .map(|(id, row)| {
                    let (billed, model) = match &row.billing {
                        Some((billed, model)) => (Some(billed.as_str()), model.as_deref()),
                        None => (None, None),
                    };
                    serde_json::json!([
                        id,
                        row.before.as_str(),
                        row.status.as_str(),
                        row.delivered_at,
                        row.read_at,
                        billed,
                        model
                    ])
                })
                .collect();
            let v = self.json_rows(
                1,
                &[
                    ("rid", "bigint"),
                    ("before", "text"),
                    ("status", "text"),
                    ("delivered_at", "bigint"),
                    ("read_at", "bigint"),
                    ("billed", "text"),
                    ("model", "text"),
                ],
            );
            let pin = self.json_rows_keyed("r.id", 1, 0, "bigint");
            // (`v.rid`, so that `RETURNING id` names the recipient on both databases.) A row
            // with no billing in the batch keeps what it had.
            let sql = format!(
                "UPDATE recipients AS r SET status = v.status, \
                 delivered_at = COALESCE(r.delivered_at, v.delivered_at), \
                 read_at = COALESCE(r.read_at, v.read_at), reason = NULL, \
                 billed_category = COALESCE(v.billed, r.billed_category), \
                 pricing_model = CASE WHEN v.billed IS NULL THEN r.pricing_model ELSE v.model END \
                 FROM {v} WHERE r.id = v.rid{pin} AND r.status = v.before RETURNING id"
            );
            written.extend(self.write_guarded(conn, &sql, writes).await?);
        }
        if !full.is_empty() {
            let writes: Vec<serde_json::Value> = full
                .iter()
                .map(|(id, row)| {
                    let (code, reason, failed_at) = match &row.failure {
                        Some((code, title, t)) => {
                            (Some(code.as_str()), Some(title.as_str()), Some(*t))
                        }
                        None => (None, None, None),
                    };
                    serde_json::json!([
                        id,
                        row.before.as_str(),
                        row.status.as_str(),
                        row.sent_at,
                        row.delivered_at,
                        row.read_at,
                        row.provider_id,
                        code,
                        reason,
                        failed_at
                    ])
                })
                .collect();
            let v = self.json_rows(
                1,
                &[
                    ("rid", "bigint"),
                    ("before", "text"),
                    ("status", "text"),
                    ("sent_at", "bigint"),
                    ("delivered_at", "bigint"),
                    ("read_at", "bigint"),
                    ("provider_id", "text"),
                    ("error_code", "text"),
                    ("reason", "text"),
                    ("failed_at", "bigint"),
                ],
            );
            let pin = self.json_rows_keyed("r.id", 1, 0, "bigint");
            // A row that ends failed keeps the failure's code and reason; one that ends sent,
            // delivered or read carries no reason.
            let sql = format!(
                "UPDATE recipients AS r SET status = v.status, \
                 sent_at = COALESCE(r.sent_at, v.sent_at), \
                 delivered_at = COALESCE(r.delivered_at, v.delivered_at), \
                 read_at = COALESCE(r.read_at, v.read_at), \
                 provider_id = COALESCE(r.provider_id, v.provider_id), \
                 reason = v.reason, \
                 error_code = CASE WHEN v.status = 'failed' THEN v.error_code ELSE r.error_code END, \
                 failed_at = CASE WHEN v.status = 'failed' THEN v.failed_at ELSE r.failed_at END \
                 FROM {v} WHERE r.id = v.rid{pin} AND r.status = v.before RETURNING id"
            );
            written.extend(self.write_guarded(conn, &sql, writes).await?);
        }
        Ok(written)
    }

    /// Runs one guarded multi-row update of `writes` (its `$1`); returns the ids it wrote.
    async fn write_guarded(
        &self,
        conn: &mut AnyConnection,
        sql: &str,
        writes: Vec<serde_json::Value>,
    ) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(sql)
            .bind(serde_json::Value::Array(writes).to_string())
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Of the campaigns of `targets`' rows, those that can still send a deferred recipient
    /// again. Asked only when a batch holds a failure to defer.
    async fn open_campaigns<'a>(
        &self,
        conn: &mut AnyConnection,
        rows: &BTreeMap<i64, RowState>,
        targets: impl Iterator<Item = &'a (usize, i64)>,
    ) -> Result<HashSet<i64>> {
        let mut ids: Vec<i64> = targets
            .filter_map(|(_, id)| rows.get(id).map(|row| row.campaign_id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = format!(
            "SELECT id FROM campaigns WHERE status IN ({OPEN_FOR_DEFERRAL}) AND {}",
            self.in_json_ids("id", 1)
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(json_list(&ids))
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect())
    }

    /// Gives each change the `/on` rules its events fire: the rules of its campaign and of the
    /// recurring campaign or drip it belongs to, in the order they were added, all read in one
    /// query.
    async fn fill_rules(
        &self,
        conn: &mut AnyConnection,
        changes: &mut [Option<StatusChange>],
    ) -> Result<()> {
        let mut campaigns: Vec<i64> = changes
            .iter()
            .flatten()
            .filter(|c| !c.events.is_empty())
            .map(|c| c.campaign_id)
            .collect();
        campaigns.sort_unstable();
        campaigns.dedup();
        if campaigns.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT c.id AS campaign_id, a.event, a.action FROM campaigns c \
             JOIN campaign_actions a ON a.campaign_id = c.id OR a.campaign_id = c.parent_id \
             WHERE {} ORDER BY a.id",
            self.in_json_ids("c.id", 1)
        );
        let mut rules: HashMap<i64, Vec<(RecipientEvent, PostAction)>> = HashMap::new();
        for row in sqlx::query(&sql)
            .bind(json_list(&campaigns))
            .fetch_all(&mut *conn)
            .await?
        {
            let campaign_id: i64 = row.try_get("campaign_id")?;
            let (event, action): (String, String) = (row.try_get("event")?, row.try_get("action")?);
            rules
                .entry(campaign_id)
                .or_default()
                .extend(super::recipients::read_action(campaign_id, &event, &action));
        }
        for change in changes.iter_mut().flatten() {
            if let Some(all) = rules.get(&change.campaign_id) {
                change.rules = all
                    .iter()
                    .filter(|(event, _)| change.events.contains(event))
                    .cloned()
                    .collect();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecipientStatus::*;

    #[test]
    fn callback_data_is_read_only_in_the_dispatchers_form() {
        assert_eq!(parse_callback("r12:c3"), Some((12, 3)));
        assert_eq!(parse_callback("r12"), None);
        assert_eq!(parse_callback("random_string"), None);
        assert_eq!(parse_callback("r:c3"), None);
        assert_eq!(parse_callback("r1x:c3"), None);
        assert_eq!(parse_callback("r-1:c3"), None);
        assert_eq!(parse_callback("c3:r12"), None);
    }

    fn failed() -> DeliveryStatus {
        DeliveryStatus::Failed {
            code: "131026".into(),
            title: "Message undeliverable".into(),
        }
    }

    fn sent_row(attempts: i64) -> RowState {
        RowState {
            campaign_id: 1,
            contact_id: 1,
            before: RecipientStatus::Sent,
            recorded: true,
            attempts,
            status: RecipientStatus::Sent,
            changed: false,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            provider_id: Some("wamid.1".into()),
            failure: None,
            deferred: None,
            billing: None,
        }
    }

    #[test]
    fn a_failure_to_defer_queues_the_row_only_while_tries_are_left() {
        let update = StatusUpdate {
            provider_id: "wamid.1".into(),
            callback: None,
            status: failed(),
            at: Utc::now(),
            recipient: None,
        };
        let until = Utc::now() + chrono::Duration::hours(6);
        let defer = Deferral {
            until,
            max_attempts: 4,
        };

        let mut row = sent_row(3);
        assert_eq!(row.apply(&update, Some(&defer)), Some((vec![], true)));
        assert_eq!(row.status, RecipientStatus::Queued);
        let (code, _, due) = row.deferred.clone().expect("deferred");
        assert_eq!((code.as_str(), due), ("131026", to_ms(until)));
        // Whatever else the batch holds for it waits for the next send.
        let delivered = StatusUpdate {
            status: DeliveryStatus::Delivered,
            ..update.clone()
        };
        assert_eq!(row.apply(&delivered, Some(&defer)), None);

        let mut row = sent_row(4);
        assert_eq!(
            row.apply(&update, Some(&defer)),
            Some((vec![RecipientEvent::Failed], false))
        );
        assert_eq!(
            (row.status, row.deferred.is_none()),
            (RecipientStatus::Failed, true)
        );

        let mut row = sent_row(1);
        assert_eq!(
            row.apply(&update, None),
            Some((vec![RecipientEvent::Failed], false))
        );
    }

    #[test]
    fn statuses_only_move_forward() {
        assert_eq!(step(Sending, &DeliveryStatus::Sent), Some((Sent, vec![])));
        assert_eq!(
            step(Sent, &DeliveryStatus::Delivered),
            Some((Delivered, vec![RecipientEvent::Delivered]))
        );
        assert_eq!(step(Delivered, &DeliveryStatus::Delivered), None);
        assert_eq!(step(Read, &DeliveryStatus::Delivered), None);
        assert_eq!(step(Delivered, &DeliveryStatus::Sent), None);
        // A row the dispatcher could not confirm is reconciled by its status.
        assert_eq!(
            step(Unknown, &DeliveryStatus::Delivered),
            Some((Delivered, vec![RecipientEvent::Delivered]))
        );
    }

    #[test]
    fn read_without_delivered_counts_both() {
        assert_eq!(
            step(Sent, &DeliveryStatus::Read),
            Some((Read, vec![RecipientEvent::Delivered, RecipientEvent::Read]))
        );
        assert_eq!(
            step(Delivered, &DeliveryStatus::Read),
            Some((Read, vec![RecipientEvent::Read]))
        );
    }

    #[test]
    fn failure_overrides_anything_short_of_read() {
        for current in [Sending, Unknown, Sent, Delivered] {
            assert_eq!(
                step(current, &failed()),
                Some((Failed, vec![RecipientEvent::Failed]))
            );
        }
        assert_eq!(step(Read, &failed()), None);
        assert_eq!(step(Failed, &DeliveryStatus::Delivered), None);
        assert_eq!(step(Failed, &failed()), None);
        // Rows never handed to a channel are not touched by a status.
        for current in [Queued, Claimed, Skipped] {
            assert_eq!(step(current, &DeliveryStatus::Read), None);
            assert_eq!(step(current, &failed()), None);
        }
    }
}
