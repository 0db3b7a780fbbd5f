//! `herald bench`: measures herald against a fake Graph API on loopback and prints one table.
//!
//! For each backend (SQLite, and PostgreSQL when reachable) it seeds contacts in bulk, then:
//! (a) sends a campaign with pacing off and, in the same run, measures the raw wire limit (a plain
//! reqwest loop at the dispatcher's concurrency against the same fake server); (b) posts signed
//! status webhooks to herald's HTTP server and times each; (c) sends a campaign to every seeded
//! contact (1,000,000 by default) and reads the sender's peak RSS; (d) times starting that
//! campaign: the answer, the first message and resolving the whole audience while it sends
//! (`resolve.rs`); and on PostgreSQL (e) runs two dispatcher processes on one
//! campaign and counts duplicates at the fake server. (f) sets the CPU a message cost the sender
//! against the bare loop's, and (g) (`budget.rs`) adds the database server's and the fake API's
//! share of (a) and what the machine's cores could carry at most.
//!
//! Sending and the wire loop run in child processes (`herald bench-worker`), so a peak RSS is the
//! sender's alone and the fake server's work is not counted against it; both sides share the
//! machine's cores, as herald and its network stack would.

mod budget;
pub mod fake_graph;
pub mod import;
pub mod resolve;
pub mod seed;
pub mod soak;
mod triggers;

use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::Router;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Connection, Row};

use crate::channels::whatsapp::{self, WhatsAppClient, WhatsAppConfig};
use crate::channels::{Audience, Channel, Outbound, OutboundBody};
use crate::clock::SystemClock;
use crate::config::{Config, Tier};
use crate::engine::dispatcher::UNPACED_CONCURRENCY;
use crate::engine::Engine;
use crate::store::CampaignStatus;
use fake_graph::{FakeGraph, PHONE_NUMBER_ID};

const TOKEN: &str = "bench-token";
const APP_SECRET: &str = "bench-app-secret";
const WEBHOOK_PATH: &str = "/webhooks/whatsapp";

/// The targets of issue 5, as the table prints them.
const TARGET_DISPATCH: f64 = 10_000.0;
const TARGET_WIRE_SHARE: f64 = 0.5;
const TARGET_WEBHOOKS: f64 = 10_000.0;
const TARGET_WEBHOOK_P99_MS: f64 = 50.0;
const TARGET_RSS_MB: f64 = 150.0;
const TARGET_RESOLVE_SECS: f64 = 5.0;
const TARGET_FIRST_MESSAGE_SECS: f64 = 1.0;
/// herald's CPU per message sent, at most this many times the bare reqwest loop's.
const TARGET_CPU_RATIO: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backends {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Recipients of the throughput campaign (a) and of the two-process run (e).
    #[arg(long, default_value_t = 100_000)]
    pub recipients: u64,
    /// Contacts seeded: the audience resolved in (d) and the campaign whose peak RSS is read in (c).
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: u64,
    /// Signed status webhooks posted in (b).
    #[arg(long, default_value_t = 50_000)]
    pub webhooks: u64,
    /// Webhook POSTs in flight at once in (b).
    #[arg(long, default_value_t = 64)]
    pub webhook_concurrency: usize,
    /// Which backends to measure.
    #[arg(long, global = true, value_enum, default_value_t = Backends::Both)]
    pub backend: Backends,
    /// PostgreSQL server for the PostgreSQL runs; a throw-away database is created on it and
    /// dropped afterwards.
    #[arg(
        long,
        global = true,
        env = "HERALD_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub pg_url: String,
    /// Runs of the whole measurement per backend (a fresh database each): the table shows each
    /// line's median run and the spread over all of them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub runs: u32,
    /// Measure one thing on its own instead of the whole table.
    #[command(subcommand)]
    pub only: Option<BenchOnly>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchOnly {
    /// CSV contact import: a generated file imported into an empty database, then again.
    Import(import::ImportArgs),
    /// The CPU one inbound message costs to match against 1,000 triggers.
    Triggers,
    /// (d) alone: `/campaign send` to every seeded contact; the answer, the first message and
    /// the whole resolution, timed.
    Resolve(resolve::ResolveArgs),
    /// herald under steady webhook and campaign load: database size and webhook latency over time.
    Soak(soak::SoakArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerMode {
    /// Send one campaign with herald's dispatcher until it completes.
    Dispatch,
    /// POST `count` messages with a plain reqwest loop (the wire limit).
    Wire,
    /// Send one campaign through a channel that answers at once without any network: what the
    /// engine and the database cost on their own (a diagnostic, not in the table).
    DispatchNoWire,
}

/// A child process of the bench (not for direct use).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    pub mode: WorkerMode,
    /// Base URL of the fake Graph API.
    #[arg(long)]
    pub graph: String,
    #[arg(long, default_value = "")]
    pub db: String,
    #[arg(long, default_value_t = 0)]
    pub campaign: i64,
    #[arg(long, default_value_t = 0)]
    pub count: u64,
}

/// What a worker process reports on its stdout (one JSON line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    pub sent: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub peak_rss_kb: u64,
    /// CPU time the worker process used, user and system, all threads (ms).
    #[serde(default)]
    pub cpu_ms: u64,
    /// The part of `cpu_ms` its SQLite connections' threads used (ms); 0 on PostgreSQL.
    #[serde(default)]
    pub sqlite_cpu_ms: u64,
}

impl WorkerReport {
    fn secs(&self) -> f64 {
        (self.end_ms - self.start_ms).max(1) as f64 / 1000.0
    }

    fn rate(&self) -> f64 {
        self.sent as f64 / self.secs()
    }

    /// CPU microseconds per message sent.
    fn cpu_us_per_message(&self) -> Option<f64> {
        (self.sent > 0 && self.cpu_ms > 0).then(|| self.cpu_ms as f64 * 1000.0 / self.sent as f64)
    }
}

/// Entry point of `herald bench-worker`.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    // On a task of the runtime, as `herald run` drives its dispatcher: the future `main` blocks
    // on runs on a thread of its own, outside the workers that drive the connections, and every
    // message would then cross between threads twice.
    let report = tokio::spawn(async move {
        match args.mode {
            WorkerMode::Dispatch | WorkerMode::DispatchNoWire => dispatch_worker(&args).await,
            WorkerMode::Wire => wire_worker(&args).await,
        }
    })
    .await
    .context("the bench worker's task failed")??;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Peak resident set size of this process (Linux `VmHWM`), in KiB; 0 where unknown.
pub fn peak_rss_kb() -> u64 {
    status_kb("VmHWM:")
}

/// Resident set size of this process now (Linux `VmRSS`), in KiB; 0 where unknown.
pub fn rss_kb() -> u64 {
    status_kb("VmRSS:")
}

/// A size line of `/proc/self/status`, in KiB.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn whatsapp_client(graph: &str) -> anyhow::Result<Arc<WhatsAppClient>> {
    let mut wa = WhatsAppConfig::new(graph, PHONE_NUMBER_ID, TOKEN);
    // Pacing off: no ceiling but the wire's own.
    wa.max_per_second = 1e9;
    Ok(Arc::new(WhatsAppClient::new(wa)?))
}

