//! Several processes on one database: each is an engine of its own (its own pool and worker
//! id) on the suite's backend. On PostgreSQL this is the scale-out setup of SPEC section 5; on
//! SQLite the same guarantees hold because claims are atomic updates, even though only one
//! `herald run` is meant to own a SQLite file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use herald::channels::{ChannelEvent, DeliveryStatus, StatusUpdate};
use herald::clock::{Clock, ManualClock, SharedClock, SystemClock};
use herald::engine::Engine;
use herald::store::recipients::Outcome;
use herald::store::CampaignStatus;

use crate::support::console_app::t0;
use crate::support::db::{heal, inject_failure, is_postgres, TestDb};
use crate::support::fake_graph::FakeGraph;
use crate::support::herald_process::{
    accepted_per_recipient, admin, campaign_to_all, config, eventually, statuses, whatsapp_engine,
};

/// Seeds `n` contacts and starts campaign 1 to all of them, unpaced.
async fn campaign_to(engine: &Engine, n: u64) {
    campaign_to_all(engine, n).await;
    admin(engine, &["/campaign send 1"]).await;
}

/// One engine on a fresh database, its clock stopped at a fixed instant, with campaign 1 sending
/// unpaced to `n` contacts.
struct OneEngine {
    db: TestDb,
    fake: FakeGraph,
    clock: ManualClock,
    engine: Arc<Engine>,
}

async fn sending_to(n: u64) -> OneEngine {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    let clock = ManualClock::new(t0());
    let engine = whatsapp_engine(config(&db.url), &fake, Arc::new(clock.clone())).await;
    campaign_to(&engine, n).await;
    OneEngine {
        db,
        fake,
        clock,
        engine,
    }
}

/// Dispatches until campaign 1 is no longer sending; returns what this engine sent.
async fn drain(engine: &Engine) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    loop {
        assert!(Instant::now() < deadline, "campaign did not finish in time");
        let step = engine.dispatch_step().await.expect("dispatch");
        sent += step.sent;
        if step.is_idle() {
            let status = engine.store.campaign(1).await.unwrap().map(|c| c.status);
            if status != Some(CampaignStatus::Sending) {
                return sent;
            }
            // The other engine holds the last window.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn two_engines_share_a_campaign_and_send_each_recipient_once() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    // A little latency keeps both engines' windows in flight at the same time.
    fake.set_latency(Duration::from_millis(2));
    let clock: SharedClock = Arc::new(SystemClock);
    let one = whatsapp_engine(config(&db.url), &fake, clock.clone()).await;
    let two = whatsapp_engine(config(&db.url), &fake, clock).await;
    assert_ne!(one.worker_id(), two.worker_id());
    // More than two windows, so both engines get some.
    const N: u64 = 5000;
    campaign_to(&one, N).await;

    let (a, b) = tokio::join!(drain(&one), drain(&two));

    assert_eq!(a + b, N, "every recipient sent by one of them");
    assert!(a > 0 && b > 0, "both engines took part: {a} + {b}");
    let counts = accepted_per_recipient(&fake);
    assert_eq!(counts.len() as u64, N, "every recipient reached");
    assert!(
        counts.values().all(|&n| n == 1),
        "nobody got the campaign twice"
    );
    let by_status = statuses(&one.store, 1).await;
    assert_eq!(
        by_status.get("sent").copied(),
        Some(N as i64),
        "{by_status:?}"
    );
    let campaign = one.store.campaign(1).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Completed);
}

