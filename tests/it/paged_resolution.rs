//! `/campaign send` to a large audience starts sending at once and resolves the rest of its
//! audience in pages while it sends (issue 16): the first messages leave before the last page is
//! written, everyone still gets exactly one message, a contact is judged by their state when
//! their page is resolved and again when sent, two engines share the resolution without
//! duplicates or losses, and a page that fails half-way is resolved again whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::clock::{ManualClock, SharedClock};
use herald::domain::audience::AudienceExpr;
use herald::engine::Engine;
use herald::store::resolution::Page;
use herald::store::{CampaignStatus, Store};

use crate::support::console_app::t0;
use crate::support::db::{heal, inject_failure, migrated_to, TestDb};
use crate::support::fake_graph::FakeGraph;
use crate::support::herald_process::{
    accepted_per_recipient, admin, campaign_to_all, config, whatsapp_engine,
};

/// Contact ids per page in these tests: a few thousand contacts take dozens of pages.
const PAGE: u64 = 50;

async fn engine_on(db: &TestDb, fake: &FakeGraph, clock: SharedClock) -> Arc<Engine> {
    let mut config = config(&db.url);
    config.resolve_page = PAGE;
    whatsapp_engine(config, fake, clock).await
}

async fn send(engine: &Engine) -> String {
    herald::commands::handlers::run(engine, "console", "/campaign send 1").await
}

/// Dispatch steps (which resolve a page whenever the queue is empty) until campaign 1 is no
/// longer sending; it must not complete while its resolution is unfinished.
async fn drain(engine: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "campaign did not finish in time");
        let step = engine.dispatch_step().await.expect("dispatch");
        let campaign = engine.store.campaign(1).await.unwrap().unwrap();
        if campaign.status != CampaignStatus::Sending {
            let resolution = engine.store.resolution(1).await.unwrap();
            assert!(
                resolution.is_none_or(|r| r.is_done()),
                "completed with its resolution at {resolution:?}"
            );
            return;
        }
        if step.is_idle() {
            // Another engine holds the page or the last window.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn rows(engine: &Engine) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM recipients WHERE campaign_id = 1")
        .fetch_one(engine.store.pool())
        .await
        .unwrap()
}

fn assert_everyone_once(fake: &FakeGraph, n: usize) {
    let counts = accepted_per_recipient(fake);
    assert_eq!(counts.len(), n, "every contact reached");
    assert!(counts.values().all(|&c| c == 1), "nobody got it twice");
}

#[tokio::test]
async fn sending_starts_before_the_resolution_ends_and_everyone_gets_one_message() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    let clock = ManualClock::new(t0());
    let engine = engine_on(&db, &fake, Arc::new(clock.clone())).await;
    const N: u64 = 3000;
    campaign_to_all(&engine, N).await;

    let reply = send(&engine).await;

    assert_eq!(reply, format!("campaign 1 sending to {N} recipient(s)"));
    let resolution = engine.store.resolution(1).await.unwrap().expect("paged");
    assert_eq!(rows(&engine).await, PAGE as i64, "the start wrote one page");
    assert!(!resolution.is_done());

    let step = engine.dispatch_step().await.unwrap();

    assert_eq!(step.sent, PAGE, "the first page went out at once");
    assert_eq!(fake.accepted().len() as u64, PAGE);
    let resolution = engine.store.resolution(1).await.unwrap().unwrap();
    assert!(
        resolution.cursor < resolution.end,
        "first messages sent with the resolution at {resolution:?}"
    );
    let campaign = engine.store.campaign(1).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Sending, "not done yet");

    drain(&engine).await;

    assert_eq!(rows(&engine).await, N as i64);
    assert_everyone_once(&fake, N as usize);
    let campaign = engine.store.campaign(1).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Completed);
}

#[tokio::test]
async fn a_contact_who_opts_out_before_their_page_is_resolved_is_not_sent() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    let clock = ManualClock::new(t0());
    let engine = engine_on(&db, &fake, Arc::new(clock.clone())).await;
    const N: u64 = 500;
    campaign_to_all(&engine, N).await;
    send(&engine).await;
    engine.dispatch_step().await.unwrap();
    assert!(!engine.store.resolution(1).await.unwrap().unwrap().is_done());

    // The last contact, whose page is far from resolved.
    let last = herald::bench::seed::address(N - 1);
    let number = last.trim_start_matches("wa:");
    admin(&engine, &[&format!("/optout +{number}")]).await;
    drain(&engine).await;

    assert_eq!(
        fake.count_for(number),
        0,
        "the opted-out contact got nothing"
    );
    assert_everyone_once(&fake, N as usize - 1);
    let report = herald::commands::handlers::run(&engine, "console", "/campaign report 1").await;
    assert!(report.contains("skipped: 1"), "{report}");
    assert!(report.contains("targeted: 500"), "{report}");
}

