//! Durable state on SQLite (embedded default) or PostgreSQL (scale-out), chosen by the scheme of
//! `DATABASE_URL`. One store on sqlx's `Any` driver: the SQL is written once in the dialect both
//! accept (`$n` parameters, times as epoch milliseconds, `COUNT(*) FILTER`), each backend has its
//! own migrations folder, and the few statements that must differ (claiming work) branch on
//! [`Backend`]. The engine never sees which backend it runs on.

mod audience;
mod business;
mod campaigns;
mod contacts;
mod import;
pub mod model;
mod overview;
pub mod recipients;
pub mod resolution;
mod retention;
mod retry;
pub mod statuses;
mod tier;
mod upkeep;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use business::{AccountState, SyncDiff};
pub use import::ImportOutcome;
pub use model::*;
pub use overview::{QueueFigure, QueueState};
pub use retry::FailedRecipient;
pub use tier::TierReservation;
pub use upkeep::Upkeep;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported DATABASE_URL {0:?}: use sqlite://FILE or postgres://...")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Invalid(String),
    /// Other writers kept moving rows under a batch of statuses; trying again is safe.
    #[error("write conflict: {0}")]
    Conflict(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// For writes whose loss in a database crash is harmless (claims, outcomes, lease renewals,
    /// releases): on PostgreSQL its sessions commit without waiting for the WAL flush
    /// (`synchronous_commit = off`), which takes the ~4 ms fsync out of every dispatcher round
    /// trip. Nothing is lost that matters: the write that must be durable before a message
    /// leaves, `mark_sending`, goes through `pool` and its commit flushes every earlier one; a
    /// lost outcome leaves a row `sending`, which recovery reports `unknown`, never re-sends.
    /// On SQLite it is the same pool.
    relaxed: AnyPool,
    backend: Backend,
}

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Opens the database named by `url` (creating a SQLite file if needed) and applies
    /// migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") || url.contains(":memory:") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let options = url.parse::<AnyConnectOptions>()?;
        let relaxed_options = options.clone();
        let pool = match backend {
            // One connection: SQLite has one writer anyway, and a single connection rules out
            // SQLITE_BUSY when a read transaction would need upgrading to a write.
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(60))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                                 PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?
            }
        };
        let relaxed = match backend {
            Backend::Sqlite => pool.clone(),
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("SET synchronous_commit = off").await?;
                            Ok(())
                        })
                    })
                    .connect_with(relaxed_options)
                    .await?
            }
        };
        let store = Store {
            pool,
            relaxed,
            backend,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => MIGRATE_SQLITE.run(&self.pool).await?,
            Backend::Postgres => MIGRATE_POSTGRES.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.relaxed.close().await;
        self.pool.close().await;
    }

    /// The statement that begins a transaction that writes. SQLite must take the write lock at
    /// once (`BEGIN IMMEDIATE`): a deferred transaction that reads first cannot wait for another
    /// connection's writer to finish, and fails at once with "database is locked" instead.
    fn begin_write(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "BEGIN",
            Backend::Sqlite => "BEGIN IMMEDIATE",
        }
    }

    /// What a `SELECT` adds to hold the rows it reads until the transaction ends: `FOR UPDATE`
    /// on PostgreSQL; nothing on SQLite, whose single writer already serializes transactions.
    fn lock_rows(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// `column` is one of the values `subquery` selects. On PostgreSQL the values become an
    /// array first (`= ANY(ARRAY(...))`), which the planner can only read as index lookups.
    /// Written as `IN (SELECT ...)`, it may instead scan the table and test every row against
    /// every value: it believes `claimed_by = $1`-style filters leave one row, and on a table
    /// that is young, small or never analyzed it then takes that scan as the outer side of a
    /// nested loop (measured: 0.75 s for 200 ids among 6,000 rows in flight, against 1.5 ms as
    /// lookups).
    fn in_ids_of(&self, column: &str, subquery: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("{column} = ANY(ARRAY({subquery}))"),
            Backend::Sqlite => format!("{column} IN ({subquery})"),
        }
    }

    /// `column` is one of the ids in JSON array parameter `$param` (one parameter, whatever the
    /// count: the statement text stays the same, so it is prepared once, and SQLite binds one
    /// value instead of hundreds), looked up as [`Store::in_ids_of`] says.
    fn in_json_ids(&self, column: &str, param: usize) -> String {
        self.in_ids_of(column, &self.json_ids(&format!("${param}")))
    }

    /// A subquery selecting the ids of the JSON array `source` (a parameter, or a column such
    /// as a lease's `recipient_ids`).
    fn json_ids(&self, source: &str) -> String {
        match self.backend {
            Backend::Postgres => {
                format!("SELECT e::bigint FROM json_array_elements_text({source}::json) AS e")
            }
            Backend::Sqlite => format!("SELECT value FROM json_each({source})"),
        }
    }

    /// `column` is one of the strings in JSON array parameter `$param` (as
    /// [`Store::in_json_ids`]).
    fn in_json_texts(&self, column: &str, param: usize) -> String {
        let texts = match self.backend {
            Backend::Postgres => format!("SELECT json_array_elements_text(${param}::json)"),
            Backend::Sqlite => format!("SELECT value FROM json_each(${param})"),
        };
        self.in_ids_of(column, &texts)
    }

    /// For a statement joining `column` to element `index` (of type `ty`) of each row of
    /// [`Store::json_rows`]`(param, ..)`: on PostgreSQL an ` AND column = ANY(...)` that pins
    /// the join to index lookups (see [`Store::in_ids_of`]; without it the planner may test
    /// every row in flight against every JSON row, extracting the value anew each time: 1.8 s
    /// for 200 outcomes among 6,000 rows in flight). SQLite looks the rows up by key already.
    fn json_rows_keyed(&self, column: &str, param: usize, index: usize, ty: &str) -> String {
        match self.backend {
            Backend::Postgres => format!(
                " AND {column} = ANY(ARRAY(SELECT {} FROM jsonb_array_elements(${param}::jsonb) AS e))",
                pg_json_pick(index, ty)
            ),
            Backend::Sqlite => String::new(),
        }
    }

    /// A derived table `v` of the rows in JSON array parameter `$param`: each row an array of
    /// values, named and typed by `columns` (`bigint` or `text`). PostgreSQL reads it as `jsonb`,
    /// parsed once: each `->>` on plain `json` parses its element's text again, one pass per
    /// column (a fifth of the time of a 256-row outcome write).
    fn json_rows(&self, param: usize, columns: &[(&str, &str)]) -> String {
        let picks = columns
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| match self.backend {
                Backend::Postgres => format!("{} AS {name}", pg_json_pick(i, ty)),
                Backend::Sqlite => format!("json_extract(e.value, '$[{i}]') AS {name}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let from = match self.backend {
            Backend::Postgres => format!("jsonb_array_elements(${param}::jsonb) AS e"),
            Backend::Sqlite => format!("json_each(${param}) AS e"),
        };
        format!("(SELECT {picks} FROM {from}) AS v")
    }
}

