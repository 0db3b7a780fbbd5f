//! Statistics that do not decay: on PostgreSQL the store keeps the hot tables' planner
//! statistics fresh and their dead rows reclaimed itself, by autovacuum's own rule, so herald
//! plans its queue the same whether autovacuum runs or not. Where autovacuum does run, its work
//! resets the counters this reads, and this finds little to do.
//!
//! SQLite needs none of it: herald never runs `ANALYZE` there, so its planner uses no
//! statistics that could go stale, and pages freed by deletes are reused by later inserts.

use sqlx::Row;

use super::{Backend, Result, Store};

/// The tables whose churn drives the queue's plans and the database's size.
const HOT_TABLES: &str =
    "('recipients', 'leases', 'inbound_seen', 'tier_usage', 'campaigns', 'campaign_summaries')";

/// A session advisory lock naming the upkeep, so that of several processes on one database only
/// one analyzes or vacuums at a time (the others skip their turn).
const UPKEEP_LOCK: i64 = 0x7570_6b65_6570; // "upkeep"

/// What one pass did, table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upkeep {
    pub analyzed: Vec<String>,
    pub vacuumed: Vec<String>,
}

/// autovacuum's defaults: act on a table once changes exceed a base plus a share of its rows.
fn due(changed: i64, live: i64, base: f64, share: f64) -> bool {
    changed as f64 > base + share * live as f64
}

impl Store {
    /// One upkeep pass: `VACUUM (ANALYZE)` of each hot table with many dead rows, `ANALYZE` of
    /// each with many changes since its last analysis (every one of them with `force`).
    pub async fn upkeep(&self, force: bool) -> Result<Upkeep> {
        let mut done = Upkeep::default();
        if self.backend != Backend::Postgres {
            return Ok(done);
        }
        // One connection holds the session lock and runs the statements: VACUUM cannot run in a
        // transaction, so a transaction-scoped lock would not do.
        let mut conn = self.pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(UPKEEP_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !got {
            return Ok(done);
        }
        let tables = format!(
            "SELECT relname::text AS name, n_live_tup AS live, n_dead_tup AS dead, \
             n_mod_since_analyze AS changed FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND relname IN {HOT_TABLES} ORDER BY relname"
        );
        // Every error is kept until the lock is given back: a connection returned to the pool
        // still holding it would stop every later pass.
        let mut failure = None;
        match sqlx::query(&tables).fetch_all(&mut *conn).await {
            Err(e) => failure = Some(e),
            Ok(rows) => {
                for row in rows {
                    let read = (
                        row.try_get::<String, _>("name"),
                        row.try_get::<i64, _>("live"),
                        row.try_get::<i64, _>("dead"),
                        row.try_get::<i64, _>("changed"),
                    );
                    let (Ok(name), Ok(live), Ok(dead), Ok(changed)) = read else {
                        continue;
                    };
                    // The name comes from the fixed list above, never from input.
                    let (statement, list) = if due(dead, live, 50.0, 0.2) {
                        (format!("VACUUM (ANALYZE) {name}"), &mut done.vacuumed)
                    } else if force || due(changed, live, 50.0, 0.1) {
                        (format!("ANALYZE {name}"), &mut done.analyzed)
                    } else {
                        continue;
                    };
                    match sqlx::query(&statement).execute(&mut *conn).await {
                        Ok(_) => list.push(name),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(UPKEEP_LOCK)
            .execute(&mut *conn)
            .await?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(done),
        }
    }

    /// The database's size on disk in bytes: PostgreSQL's own count, or SQLite's pages in use
    /// plus those free for reuse.
    pub async fn database_size(&self) -> Result<i64> {
        match self.backend {
            Backend::Postgres => Ok(sqlx::query_scalar(
                "SELECT pg_database_size(current_database())::bigint",
            )
            .fetch_one(&self.pool)
            .await?),
            Backend::Sqlite => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(&self.pool)
                    .await?;
                let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(pages * size)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn autovacuum_rule() {
        assert!(!due(50, 0, 50.0, 0.1));
        assert!(due(51, 0, 50.0, 0.1));
        assert!(!due(1_000, 10_000, 50.0, 0.1));
        assert!(due(1_051, 10_000, 50.0, 0.1));
    }
}