#[tokio::test]
async fn two_engines_resolve_one_campaign_without_duplicates_or_losses() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    fake.set_latency(Duration::from_millis(1));
    let clock = ManualClock::new(t0());
    let one = engine_on(&db, &fake, Arc::new(clock.clone())).await;
    let two = engine_on(&db, &fake, Arc::new(clock.clone())).await;
    const N: u64 = 2000;
    campaign_to_all(&one, N).await;
    send(&one).await;

    // Each engine resolves pages and sends at once, as two `herald run` processes do.
    let work = |engine: Arc<Engine>| async move {
        let mut pages = 0;
        loop {
            pages += engine.resolve_step().await.expect("resolve");
            let resolved = engine
                .store
                .resolution(1)
                .await
                .unwrap()
                .is_none_or(|r| r.is_done());
            if resolved {
                return pages;
            }
            tokio::task::yield_now().await;
        }
    };
    let (a, b, ()) = tokio::join!(work(one.clone()), work(two.clone()), drain(&one));

    assert!(a + b > 0, "pages resolved: {a} + {b}");
    drain(&two).await;
    assert_eq!(rows(&one).await, N as i64, "every contact resolved once");
    assert_everyone_once(&fake, N as usize);
    let campaign = one.store.campaign(1).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Completed);
}

#[tokio::test]
async fn a_page_that_fails_half_way_is_resolved_again_whole_after_a_restart() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    let clock = ManualClock::new(t0());
    let engine = engine_on(&db, &fake, Arc::new(clock.clone())).await;
    const N: u64 = 400;
    campaign_to_all(&engine, N).await;
    send(&engine).await;
    let before = engine.store.resolution(1).await.unwrap().unwrap();

    // The page's 30th row fails, as a crash in the middle of its statement would end it.
    let pool = engine.store.pool().clone();
    let contact: i64 = sqlx::query_scalar("SELECT id FROM contacts WHERE address = $1")
        .bind(herald::bench::seed::address(PAGE + 30))
        .fetch_one(&pool)
        .await
        .unwrap();
    let failing = format!("NEW.contact_id = {contact}");
    inject_failure(&pool, "INSERT", "recipients", Some(&failing)).await;
    assert!(engine.resolve_step().await.is_err());
    // (On PostgreSQL the upper half's first page was resolved alongside, and kept.)
    let after = engine.store.resolution(1).await.unwrap().unwrap();
    assert_eq!(after.cursor, before.cursor, "the lower half did not move");
    let kept: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM recipients WHERE campaign_id = 1 AND contact_id > $1 \
         AND contact_id <= $2",
    )
    .bind(before.cursor)
    .bind(before.cursor + PAGE as i64)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kept, 0, "nothing of the failed page kept");
    heal(&pool, "recipients").await;
    engine.store.close().await;

    // Restarted: it goes on after the last page kept.
    let restarted = engine_on(&db, &fake, Arc::new(clock.clone())).await;
    drain(&restarted).await;

    assert_eq!(rows(&restarted).await, N as i64);
    assert_everyone_once(&fake, N as usize);
}

#[tokio::test]
async fn a_resolution_under_way_at_the_upgrade_to_halves_goes_on_to_the_end() {
    let db = TestDb::new().await;
    // Migration 15's shape: one cursor, contact 1 resolved, 2 and 3 left.
    migrated_to(
        &db,
        15,
        &[
            "INSERT INTO contacts (id, address, consent, created_at) VALUES \
             (1, 'wa:15550001', 'opted_in', 0), (2, 'wa:15550002', 'opted_in', 0), \
             (3, 'wa:15550003', 'opted_in', 0)",
            "INSERT INTO campaigns (id, title, status, audience, text, created_at, \
             resolve_cursor, resolve_end) VALUES (1, 'Half way', 'sending', 'all', 'Hi', 0, 1, 3)",
            "INSERT INTO recipients (campaign_id, contact_id, queued_at) VALUES (1, 1, 0)",
        ],
    )
    .await;
    let store = Store::connect(&db.url).await.expect("migration 16 applies");
    assert!(!store.resolution(1).await.unwrap().unwrap().is_done());
    let mut pages = 0;
    while let Page::Resolved { .. } = store
        .resolve_page(1, &AudienceExpr::all(), t0(), 1)
        .await
        .unwrap()
    {
        pages += 1;
    }
    assert_eq!(pages, 2, "one contact per page");
    let resolved: Vec<i64> = sqlx::query_scalar(
        "SELECT contact_id FROM recipients WHERE campaign_id = 1 ORDER BY contact_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(resolved, vec![1, 2, 3]);
    assert!(store.resolution(1).await.unwrap().unwrap().is_done());
}
