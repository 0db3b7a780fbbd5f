//! `herald bench soak`: herald under a steady load for a while, to see what its hundredth day
//! looks like. `herald run`'s pieces (HTTP server, dispatcher, scheduler, maintenance) run on a
//! throw-away database against the bench's fake Graph API, while this posts signed inbound
//! webhooks at `--rate` per second (one in a hundred a redelivery), starts a campaign to
//! `--campaign-size` contacts every `--campaign-every` seconds and posts a delivered and a read
//! status for each of its messages. Every `--report-every` seconds it prints the database's size,
//! the rows kept in the tables that grow with traffic, and the latency of status and inbound
//! webhooks in that interval, and the resident memory of the whole process (herald with the load
//! and the fake API): flat lines are what the operator wants.
//!
//! Meta redelivers for 7 days and campaigns are summarised after 180, far longer than a soak;
//! the soak shortens both (`--dedup-keep-secs`, `--retention-secs`) so the steady state, where
//! pruning keeps pace with traffic, is reached within minutes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde_json::json;
use sqlx::Row;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::fake_graph::{FakeGraph, PHONE_NUMBER_ID};
use super::{seed, Backends, BenchArgs, BenchDb, APP_SECRET, WEBHOOK_PATH};
use crate::channels::whatsapp;
use crate::channels::Channel;
use crate::clock::SystemClock;
use crate::engine::Engine;
use crate::store::CampaignStatus;

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How long to run, in minutes, per backend.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Inbound message webhooks posted per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// Seconds between campaign starts.
    #[arg(long, default_value_t = 20)]
    pub campaign_every: u64,
    /// Contacts each campaign goes to (and contacts seeded).
    #[arg(long, default_value_t = 1_000)]
    pub campaign_size: u64,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 60)]
    pub report_every: u64,
    /// How long message ids are kept for de-duplication (7 days in production).
    #[arg(long, default_value_t = 120)]
    pub dedup_keep_secs: u64,
    /// How long after it finished a campaign is summarised (180 days in production).
    #[arg(long, default_value_t = 300)]
    pub retention_secs: u64,
    /// Seconds between maintenance passes (60 in production).
    #[arg(long, default_value_t = 10)]
    pub maintenance_every: u64,
}

/// Latencies of one interval, in milliseconds.
#[derive(Default)]
struct Window {
    statuses: Vec<f64>,
    inbound: Vec<f64>,
    failed: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn signed(body: String) -> (String, String) {
    let signature = whatsapp::sign(APP_SECRET.as_bytes(), body.as_bytes());
    (body, signature)
}

fn inbound_body(from: &str, wamid: &str, at: i64) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Soak"}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": at.to_string(),
                          "type": "text", "text": {"body": "hello, is the offer still on?"}}]
        }}]}]
    })
    .to_string()
}

/// Everything the load tasks share.
struct Load {
    http: reqwest::Client,
    target: String,
    window: Mutex<Window>,
    /// Bounds the requests in flight, so a slow herald shows as latency, not as a pile-up here.
    permits: Semaphore,
}