#[tokio::test]
async fn a_due_campaign_starts_once_however_many_schedulers_run() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    let clock = ManualClock::new(t0());
    let one = whatsapp_engine(config(&db.url), &fake, Arc::new(clock.clone())).await;
    let two = whatsapp_engine(config(&db.url), &fake, Arc::new(clock.clone())).await;
    herald::bench::seed::contacts(&one.store, 20, &[("all", 20)], clock.now())
        .await
        .unwrap();
    for id in 1..=5 {
        admin(
            &one,
            &[
                &format!("/campaign new Scheduled {id}"),
                &format!("/campaign audience {id} all"),
                &format!("/campaign text {id} Hello {{{{name}}}}"),
                &format!("/campaign schedule {id} 2026-11-22 10:05"),
            ],
        )
        .await;
    }
    admin(
        &one,
        &[
            "/campaign new Daily",
            "/campaign audience 6 all",
            "/campaign text 6 Good morning",
            "/campaign repeat 6 every 1d at 10:30",
        ],
    )
    .await;
    clock.advance(ChronoDuration::minutes(10));

    let (a, b) = tokio::join!(one.schedule_step(), two.schedule_step());
    assert_eq!(
        a.unwrap() + b.unwrap(),
        5,
        "each one-time campaign started once"
    );
    let (a, b) = tokio::join!(one.schedule_step(), two.schedule_step());
    assert_eq!(a.unwrap() + b.unwrap(), 0, "nothing starts twice");

    // The recurring campaign's occurrence: one run is spawned, and started once (by whichever
    // process gets to it).
    clock.advance(ChronoDuration::minutes(30));
    let (a, b) = tokio::join!(one.schedule_step(), two.schedule_step());
    assert!(a.unwrap() + b.unwrap() >= 1);
    let (a, b) = tokio::join!(one.schedule_step(), two.schedule_step());
    assert_eq!(a.unwrap() + b.unwrap(), 0, "nothing starts twice");

    for id in 1..=5 {
        let c = one.store.campaign(id).await.unwrap().unwrap();
        assert_eq!(c.status, CampaignStatus::Sending, "campaign {id}");
        assert_eq!(statuses(&one.store, id).await.get("queued"), Some(&20));
    }
    let runs = one.store.runs(6).await.unwrap();
    assert_eq!(runs.len(), 1, "one run of the recurring campaign");
    assert_eq!(
        statuses(&one.store, runs[0].id).await.get("queued"),
        Some(&20)
    );
}

/// A worker that claimed four recipients, marked two of them as being sent, and died.
async fn dead_worker(engine: &Engine, lease: ChronoDuration) -> Vec<i64> {
    let claimed = engine
        .store
        .claim(1, "dead-worker", engine.clock.now(), lease, 4)
        .await
        .unwrap();
    let ids: Vec<i64> = claimed.iter().map(|c| c.recipient_id).collect();
    assert_eq!(ids.len(), 4);
    let sending = engine
        .store
        .mark_sending(&ids[..2], "dead-worker")
        .await
        .unwrap();
    assert_eq!(sending, ids[..2]);
    ids
}

