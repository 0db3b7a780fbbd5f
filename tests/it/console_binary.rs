//! The README's first command, as a new user runs it: `herald console` with a pasted script,
//! then a second start on the same database.

use std::io::Write;
use std::process::{Command, Stdio};

fn console(db: &str, script: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--database-url", db, "console"])
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
        .write_all(script.as_bytes())
        .expect("script written");
    let out = child.wait_with_output().expect("herald exits");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn the_readme_walkthrough_behaves_as_documented() {
    let db = crate::support::db::TestDb::new_blocking();
    let out = console(
        &db.url,
        "/contact add +15550001 name=Ann labels=vip optin\n\
         /contact add +15550002 name=Bob labels=vip optin\n\
         /contact add +15550003 name=Cy labels=vip\n\
         @+15550001 hi\n\
         @+15550002 hi\n\
         /campaign new Spring sale\n\
         /campaign audience 1 vip\n\
         /campaign text 1 Hello {{name}}, 20% off today\n\
         /campaign send 1\n\
         /campaign report 1\n\
         @+15550002 Stop.\n\
         /campaign new Second\n\
         /campaign audience 2 vip\n\
         /campaign text 2 Still on: {{name}}, 20% off\n\
         /campaign send 2\n",
    );
    let sends: Vec<&str> = out.lines().filter(|l| l.starts_with("-> ")).collect();
    assert_eq!(
        sends,
        vec![
            "-> +15550001: Hello Ann, 20% off today",
            "-> +15550002: Hello Bob, 20% off today",
            "-> +15550002: You are unsubscribed and will get no more messages from us. Reply START to subscribe again.",
            "-> +15550001: Still on: Ann, 20% off",
        ],
        "{out}"
    );
    for line in [
        "targeted: 3",
        "sent: 2",
        "skipped: 1",
        "skipped.no_consent: 1",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} in:\n{out}");
    }

    // A later start on the same database still has the report.
    let later = console(&db.url, "/campaign report 1\n/campaign report 2\n");
    assert!(later.contains("skipped.no_consent: 1"), "{later}");
    assert!(later.contains("skipped.opted_out: 1"), "{later}");
}

#[test]
fn scheduled_campaigns_wait_for_the_next_start() {
    let db = crate::support::db::TestDb::new_blocking();
    // The console runs on the real clock: a year from now is never due during the test.
    let next_year = (chrono::Utc::now() + chrono::Duration::days(365)).format("%Y-%m-%d");
    let out = console(
        &db.url,
        &format!(
            "/contact add +15550001 name=Ann labels=vip optin\n\
             /template add hello en utility Hello {{{{1}}}}\n\
             /campaign new Later\n\
             /campaign audience 1 vip\n\
             /campaign template 1 hello en {{{{name}}}}\n\
             /campaign schedule 1 {next_year} 09:00\n"
        ),
    );
    assert!(!out.contains("-> +15550001"), "{out}");
    let later = console(&db.url, "/campaign list\n");
    assert!(later.contains("[scheduled] Later"), "{later}");
}