impl Load {
    /// Posts one signed body; records its latency under statuses or inbound.
    async fn post(self: Arc<Self>, (body, signature): (String, String), status: bool) {
        let Ok(_permit) = self.permits.acquire().await else {
            return;
        };
        let t = Instant::now();
        let answer = self
            .http
            .post(&self.target)
            .header("x-hub-signature-256", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let mut w = crate::lock(&self.window);
        match answer {
            Ok(r) if r.status().is_success() => {
                if status {
                    w.statuses.push(ms);
                } else {
                    w.inbound.push(ms);
                }
            }
            _ => w.failed += 1,
        }
    }
}

/// Statuses for a campaign once it has sent: delivered for each message over the next
/// `spread`, then read for each over the one after.
async fn statuses_for(engine: Arc<Engine>, load: Arc<Load>, campaign: i64, spread: Duration) {
    let deadline = Instant::now() + spread;
    loop {
        match engine.store.campaign(campaign).await {
            Ok(Some(c)) if c.status != CampaignStatus::Sending => break,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            _ => return,
        }
    }
    let rows = match sqlx::query(
        "SELECT r.id, r.provider_id, c.address FROM recipients r \
         JOIN contacts c ON c.id = r.contact_id \
         WHERE r.campaign_id = $1 AND r.provider_id IS NOT NULL ORDER BY r.id",
    )
    .bind(campaign)
    .fetch_all(engine.store.pool())
    .await
    {
        Ok(rows) => rows,
        Err(_) => return,
    };
    let messages: Vec<(i64, String, String)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.try_get("id").ok()?,
                r.try_get("provider_id").ok()?,
                r.try_get::<String, _>("address").ok()?,
            ))
        })
        .collect();
    if messages.is_empty() {
        return;
    }
    let gap = spread / messages.len() as u32;
    for status in ["delivered", "read"] {
        let mut tick = tokio::time::interval(gap.max(Duration::from_micros(100)));
        for (id, wamid, address) in &messages {
            tick.tick().await;
            let body = super::status_body(
                wamid,
                status,
                address.trim_start_matches("wa:"),
                &format!("r{id}:c{campaign}"),
                Utc::now().timestamp(),
            );
            tokio::spawn(load.clone().post(signed(body), true));
        }
    }
}

/// Rows kept in the tables that grow with traffic: (de-duplication, recipients, tier).
async fn rows(engine: &Engine) -> anyhow::Result<(i64, i64)> {
    let pool = engine.store.pool();
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbound_seen")
        .fetch_one(pool)
        .await?;
    let recipients: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recipients")
        .fetch_one(pool)
        .await?;
    Ok((seen, recipients))
}

/// Entry point of `herald bench soak`.
pub async fn run(soak: &SoakArgs, args: &BenchArgs) -> anyhow::Result<()> {
    if args.backend != Backends::Postgres {
        println!("== SQLite");
        let db = BenchDb::sqlite()?;
        let result = soak_on(soak, &db).await;
        db.drop_db().await;
        result?;
    }
    if args.backend != Backends::Sqlite {
        match BenchDb::postgres(&args.pg_url).await {
            Ok(db) => {
                println!("== PostgreSQL (autovacuum as the server has it set)");
                let result = soak_on(soak, &db).await;
                db.drop_db().await;
                result?;
            }
            Err(e) => println!("== PostgreSQL unreachable ({e:#}): skipped"),
        }
    }
    Ok(())
}