#[tokio::test]
async fn rows_claimed_straight_into_sending_by_a_dead_worker_become_unknown_never_resent() {
    let OneEngine {
        db: _db,
        fake,
        clock,
        engine: survivor,
    } = sending_to(6).await;
    let lease = ChronoDuration::seconds(30);
    let claimed = survivor
        .store
        .claim_for_sending(1, "dead-worker", clock.now(), lease, 3, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(
        claimed.iter().all(|c| c.attempts == 0),
        "attempts before this one"
    );
    assert_eq!(statuses(&survivor.store, 1).await.get("sending"), Some(&3));

    survivor.settle().await.unwrap();
    assert_eq!(fake.accepted().len(), 3, "the survivor sends only the rest");
    let sent = outlive_the_lease(&survivor, &clock, &fake).await;
    for c in &claimed {
        assert_eq!(
            sent.get(&address_of(&survivor, c.recipient_id).await),
            None,
            "may have left: never re-sent"
        );
    }
    let report = survivor.store.report(1).await.unwrap();
    assert_eq!((report.sent, report.unknown, report.queued), (3, 3, 0));
}

/// A step ends its leases when it is done; a lease that still covers a row the step holds in
/// flight (lost on the way, whatever lost it) is kept instead, so it runs out and recovery
/// settles the row: the campaign finishes rather than waiting for ever on a row nobody holds.
#[tokio::test]
async fn a_lease_still_covering_a_row_in_flight_is_kept_for_recovery() {
    let OneEngine {
        db: _db,
        fake,
        clock,
        engine,
    } = sending_to(4).await;
    let lease = ChronoDuration::seconds(30);
    let claim = || {
        engine
            .store
            .claim_for_sending(1, "worker", clock.now(), lease, 1, None)
    };
    let given_back = claim().await.unwrap();
    let lost = claim().await.unwrap();
    assert_eq!((given_back.len(), lost.len()), (1, 1));
    engine
        .store
        .release_unsent(&[given_back[0].recipient_id], "worker")
        .await
        .unwrap();
    let kept = engine
        .store
        .end_leases(&[given_back[0].lease, lost[0].lease], "worker")
        .await
        .unwrap();
    assert_eq!(kept, 1, "the lease of the row still in flight stays");
    // What the step's error log names: the row, and how it is held.
    let held = engine
        .store
        .held_by_leases(&[given_back[0].lease, lost[0].lease], "worker")
        .await
        .unwrap();
    assert_eq!(
        held,
        (1, vec![(lost[0].recipient_id, "sending".to_string())])
    );

    engine.settle().await.unwrap();
    assert_eq!(fake.accepted().len(), 3, "everyone but the row in flight");
    let sent = outlive_the_lease(&engine, &clock, &fake).await;
    assert_eq!(
        sent.get(&address_of(&engine, lost[0].recipient_id).await),
        None,
        "may have left: never sent again"
    );
    let report = engine.store.report(1).await.unwrap();
    assert_eq!((report.sent, report.unknown, report.queued), (3, 1, 0));
    let campaign = engine.store.campaign(1).await.unwrap().unwrap();
    assert_eq!(campaign.status, herald::store::CampaignStatus::Completed);
}

/// A claim that starts after the position an earlier claim of the same run reached takes the
/// rows after it, never those before (even once they are queued again); a run that starts from
/// the head finds what was put back, and everyone gets exactly one message.
#[tokio::test]
async fn a_claim_after_a_position_takes_what_follows_and_the_next_run_finds_what_was_put_back() {
    let OneEngine {
        db: _db,
        fake,
        clock,
        engine,
    } = sending_to(6).await;
    let lease = ChronoDuration::seconds(30);
    let claim = |after| {
        engine
            .store
            .claim_for_sending(1, "worker", clock.now(), lease, 2, after)
    };
    let first = claim(None).await.unwrap();
    let reached = first.iter().map(|c| c.position).max();
    let ids = |claimed: &[herald::store::Claimed]| -> Vec<i64> {
        claimed.iter().map(|c| c.recipient_id).collect()
    };
    // Put back before the next claim: behind the position it starts from.
    engine
        .store
        .release_unsent(&ids(&first), "worker")
        .await
        .unwrap();
    let second = claim(reached).await.unwrap();
    assert_eq!(second.len(), 2);
    assert!(
        second.iter().all(|c| Some(c.position) > reached),
        "{:?} after {reached:?}",
        ids(&second)
    );
    assert!(ids(&second).iter().all(|id| !ids(&first).contains(id)));
    engine
        .store
        .release_unsent(&ids(&second), "worker")
        .await
        .unwrap();

    engine.settle().await.unwrap();
    let sent = accepted_per_recipient(&fake);
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(sent.values().all(|&n| n == 1), "{sent:?}");
    let report = engine.store.report(1).await.unwrap();
    assert_eq!((report.sent, report.unknown, report.queued), (6, 0, 0));
}

/// Lets a dead worker's 30 s lease run out, runs the periodic recovery and dispatches what it
/// brought back; returns how many messages each address got in all.
async fn outlive_the_lease(
    survivor: &Engine,
    clock: &ManualClock,
    fake: &FakeGraph,
) -> std::collections::HashMap<String, usize> {
    clock.advance(ChronoDuration::seconds(31));
    assert!(
        survivor.recover(false).await.unwrap(),
        "something recovered"
    );
    survivor.settle().await.unwrap();
    accepted_per_recipient(fake)
}

async fn address_of(engine: &Engine, recipient: i64) -> String {
    use sqlx::Row;
    sqlx::query(
        "SELECT c.address FROM recipients r JOIN contacts c ON c.id = r.contact_id WHERE r.id = $1",
    )
    .bind(recipient)
    .fetch_one(engine.store.pool())
    .await
    .unwrap()
    .get::<String, _>("address")
    .trim_start_matches("wa:")
    .to_string()
}

#[tokio::test]
async fn a_dead_workers_claims_come_back_and_its_sends_are_reconciled_not_repeated() {
    let OneEngine {
        db: _db,
        fake,
        clock,
        engine: survivor,
    } = sending_to(10).await;
    let ids = dead_worker(&survivor, ChronoDuration::seconds(30)).await;
    let (sending, claimed) = (&ids[..2], &ids[2..]);

    // While the lease runs, the survivor leaves the dead worker's rows alone.
    survivor.settle().await.unwrap();
    assert_eq!(fake.accepted().len(), 6);
    assert_eq!(statuses(&survivor.store, 1).await.get("claimed"), Some(&2));

    // The lease runs out; the periodic recovery brings the rows back.
    let counts = outlive_the_lease(&survivor, &clock, &fake).await;
    for id in claimed {
        assert_eq!(
            counts.get(&address_of(&survivor, *id).await),
            Some(&1),
            "requeued and sent once"
        );
    }
    for id in sending {
        assert_eq!(
            counts.get(&address_of(&survivor, *id).await),
            None,
            "may have left: never re-sent"
        );
    }
    let report = survivor.store.report(1).await.unwrap();
    assert_eq!((report.sent, report.unknown, report.queued), (8, 2, 0));
    let campaign = survivor.store.campaign(1).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Completed);

    // Meta's status webhooks carry the callback herald attached: they settle what became of the
    // two interrupted sends, and a replay changes nothing.
    for (id, status) in [
        (sending[0], DeliveryStatus::Delivered),
        (sending[1], DeliveryStatus::Sent),
    ] {
        let update = StatusUpdate {
            provider_id: format!("wamid.lost{id}"),
            callback: Some(format!("r{id}:c1")),
            status,
            at: clock.now(),
            recipient: None,
        };
        survivor
            .handle_event(ChannelEvent::Status(update.clone()))
            .await
            .unwrap();
        survivor
            .handle_event(ChannelEvent::Status(update))
            .await
            .unwrap();
    }
    let report = survivor.store.report(1).await.unwrap();
    assert_eq!((report.sent, report.delivered, report.unknown), (10, 1, 0));
    // A callback naming another campaign does not touch this one's rows.
    let stray = StatusUpdate {
        provider_id: "wamid.other".into(),
        callback: Some(format!("r{}:c99", claimed[0])),
        status: DeliveryStatus::Read,
        at: clock.now(),
        recipient: None,
    };
    survivor
        .handle_event(ChannelEvent::Status(stray))
        .await
        .unwrap();
    assert_eq!(survivor.store.report(1).await.unwrap().read, 0);
}