fn bench_config(db: &str) -> Config {
    Config {
        database_url: db.to_string(),
        tier: Tier::Unlimited,
        whatsapp_app_secret: Some(APP_SECRET.into()),
        whatsapp_token: Some(TOKEN.into()),
        whatsapp_phone_number_id: Some(PHONE_NUMBER_ID.into()),
        ..Config::default()
    }
}

/// WhatsApp that accepts everything at once, for [`WorkerMode::DispatchNoWire`].
struct NoWire(std::sync::atomic::AtomicU64);

#[async_trait::async_trait]
impl Channel for NoWire {
    fn kind(&self) -> crate::channels::ChannelKind {
        crate::channels::ChannelKind::WhatsApp
    }

    async fn send(
        &self,
        _: &Outbound,
    ) -> Result<crate::channels::Sent, crate::channels::SendError> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(crate::channels::Sent {
            provider_id: Some(format!("wamid.nowire{n:010}")),
        })
    }
}

async fn dispatch_worker(args: &WorkerArgs) -> anyhow::Result<WorkerReport> {
    let client: Arc<dyn Channel> = match args.mode {
        WorkerMode::DispatchNoWire => Arc::new(NoWire(Default::default())),
        _ => whatsapp_client(&args.graph)?,
    };
    let engine =
        crate::app::build_engine(bench_config(&args.db), Arc::new(SystemClock), vec![client])
            .await?;
    let start = Utc::now();
    let mut sent = 0;
    let mut recovered_at = std::time::Instant::now();
    loop {
        let step = engine.dispatch_step().await?;
        sent += step.sent;
        if step.is_idle() {
            let status = engine
                .store
                .campaign(args.campaign)
                .await?
                .map(|c| c.status);
            if status != Some(CampaignStatus::Sending) {
                break;
            }
            // Another process holds the last windows, or a lease that ran out holds them: as
            // `herald run` does, bring those back now and then.
            if recovered_at.elapsed() >= Duration::from_secs(1) {
                engine.recover(false).await?;
                recovered_at = std::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let end = Utc::now();
    // Read before closing: the connections' threads end with the pool.
    let sqlite_cpu_ms = budget::threads_ms("sqlx-sqlite");
    engine.store.close().await;
    Ok(WorkerReport {
        sent,
        start_ms: start.timestamp_millis(),
        end_ms: end.timestamp_millis(),
        peak_rss_kb: peak_rss_kb(),
        cpu_ms: budget::own_ms(),
        sqlite_cpu_ms,
    })
}

/// The same messages herald would send, posted by a bare reqwest loop.
async fn wire_worker(args: &WorkerArgs) -> anyhow::Result<WorkerReport> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let url = format!("{}/{PHONE_NUMBER_ID}/messages", args.graph);
    let start = Utc::now();
    let sent = stream::iter(0..args.count)
        .map(|i| {
            let msg = Outbound {
                to: seed::address(i),
                audience: Audience::Customer,
                body: OutboundBody::Text(format!("Hello Contact {i}, this is the bench")),
                callback: Some(format!("r{i}:c0")),
            };
            let to = (seed::FIRST_NUMBER + i).to_string();
            let body = whatsapp::client::request_body(&to, &msg);
            let request = http.post(&url).bearer_auth(TOKEN).json(&body);
            async move {
                match request.send().await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        ok && r.text().await.is_ok()
                    }
                    Err(_) => false,
                }
            }
        })
        .buffer_unordered(UNPACED_CONCURRENCY)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await as u64;
    let end = Utc::now();
    Ok(WorkerReport {
        sent,
        start_ms: start.timestamp_millis(),
        end_ms: end.timestamp_millis(),
        peak_rss_kb: peak_rss_kb(),
        cpu_ms: budget::own_ms(),
        sqlite_cpu_ms: 0,
    })
}

