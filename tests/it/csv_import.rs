//! CSV contact import as a careless or hostile user tries it: every row accounted for, a broken
//! row costing only itself, one spelling of a number per file, consent never flipped back on,
//! the same file twice changing nothing, and a failed write leaving nothing half-imported.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use herald::commands::handlers::import_contacts;

use crate::support::console_app::ConsoleApp;
use crate::support::db::{heal, inject_failure, TestDb};

async fn import(app: &ConsoleApp, csv: &str) -> String {
    app.admin(&format!("/contact import\n{csv}")).await
}

async fn contacts(app: &ConsoleApp) -> i64 {
    app.engine.store.count_contacts().await.expect("count")
}

/// `n` rows of new numbers, `+1555000000` onwards, each named.
fn rows(n: usize) -> String {
    (0..n).map(|i| format!("+1555{i:07},Name {i}\n")).collect()
}

#[tokio::test]
async fn an_unclosed_quote_costs_its_line_and_the_rows_after_it_are_imported() {
    let app = ConsoleApp::start().await;
    let csv = format!("address,name\n+15559999999,\"Unclosed name\n{}", rows(999));
    let reply = import(&app, &csv).await;
    let mut lines = reply.lines();
    assert_eq!(
        lines.next(),
        Some("read 1000 row(s): 999 added, 0 updated, 0 unchanged, 1 rejected"),
        "{reply}"
    );
    assert_eq!(
        lines.next(),
        Some("line 2: a quoted cell opened on this line is still open 10 lines later: is a closing quote missing?")
    );
    assert_eq!(lines.next(), None);
    assert_eq!(contacts(&app).await, 999);
    let last = app.admin("/contact show +15550000998").await;
    assert!(last.contains("name: Name 998"), "{last}");
    assert!(app
        .admin("/contact show +15559999999")
        .await
        .contains("no contact"));
}

#[tokio::test]
async fn every_row_is_counted_with_the_reason_it_was_rejected() {
    let app = ConsoleApp::start().await;
    let reply = import(
        &app,
        "address,name\n+15550001,A\n+12345,B\ntg:99999999999999999999,C\n+15550002,D\n+15550003,E\n+15550004,F\n",
    )
    .await;
    assert_eq!(
        reply,
        "read 6 row(s): 4 added, 0 updated, 0 unchanged, 2 rejected\n\
         line 3: \"+12345\" is not a phone number: it needs 7 to 15 digits (+15550001)\n\
         line 4: \"tg:99999999999999999999\" is not a Telegram chat id (tg:<number>)"
    );
    assert_eq!(contacts(&app).await, 4);
}

#[tokio::test]
async fn only_twenty_rejections_are_listed_and_the_rest_counted() {
    let app = ConsoleApp::start().await;
    let bad: String = (0..25).map(|i| format!("bad{i},x\n")).collect();
    let reply = import(&app, &format!("address,name\n+15550001,A\n{bad}")).await;
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(
        lines[0],
        "read 26 row(s): 1 added, 0 updated, 0 unchanged, 25 rejected"
    );
    assert_eq!(lines.len(), 1 + 20 + 1, "{reply}");
    assert!(lines[1].starts_with("line 3: "), "{reply}");
    assert_eq!(lines[21], "... and 5 more");
}

#[tokio::test]
async fn two_spellings_of_one_number_are_a_duplicate_and_the_first_row_stands() {
    let app = ConsoleApp::start().await;
    let reply = import(
        &app,
        "address,name,consent\n+15550001,Ann,yes\n15550001,Bo,no\n+1 555 0001,Cy,no\n",
    )
    .await;
    assert_eq!(
        reply,
        "read 3 row(s): 1 added, 0 updated, 0 unchanged, 2 rejected\n\
         line 3: duplicate of line 2 (both are wa:15550001)\n\
         line 4: duplicate of line 2 (both are wa:15550001)"
    );
    let ann = app.admin("/contact show +15550001").await;
    assert!(ann.contains("name: Ann"), "{ann}");
    assert!(ann.contains("consent: opted_in"), "{ann}");
    assert_eq!(ann.matches("history:").count(), 1, "{ann}");
    assert!(ann.contains("history: opt_in via import"), "{ann}");
}

#[tokio::test]
async fn importing_the_same_file_twice_changes_nothing_the_second_time() {
    let app = ConsoleApp::start().await;
    let csv = "address,name,lang,tz,labels,consent,city\n\
               +15550001,Ann,pt,Europe/Lisbon,vip;new,yes,Lisbon\n\
               +15550002,Bo,,,vip,no,\n\
               tg:42,Cy,,,,,Porto\n";
    assert_eq!(
        import(&app, csv).await,
        "read 3 row(s): 3 added, 0 updated, 0 unchanged, 0 rejected"
    );
    let before = app.admin("/contact show +15550001").await;
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(
        import(&app, csv).await,
        "read 3 row(s): 0 added, 0 updated, 3 unchanged, 0 rejected"
    );
    assert_eq!(app.admin("/contact show +15550001").await, before);
    // One changed cell is one updated row; blanks leave what is stored.
    let changed = csv.replace("tg:42,Cy,,,,,Porto", "tg:42,,,,,,Braga");
    assert_eq!(
        import(&app, &changed).await,
        "read 3 row(s): 0 added, 1 updated, 2 unchanged, 0 rejected"
    );
    let cy = app.admin("/contact show tg:42").await;
    assert!(
        cy.contains("name: Cy") && cy.contains("attr.city: Braga"),
        "{cy}"
    );
}