#[tokio::test]
async fn a_starting_process_leaves_live_leases_alone_on_postgres() {
    let OneEngine {
        db,
        fake,
        clock,
        engine: first,
    } = sending_to(10).await;
    dead_worker(&first, ChronoDuration::minutes(5)).await;

    let _second = whatsapp_engine(config(&db.url), &fake, Arc::new(clock.clone())).await;
    let by_status = statuses(&first.store, 1).await;
    if is_postgres() {
        // Another process may be alive and sending them: only an expired lease comes back.
        assert_eq!(by_status.get("claimed"), Some(&2), "{by_status:?}");
        assert_eq!(by_status.get("sending"), Some(&2), "{by_status:?}");
    } else {
        // A SQLite file has one `herald run`: at its start every lease is a dead run's.
        println!("SQLite: a start recovers every lease (one process per file)");
        assert_eq!(by_status.get("claimed"), None, "{by_status:?}");
        assert_eq!(by_status.get("unknown"), Some(&2), "{by_status:?}");
    }
}

#[tokio::test]
async fn the_run_loop_brings_back_a_dead_processes_rows_while_it_runs() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    let mut cfg = config(&db.url);
    cfg.lease_secs = 1;
    cfg.recover_every_secs = 1;
    let engine = whatsapp_engine(cfg, &fake, Arc::new(SystemClock)).await;
    herald::bench::seed::contacts(&engine.store, 4, &[("all", 4)], engine.clock.now())
        .await
        .unwrap();
    admin(
        &engine,
        &[
            "/campaign new Everyone",
            "/campaign audience 1 all",
            "/campaign text 1 Hello {{name}}",
            "/campaign pace 1 rate=0",
            "/campaign send 1",
        ],
    )
    .await;
    // The dead process holds every recipient; nothing is left for the live one to claim.
    dead_worker(&engine, ChronoDuration::seconds(1)).await;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(engine.clone().run(shutdown.clone()));
    let store = engine.store.clone();
    let done = crate::support::herald_process::eventually(Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            store
                .campaign(1)
                .await
                .unwrap()
                .is_some_and(|c| c.status == CampaignStatus::Completed)
        }
    })
    .await;
    shutdown.cancel();
    running.await.unwrap();
    assert!(
        done,
        "the campaign completed: {:?}",
        statuses(&store, 1).await
    );
    let by_status = statuses(&store, 1).await;
    assert_eq!(by_status.get("sent"), Some(&2), "{by_status:?}");
    assert_eq!(by_status.get("unknown"), Some(&2), "{by_status:?}");
    assert_eq!(
        fake.accepted().len(),
        2,
        "only the never-sent rows went out"
    );
}