/// Starts a worker process; its report is read when it ends.
fn spawn_worker(args: &[String]) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe().context("cannot find the herald binary")?;
    tokio::process::Command::new(exe)
        .arg("bench-worker")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start a bench worker")
}

/// The longest a worker may take: a hung measurement fails instead of hanging the bench.
const WORKER_LIMIT: Duration = Duration::from_secs(30 * 60);

async fn finish_worker(child: tokio::process::Child) -> anyhow::Result<WorkerReport> {
    let out = tokio::time::timeout(WORKER_LIMIT, child.wait_with_output())
        .await
        .context("bench worker did not finish in 30 minutes")??;
    if !out.status.success() {
        bail!("bench worker failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("bench worker printed no report")?;
    Ok(serde_json::from_str(line)?)
}

async fn run_worker(args: &[String]) -> anyhow::Result<WorkerReport> {
    finish_worker(spawn_worker(args)?).await
}

fn dispatch_args(db: &str, graph: &str, campaign: i64) -> Vec<String> {
    vec![
        "--mode".into(),
        "dispatch".into(),
        "--db".into(),
        db.into(),
        "--graph".into(),
        graph.into(),
        "--campaign".into(),
        campaign.to_string(),
    ]
}

/// A database to measure on, dropped afterwards.
struct BenchDb {
    url: String,
    pg_admin: Option<(String, String)>,
    dir: Option<std::path::PathBuf>,
}

impl BenchDb {
    fn sqlite() -> anyhow::Result<BenchDb> {
        let dir = std::env::temp_dir().join(format!("herald-bench-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir)?;
        let url = format!("sqlite://{}", dir.join("bench.db").display());
        Ok(BenchDb {
            url,
            pg_admin: None,
            dir: Some(dir),
        })
    }

    async fn postgres(admin_url: &str) -> anyhow::Result<BenchDb> {
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::PgConnection::connect(admin_url),
        )
        .await
        .context("timed out")??;
        let name = format!("herald_bench_{:08x}", rand::random::<u32>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or_else(|| admin_url.to_string());
        Ok(BenchDb {
            url: format!("{base}/{name}"),
            pg_admin: Some((admin_url.to_string(), name)),
            dir: None,
        })
    }

    async fn drop_db(&self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin, name)) = &self.pg_admin {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

#[derive(Debug, Default)]
struct Ingest {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One backend's figures; `None` where not measured.
#[derive(Debug, Default)]
struct Figures {
    skipped: Option<String>,
    dispatch: Option<WorkerReport>,
    wire: Option<WorkerReport>,
    /// The CPU the rest of the machine spent during (a) and during the wire loop.
    dispatch_spent: Option<budget::Spent>,
    wire_spent: Option<budget::Spent>,
    dispatch_duplicates: u64,
    ingest: Option<Ingest>,
    big_send: Option<WorkerReport>,
    big_duplicates: u64,
    resolve: Option<resolve::Resolved>,
    pair: Option<(f64, u64, u64)>,
    notes: Vec<String>,
}

/// Entry point of `herald bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match &args.only {
        Some(BenchOnly::Import(only)) => return import::run(only, &args).await,
        Some(BenchOnly::Triggers) => {
            println!("{}", triggers::measure());
            return Ok(());
        }
        Some(BenchOnly::Soak(soak)) => return soak::run(soak, &args).await,
        Some(BenchOnly::Resolve(only)) => return resolve::run(only, &args).await,
        None => {}
    }
    let started = Instant::now();
    let skipped = |why: String| {
        vec![Figures {
            skipped: Some(why),
            ..Figures::default()
        }]
    };
    let mut sqlite = Vec::new();
    let mut postgres = Vec::new();
    for run in 1..=args.runs {
        if args.backend != Backends::Postgres {
            eprintln!("== SQLite, run {run} of {}", args.runs);
            let db = BenchDb::sqlite()?;
            let figures = measure(&args, &db, false).await;
            db.drop_db().await;
            sqlite.push(figures?);
        }
        if args.backend != Backends::Sqlite {
            match BenchDb::postgres(&args.pg_url).await {
                Ok(db) => {
                    eprintln!("== PostgreSQL, run {run} of {}", args.runs);
                    let figures = measure(&args, &db, true).await;
                    db.drop_db().await;
                    postgres.push(figures?);
                }
                Err(e) => {
                    let why = format!("PostgreSQL unreachable at {}: {e:#}", redact(&args.pg_url));
                    eprintln!("== {why}: skipped");
                    postgres = skipped(why);
                    if args.backend == Backends::Postgres {
                        break;
                    }
                }
            }
        }
    }
    if sqlite.is_empty() {
        sqlite = skipped("not selected".into());
    }
    if postgres.is_empty() {
        postgres = skipped("not selected".into());
    }
    print!("{}", table(&args, &sqlite, &postgres, started.elapsed()));
    Ok(())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

async fn measure(args: &BenchArgs, db: &BenchDb, postgres: bool) -> anyhow::Result<Figures> {
    let mut f = Figures::default();
    let contacts = args.contacts.max(args.recipients);
    let graph = FakeGraph::start(seed::FIRST_NUMBER, contacts as usize).await?;
    let client: Arc<dyn Channel> = whatsapp_client(&graph.url)?;
    let engine =
        crate::app::build_engine(bench_config(&db.url), Arc::new(SystemClock), vec![client])
            .await?;

    let t = Instant::now();
    seed::contacts(
        &engine.store,
        contacts,
        &[("a", args.recipients), ("all", args.contacts)],
        Utc::now(),
    )
    .await?;
    eprintln!(
        "   seeded {contacts} contacts in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // (a) dispatch throughput with pacing off, then the wire limit against the same server.
    let a = new_campaign(&engine, "Bench (a)", "a").await?;
    start_resolved(&engine, a).await?;
    let before = budget::Sample::take(postgres);
    let report = run_worker(&dispatch_args(&db.url, &graph.url, a)).await?;
    f.dispatch_spent = Some(before.until(&budget::Sample::take(postgres)));
    f.dispatch_duplicates = graph.duplicates();
    eprintln!(
        "   (a) {} sent in {:.1} s: {:.0} msg/s",
        report.sent,
        report.secs(),
        report.rate()
    );
    f.dispatch = Some(report);
    let wire_graph = FakeGraph::start(seed::FIRST_NUMBER, args.recipients as usize).await?;
    let before = budget::Sample::take(false);
    let wire = run_worker(&[
        "--mode".into(),
        "wire".into(),
        "--graph".into(),
        wire_graph.url.clone(),
        "--count".into(),
        args.recipients.to_string(),
    ])
    .await?;
    f.wire_spent = Some(before.until(&budget::Sample::take(false)));
    drop(wire_graph);
    eprintln!("   wire limit {:.0} msg/s", wire.rate());
    f.wire = Some(wire);

    // (b) signed status webhooks for the messages (a) sent.
    match ingest(&engine, a, args.webhooks, args.webhook_concurrency).await {
        Ok(ingest) => {
            eprintln!(
                "   (b) {:.0} webhooks/s, p50 {:.1} ms, p99 {:.1} ms",
                ingest.rate, ingest.p50_ms, ingest.p99_ms
            );
            f.ingest = Some(ingest);
        }
        Err(e) => f.notes.push(format!("(b) failed: {e:#}")),
    }

    // (d) start the campaign to the whole audience: its answer, its first message and its whole
    // resolution while it sends (the first dispatch step's two seconds, to (a)'s server); then
    // (c) a sender process sends the rest and reads its peak RSS.
    let big_graph = FakeGraph::start(seed::FIRST_NUMBER, contacts as usize).await?;
    let c = new_campaign(&engine, "Bench (c, d)", "all").await?;
    let d = resolve::measure(&engine, &graph, c).await?;
    eprintln!(
        "   (d) answered {} recipients in {:.2} s, first message at {}, {} resolved in {:.1} s",
        d.answered,
        d.reply_secs,
        d.first_message_secs
            .map_or("never".to_string(), |s| format!("{s:.2} s")),
        d.rows,
        d.full_secs
    );
    f.resolve = Some(d);
    let big = run_worker(&dispatch_args(&db.url, &big_graph.url, c)).await?;
    f.big_duplicates = big_graph.duplicates();
    eprintln!(
        "   (c) {} sent in {:.1} s ({:.0} msg/s), peak RSS {:.1} MB",
        big.sent,
        big.secs(),
        big.rate(),
        big.peak_rss_kb as f64 / 1024.0
    );
    f.big_send = Some(big);
    drop(big_graph);

    // (e) two processes on one PostgreSQL campaign.
    if postgres {
        let pair_graph = FakeGraph::start(seed::FIRST_NUMBER, contacts as usize).await?;
        let e = new_campaign(&engine, "Bench (e)", "a").await?;
        start_resolved(&engine, e).await?;
        let args_e = dispatch_args(&db.url, &pair_graph.url, e);
        let (one, two) = (spawn_worker(&args_e)?, spawn_worker(&args_e)?);
        let (one, two) = tokio::try_join!(finish_worker(one), finish_worker(two))?;
        let sent = one.sent + two.sent;
        let secs =
            (one.end_ms.max(two.end_ms) - one.start_ms.min(two.start_ms)).max(1) as f64 / 1000.0;
        let duplicates = pair_graph.duplicates();
        let accepted = pair_graph.accepted();
        eprintln!(
            "   (e) two processes: {} + {} sent, {:.0} msg/s combined, {duplicates} duplicates, {accepted} accepted",
            one.sent,
            two.sent,
            sent as f64 / secs
        );
        f.pair = Some((sent as f64 / secs, duplicates, accepted));
    }
    engine.store.close().await;
    Ok(f)
}

async fn new_campaign(engine: &Engine, title: &str, audience: &str) -> anyhow::Result<i64> {
    let store = &engine.store;
    let id = store.create_campaign(title, None, Utc::now()).await?;
    let audience = crate::domain::audience::parse_audience(audience)
        .map_err(|e| anyhow::anyhow!("bench audience {audience:?}: {e}"))?;
    store.set_audience(id, &audience, Utc::now()).await?;
    store
        .set_text(id, "Hello {{name}}, this is the bench")
        .await?;
    store
        .set_pace(
            id,
            &crate::store::Pace {
                rate: 0.0,
                ..crate::store::Pace::default()
            },
        )
        .await?;
    Ok(id)
}

/// Starts campaign `id` and resolves its whole audience before returning: (a) and (e) measure
/// sending alone, (d) the resolution while it sends.
async fn start_resolved(engine: &Engine, id: i64) -> anyhow::Result<u64> {
    let n = start(engine, id).await?;
    while engine.resolve_step().await? > 0 {}
    Ok(n)
}

async fn start(engine: &Engine, id: i64) -> anyhow::Result<u64> {
    let campaign = engine
        .store
        .campaign(id)
        .await?
        .context("campaign vanished")?;
    engine
        .start_campaign(&campaign)
        .await?
        .context("campaign did not start")
}

/// A status notification as Meta posts it.
fn status_body(wamid: &str, status: &str, recipient: &str, callback: &str, at: i64) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [{
                "id": wamid, "status": status, "timestamp": at.to_string(),
                "recipient_id": recipient, "biz_opaque_callback_data": callback,
                "conversation": {"id": "c1", "origin": {"type": "marketing"}},
                "pricing": {"billable": true, "pricing_model": "CBP", "category": "marketing"}
            }]
        }}]}]
    })
    .to_string()
}

