//! `kill -9` in the middle of a 100,000-row import sent from an admin's WhatsApp: `herald run`
//! as a child process downloads the CSV from the fake Graph API and imports it in one
//! transaction. The test waits until the download was served and the import's write
//! transaction is open (and the admin has had no answer yet), kills the process there, and finds
//! either none of the contacts or all of them: never some.

use std::time::{Duration, Instant};

use herald::channels::whatsapp::{sign, SIGNATURE_HEADER};

use crate::support::db::{is_postgres, TestDb};
use crate::support::fake_graph::{webhooks, FakeGraph};
use crate::support::herald_process::{HeraldProcess, TOKEN};
use crate::support::run_app::{ADMIN, APP_SECRET};

const ROWS: usize = 100_000;

/// Whether a write transaction other than ours is open on the contacts: on SQLite, `BEGIN
/// IMMEDIATE` without waiting is refused while another writer holds the lock; on PostgreSQL,
/// a granted ROW EXCLUSIVE lock on `contacts` is held until its transaction ends.
async fn import_transaction_open(url: &str) -> bool {
    use sqlx::{ConnectOptions, Connection, Row};
    use std::str::FromStr;
    if is_postgres() {
        let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
            return false;
        };
        let held = sqlx::query(
            "SELECT COUNT(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'contacts' AND l.mode = 'RowExclusiveLock' AND l.granted \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut conn)
        .await
        .map(|row| row.get::<i64, _>("n") > 0)
        .unwrap_or(false);
        let _ = conn.close().await;
        return held;
    }
    let Ok(options) = sqlx::sqlite::SqliteConnectOptions::from_str(url) else {
        return false;
    };
    let Ok(mut conn) = options.busy_timeout(Duration::ZERO).connect().await else {
        return false;
    };
    let held = match sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await {
        Ok(_) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
            false
        }
        Err(error) => error.to_string().contains("locked"),
    };
    let _ = conn.close().await;
    held
}

#[tokio::test]
async fn kill_9_during_a_100000_row_import_from_whatsapp_leaves_none_or_all() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    fake.require_token(TOKEN);
    let csv: String = std::iter::once("address,name\n".to_string())
        .chain((0..ROWS).map(|i| format!("+1666{i:07},Name {i}\n")))
        .collect();
    fake.add_media("777001", "text/csv", csv);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let herald = HeraldProcess::start(
        &db.url,
        &fake.url,
        &[
            ("HTTP_ADDR", addr.as_str()),
            ("WHATSAPP_APP_SECRET", APP_SECRET),
            ("ADMIN_WHATSAPP", "+15550100"),
        ],
    );
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http.get(format!("{base}/healthz")).send().await, Ok(r) if r.status() == 200) {
        assert!(Instant::now() < deadline, "herald run did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The admin sends the file with its command; the webhook is answered only once processed,
    // so it is posted in the background.
    let body = webhooks::media(
        ADMIN,
        "document",
        "777001",
        "text/csv",
        Some("customers.csv"),
        Some("/contact import"),
        "wamid.crash-import-1",
        chrono::Utc::now().timestamp(),
    );
    let signature = sign(APP_SECRET.as_bytes(), body.as_bytes());
    let post = tokio::spawn(
        http.post(format!("{base}/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send(),
    );

    // Mid-import: the file was served, the write transaction has been open for three probes in
    // a row (a few hundred milliseconds: herald's other writes take a millisecond or two), and
    // no answer has reached the admin (it is sent after the commit).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open_probes = 0;
    while open_probes < 3 {
        assert!(
            Instant::now() < deadline,
            "the import never ran: downloads {:?}, answers {:?}",
            fake.media_downloads(),
            fake.accepted()
                .iter()
                .map(|r| r.text().map(str::to_string))
                .collect::<Vec<_>>()
        );
        let downloaded = fake.media_downloads().iter().any(|id| id == "777001");
        if downloaded && import_transaction_open(&db.url).await {
            open_probes += 1;
        } else {
            open_probes = 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        fake.accepted().is_empty(),
        "the import had already answered: {:?}",
        fake.accepted()
            .iter()
            .map(|r| r.text().map(str::to_string))
            .collect::<Vec<_>>()
    );
    herald.kill_hard();
    post.abort();

    let store = herald::store::Store::connect(&db.url)
        .await
        .expect("database opens after the crash");
    let n = store.count_contacts().await.expect("count");
    assert!(
        n == 0 || n == ROWS as i64,
        "{n} contacts after a kill -9 mid-import: an import is all or nothing"
    );
    println!("kill -9 during the import: {n} of {ROWS} contacts afterwards");
    store.close().await;
}
