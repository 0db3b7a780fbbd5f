//! Starting a campaign and resolving its audience into recipient rows, in pages while it sends.
//!
//! Starting moves the campaign to `sending` and resolves its first page in one transaction, so
//! the first message can leave at once whatever the audience's size. A page is a range of
//! contact ids after a cursor; each page's rows and its cursor move in one transaction, so a
//! crash keeps or loses a page whole and the restarted process goes on after the last page
//! kept. On PostgreSQL the contact ids are split in two halves, each with its own cursor
//! (`resolve_cursor` up to `resolve_mid`, `resolve_upper_cursor` up to `resolve_end`), so two
//! transactions can write pages at once on two of the server's cores; SQLite has one writer and
//! one half. One transaction resolves a half's page at a time (an advisory lock per half on
//! PostgreSQL, the single writer on SQLite); another that finds the lock taken tries the other
//! half, or skips the campaign for now. A contact is judged by their labels and attributes when
//! their page is resolved, and by their consent when their message is sent (as every recipient
//! is).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Backend, Result, Store, StoreError};
use crate::clock::to_ms;
use crate::domain::audience::AudienceExpr;

/// Names the advisory locks of the lower halves of resolutions (`"reso"` in the high 32 bits);
/// the campaign's id is the low 32 bits.
const RESOLVE_LOCK: i64 = 0x7265_736f << 32;
/// The same for the upper halves (`"resu"`).
const RESOLVE_UPPER_LOCK: i64 = 0x7265_7375 << 32;

/// A campaign has contacts left to resolve (SQL, on `campaigns`).
pub(crate) const RESOLVING: &str =
    "(resolve_cursor < resolve_mid OR resolve_upper_cursor < resolve_end)";

/// How far a campaign's resolution has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// The last contact id resolved in the lower half.
    pub cursor: i64,
    /// The last contact id of the lower half.
    pub mid: i64,
    /// The last contact id resolved in the upper half.
    pub upper_cursor: i64,
    /// The last contact id to resolve: the highest when the campaign started.
    pub end: i64,
}

impl Resolution {
    pub fn is_done(&self) -> bool {
        self.cursor >= self.mid && self.upper_cursor >= self.end
    }
}

/// One of the two halves of a resolution: its cursor's column, its last id's column, its lock.
#[derive(Debug, Clone, Copy)]
struct Half {
    cursor: &'static str,
    stop: &'static str,
    lock: i64,
}

const HALVES: [Half; 2] = [
    Half {
        cursor: "resolve_cursor",
        stop: "resolve_mid",
        lock: RESOLVE_LOCK,
    },
    Half {
        cursor: "resolve_upper_cursor",
        stop: "resolve_end",
        lock: RESOLVE_UPPER_LOCK,
    },
];

/// A campaign just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Recipient rows written with the start (the first page).
    pub resolved: u64,
    /// What is left to resolve, `None` when the whole audience was resolved with the start.
    pub rest: Option<Resolution>,
}

/// What one page did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// A page was resolved: `rows` recipients written; `done` when nothing is left to resolve.
    Resolved { rows: u64, done: bool },
    /// Other transactions are resolving this campaign's pages right now.
    Busy,
    /// Nothing to resolve: finished, or the campaign is not sending.
    Nothing,
}

