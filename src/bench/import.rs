//! `herald bench import`: times a CSV contact import, the code `herald contacts import` and
//! `/contact import` run, on a generated file of `--rows` contacts (name, labels, consent, an
//! attribute): once into an empty database, then the same file again, which must change nothing.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use super::{bench_config, thousands, verdict, Backends, BenchArgs, BenchDb};
use crate::clock::SystemClock;

/// The target: 100,000 rows in under 10 s on SQLite, the same pace for other sizes.
const TARGET_ROWS_PER_SEC: f64 = 10_000.0;

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Data rows in the generated file.
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
}

/// One backend's timings.
struct Timing {
    first: f64,
    again: f64,
    first_answer: String,
    again_answer: String,
}

/// Entry point of `herald bench import`.
pub async fn run(args: &ImportArgs, bench: &BenchArgs) -> anyhow::Result<()> {
    let csv = generate(args.rows);
    let mut lines = Vec::new();
    if bench.backend != Backends::Postgres {
        eprintln!("== SQLite");
        let db = BenchDb::sqlite()?;
        let timing = measure(&csv, &db).await;
        db.drop_db().await;
        lines.push(row("SQLite", args.rows, &timing?, true));
    }
    if bench.backend != Backends::Sqlite {
        match BenchDb::postgres(&bench.pg_url).await {
            Ok(db) => {
                eprintln!("== PostgreSQL");
                let timing = measure(&csv, &db).await;
                db.drop_db().await;
                lines.push(row("PostgreSQL", args.rows, &timing?, false));
            }
            Err(e) => lines.push(format!(
                "PostgreSQL   skipped: unreachable at {}: {e:#}",
                super::redact(&bench.pg_url)
            )),
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "CSV contact import: {} rows ({:.1} MB), {cores} cores, one transaction per import",
        thousands(args.rows as f64),
        csv.len() as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "backend      first import         same file again   target (SQLite: 100,000 rows < 10 s)"
    );
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    print!("{out}");
    Ok(())
}

fn row(backend: &str, rows: u64, t: &Timing, has_target: bool) -> String {
    let target = if has_target {
        let limit = rows as f64 / TARGET_ROWS_PER_SEC;
        format!("{} (limit {limit:.1} s)", verdict(t.first < limit))
    } else {
        "-".into()
    };
    let rate = thousands(rows as f64 / t.first.max(1e-3));
    format!(
        "{backend:<12} {:>6.2} s {rate:>9} rows/s {:>9.2} s    {target}\n             first: {}\n             again: {}",
        t.first, t.again, t.first_answer, t.again_answer
    )
}

async fn measure(csv: &[u8], db: &BenchDb) -> anyhow::Result<Timing> {
    let engine = crate::app::build_engine(bench_config(&db.url), Arc::new(SystemClock), vec![])
        .await
        .context("cannot open the bench database")?;
    let import = |label: &'static str| {
        let engine = engine.clone();
        async move {
            let started = Instant::now();
            let answer = crate::commands::handlers::import_contacts(&engine, csv)
                .await
                .map_err(|why| anyhow::anyhow!("{label} import refused: {why}"))?;
            let secs = started.elapsed().as_secs_f64();
            let summary = answer.lines().next().unwrap_or_default().to_string();
            eprintln!("{label}: {secs:.2} s: {summary}");
            Ok::<_, anyhow::Error>((secs, summary))
        }
    };
    let (first, first_answer) = import("first").await?;
    let (again, again_answer) = import("again").await?;
    engine.store.close().await;
    if !again_answer.contains(" 0 added, 0 updated,") {
        bail!("importing the same file again changed something: {again_answer}");
    }
    Ok(Timing {
        first,
        again,
        first_answer,
        again_answer,
    })
}

/// A contacts file as a CRM would export it: every row a new number, a third of them `vip`,
/// half opted in, fifty cities.
fn generate(rows: u64) -> Vec<u8> {
    let mut csv = String::from("phone,name,labels,consent,city\n");
    for i in 0..rows {
        let labels = if i % 3 == 0 { "vip;new" } else { "new" };
        let consent = if i % 2 == 0 { "yes" } else { "" };
        let _ = writeln!(
            csv,
            "+1 555 {:07},Contact {i},{labels},{consent},City {}",
            i,
            i % 50
        );
    }
    csv.into_bytes()
}