/// Element `index` of PostgreSQL's `jsonb` array row `e`, as type `ty` (`text` needs no cast).
fn pg_json_pick(index: usize, ty: &str) -> String {
    if ty == "text" {
        format!("e->>{index}")
    } else {
        format!("(e->>{index})::{ty}")
    }
}

/// The row a statement that writes returns, once the statement has finished: outside a
/// transaction, once it has committed. sqlx's `Any` driver answers `fetch_one` and
/// `fetch_optional` as soon as the first row arrives, and on PostgreSQL that is before the
/// server commits the statement's implicit transaction. A claim read that way handed rows to
/// the senders before they were durably `sending`; when the commit lagged (waiting on a busy
/// WAL), their outcomes, written on another connection, found them still `queued` there and
/// matched nothing, and the rows stayed `sending`. `fetch_all` reads to the end of the
/// exchange, after the commit.
async fn written_row<'q, 'e, 'c: 'e, E>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    executor: E,
) -> Result<AnyRow>
where
    'q: 'e,
    E: 'e + Executor<'c, Database = sqlx::Any>,
{
    query
        .fetch_all(executor)
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
}

/// A JSON array of ids, for [`Store::in_json_ids`].
fn json_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// `$first, $first+1, ...` for an `IN (...)` list of `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt_time(row: &AnyRow, col: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    Ok(row
        .try_get::<Option<i64>, _>(col)?
        .map(crate::clock::from_ms))
}

/// A row's `status` column read as a recipient status; a word the code does not know is an
/// error, not a silent default.
fn recipient_status(row: &AnyRow) -> Result<crate::domain::RecipientStatus> {
    let word: String = row.try_get("status")?;
    word.parse()
        .map_err(|e: crate::domain::recipient_status::UnknownStatus| {
            StoreError::Invalid(e.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_count_from_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }
}