impl Store {
    /// Starts sending: the status change and the first page of recipients happen in one
    /// transaction, so only one process can win the start and a crash leaves both or neither.
    /// An audience of listed addresses (at most a thousand) is resolved whole. `None` if the
    /// campaign was not startable.
    pub async fn start_campaign(
        &self,
        id: i64,
        audience: &AudienceExpr,
        now: DateTime<Utc>,
        page: u64,
    ) -> Result<Option<Started>> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let won = sqlx::query(
            "UPDATE campaigns SET status = 'sending', started_at = $1, status_reason = NULL \
             WHERE id = $2 AND status IN ('draft', 'scheduled')",
        )
        .bind(to_ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !won {
            return Ok(None);
        }
        if let AudienceExpr::Addresses(_) = audience {
            let (audience_sql, binds) = super::audience::condition(audience, 3);
            let sql = format!(
                "INSERT INTO recipients (campaign_id, contact_id, queued_at) \
                 SELECT $1, c.id, $2 FROM contacts c WHERE {audience_sql} \
                 ON CONFLICT (campaign_id, contact_id) DO NOTHING"
            );
            let mut q = sqlx::query(&sql).bind(id).bind(to_ms(now));
            for b in &binds {
                q = q.bind(b.as_str());
            }
            let resolved = q.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            return Ok(Some(Started {
                resolved,
                rest: None,
            }));
        }
        // Two subqueries, not `MIN(id), MAX(id)` in one: SQLite reads either from the index
        // only when it is alone.
        let row = sqlx::query(
            "SELECT (SELECT MIN(id) FROM contacts) AS first, (SELECT MAX(id) FROM contacts) AS last",
        )
        .fetch_one(&mut *tx)
        .await?;
        let first: Option<i64> = row.try_get("first")?;
        let last: Option<i64> = row.try_get("last")?;
        let (Some(first), Some(end)) = (first, last) else {
            tx.commit().await?;
            return Ok(Some(Started {
                resolved: 0,
                rest: None,
            }));
        };
        let from = first - 1;
        let to = page_end(from, end, page);
        // Two halves where two transactions can write at once; the first page is the lower
        // half's.
        let mid = if self.backend == Backend::Postgres {
            (from + (end - from) / 2).clamp(to, end)
        } else {
            end
        };
        let resolved = insert_page(&mut tx, id, audience, from, to, now, true).await?;
        sqlx::query(
            "UPDATE campaigns SET resolve_cursor = $1, resolve_mid = $2, \
             resolve_upper_cursor = $2, resolve_end = $3 WHERE id = $4",
        )
        .bind(to)
        .bind(mid)
        .bind(end)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let rest = Resolution {
            cursor: to,
            mid,
            upper_cursor: mid,
            end,
        };
        Ok(Some(Started {
            resolved,
            rest: (!rest.is_done()).then_some(rest),
        }))
    }

