//! The crash test: `herald run` sends a 5,000-recipient campaign and is killed with SIGKILL at
//! random moments five times, restarted each time, then left to finish. No recipient may get the
//! message twice, and every one must end up sent or reported `unknown` (it may have left in the
//! instant of the crash; herald never guesses by sending again).

use std::time::Duration;

use rand::Rng;

use herald::store::{CampaignStatus, Store};

use crate::support::db::{backend, is_postgres, TestDb};
use crate::support::fake_graph::FakeGraph;
use crate::support::herald_process::{
    accepted_per_recipient, eventually, in_flight, seed_sending_campaign_paged, statuses,
    HeraldProcess,
};

const RECIPIENTS: u64 = 5_000;
const KILLS: usize = 5;

#[tokio::test]
async fn kill_9_five_times_sends_nobody_twice_and_accounts_for_everyone() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    // Paced at 250/s (windows of 200, eight in flight): about 20 s of sending, so every kill
    // lands mid-campaign, with rows claimed, rows being sent and rows done.
    // Its audience is resolved a contact at a time while it sends (5,000 pages), so the first
    // kills may land mid-resolution too.
    seed_sending_campaign_paged(&db.url, RECIPIENTS, "rate=250", 1).await;
    let store = Store::connect(&db.url).await.unwrap();
    // On PostgreSQL a restart leaves other processes' leases alone, so a dead process's rows come
    // back when its lease runs out: short leases keep the test short.
    let env: &[(&str, &str)] = if is_postgres() {
        &[
            ("LEASE_SECS", "2"),
            ("RECOVER_EVERY_SECS", "1"),
            ("RESOLVE_PAGE", "1"),
        ]
    } else {
        &[("RESOLVE_PAGE", "1")]
    };

    let mut rng = rand::rng();
    for kill in 1..=KILLS {
        let before = fake.accepted().len();
        let herald = HeraldProcess::start(&db.url, &fake.url, env);
        // Wait until this run is sending, then let it run a random while longer.
        let sending = eventually(Duration::from_secs(30), || async {
            fake.accepted().len() > before
        })
        .await;
        assert!(sending, "run {kill} sent nothing");
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1500))).await;
        herald.kill_hard();
        println!(
            "kill {kill}: {} accepted so far, {:?}, resolution {:?}",
            fake.accepted().len(),
            statuses(&store, 1).await,
            store.resolution(1).await.unwrap()
        );
    }

    let mut herald = HeraldProcess::start(&db.url, &fake.url, env);
    let finished = eventually(Duration::from_secs(90), || async {
        store
            .campaign(1)
            .await
            .unwrap()
            .is_some_and(|c| c.status == CampaignStatus::Completed)
    })
    .await;
    herald.signal("TERM");
    let exit = herald.wait_for_exit(Duration::from_secs(20)).await;
    assert!(
        finished,
        "campaign completed: {:?}, {}",
        statuses(&store, 1).await,
        in_flight(&store, 1).await
    );
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "clean exit at the end"
    );

    let counts = accepted_per_recipient(&fake);
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    let rows = store.recipient_rows(1).await.unwrap();
    assert_eq!(rows.len() as u64, RECIPIENTS);
    let mut unknown = 0;
    for row in &rows {
        let got = counts
            .get(row.address.trim_start_matches("wa:"))
            .copied()
            .unwrap_or(0);
        match row.status.as_str() {
            "sent" => assert_eq!(got, 1, "{} is sent: the fake took it once", row.address),
            "unknown" => unknown += 1,
            other => panic!("{} ended {other}", row.address),
        }
    }
    let report = store.report(1).await.unwrap();
    assert_eq!(report.sent + report.unknown, RECIPIENTS as i64);
    println!(
        "{}: {} sent, {unknown} unknown (of which {} did reach the fake) after {KILLS} kills",
        backend(),
        report.sent,
        fake.accepted().len() as i64 - report.sent
    );
}
