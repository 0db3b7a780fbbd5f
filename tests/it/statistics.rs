//! Plans that do not decay: on PostgreSQL herald refreshes its hot tables' statistics itself
//! (the same with autovacuum on or off); on SQLite it never collects any, so none can go stale.

use sqlx::Row;

use crate::support::console_app::ConsoleApp;

#[tokio::test]
async fn upkeep_analyzes_the_hot_tables_on_postgres_and_leaves_sqlite_alone() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/campaign new Spring",
        "/campaign audience 1 vip",
        "/campaign text 1 Hello {{name}}",
    ])
    .await;
    app.customer("+15550001", "hi").await;
    app.admin("/campaign send 1").await;
    app.settle().await;
    let store = &app.engine.store;
    let done = store.upkeep(true).await.expect("upkeep runs");
    match store.backend() {
        herald::store::Backend::Postgres => {
            for table in [
                "campaigns",
                "inbound_seen",
                "leases",
                "recipients",
                "tier_usage",
            ] {
                assert!(
                    done.analyzed
                        .iter()
                        .chain(&done.vacuumed)
                        .any(|t| t == table),
                    "{table} refreshed: {done:?}"
                );
            }
            let analyzed: bool = sqlx::query(
                "SELECT last_analyze IS NOT NULL OR last_vacuum IS NOT NULL AS done \
                 FROM pg_stat_user_tables WHERE relname = 'recipients'",
            )
            .fetch_one(store.pool())
            .await
            .expect("statistics read")
            .get("done");
            assert!(analyzed, "PostgreSQL recorded the analysis");
        }
        herald::store::Backend::Sqlite => {
            assert_eq!(done, herald::store::Upkeep::default());
            let stats: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
            )
            .fetch_one(store.pool())
            .await
            .expect("schema reads");
            assert_eq!(stats, 0, "no statistics collected on SQLite");
        }
    }
}
