//! The `herald` binary: reads configuration, sets up logging, and runs one of the commands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use herald::app::console;
use herald::channels::console::ConsoleChannel;
use herald::clock::SystemClock;
use herald::config::Config;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "WhatsApp and Telegram campaigns, steered by chat commands"
)]
struct Cli {
    /// Configuration file (environment variables override it).
    #[arg(long, global = true, default_value = "herald.toml")]
    config: PathBuf,
    /// Database URL (overrides DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole engine on the console: type /commands and @address messages.
    Console,
    /// The long-running bot: WhatsApp and/or Telegram from configuration, the HTTP server
    /// (webhooks, /healthz, /metrics), the scheduler and the dispatcher.
    Run,
    /// Apply database migrations and exit.
    Migrate,
    /// What herald is doing now, in one screen (as /status): campaigns sending, queued, held
    /// and why, the tier, the database's size and the oldest rows not yet pruned.
    Status,
    /// Contact management.
    Contacts {
        #[command(subcommand)]
        command: ContactsCmd,
    },
    /// Measure throughput, webhook ingest, memory and audience resolution against a fake Graph
    /// API on loopback, on SQLite and PostgreSQL, and print one table.
    Bench(herald::bench::BenchArgs),
    /// A child process of `herald bench`.
    #[command(hide = true)]
    BenchWorker(herald::bench::WorkerArgs),
}

#[derive(Subcommand)]
enum ContactsCmd {
    /// Import contacts from a CSV file (header: address,name,labels,lang,tz,consent,...).
    Import { file: PathBuf },
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(Some(Path::new(&cli.config))).context("invalid configuration")?;
    if let Some(url) = &cli.database_url {
        config.database_url = url.clone();
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = load_config(&cli)?;
    match cli.command {
        Cmd::Console => {
            let scripted = !std::io::stdin().is_terminal();
            let out = if scripted {
                ConsoleChannel::stdout()
            } else {
                ConsoleChannel::interactive()
            };
            let engine =
                herald::app::build_engine(config, Arc::new(SystemClock), vec![out.clone()])
                    .await
                    .context("cannot open the database")?;
            if !scripted {
                println!("herald console: type /help, or @+15550001 hi to write as a customer; Ctrl-D quits");
            }
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            let background = if scripted {
                None
            } else {
                let shutdown = tokio_util::sync::CancellationToken::new();
                let task = tokio::spawn(engine.clone().run(shutdown.clone()));
                Some((shutdown, task))
            };
            console::run(&engine, &out, stdin, scripted).await?;
            if let Some((shutdown, task)) = background {
                shutdown.cancel();
                let _ = task.await;
            }
            engine.store.close().await;
        }
        Cmd::Run => {
            let app = herald::app::App::build(config, Arc::new(SystemClock))
                .await
                .context("cannot start")?;
            tracing::info!(addr = %app.http_addr(), "herald running");
            let shutdown = tokio_util::sync::CancellationToken::new();
            tokio::spawn(signal_shutdown(shutdown.clone()));
            app.run(shutdown).await?;
        }
        Cmd::Bench(args) => herald::bench::run(args).await?,
        Cmd::BenchWorker(args) => herald::bench::worker(args).await?,
        Cmd::Migrate => {
            let store = herald::store::Store::connect(&config.database_url)
                .await
                .context("cannot open the database")?;
            store.close().await;
            println!("migrations applied");
        }
        Cmd::Status => {
            let screen = herald::app::status_screen(config, Arc::new(SystemClock))
                .await
                .context("cannot read the database")?;
            println!("{screen}");
        }
        Cmd::Contacts {
            command: ContactsCmd::Import { file },
        } => {
            let data =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let out = ConsoleChannel::stdout();
            let engine =
                herald::app::build_engine(config, Arc::new(SystemClock), vec![out.clone()])
                    .await
                    .context("cannot open the database")?;
            let outcome = herald::commands::handlers::import_contacts(&engine, &data).await;
            engine.store.close().await;
            match outcome {
                Ok(reply) => println!("{reply}"),
                Err(why) => {
                    // One line, as on the console: the file or the database refused it all.
                    eprintln!("{why}");
                    std::process::exit(1);
                }
            }
        }
    }
    Ok(())
}

/// SIGTERM or SIGINT starts a graceful shutdown; a second one ends the process at once (the
/// rows it was sending are then recovered as after a crash).
async fn signal_shutdown(shutdown: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                tracing::info!("shutting down: finishing messages in flight");
                shutdown.cancel();
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::warn!("second signal: exiting without waiting");
    std::process::exit(130);
}
