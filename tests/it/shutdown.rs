//! `herald run` stopped with SIGTERM or SIGINT in the middle of a campaign: it stops claiming,
//! finishes what is already on the wire, puts back what it had claimed but not sent, and exits 0.
//! A restart finishes the campaign with nobody sent twice.

use std::time::Duration;

use herald::store::{CampaignStatus, Pace, Store};

use crate::support::db::TestDb;
use crate::support::fake_graph::FakeGraph;
use crate::support::herald_process::{
    accepted_per_recipient, eventually, seed_sending_campaign, statuses, HeraldProcess,
};

/// Waits until the fake has accepted at least `n` messages.
async fn accepted_at_least(fake: &FakeGraph, n: usize, limit: Duration) {
    let reached = eventually(limit, || async { fake.accepted().len() >= n }).await;
    assert!(
        reached,
        "only {} message(s) went out",
        fake.accepted().len()
    );
}

async fn stop_gracefully(herald: &mut HeraldProcess, signal: &str) {
    herald.signal(signal);
    let status = herald
        .wait_for_exit(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("herald still running 20 s after SIG{signal}"));
    assert_eq!(
        status.code(),
        Some(0),
        "clean exit after SIG{signal}: {status}"
    );
}

async fn completed(store: &Store) -> bool {
    store
        .campaign(1)
        .await
        .unwrap()
        .is_some_and(|c| c.status == CampaignStatus::Completed)
}

/// Nothing is left claimed or in flight: every row is either done or back in the queue.
async fn nothing_in_flight(store: &Store) -> std::collections::BTreeMap<String, i64> {
    let by_status = statuses(store, 1).await;
    assert_eq!(by_status.get("claimed"), None, "{by_status:?}");
    assert_eq!(by_status.get("sending"), None, "{by_status:?}");
    assert_eq!(by_status.get("unknown"), None, "{by_status:?}");
    by_status
}

#[tokio::test]
async fn sigterm_during_a_long_paced_window_releases_it_and_exits_zero() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    // Ten messages at 20/s, then a ten-minute batch pause: the window claims all 40, and the
    // eleventh waits for a slot far away. Shutdown must not wait for it.
    seed_sending_campaign(&db.url, 40, "rate=20 batch=10 pause=600").await;
    let store = Store::connect(&db.url).await.unwrap();

    let mut herald = HeraldProcess::start(&db.url, &fake.url, &[]);
    accepted_at_least(&fake, 10, Duration::from_secs(30)).await;
    stop_gracefully(&mut herald, "TERM").await;

    let by_status = nothing_in_flight(&store).await;
    assert_eq!(by_status.get("sent"), Some(&10), "{by_status:?}");
    assert_eq!(by_status.get("queued"), Some(&30), "{by_status:?}");

    // The admin lifts the batch pause; a new process sends exactly the rest.
    store
        .set_pace(
            1,
            &Pace {
                rate: 100.0,
                ..Pace::default()
            },
        )
        .await
        .unwrap();
    let mut herald = HeraldProcess::start(&db.url, &fake.url, &[]);
    assert!(
        eventually(Duration::from_secs(30), || completed(&store)).await,
        "campaign completed after the restart: {:?}",
        statuses(&store, 1).await
    );
    stop_gracefully(&mut herald, "TERM").await;
    let counts = accepted_per_recipient(&fake);
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|&n| n == 1), "nobody got it twice");
    assert_eq!(nothing_in_flight(&store).await.get("sent"), Some(&40));
}

#[tokio::test]
async fn sigint_during_an_unpaced_window_puts_back_what_was_not_sent() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    // Unpaced: the whole window is marked as being sent at once; the WhatsApp ceiling (100/s)
    // keeps it on the wire for a few seconds.
    seed_sending_campaign(&db.url, 400, "rate=0").await;
    let store = Store::connect(&db.url).await.unwrap();

    let mut herald = HeraldProcess::start(&db.url, &fake.url, &[("WHATSAPP_MPS", "100")]);
    accepted_at_least(&fake, 50, Duration::from_secs(30)).await;
    stop_gracefully(&mut herald, "INT").await;

    let by_status = nothing_in_flight(&store).await;
    let sent = by_status.get("sent").copied().unwrap_or(0);
    assert_eq!(
        sent,
        fake.accepted().len() as i64,
        "every accepted message recorded"
    );
    assert!(sent < 400, "stopped before the end: {by_status:?}");
    assert_eq!(by_status.get("queued").copied().unwrap_or(0), 400 - sent);

    let mut herald = HeraldProcess::start(&db.url, &fake.url, &[("WHATSAPP_MPS", "1000")]);
    assert!(
        eventually(Duration::from_secs(30), || completed(&store)).await,
        "campaign completed after the restart: {:?}",
        statuses(&store, 1).await
    );
    stop_gracefully(&mut herald, "INT").await;
    let counts = accepted_per_recipient(&fake);
    assert_eq!(counts.len(), 400);
    assert!(counts.values().all(|&n| n == 1), "nobody got it twice");
}
