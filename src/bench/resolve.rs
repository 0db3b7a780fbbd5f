//! (d): how soon `/campaign send` to a large audience answers and sends its first message, and
//! how long resolving the whole audience takes while the campaign sends, as `herald run` does
//! it (a resolver paging back to back, a dispatcher sending what is resolved). `herald bench
//! resolve` measures it alone on freshly seeded contacts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::fake_graph::FakeGraph;
use super::{bench_config, seed, whatsapp_client, Backends, BenchArgs, BenchDb};
use crate::channels::Channel;
use crate::clock::SystemClock;
use crate::engine::Engine;

#[derive(Debug, Clone, clap::Args)]
pub struct ResolveArgs {
    /// Contacts seeded, all of them in the campaign's audience.
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: u64,
    /// Contact ids per page of the resolution (`RESOLVE_PAGE`); the default when absent.
    #[arg(long)]
    pub page: Option<u64>,
}

/// What (d) measured, in seconds from the start of `/campaign send`'s work.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The start returned: the first page written, the rest counted (the admin's answer).
    pub reply_secs: f64,
    /// The fake Graph API accepted the campaign's first message.
    pub first_message_secs: Option<f64>,
    /// The last page was written.
    pub full_secs: f64,
    /// Recipient rows of the campaign at the end, and what the start's answer said.
    pub rows: u64,
    pub answered: u64,
}

/// Starts campaign `id` and resolves it to the end while one dispatch step sends (up to two
/// seconds of it) through `engine`'s channel, whose server is `graph`.
pub(super) async fn measure(
    engine: &Engine,
    graph: &FakeGraph,
    id: i64,
) -> anyhow::Result<Resolved> {
    let before = graph.accepted();
    let t = Instant::now();
    let answered = super::start(engine, id).await?;
    let reply_secs = t.elapsed().as_secs_f64();
    let sending = std::sync::atomic::AtomicBool::new(true);
    let resolve = async {
        loop {
            if engine.resolve_step().await? == 0 {
                let left = engine
                    .store
                    .resolution(id)
                    .await?
                    .is_some_and(|r| !r.is_done());
                if !left {
                    break;
                }
                // The dispatcher is writing a page itself.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        anyhow::Ok(t.elapsed().as_secs_f64())
    };
    let first = async {
        while graph.accepted() == before {
            if !sending.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Some(t.elapsed().as_secs_f64())
    };
    let send = async {
        let out = engine.dispatch_step().await;
        sending.store(false, std::sync::atomic::Ordering::Relaxed);
        out
    };
    let (full, first_message_secs, sent) = tokio::join!(resolve, first, send);
    sent?;
    let full_secs = full?;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recipients WHERE campaign_id = $1")
        .bind(id)
        .fetch_one(engine.store.pool())
        .await?;
    Ok(Resolved {
        reply_secs,
        first_message_secs,
        full_secs,
        rows: u64::try_from(rows).unwrap_or(0),
        answered,
    })
}

/// `herald bench resolve`.
pub async fn run(only: &ResolveArgs, args: &BenchArgs) -> anyhow::Result<()> {
    if args.backend != Backends::Postgres {
        let db = BenchDb::sqlite()?;
        let out = backend(only, &db).await;
        db.drop_db().await;
        report("SQLite", only, out?);
    }
    if args.backend != Backends::Sqlite {
        let db = BenchDb::postgres(&args.pg_url).await?;
        let out = backend(only, &db).await;
        db.drop_db().await;
        report("PostgreSQL", only, out?);
    }
    Ok(())
}

async fn backend(only: &ResolveArgs, db: &BenchDb) -> anyhow::Result<Resolved> {
    let graph = FakeGraph::start(seed::FIRST_NUMBER, only.contacts as usize).await?;
    let client: Arc<dyn Channel> = whatsapp_client(&graph.url)?;
    let mut config = bench_config(&db.url);
    if let Some(page) = only.page {
        config.resolve_page = page.max(1);
    }
    let engine = crate::app::build_engine(config, Arc::new(SystemClock), vec![client]).await?;
    let t = Instant::now();
    seed::contacts(
        &engine.store,
        only.contacts,
        &[("all", only.contacts)],
        Utc::now(),
    )
    .await?;
    eprintln!(
        "   seeded {} contacts in {:.1} s",
        only.contacts,
        t.elapsed().as_secs_f64()
    );
    let id = super::new_campaign(&engine, "Bench (d)", "all").await?;
    let out = measure(&engine, &graph, id).await;
    engine.store.close().await;
    out
}

fn report(backend: &str, only: &ResolveArgs, r: Resolved) {
    let page = only.page.unwrap_or(crate::config::DEFAULT_RESOLVE_PAGE);
    println!(
        "{backend}: {} contacts, pages of {page}: answered {} recipients in {:.2} s, first message \
         at {}, {} rows resolved in {:.2} s",
        only.contacts,
        r.answered,
        r.reply_secs,
        r.first_message_secs
            .map_or("never".to_string(), |s| format!("{s:.2} s")),
        r.rows,
        r.full_secs
    );
}