async fn soak_on(soak: &SoakArgs, db: &BenchDb) -> anyhow::Result<()> {
    let graph = FakeGraph::start(seed::FIRST_NUMBER, soak.campaign_size as usize).await?;
    let client: Arc<dyn Channel> = super::whatsapp_client(&graph.url)?;
    let mut config = super::bench_config(&db.url);
    config.dedup_keep = Duration::from_secs(soak.dedup_keep_secs.max(1));
    config.retention = Duration::from_secs(soak.retention_secs.max(1));
    config.maintenance_every = Duration::from_secs(soak.maintenance_every.max(1));
    let engine = crate::app::build_engine(config, Arc::new(SystemClock), vec![client])
        .await
        .context("cannot open the bench database")?;
    seed::contacts(
        &engine.store,
        soak.campaign_size,
        &[("soak", soak.campaign_size)],
        Utc::now(),
    )
    .await?;
    if engine.store.backend() == crate::store::Backend::Postgres {
        let autovacuum: String = sqlx::query_scalar("SHOW autovacuum")
            .fetch_one(engine.store.pool())
            .await?;
        println!("PostgreSQL autovacuum: {autovacuum}");
    }

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(engine.clone().run(shutdown.clone()));
    let intake = crate::channels::intake::Intake::from_config(&engine.config);
    let (url, server) = super::serve(crate::http::router(engine.clone(), intake, None)).await?;
    let load = Arc::new(Load {
        http: reqwest::Client::new(),
        target: format!("{url}{WEBHOOK_PATH}"),
        window: Mutex::default(),
        permits: Semaphore::new(256),
    });

    println!(
        "{:>6}  {:>9}  {:>10}  {:>10}  {:>22}  {:>22}  {:>7}  {:>8}",
        "time",
        "db size",
        "dedup rows",
        "recipients",
        "status p50/p99 (n)",
        "inbound p50/p99 (n)",
        "non-200",
        "RSS"
    );
    let total = Duration::from_secs_f64((soak.minutes * 60.0).max(1.0));
    let started = Instant::now();
    let wamids = AtomicU64::new(0);
    let mut recent: std::collections::VecDeque<(String, String)> = Default::default();
    let mut inbound_tick = tokio::time::interval(Duration::from_secs(1) / soak.rate.max(1) as u32);
    let mut next_campaign = Instant::now();
    let mut next_report = Instant::now() + Duration::from_secs(soak.report_every.max(1));
    let mut campaigns = 0u64;
    while started.elapsed() < total {
        inbound_tick.tick().await;
        let n = wamids.fetch_add(1, Ordering::Relaxed);
        // One in a hundred is a redelivery of a recent message, as Meta does.
        let (body, signature) = if n % 100 == 99 && !recent.is_empty() {
            recent[(n as usize / 100) % recent.len()].clone()
        } else {
            let from = (seed::FIRST_NUMBER + n % soak.campaign_size.max(1)).to_string();
            let body = inbound_body(&from, &format!("wamid.soak{n:012}"), Utc::now().timestamp());
            let posted = signed(body);
            recent.push_back(posted.clone());
            if recent.len() > 1_000 {
                recent.pop_front();
            }
            posted
        };
        tokio::spawn(load.clone().post((body, signature), false));

        if Instant::now() >= next_campaign {
            next_campaign += Duration::from_secs(soak.campaign_every.max(1));
            campaigns += 1;
            let id = super::new_campaign(&engine, &format!("Soak {campaigns}"), "soak").await?;
            super::start(&engine, id).await?;
            engine.wake();
            let spread = Duration::from_secs(soak.campaign_every.max(2) / 2);
            tokio::spawn(statuses_for(engine.clone(), load.clone(), id, spread));
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(soak.report_every.max(1));
            let w = std::mem::take(&mut *crate::lock(&load.window));
            let (mut st, mut inb) = (w.statuses, w.inbound);
            st.sort_by(f64::total_cmp);
            inb.sort_by(f64::total_cmp);
            let size = engine.store.database_size().await?;
            let (seen, recipients) = rows(&engine).await?;
            println!(
                "{:>5}s  {:>6.1} MB  {:>10}  {:>10}  {:>22}  {:>22}  {:>7}  {:>5.1} MB",
                started.elapsed().as_secs(),
                size as f64 / 1e6,
                seen,
                recipients,
                format!(
                    "{:.1}/{:.1} ms ({})",
                    percentile(&st, 0.5),
                    percentile(&st, 0.99),
                    st.len()
                ),
                format!(
                    "{:.1}/{:.1} ms ({})",
                    percentile(&inb, 0.5),
                    percentile(&inb, 0.99),
                    inb.len()
                ),
                w.failed,
                // The whole process: herald with the load it is under and the fake API.
                super::rss_kb() as f64 / 1024.0
            );
        }
    }
    // The requests still in flight are answered before herald stops.
    let _ = load.permits.acquire_many(256).await;
    let (summaries, summarised) = engine.store.summarised_counts().await?;
    let export: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(LENGTH(export)), 0) AS BIGINT) FROM campaign_summaries",
    )
    .fetch_one(engine.store.pool())
    .await?;
    if summarised > 0 {
        println!(
            "{summaries} campaigns summarised ({summarised} recipient rows): their exports take {:.1} bytes per recipient",
            export as f64 / summarised as f64
        );
    }
    shutdown.cancel();
    server.abort();
    let _ = running.await;
    engine.store.close().await;
    println!(
        "{campaigns} campaigns, {} messages accepted by the fake Graph API",
        graph.accepted()
    );
    Ok(())
}