#[tokio::test]
async fn an_import_never_opts_an_opted_out_contact_back_in() {
    let app = ConsoleApp::start().await;
    import(
        &app,
        "address,name,consent\n+15550001,Ann,yes\n+15550002,Bo,yes\n",
    )
    .await;
    app.customer("+15550001", "STOP").await;
    let reply = import(
        &app,
        "address,name,consent\n+15550001,Ann Lee,yes\n+15550002,Bo,no\n",
    )
    .await;
    assert_eq!(
        reply,
        "read 2 row(s): 0 added, 1 updated, 0 unchanged, 1 rejected\n\
         line 2: wa:15550001 opted out and only they can opt back in: leave consent empty to update the rest"
    );
    let ann = app.admin("/contact show +15550001").await;
    assert!(ann.contains("consent: opted_out"), "{ann}");
    assert!(
        ann.contains("name: Ann\n"),
        "nothing of the row is written: {ann}"
    );
    // An opt-out from the file is recorded like any other, with its source.
    let bo = app.admin("/contact show +15550002").await;
    assert!(bo.contains("consent: opted_out"), "{bo}");
    assert!(bo.contains("history: opt_out via import"), "{bo}");
    // Without a consent cell the rest of the row goes in.
    assert_eq!(
        import(&app, "address,name\n+15550001,Ann Lee\n").await,
        "read 1 row(s): 0 added, 1 updated, 0 unchanged, 0 rejected"
    );
}

#[tokio::test]
async fn a_failed_write_on_the_last_row_imports_nothing() {
    let app = ConsoleApp::start().await;
    app.setup(&["/contact add +15559999999 name=Ann"]).await;
    // More rows than one round of statements, so earlier rounds are written before it fails.
    let csv = format!("address,name\n+15559999999,Zed\n{}", rows(5000));
    let pool = app.engine.store.pool();
    inject_failure(
        pool,
        "INSERT",
        "contacts",
        Some("NEW.address = 'wa:15550004999'"),
    )
    .await;
    let reply = import(&app, &csv).await;
    assert_eq!(
        reply,
        "something went wrong on our side; nothing was changed. Details are in the log."
    );
    assert_eq!(contacts(&app).await, 1);
    let ann = app.admin("/contact show +15559999999").await;
    assert!(ann.contains("name: Ann"), "{ann}");
    heal(pool, "contacts").await;
    assert_eq!(
        import(&app, &csv).await,
        "read 5001 row(s): 5000 added, 1 updated, 0 unchanged, 0 rejected"
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_imported_gets_one_line_and_changes_nothing() {
    let app = ConsoleApp::start().await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
    assert_eq!(
        import_contacts(&app.engine, png).await,
        Err("nothing imported: this is a PNG image, not a CSV file: export the contacts as CSV (UTF-8)".into())
    );
    for (file, answer) in [
        (
            "",
            "the file is empty: the first row must name the columns, e.g. address,name,labels",
        ),
        (
            "address,name,labels\n",
            "the file has a header row but no rows of contacts",
        ),
        (
            "name,city\nAnn,Lisbon\n",
            "no address column: name one column address (or phone, number, mobile, wa_id, chat_id)",
        ),
    ] {
        assert_eq!(
            import_contacts(&app.engine, file.as_bytes()).await,
            Err(format!("nothing imported: {answer}"))
        );
    }
    assert_eq!(
        import(&app, "name,city\nAnn,Lisbon").await,
        "nothing imported: no address column: name one column address (or phone, number, mobile, wa_id, chat_id)"
    );
    assert_eq!(contacts(&app).await, 0);
}

fn herald(db: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--config", "/nonexistent/herald.toml", "--database-url", db])
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("input written");
    child.wait_with_output().expect("herald exits")
}

#[test]
fn the_cli_and_the_console_answer_alike() {
    let csv = "address,name\n+15550001,Ann\n+12345,Bo\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("contacts.csv");
    std::fs::write(&file, csv).expect("file written");
    let answer = "read 2 row(s): 1 added, 0 updated, 0 unchanged, 1 rejected\n\
                  line 3: \"+12345\" is not a phone number: it needs 7 to 15 digits (+15550001)\n";

    let cli_db = TestDb::new_blocking();
    let path = file.to_str().expect("utf-8 path");
    let out = herald(&cli_db.url, &["contacts", "import", path], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), answer);

    // Pasted on the console after the command, ended by an empty line; then a file by path.
    let console_db = TestDb::new_blocking();
    let script = format!("/contact import\n{csv}\n/contact import {path}\n");
    let out = herald(&console_db.url, &["console"], &script);
    assert!(out.status.success(), "{out:?}");
    let again = answer.replace(
        "1 added, 0 updated, 0 unchanged",
        "0 added, 0 updated, 1 unchanged",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{answer}{again}")
    );

    // A file that is no CSV: one line, a failed exit, nothing written.
    let png = dir.path().join("photo.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0").expect("file written");
    let out = herald(
        &cli_db.url,
        &["contacts", "import", png.to_str().expect("utf-8 path")],
        "",
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "nothing imported: this is a PNG image, not a CSV file: export the contacts as CSV (UTF-8)\n"
    );
}

#[tokio::test]
async fn kill_9_during_an_import_leaves_nothing_or_everything() {
    const ROWS: usize = 200_000;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("big.csv");
    std::fs::write(&file, format!("address,name\n{}", rows(ROWS))).expect("file written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--config", "/nonexistent/herald.toml", "--database-url"])
        .arg(&db.url)
        .args(["contacts", "import"])
        .arg(&file)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("herald starts");
    // Long enough to be writing (a test build takes seconds for this file), not to be done.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let store = herald::store::Store::connect(&db.url)
        .await
        .expect("database opens after the crash");
    let n = store.count_contacts().await.expect("count");
    assert!(
        n == 0 || n == ROWS as i64,
        "{n} contacts after a kill -9: an import is all or nothing"
    );
    store.close().await;
}
