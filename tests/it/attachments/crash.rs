//! `kill -9` in the middle of a 100,000-row import sent from an admin's WhatsApp: `herald run`
//! as a child process downloads the CSV from the fake Graph API and imports it in one
//! transaction. The test waits until the download was served and the import's write
//! transaction is open (and the admin has had no answer yet), kills the process there, and finds
//! either none of the contacts or all of them: never some. Then a new process imports the same
//! file to its end, which shows that the killed one had an import's worth of work left.

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

/// Starts `herald run` on `db_url` with WhatsApp through `fake` and the admin configured, and
/// waits until it answers `/healthz`; returns it and its base URL.
async fn start_herald(db_url: &str, fake: &FakeGraph) -> (HeraldProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let herald = HeraldProcess::start(
        db_url,
        &fake.url,
        &[
            ("HTTP_ADDR", addr.as_str()),
            ("WHATSAPP_APP_SECRET", APP_SECRET),
            ("ADMIN_WHATSAPP", "+15550100"),
        ],
    );
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http.get(format!("{base}/healthz")).send().await, Ok(r) if r.status() == 200) {
        assert!(Instant::now() < deadline, "herald run did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (herald, base)
}

/// The admin sends media `777001` with the caption `/contact import`, posted in the background
/// (a webhook is answered only once processed).
fn send_import(
    base: &str,
    wamid: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let body = webhooks::media(
        ADMIN,
        "document",
        "777001",
        "text/csv",
        Some("customers.csv"),
        Some("/contact import"),
        wamid,
        chrono::Utc::now().timestamp(),
    );
    let signature = sign(APP_SECRET.as_bytes(), body.as_bytes());
    tokio::spawn(
        reqwest::Client::new()
            .post(format!("{base}/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send(),
    )
}

/// Texts the fake accepted, in order.
fn answers(fake: &FakeGraph) -> Vec<String> {
    fake.accepted()
        .iter()
        .filter_map(|r| r.text().map(str::to_string))
        .collect()
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

    let (herald, base) = start_herald(&db.url, &fake).await;
    let post = send_import(&base, "wamid.crash-import-1");

    // Mid-import: the file was served, the write transaction has been open for three probes in
    // a row (a few hundred milliseconds: herald's other writes take a millisecond or two), and
    // no answer has reached the admin (it is sent after the commit).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open_probes = 0;
    let mut downloaded_at = None;
    while open_probes < 3 {
        assert!(
            Instant::now() < deadline,
            "the import never ran: downloads {:?}, answers {:?}",
            fake.media_downloads(),
            answers(&fake)
        );
        if downloaded_at.is_none() && fake.media_downloads().iter().any(|id| id == "777001") {
            downloaded_at = Some(Instant::now());
        }
        if downloaded_at.is_some() && import_transaction_open(&db.url).await {
            open_probes += 1;
        } else {
            open_probes = 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answers(&fake).is_empty(),
        "the import had already answered: {:?}",
        answers(&fake)
    );
    herald.kill_hard();
    let killed_after = downloaded_at.map(|t| t.elapsed()).unwrap_or_default();
    post.abort();

    let store = herald::store::Store::connect(&db.url)
        .await
        .expect("database opens after the crash");
    let n = store.count_contacts().await.expect("count");
    assert!(
        n == 0 || n == ROWS as i64,
        "{n} contacts after a kill -9 mid-import: an import is all or nothing"
    );

    // A new process imports the same file to its end: the work the kill cut short.
    let (mut herald, base) = start_herald(&db.url, &fake).await;
    let started = Instant::now();
    let _post = send_import(&base, "wamid.crash-import-2");
    let deadline = Instant::now() + Duration::from_secs(120);
    let answer = loop {
        if let Some(answer) = answers(&fake).into_iter().find(|t| t.starts_with("read ")) {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the second import did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    let expected = if n == 0 {
        format!("read {ROWS} row(s): {ROWS} added, 0 updated, 0 unchanged, 0 rejected")
    } else {
        format!("read {ROWS} row(s): 0 added, 0 updated, {ROWS} unchanged, 0 rejected")
    };
    assert_eq!(answer, expected);
    assert_eq!(store.count_contacts().await.expect("count"), ROWS as i64);
    println!(
        "kill -9 {killed_after:?} after the download, with the import's transaction open: \
         {n} of {ROWS} contacts afterwards; the same import run to its end took {took:?}"
    );
    herald.signal("TERM");
    herald.wait_for_exit(Duration::from_secs(20)).await;
    store.close().await;
}