    /// Resolves the next page of campaign `id`'s audience, `page` contact ids wide, if it is
    /// sending and not fully resolved. Writes through the relaxed pool: a page lost in a
    /// database crash loses its cursor with it and is simply resolved again, and a row that a
    /// later durable commit (`mark_sending`) relies on is made durable by that commit.
    pub async fn resolve_page(
        &self,
        id: i64,
        audience: &AudienceExpr,
        now: DateTime<Utc>,
        page: u64,
    ) -> Result<Page> {
        match self.try_resolve_page(id, audience, now, page, false).await {
            // Only resolution writes a one-time campaign's rows, in cursor order, so a contact
            // past the cursor has none; should one have a row all the same, the unique
            // constraint refuses the page and it is resolved again, passing over that contact.
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                tracing::warn!(
                    campaign_id = id,
                    "a contact past the resolution cursor already had a row"
                );
                self.try_resolve_page(id, audience, now, page, true).await
            }
            other => other,
        }
    }

    async fn try_resolve_page(
        &self,
        id: i64,
        audience: &AudienceExpr,
        now: DateTime<Utc>,
        page: u64,
        tolerate_existing: bool,
    ) -> Result<Page> {
        let mut tx = self.relaxed.begin_with(self.begin_write()).await?;
        let mut busy = false;
        for half in HALVES {
            if self.backend == Backend::Postgres {
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(half.lock | id)
                    .fetch_one(&mut *tx)
                    .await?;
                if !got {
                    busy = true;
                    continue;
                }
            }
            // Read after taking the lock: the previous holder's page is committed and visible.
            let row = sqlx::query(&format!(
                "SELECT {cursor} AS cursor, {stop} AS stop FROM campaigns \
                 WHERE id = $1 AND status = 'sending' AND {cursor} < {stop}",
                cursor = half.cursor,
                stop = half.stop
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                continue;
            };
            let from: i64 = row.try_get("cursor")?;
            let stop: i64 = row.try_get("stop")?;
            let to = page_end(from, stop, page);
            let rows = insert_page(&mut tx, id, audience, from, to, now, tolerate_existing).await?;
            // Last, so the campaign's row is held only for the moment of the commit (a pause, a
            // status batch or the other half waits on it, not on the page).
            sqlx::query(&format!(
                "UPDATE campaigns SET {} = $1 WHERE id = $2",
                half.cursor
            ))
            .bind(to)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            // Read after the commit: of two halves finishing at once, the later sees both done.
            let done = to >= stop && self.resolution(id).await?.is_none_or(|r| r.is_done());
            // A big fan-out changes the table's shape; without fresh statistics PostgreSQL
            // plans the campaign's claims for the old, small table. In the background: the
            // resolution is complete, and the resolver has other campaigns to page.
            if done && self.backend == Backend::Postgres && stop >= 10_000 {
                let pool = self.pool.clone();
                tokio::spawn(async move {
                    if let Err(error) = sqlx::query("ANALYZE recipients").execute(&pool).await {
                        tracing::warn!(%error, "could not analyze recipients after a resolution");
                    }
                });
            }
            return Ok(Page::Resolved { rows, done });
        }
        Ok(if busy { Page::Busy } else { Page::Nothing })
    }

    /// How far campaign `id`'s resolution has come; `None` when it was resolved at its start
    /// (or never started).
    pub async fn resolution(&self, id: i64) -> Result<Option<Resolution>> {
        let row = sqlx::query(
            "SELECT resolve_cursor, resolve_mid, resolve_upper_cursor, resolve_end \
             FROM campaigns WHERE id = $1 AND resolve_cursor IS NOT NULL \
             AND resolve_mid IS NOT NULL AND resolve_upper_cursor IS NOT NULL \
             AND resolve_end IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Resolution {
                cursor: row.try_get("resolve_cursor")?,
                mid: row.try_get("resolve_mid")?,
                upper_cursor: row.try_get("resolve_upper_cursor")?,
                end: row.try_get("resolve_end")?,
            })
        })
        .transpose()
    }

    /// Sending campaigns whose audience is not fully resolved yet, oldest first.
    pub async fn resolving_campaigns(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT id FROM campaigns WHERE status = 'sending' AND {RESOLVING} ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many contacts of `audience` have an id in `(from, to]`: what is left of a
    /// resolution, as the contacts stand now.
    pub async fn count_audience_between(
        &self,
        audience: &AudienceExpr,
        from: i64,
        to: i64,
    ) -> Result<u64> {
        let (audience_sql, binds) = super::audience::condition_in_range(audience, 3, "$1", "$2");
        let sql = format!(
            "SELECT COUNT(*) FROM contacts c WHERE c.id > $1 AND c.id <= $2 AND {audience_sql}"
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(from).bind(to);
        for b in &binds {
            q = q.bind(b.as_str());
        }
        Ok(u64::try_from(q.fetch_one(&self.pool).await?).unwrap_or(0))
    }
}

/// The last contact id of the page after `from`.
fn page_end(from: i64, end: i64, page: u64) -> i64 {
    let page = i64::try_from(page.max(1)).unwrap_or(i64::MAX);
    from.saturating_add(page).min(end)
}

/// Writes the recipients of the audience's contacts with an id in `(from, to]`. Without
/// `tolerate_existing` a contact who already has a row fails the statement: `ON CONFLICT`
/// costs PostgreSQL a speculative insertion per row, about a third of a page's time.
async fn insert_page(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    audience: &AudienceExpr,
    from: i64,
    to: i64,
    now: DateTime<Utc>,
    tolerate_existing: bool,
) -> Result<u64> {
    let (audience_sql, binds) = super::audience::condition_in_range(audience, 5, "$3", "$4");
    let on_conflict = if tolerate_existing {
        " ON CONFLICT (campaign_id, contact_id) DO NOTHING"
    } else {
        ""
    };
    // `WHERE` before `ON CONFLICT` reads unambiguously to SQLite (never as a join's `ON`).
    let sql = format!(
        "INSERT INTO recipients (campaign_id, contact_id, queued_at) \
         SELECT $1, c.id, $2 FROM contacts c WHERE c.id > $3 AND c.id <= $4 AND {audience_sql}\
         {on_conflict}"
    );
    let mut q = sqlx::query(&sql)
        .bind(id)
        .bind(to_ms(now))
        .bind(from)
        .bind(to);
    for b in &binds {
        q = q.bind(b.as_str());
    }
    Ok(q.execute(&mut *conn).await?.rows_affected())
}
