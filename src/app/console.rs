//! `herald console`: reads the console's lines and hands them on: `/...` to the admin
//! commands, `@<address> <text>` to the engine as a customer message. The console channel
//! itself (`channels::console`) only prints.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::channels::console::{ConsoleChannel, CONSOLE_ADMIN};
use crate::channels::Inbound;
use crate::engine::dispatcher::SHORT_HOLD;
use crate::engine::Engine;
use crate::store::CampaignStatus;

/// Reads console lines until end of input. In `scripted` mode (input is not a terminal) each
/// line's consequences — sends included — finish before the next line is read, so a pasted
/// script gives the same transcript every time. At the end, sending finishes; campaigns
/// scheduled for later stay scheduled for the next start.
pub async fn run(
    engine: &Engine,
    console: &ConsoleChannel,
    input: impl AsyncBufRead + Unpin,
    scripted: bool,
) -> Result<(), crate::engine::EngineError> {
    let mut lines = input.lines();
    // A line read while collecting pasted CSV rows that belongs to the next command.
    let mut next: Option<String> = None;
    loop {
        let line = match next.take() {
            Some(line) => line,
            None => match lines.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    console.print(&format!("cannot read input: {e}"));
                    break;
                }
            },
        };
        if is_bare_import(&line) {
            if !scripted {
                console.print("paste the CSV (its header row first), then an empty line");
            }
            let (csv, after) = pasted_csv(&mut lines, console).await;
            next = after;
            let reply = if csv.is_empty() {
                crate::commands::handlers::run(engine, CONSOLE_ADMIN, &line).await
            } else {
                import_answer(engine, csv.as_bytes()).await
            };
            console.print(&reply);
            continue;
        }
        handle_line(engine, console, &line).await?;
        if scripted {
            settle(engine).await?;
        }
    }
    settle(engine).await?;
    for c in engine
        .store
        .campaigns(Some(CampaignStatus::Sending))
        .await?
    {
        let pending = engine.store.pending(c.id).await?;
        if pending > 0 {
            let when = engine
                .next_due()
                .await?
                .map(|t| format!(" (next at {})", engine.local_time(t)))
                .unwrap_or_default();
            console.print(&format!(
                "campaign {} still has {pending} recipient(s) held for later{when}; they go out on the next start",
                c.id
            ));
        }
    }
    Ok(())
}

/// Runs due work, waiting out short holds (rate limits, retries) but not long ones (tier
/// budget, quiet hours, deferrals), which resume on a later start.
async fn settle(engine: &Engine) -> Result<(), crate::engine::EngineError> {
    loop {
        engine.settle().await?;
        let Some(next) = engine.next_due().await? else {
            return Ok(());
        };
        let wait = (next - engine.clock.now()).to_std().unwrap_or_default();
        if wait > SHORT_HOLD {
            return Ok(());
        }
        engine.clock.sleep(wait).await;
    }
}

async fn handle_line(
    engine: &Engine,
    console: &ConsoleChannel,
    line: &str,
) -> Result<(), crate::engine::EngineError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(());
    }
    if line.starts_with('/') {
        let reply = match import_path(line) {
            Some(path) => match std::fs::read(path) {
                Ok(csv) => import_answer(engine, &csv).await,
                Err(e) => format!("cannot read {path}: {e}"),
            },
            None => crate::commands::handlers::run(engine, CONSOLE_ADMIN, line).await,
        };
        console.print(&reply);
        return Ok(());
    }
    if let Some(rest) = line.strip_prefix('@') {
        let (address, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if address.is_empty() {
            console.print("write a customer message as @<address> <text>, e.g. @+15550001 hi");
            return Ok(());
        }
        let msg = Inbound {
            from: address.to_string(),
            name: None,
            text: Some(text.trim().to_string()),
            button: None,
            at: engine.clock.now(),
            provider_id: None,
            file: None,
        };
        return engine.handle_inbound(msg).await;
    }
    console.print("lines are /commands (try /help) or customer messages written @<address> <text>");
    Ok(())
}

/// `/contact import FILE.csv` on the console reads the file (chat channels attach it instead).
fn import_path(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let is_import = words.next()?.eq_ignore_ascii_case("/contact")
        && words.next()?.eq_ignore_ascii_case("import");
    let path = words.next()?;
    is_import.then_some(path)
}

/// A bare `/contact import`: the CSV follows on the next lines.
fn is_bare_import(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("/contact"))
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("import"))
        && words.next().is_none()
}

/// Reads pasted CSV lines up to an empty line or the end of input. A line starting with `/` ends
/// the paste too (no CSV row does) and is handed back as the next command.
async fn pasted_csv(
    lines: &mut tokio::io::Lines<impl AsyncBufRead + Unpin>,
    console: &ConsoleChannel,
) -> (String, Option<String>) {
    let mut csv = String::new();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim().is_empty() => return (csv, None),
            Ok(Some(line)) if line.trim_start().starts_with('/') => return (csv, Some(line)),
            Ok(Some(line)) => {
                csv.push_str(&line);
                csv.push('\n');
            }
            Ok(None) => return (csv, None),
            Err(e) => {
                console.print(&format!("cannot read input: {e}"));
                return (csv, None);
            }
        }
    }
}

async fn import_answer(engine: &Engine, csv: &[u8]) -> String {
    match crate::commands::handlers::import_contacts(engine, csv).await {
        Ok(reply) | Err(reply) => reply,
    }
}