/// How many claims' leases are on record.
async fn leases(engine: &Engine) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM leases")
        .fetch_one(engine.store.pool())
        .await
        .unwrap()
        .get::<i64, _>("n")
}

#[tokio::test]
async fn a_renewed_lease_keeps_its_rows_and_a_finished_step_leaves_no_lease_behind() {
    let OneEngine {
        db: _db,
        fake,
        clock,
        engine,
    } = sending_to(6).await;
    let store = &engine.store;
    let claimed = store
        .claim(
            1,
            "slow-worker",
            clock.now(),
            ChronoDuration::seconds(30),
            3,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let lease = claimed[0].lease;
    assert!(
        claimed.iter().all(|c| c.lease == lease),
        "one lease a claim"
    );

    // The heartbeat: only the lease's own worker extends it.
    clock.advance(ChronoDuration::seconds(20));
    let until = clock.now() + ChronoDuration::seconds(30);
    assert_eq!(
        store
            .renew(&[lease], "another-worker", until)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.renew(&[lease], "slow-worker", until).await.unwrap(),
        1
    );

    // Past the first end, within the renewed one: nothing comes back.
    clock.advance(ChronoDuration::seconds(20));
    assert!(
        !engine.recover(false).await.unwrap(),
        "the lease was renewed"
    );
    assert_eq!(statuses(store, 1).await.get("claimed"), Some(&3));

    // Past the renewed end: the rows are queued again and the lease is gone.
    clock.advance(ChronoDuration::seconds(11));
    assert!(engine.recover(false).await.unwrap(), "the lease ran out");
    assert_eq!(statuses(store, 1).await.get("queued"), Some(&6));
    assert_eq!(
        store.renew(&[lease], "slow-worker", until).await.unwrap(),
        0
    );

    engine.settle().await.unwrap();
    assert_eq!(fake.accepted().len(), 6);
    assert_eq!(leases(&engine).await, 0, "each step ended its leases");
}

#[tokio::test]
async fn recovery_leaves_alone_a_row_another_worker_claimed_since() {
    let OneEngine {
        db: _db,
        fake: _fake,
        clock,
        engine,
    } = sending_to(4).await;
    let store = &engine.store;
    // Worker A claims two rows, and puts one of them back (a retry due at once).
    let a = store
        .claim(1, "worker-a", clock.now(), ChronoDuration::seconds(30), 2)
        .await
        .unwrap();
    let (back, kept) = (a[0].recipient_id, a[1].recipient_id);
    let retry = Outcome::Retry {
        at: clock.now(),
        code: None,
        reason: None,
        refund_attempt: true,
    };
    store
        .record(back, &retry, "worker-a", clock.now())
        .await
        .unwrap();
    // Worker B, with a longer lease, claims everything queued: the row A put back among them.
    let b = store
        .claim(1, "worker-b", clock.now(), ChronoDuration::minutes(5), 10)
        .await
        .unwrap();
    let b_ids: Vec<i64> = b.iter().map(|c| c.recipient_id).collect();
    assert!(b_ids.contains(&back), "{b_ids:?}");
    assert!(!b_ids.contains(&kept), "{b_ids:?}");

    // A's lease runs out: its remaining row comes back, B's claim stands.
    clock.advance(ChronoDuration::seconds(31));
    assert!(engine.recover(false).await.unwrap());
    let by_status = statuses(store, 1).await;
    assert_eq!(by_status.get("claimed"), Some(&3), "{by_status:?}");
    assert_eq!(by_status.get("queued"), Some(&1), "{by_status:?}");
    assert_eq!(
        store.mark_sending(&[back], "worker-b").await.unwrap(),
        vec![back],
        "still B's to send"
    );
}

/// Dispatches until this engine finds nothing due; returns what it sent.
async fn drain_due(engine: &Engine) -> u64 {
    let mut sent = 0;
    loop {
        let step = engine.dispatch_step().await.expect("dispatch");
        sent += step.sent;
        if step.is_idle() {
            return sent;
        }
    }
}

#[tokio::test]
async fn two_engines_never_spend_more_than_the_tier_between_them() {
    const CONTACTS: u64 = 600;
    const TIER: u64 = 50;
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    fake.set_latency(Duration::from_millis(1));
    let clock = ManualClock::new(t0());
    let tiered = || herald::config::Config {
        tier: herald::config::Tier::Limited(TIER),
        ..config(&db.url)
    };
    let one = whatsapp_engine(tiered(), &fake, Arc::new(clock.clone())).await;
    let two = whatsapp_engine(tiered(), &fake, Arc::new(clock.clone())).await;
    // Everyone wrote in two days ago: each template message is business-initiated and costs a
    // unit of the tier.
    herald::bench::seed::contacts(
        &one.store,
        CONTACTS,
        &[("all", CONTACTS)],
        t0() - ChronoDuration::days(2),
    )
    .await
    .unwrap();
    admin(
        &one,
        &[
            "/template add promo en marketing Hello {{1}}",
            "/campaign new Everyone",
            "/campaign audience 1 all",
            "/campaign template 1 promo en {{name}}",
            "/campaign pace 1 rate=0",
            "/campaign send 1",
        ],
    )
    .await;

    let (a, b) = tokio::join!(drain_due(&one), drain_due(&two));

    assert_eq!(a + b, TIER, "the two engines sent {a} + {b}");
    assert_eq!(fake.accepted().len() as u64, TIER);
    let by_status = statuses(&one.store, 1).await;
    assert_eq!(by_status.get("sent").copied(), Some(TIER as i64));
    assert_eq!(
        by_status.get("queued").copied(),
        Some((CONTACTS - TIER) as i64),
        "the rest wait for the window to roll: {by_status:?}"
    );
    // A day later the budget is back, and the next fifty go.
    clock.advance(ChronoDuration::hours(24) + ChronoDuration::seconds(2));
    let (a, b) = tokio::join!(drain_due(&one), drain_due(&two));
    assert_eq!(a + b, TIER, "the next day's {a} + {b}");
}

/// A database that refuses to write outcomes stops the step's sends with it: nothing more is
/// claimed or handed to the channel while nobody records, what was claimed but never sent goes
/// back to the queue, and what was in flight is reported `unknown` after recovery. Once the
/// database heals, everyone else gets exactly one message.
#[tokio::test]
async fn a_refused_outcome_write_stops_the_sends_and_loses_nobody() {
    const N: u64 = 3000;
    let OneEngine {
        db: _db,
        fake,
        clock: _clock,
        engine,
    } = sending_to(N).await;
    let store = &engine.store;
    inject_failure(
        store.pool(),
        "UPDATE",
        "recipients",
        Some("NEW.status = 'sent'"),
    )
    .await;

    let step = engine.dispatch_step().await;
    assert!(step.is_err(), "the refused write fails the step: {step:?}");
    let by_status = statuses(store, 1).await;
    assert_eq!(by_status.get("claimed"), None, "{by_status:?}");
    let sent_meanwhile = by_status.get("sending").copied().unwrap_or(0);
    assert!(
        sent_meanwhile < 1000,
        "the sends stopped with the recorder: {sent_meanwhile} of {N} left"
    );
    // In flight: exactly what was handed to the channel (the last answers may still be coming).
    let reached = eventually(Duration::from_secs(10), || async {
        fake.accepted().len() as i64 == sent_meanwhile
    })
    .await;
    assert!(
        reached,
        "{} reached the channel, {sent_meanwhile} in flight",
        fake.accepted().len()
    );
    assert_eq!(
        by_status.get("queued").copied().unwrap_or(0),
        N as i64 - sent_meanwhile,
        "the rest is queued again ({by_status:?})"
    );

    heal(store.pool(), "recipients").await;
    assert!(engine.recover(true).await.unwrap());
    drain(&engine).await;
    let counts = accepted_per_recipient(&fake);
    assert!(counts.values().all(|&n| n == 1), "nobody twice");
    assert_eq!(counts.len() as u64, N, "everybody once");
    let by_status = statuses(store, 1).await;
    assert_eq!(
        by_status.get("unknown"),
        Some(&sent_meanwhile),
        "{by_status:?}"
    );
    assert_eq!(
        by_status.get("sent"),
        Some(&(N as i64 - sent_meanwhile)),
        "{by_status:?}"
    );
}

/// A claim's rows reach the senders only once the claim has committed. Here its commit is slow
/// (a deferred trigger waits at commit, as a commit waits on a busy WAL) and the server has
/// sent the claim's row before it (the trigger's notice flushes it out, as a row that ends at
/// the edge of the server's send buffer is). Before, the rows were taken as soon as they
/// arrived: the messages went out, and their outcomes, written on another connection, found the
/// rows still `queued` there and matched nothing, so the rows stayed `sending`.
#[tokio::test]
async fn messages_leave_only_after_their_claim_has_committed() {
    if !is_postgres() {
        println!("PostgreSQL only: SQLite claims in an explicit transaction, committed first");
        return;
    }
    let OneEngine {
        db: _db,
        fake,
        clock: _clock,
        engine,
    } = sending_to(300).await;
    for sql in [
        "CREATE FUNCTION herald_test_slow_commit() RETURNS trigger AS $$ BEGIN \
         IF current_setting('herald_test.slept', true) IS DISTINCT FROM 'yes' THEN \
         PERFORM set_config('herald_test.slept', 'yes', true); \
         RAISE NOTICE 'a slow commit'; PERFORM pg_sleep(0.3); END IF; \
         RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE CONSTRAINT TRIGGER herald_test_slow_commit AFTER UPDATE ON recipients \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW \
         WHEN (OLD.status = 'queued' AND NEW.status = 'sending') \
         EXECUTE FUNCTION herald_test_slow_commit()",
    ] {
        sqlx::query(sql)
            .execute(engine.store.pool())
            .await
            .expect("slow the claims' commits");
    }

    let step = engine.dispatch_step().await.unwrap();
    let by_status = statuses(&engine.store, 1).await;
    assert_eq!(by_status.get("sending"), None, "{by_status:?}");
    assert_eq!(
        by_status.get("sent"),
        Some(&(step.sent as i64)),
        "{by_status:?}"
    );
    assert_eq!(step.sent as usize, fake.accepted().len());
    assert!(step.sent > 0);
}
