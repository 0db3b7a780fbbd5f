//! SPEC section 3's report exports: `/campaign report <id> csv` writes one line per recipient and
//! `/campaign report <id> chart` draws a PNG, both into the configured reports folder.

use std::path::Path;

use herald::config::Config;

use crate::support::console_app::ConsoleApp;

/// A finished campaign with two sends and a skip for each of two reasons.
async fn finished_campaign(reports_dir: &Path) -> ConsoleApp {
    let app = ConsoleApp::with_config(Config {
        reports_dir: reports_dir.to_str().expect("temp dir is UTF-8").into(),
        ..Config::default()
    })
    .await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/contact add +15550003 name=Cy labels=vip",
        "/contact add +15550004 name=Dee labels=vip optin",
    ])
    .await;
    app.customer("+15550001", "hi").await;
    app.customer("+15550002", "hi").await;
    app.customer("+15550004", "STOP").await;
    app.setup(&[
        "/campaign new Spring sale",
        "/campaign audience 1 vip",
        "/campaign text 1 Hello {{name}}, 20% off today",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Hello Ann, 20% off today"]);
    app
}

#[tokio::test]
async fn csv_export_has_a_row_per_recipient_with_status_and_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = finished_campaign(dir.path()).await;

    let reply = app.admin("/campaign report 1 csv").await;
    let path = dir.path().join("campaign-1.csv");
    assert!(reply.contains(&path.display().to_string()), "{reply}");

    let mut csv = csv::Reader::from_path(&path).expect("the CSV opens");
    let headers = csv.headers().expect("a header row").clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column in {headers:?}"))
    };
    let (address, status, reason) = (column("address"), column("status"), column("reason"));
    let mut rows: Vec<(String, String, String)> = csv
        .records()
        .map(|r| {
            let r = r.expect("a well-formed row");
            (
                r[address].to_string(),
                r[status].to_string(),
                r[reason].to_string(),
            )
        })
        .collect();
    rows.sort();
    let row = |a: &str, s: &str, r: &str| (a.to_string(), s.to_string(), r.to_string());
    assert_eq!(
        rows,
        vec![
            row("wa:15550001", "sent", ""),
            row("wa:15550002", "sent", ""),
            row("wa:15550003", "skipped", "no_consent"),
            row("wa:15550004", "skipped", "opted_out"),
        ]
    );
}

#[tokio::test]
async fn chart_export_writes_a_png() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = finished_campaign(dir.path()).await;

    let reply = app.admin("/campaign report 1 chart").await;
    let path = dir.path().join("campaign-1.png");
    assert!(reply.contains(&path.display().to_string()), "{reply}");

    let png = std::fs::read(&path).expect("the chart was written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert_eq!((width, height), (1000, 600));
}