/// (b): `n` signed status webhooks for campaign `campaign`'s sent messages (delivered, then
/// read; replays past that), posted `concurrency` at a time to herald's HTTP server.
async fn ingest(
    engine: &Arc<Engine>,
    campaign: i64,
    n: u64,
    concurrency: usize,
) -> anyhow::Result<Ingest> {
    let rows = sqlx::query(
        "SELECT r.id, r.provider_id, c.address FROM recipients r \
         JOIN contacts c ON c.id = r.contact_id WHERE r.campaign_id = $1 \
         AND r.provider_id IS NOT NULL ORDER BY r.id LIMIT $2",
    )
    .bind(campaign)
    .bind(n as i64)
    .fetch_all(engine.store.pool())
    .await?;
    if rows.is_empty() {
        bail!("no sent messages to post statuses for");
    }
    let at = Utc::now().timestamp();
    let mut bodies = Vec::with_capacity(n as usize);
    for k in 0..n as usize {
        let row = &rows[k % rows.len()];
        let id: i64 = row.try_get("id")?;
        let wamid: String = row.try_get("provider_id")?;
        let address: String = row.try_get("address")?;
        let status = if k / rows.len() == 0 {
            "delivered"
        } else {
            "read"
        };
        let body = status_body(
            &wamid,
            status,
            address.trim_start_matches("wa:"),
            &format!("r{id}:c{campaign}"),
            at,
        );
        let signature = whatsapp::sign(APP_SECRET.as_bytes(), body.as_bytes());
        bodies.push((body, signature));
    }

    let intake = crate::channels::intake::Intake::from_config(&engine.config);
    let (url, server) = serve(crate::http::router(engine.clone(), intake, None)).await?;
    let probe = reqwest::Client::new()
        .post(format!("{url}{WEBHOOK_PATH}"))
        .header("x-hub-signature-256", &bodies[0].1)
        .header("content-type", "application/json")
        .body(bodies[0].0.clone())
        .send()
        .await?;
    if !probe.status().is_success() {
        server.abort();
        bail!("the webhook refused a signed status: {}", probe.status());
    }
    let http = reqwest::Client::new();
    let target = format!("{url}{WEBHOOK_PATH}");
    let started = Instant::now();
    let mut latencies: Vec<f64> = stream::iter(bodies)
        .map(|(body, signature)| {
            let request = http
                .post(&target)
                .header("x-hub-signature-256", signature)
                .header("content-type", "application/json")
                .body(body);
            async move {
                let t = Instant::now();
                let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
                ok.then(|| t.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(std::future::ready)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    server.abort();
    if latencies.is_empty() {
        bail!("no webhook was accepted");
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok(Ingest {
        rate: latencies.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

async fn serve(router: Router) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((url, server))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// One backend's cell of a line: the run whose `key` is the median, worded by `what`; with more
/// than one run, the spread of `key` over them, worded by `spread`.
fn cell(
    runs: &[Figures],
    key: impl Fn(&Figures) -> Option<f64>,
    what: impl Fn(&Figures) -> Option<String>,
    spread: impl Fn(f64) -> String,
) -> String {
    if runs.iter().any(|f| f.skipped.is_some()) {
        return "skipped".into();
    }
    let mut measured: Vec<(f64, &Figures)> =
        runs.iter().filter_map(|f| Some((key(f)?, f))).collect();
    if measured.is_empty() {
        return "not measured".into();
    }
    measured.sort_by(|x, y| x.0.total_cmp(&y.0));
    let median = measured[measured.len() / 2].1;
    let text = what(median).unwrap_or_else(|| "not measured".into());
    match (measured.first(), measured.last()) {
        (Some((low, _)), Some((high, _))) if measured.len() > 1 => format!(
            "{text}; median of {} runs, spread {} to {}",
            measured.len(),
            spread(*low),
            spread(*high)
        ),
        _ => text,
    }
}

/// (a)'s share of the wire limit.
fn wire_share(f: &Figures) -> Option<f64> {
    Some(f.dispatch.as_ref()?.rate() / f.wire.as_ref()?.rate())
}

fn ingest_rate(f: &Figures) -> Option<f64> {
    Some(f.ingest.as_ref()?.rate)
}

fn big_rss_mb(f: &Figures) -> Option<f64> {
    Some(f.big_send.as_ref()?.peak_rss_kb as f64 / 1024.0)
}

fn resolve_secs(f: &Figures) -> Option<f64> {
    f.resolve.as_ref().map(|r| r.full_secs)
}

/// (e): two processes over one.
fn pair_ratio(f: &Figures) -> Option<f64> {
    Some(f.pair?.0 / f.dispatch.as_ref()?.rate())
}

/// (f): herald's CPU per message over the bare loop's.
fn cpu_ratio(f: &Figures) -> Option<f64> {
    Some(f.dispatch.as_ref()?.cpu_us_per_message()? / f.wire.as_ref()?.cpu_us_per_message()?)
}

/// (g): the CPU every process here spent per message in (a) and in the wire loop, and what
/// that allows on `cores` cores.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuBudget {
    herald_us: f64,
    /// The part of `herald_us` in SQLite's threads.
    sqlite_us: f64,
    db_us: Option<f64>,
    api_us: f64,
    busy: Option<f64>,
    bare_us: f64,
    wire_api_us: f64,
    wire_busy: Option<f64>,
    /// Messages per second (a) could reach were every core busy with it.
    ceiling: f64,
    /// That ceiling over the wire limit measured.
    ceiling_share: f64,
}

fn cpu_budget(f: &Figures, cores: usize) -> Option<CpuBudget> {
    let (d, w) = (f.dispatch.as_ref()?, f.wire.as_ref()?);
    let (ds, ws) = (f.dispatch_spent?, f.wire_spent?);
    if d.sent == 0 || w.sent == 0 || cores == 0 {
        return None;
    }
    let per = |ms: u64, sent: u64| ms as f64 * 1000.0 / sent as f64;
    let herald_us = d.cpu_us_per_message()?;
    let sqlite_us = per(d.sqlite_cpu_ms, d.sent);
    let db_us = ds.db_ms.map(|ms| per(ms, d.sent));
    let api_us = per(ds.own_ms, d.sent);
    let total = herald_us + db_us.unwrap_or(0.0) + api_us;
    let ceiling = cores as f64 * 1e6 / total;
    Some(CpuBudget {
        herald_us,
        sqlite_us,
        db_us,
        api_us,
        busy: ds.busy,
        bare_us: w.cpu_us_per_message()?,
        wire_api_us: per(ws.own_ms, w.sent),
        wire_busy: ws.busy,
        ceiling,
        ceiling_share: ceiling / w.rate(),
    })
}

fn table(args: &BenchArgs, sqlite: &[Figures], postgres: &[Figures], took: Duration) -> String {
    let mut t = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        t,
        "\nherald bench: {} recipients (a, e, f), {} contacts (c, d), {} webhooks (b); {cores} cores; {} run(s); {:.0} s\n",
        thousands(args.recipients as f64),
        thousands(args.contacts as f64),
        thousands(args.webhooks as f64),
        args.runs,
        took.as_secs_f64()
    );
    let _ = writeln!(t, "| measure | target | SQLite | PostgreSQL |");
    let _ = writeln!(t, "|---|---|---|---|");
    let a = |f: &Figures| {
        let (d, w) = (f.dispatch.as_ref()?, f.wire.as_ref()?);
        let share = d.rate() / w.rate();
        let ok =
            d.rate() >= TARGET_DISPATCH && share >= TARGET_WIRE_SHARE && f.dispatch_duplicates == 0;
        // Truncated, not rounded: 0.498 must not read as a failed 0.50.
        let shown = (share * 100.0).floor() / 100.0;
        Some(format!(
            "{} msg/s = {shown:.2} x wire ({} msg/s) {}",
            thousands(d.rate()),
            thousands(w.rate()),
            verdict(ok)
        ))
    };
    let _ = writeln!(
        t,
        "| (a) dispatch, pacing off, vs raw wire limit ({UNPACED_CONCURRENCY} in flight) | >= 10,000 msg/s and >= 0.5 x wire | {} | {} |",
        cell(sqlite, wire_share, a, |v| format!("{v:.2} x")),
        cell(postgres, wire_share, a, |v| format!("{v:.2} x"))
    );
    let b = |f: &Figures| {
        let i = f.ingest.as_ref()?;
        let ok = i.rate >= TARGET_WEBHOOKS && i.p99_ms < TARGET_WEBHOOK_P99_MS;
        Some(format!(
            "{}/s, p50 {:.1} ms, p99 {:.1} ms {}",
            thousands(i.rate),
            i.p50_ms,
            i.p99_ms,
            verdict(ok)
        ))
    };
    let _ = writeln!(
        t,
        "| (b) signed status webhooks ({} in flight) | >= 10,000/s, p99 < 50 ms | {} | {} |",
        args.webhook_concurrency,
        cell(sqlite, ingest_rate, b, |v| format!("{}/s", thousands(v))),
        cell(postgres, ingest_rate, b, |v| format!("{}/s", thousands(v)))
    );
    let c = |f: &Figures| {
        let r = f.big_send.as_ref()?;
        let mb = r.peak_rss_kb as f64 / 1024.0;
        Some(format!(
            "{mb:.0} MB ({} sent at {} msg/s) {}",
            thousands(r.sent as f64),
            thousands(r.rate()),
            verdict(mb < TARGET_RSS_MB && r.peak_rss_kb > 0 && f.big_duplicates == 0)
        ))
    };
    let _ = writeln!(
        t,
        "| (c) peak RSS sending a {}-recipient campaign | < 150 MB | {} | {} |",
        thousands(args.contacts as f64),
        cell(sqlite, big_rss_mb, c, |v| format!("{v:.0} MB")),
        cell(postgres, big_rss_mb, c, |v| format!("{v:.0} MB"))
    );
    let d = |f: &Figures| {
        let r = f.resolve.as_ref()?;
        let first = r.first_message_secs?;
        Some(format!(
            "{:.1} s, first message at {first:.2} s {}",
            r.full_secs,
            verdict(r.full_secs < TARGET_RESOLVE_SECS && first < TARGET_FIRST_MESSAGE_SECS)
        ))
    };
    let _ = writeln!(
        t,
        "| (d) resolve a {}-contact audience while it sends | < 5 s, first message < 1 s | {} | {} |",
        thousands(args.contacts as f64),
        cell(sqlite, resolve_secs, d, |v| format!("{v:.1} s")),
        cell(postgres, resolve_secs, d, |v| format!("{v:.1} s"))
    );
    let e = |f: &Figures| {
        let (rate, dups, _) = f.pair?;
        let one = f.dispatch.as_ref()?.rate();
        Some(format!(
            "{} msg/s combined vs {} one process, {dups} duplicates {}",
            thousands(rate),
            thousands(one),
            verdict(dups == 0 && rate >= one)
        ))
    };
    let _ = writeln!(
        t,
        "| (e) two processes, one database | 0 duplicates, combined >= one process | n/a (PostgreSQL only) | {} |",
        cell(postgres, pair_ratio, e, |v| format!("{v:.2} x one"))
    );
    let f = |f: &Figures| {
        let (d, w) = (f.dispatch.as_ref()?, f.wire.as_ref()?);
        let ratio = cpu_ratio(f)?;
        Some(format!(
            "{:.0} us/msg vs {:.0} us/msg bare = {ratio:.2} x {}",
            d.cpu_us_per_message()?,
            w.cpu_us_per_message()?,
            verdict(ratio <= TARGET_CPU_RATIO)
        ))
    };
    let _ = writeln!(
        t,
        "| (f) herald's CPU (user + system) per message sent in (a), vs the bare reqwest loop's | <= 2 x bare | {} | {} |",
        cell(sqlite, cpu_ratio, f, |v| format!("{v:.2} x")),
        cell(postgres, cpu_ratio, f, |v| format!("{v:.2} x"))
    );
    let g = |f: &Figures, database: &str| {
        let b = cpu_budget(f, cores)?;
        let busy = |share: Option<f64>| {
            share.map_or(String::new(), |s| format!(", cores {:.0}% busy", s * 100.0))
        };
        let herald = match b.db_us {
            Some(db) => format!("herald {:.0} + {database} {db:.0}", b.herald_us),
            None => format!(
                "herald {:.0} ({database} inside: its thread {:.0})",
                b.herald_us, b.sqlite_us
            ),
        };
        Some(format!(
            "{herald} + fake API {:.0} = {:.0} us/msg{}; wire: bare loop {:.0} + fake API {:.0} = {:.0} us/msg{}; every core busy: at most {} msg/s = {:.2} x wire",
            b.api_us,
            b.herald_us + b.db_us.unwrap_or(0.0) + b.api_us,
            busy(b.busy),
            b.bare_us,
            b.wire_api_us,
            b.bare_us + b.wire_api_us,
            busy(b.wire_busy),
            thousands(b.ceiling),
            (b.ceiling_share * 100.0).floor() / 100.0
        ))
    };
    let ceiling_share = |f: &Figures| Some(cpu_budget(f, cores)?.ceiling_share);
    let _ = writeln!(
        t,
        "| (g) CPU per message of every process of (a) on this machine (the PostgreSQL server when it runs here), and of the wire loop | none: what limits (a) on {cores} cores | {} | {} |",
        cell(sqlite, ceiling_share, |f| g(f, "SQLite"), |v| format!("{v:.2} x")),
        cell(postgres, ceiling_share, |f| g(f, "PostgreSQL"), |v| format!("{v:.2} x"))
    );
    for (name, runs) in [("SQLite", sqlite), ("PostgreSQL", postgres)] {
        for (i, f) in runs.iter().enumerate() {
            let name = if runs.len() > 1 {
                format!("{name} run {}", i + 1)
            } else {
                name.to_string()
            };
            if let Some(why) = &f.skipped {
                let _ = writeln!(t, "\n{name} skipped: {why}");
            }
            for note in &f.notes {
                let _ = writeln!(t, "\n{name}: {note}");
            }
            if f.dispatch_duplicates + f.big_duplicates > 0 {
                let _ = writeln!(
                    t,
                    "\n{name}: {} duplicate message(s) seen by the fake Graph API",
                    f.dispatch_duplicates + f.big_duplicates
                );
            }
        }
    }
    t
}
