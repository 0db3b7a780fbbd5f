//! A fresh database for each test. `HERALD_TEST_BACKEND=postgres` runs the suite on PostgreSQL
//! (`HERALD_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`), creating a
//! throw-away database per test, dropped when the test is done with it; anything else uses a
//! SQLite file in a temporary directory.

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::Connection;

pub struct TestDb {
    pub url: String,
    // Keeps the SQLite file's directory alive for the test's life.
    _dir: Option<tempfile::TempDir>,
    /// On PostgreSQL: the server to drop the database from, and its name.
    throw_away: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.throw_away.take() else {
            return;
        };
        // Drop runs inside a test's runtime, which cannot be blocked on: the drop gets a thread
        // and a runtime of its own. FORCE ends the connections the test's pools still hold.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("test database not dropped: {error}");
        }
    }
}

pub fn backend() -> String {
    std::env::var("HERALD_TEST_BACKEND").unwrap_or_else(|_| "sqlite".into())
}

pub fn is_postgres() -> bool {
    backend() == "postgres"
}

impl TestDb {
    /// For tests that are not async (they drive the binary).
    pub fn new_blocking() -> TestDb {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(TestDb::new())
    }

    pub async fn new() -> TestDb {
        if is_postgres() {
            let admin_url = std::env::var("HERALD_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("herald_t_{:016x}", rand::random::<u64>());
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("PostgreSQL reachable for HERALD_TEST_BACKEND=postgres");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .unwrap_or_else(|| admin_url.clone());
            TestDb {
                url: format!("{base}/{name}"),
                _dir: None,
                throw_away: Some((admin_url, name)),
            }
        } else {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("herald.db").display());
            TestDb {
                url,
                _dir: Some(dir),
                throw_away: None,
            }
        }
    }
}

/// Makes every `event` (`INSERT`, `UPDATE`, `DELETE`) on `table` fail inside the database, as a
/// full disk or a broken constraint would, until [`heal`]; with `when` (a condition on `NEW`),
/// only the rows it holds for. One injected failure at a time.
pub async fn inject_failure(pool: &sqlx::AnyPool, event: &str, table: &str, when: Option<&str>) {
    let when = when.map(|c| format!(" WHEN ({c})")).unwrap_or_default();
    let statements = if is_postgres() {
        vec![
            "CREATE OR REPLACE FUNCTION herald_test_fail() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
                .to_string(),
            format!(
                "CREATE TRIGGER herald_test_fail BEFORE {event} ON {table} \
                 FOR EACH ROW{when} EXECUTE FUNCTION herald_test_fail()"
            ),
        ]
    } else {
        vec![format!(
            "CREATE TRIGGER herald_test_fail BEFORE {event} ON {table}{when} \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )]
    };
    for sql in statements {
        sqlx::query(&sql)
            .execute(pool)
            .await
            .expect("install the failure");
    }
}

/// Removes the failure [`inject_failure`] put on `table`.
pub async fn heal(pool: &sqlx::AnyPool, table: &str) {
    let sql = if is_postgres() {
        format!("DROP TRIGGER herald_test_fail ON {table}")
    } else {
        "DROP TRIGGER herald_test_fail".to_string()
    };
    sqlx::query(&sql)
        .execute(pool)
        .await
        .expect("remove the failure");
}

/// A database as an earlier release left it: migrations 1 to `version` alone, then `rows` (raw
/// SQL); opening it with `Store::connect` applies the later ones.
pub async fn migrated_to(db: &TestDb, version: i64, rows: &[&str]) {
    let folder = if is_postgres() { "postgres" } else { "sqlite" };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let mut migrator = sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .expect("migrations folder");
    assert!(
        migrator.iter().any(|m| m.version > version),
        "no migration after {version}"
    );
    migrator.migrations = migrator
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let pool = raw_pool(db).await;
    migrator.run(&pool).await.expect("the earlier migrations");
    for sql in rows {
        sqlx::query(sql)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    pool.close().await;
}

/// One connection to `db` without herald's store (no migrations run, the file created if
/// missing), for SQL as an earlier release would have run it.
pub async fn raw_pool(db: &TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = if is_postgres() {
        db.url.clone()
    } else {
        format!("{}?mode=rwc", db.url)
    };
    AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect")
}
