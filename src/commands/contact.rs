//! `/contact add|show|import`: the contact book: its parser, its
//! handler and their tests. Grammar and examples: `commands/contact.md`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::parse::{parse_tz, shorten, Args, ParseError};
use super::reply::{find, said, Reply};
use crate::domain::csv_import::{parse_contacts_csv, ContactRecord, RowError};
use crate::domain::{Address, AttrKey, Label, Lang};
use crate::engine::rules;
use crate::engine::Engine;
use crate::store::{Contact, ContactUpdate, ImportOutcome};

#[derive(Debug, Clone, PartialEq)]
pub enum ContactCommand {
    Add {
        address: Address,
        name: Option<String>,
        labels: Vec<Label>,
        lang: Option<Lang>,
        tz: Option<String>,
        optin: bool,
        /// Extra `attr.KEY=value` pairs.
        attrs: Vec<(AttrKey, String)>,
    },
    Show {
        address: Address,
    },
    /// `/contact import`: the CSV rides along as an attachment (or follows on the next lines in the
    /// console); `csv` is `None` when nothing was attached.
    Import {
        csv: Option<String>,
    },
}

pub(super) fn parse(args: &mut Args) -> Result<ContactCommand, ParseError> {
    let sub = args.keyword("subcommand")?;
    match sub.as_str() {
        "add" => contact_add(args.with_usage("contact add")),
        "show" => {
            let args = args.with_usage("contact show");
            let address = args.address()?;
            args.end()?;
            Ok(ContactCommand::Show { address })
        }
        "import" => {
            let args = args.with_usage("contact import");
            let (first_line, csv) = match args.rest.split_once('\n') {
                Some((first, csv)) => (first, csv.trim()),
                None => (args.rest, ""),
            };
            if let Some(extra) = first_line.split_whitespace().next() {
                return Err(args.err(format!(
                    "unexpected {} (attach the CSV, or paste it on the next lines)",
                    shorten(extra)
                )));
            }
            Ok(ContactCommand::Import {
                csv: (!csv.is_empty()).then(|| csv.to_string()),
            })
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

fn contact_add(args: &mut Args) -> Result<ContactCommand, ParseError> {
    let address = args.address()?;
    let mut name = None;
    let mut labels: Option<Vec<Label>> = None;
    let mut lang = None;
    let mut tz = None;
    let mut optin = false;
    let mut attrs: Vec<(AttrKey, String)> = Vec::new();

    while let Some(word) = args.word()? {
        if word.eq_ignore_ascii_case("optin") {
            if optin {
                return Err(args.err("optin given twice"));
            }
            optin = true;
            continue;
        }
        let Some((key, value)) = word.split_once('=') else {
            return Err(args.err(format!(
                "unexpected {} (options are name=, labels=, lang=, tz=, optin, attr.KEY=)",
                shorten(&word)
            )));
        };
        let key_lower = key.to_lowercase();
        let value = value.trim();
        if value.is_empty() {
            return Err(args.err(format!("{key} needs a value")));
        }
        let twice = || args.err(format!("{key} given twice"));
        match key_lower.as_str() {
            "name" => {
                if name.replace(value.to_string()).is_some() {
                    return Err(twice());
                }
            }
            "labels" => {
                let mut list: Vec<Label> = Vec::new();
                for raw in value.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                    let label = Label::parse(raw).map_err(|e| args.err(e.to_string()))?;
                    if !list.contains(&label) {
                        list.push(label);
                    }
                }
                if list.is_empty() {
                    return Err(args.err("labels needs a value"));
                }
                if labels.replace(list).is_some() {
                    return Err(twice());
                }
            }
            "lang" => {
                let value = Lang::parse(value).map_err(|e| args.err(e.to_string()))?;
                if lang.replace(value).is_some() {
                    return Err(twice());
                }
            }
            "tz" => {
                let zone = parse_tz(value).map_err(|reason| args.err(reason))?;
                if tz.replace(zone.name().to_string()).is_some() {
                    return Err(twice());
                }
            }
            _ => {
                let Some(attr) = key_lower.strip_prefix("attr.") else {
                    return Err(args.err(format!(
                        "unknown option {} (options are name=, labels=, lang=, tz=, optin, attr.KEY=)",
                        shorten(key)
                    )));
                };
                let attr = AttrKey::parse(attr).map_err(|e| args.err(e.to_string()))?;
                if attrs.iter().any(|(k, _)| *k == attr) {
                    return Err(twice());
                }
                attrs.push((attr, value.to_string()));
            }
        }
    }
    Ok(ContactCommand::Add {
        address,
        name,
        labels: labels.unwrap_or_default(),
        lang,
        tz,
        optin,
        attrs,
    })
}

pub(super) async fn apply(engine: &Engine, _admin: &str, command: ContactCommand) -> Reply {
    let now = engine.clock.now();
    let store = &engine.store;
    match command {
        ContactCommand::Add {
            address,
            name,
            labels,
            lang,
            tz,
            optin,
            attrs,
        } => {
            engine.check_reachable(&address)?;
            let update = ContactUpdate {
                name,
                lang,
                tz,
                labels,
                attrs,
            };
            let (contact, created) = store.add_contact(&address, &update, optin, now).await?;
            let verb = if created { "added" } else { "updated" };
            Ok(format!("contact {verb}: {}", describe_contact_line(&contact)))
        }
        ContactCommand::Show { address } => {
            engine.check_reachable(&address)?;
            let contact = find(engine, &address).await?;
            show_contact(engine, &contact, now).await
        }
        ContactCommand::Import { csv } => match csv {
            None => said(
                "attach a CSV file to /contact import (header row: address,name,labels,lang,tz,consent,...), \
                 or run: herald contacts import FILE.csv",
            ),
            Some(data) => import_csv(engine, data.as_bytes(), now).await,
        },
    }
}

fn describe_contact_line(c: &Contact) -> String {
    let mut s = c.address.to_string();
    if let Some(n) = &c.name {
        let _ = write!(s, " {n}");
    }
    let _ = write!(s, " [{}]", c.consent.as_str());
    if !c.labels.is_empty() {
        let _ = write!(s, " labels={}", c.labels.join(","));
    }
    s
}

async fn show_contact(engine: &Engine, c: &Contact, now: DateTime<Utc>) -> Reply {
    let mut s = String::new();
    let _ = writeln!(s, "contact: {}", c.address);
    let _ = writeln!(s, "name: {}", c.name.as_deref().unwrap_or("-"));
    let _ = writeln!(s, "lang: {}", c.lang.as_deref().unwrap_or("-"));
    let _ = writeln!(s, "tz: {}", c.tz.as_deref().unwrap_or("-"));
    let _ = writeln!(
        s,
        "labels: {}",
        if c.labels.is_empty() {
            "-".to_string()
        } else {
            c.labels.join(",")
        }
    );
    for (k, v) in &c.attrs {
        let _ = writeln!(s, "attr.{k}: {v}");
    }
    let _ = writeln!(s, "consent: {}", c.consent.as_str());
    let window = match c.last_inbound_at {
        Some(t) if rules::in_window(c, now) => format!(
            "open until {}",
            engine.local_time(t + rules::SERVICE_WINDOW)
        ),
        Some(t) => format!("closed (last message {})", engine.local_time(t)),
        None => "closed (never wrote)".into(),
    };
    let _ = writeln!(s, "window: {window}");
    if c.marketing_stopped {
        let _ = writeln!(s, "marketing: stopped by the user");
    }
    if let Some(why) = &c.unreachable {
        let _ = writeln!(s, "unreachable: {why}");
    }
    let history = engine.store.consent_history(c.id).await?;
    for h in history {
        let _ = writeln!(
            s,
            "history: {} via {}{} at {}",
            h.kind,
            h.source,
            h.keyword.map(|k| format!(" ({k})")).unwrap_or_default(),
            engine.local_time(h.at)
        );
    }
    Ok(s.trim_end().to_string())
}

/// Most rejected rows an answer lists; the rest are counted.
const LISTED_REJECTIONS: usize = 20;

/// Imports a CSV file, whichever way it came (attached, pasted after the command, or read by the
/// CLI and the console through [`super::handlers::import_contacts`]): every data row is counted
/// as added, updated, unchanged or rejected, and the writes are one transaction.
pub(super) async fn import_csv(engine: &Engine, file: &[u8], now: DateTime<Utc>) -> Reply {
    let parsed = match parse_contacts_csv(file) {
        Ok(parsed) => parsed,
        Err(e) => return said(format!("nothing imported: {e}")),
    };
    let (lines, records): (Vec<usize>, Vec<ContactRecord>) = parsed
        .rows
        .into_iter()
        .map(|row| (row.line, row.record))
        .unzip();
    let outcomes = engine.store.import_contacts(&records, now).await?;
    let (mut added, mut updated, mut unchanged) = (0, 0, 0);
    let mut rejected = parsed.rejected;
    for ((outcome, line), record) in outcomes.iter().zip(&lines).zip(&records) {
        match outcome {
            ImportOutcome::Added => added += 1,
            ImportOutcome::Updated => updated += 1,
            ImportOutcome::Unchanged => unchanged += 1,
            ImportOutcome::StaysOptedOut => rejected.push(RowError {
                line: *line,
                message: format!(
                    "{} opted out and only they can opt back in: leave consent empty to update the rest",
                    record.address
                ),
            }),
        }
    }
    rejected.sort_by_key(|e| e.line);
    let mut reply = format!(
        "read {} row(s): {added} added, {updated} updated, {unchanged} unchanged, {} rejected",
        added + updated + unchanged + rejected.len(),
        rejected.len()
    );
    if parsed.blank > 0 {
        let _ = write!(reply, " ({} blank row(s) skipped)", parsed.blank);
    }
    for note in &parsed.notes {
        let _ = write!(reply, "\n{note}");
    }
    for e in rejected.iter().take(LISTED_REJECTIONS) {
        let _ = write!(reply, "\n{e}");
    }
    if rejected.len() > LISTED_REJECTIONS {
        let _ = write!(
            reply,
            "\n... and {} more",
            rejected.len() - LISTED_REJECTIONS
        );
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::parse::test_support::*;

    group_ok!(Contact, ContactCommand);

    #[test]
    fn contact_add_minimal() {
        assert_eq!(
            ok("/contact add +15550001"),
            ContactCommand::Add {
                address: "+15550001".into(),
                name: None,
                labels: vec![],
                lang: None,
                tz: None,
                optin: false,
                attrs: vec![],
            }
        );
    }

    #[test]
    fn contact_add_everything() {
        assert_eq!(
            ok(
                r#"/Contact ADD wa:15550002 name="Ann Lee" labels=vip,new lang=pt_BR tz=america/sao_paulo OPTIN attr.city=Lisbon attr.Note="likes tea""#
            ),
            ContactCommand::Add {
                address: "wa:15550002".into(),
                name: Some("Ann Lee".into()),
                labels: vec!["vip".into(), "new".into()],
                lang: Some("pt_BR".into()),
                tz: Some("America/Sao_Paulo".into()),
                optin: true,
                attrs: vec![
                    ("city".into(), "Lisbon".into()),
                    ("Note".into(), "likes tea".into())
                ],
            }
        );
    }

    #[test]
    fn contact_add_accepts_curly_quotes_and_escapes() {
        let ContactCommand::Add { name, attrs, .. } = ok(
            "/contact add tg:123456 name=\u{201C}Chen Wei\u{201D} attr.quote=\"say \\\"hi\\\"\"",
        ) else {
            panic!("not a contact add");
        };
        assert_eq!(name.as_deref(), Some("Chen Wei"));
        assert_eq!(attrs, vec![("quote".into(), "say \"hi\"".into())]);
    }

    #[test]
    fn contact_add_refusals() {
        let usage = "/contact add <address>";
        refused_with_usage("/contact add", usage);
        refused_with_usage("/contact add name=Ann", usage);
        refused_with_usage("/contact add +1555x", usage);
        refused_with_usage("/contact add tg:abc", usage);
        refused_with_usage("/contact add +15550001 color=red", usage);
        refused_with_usage("/contact add +15550001 Ann", usage);
        refused_with_usage("/contact add +15550001 tz=Mars/Olympus", usage);
        refused_with_usage("/contact add +15550001 tz=", usage);
        refused_with_usage("/contact add +15550001 lang=english", usage);
        refused_with_usage("/contact add +15550001 labels=vip,+new", usage);
        refused_with_usage("/contact add +15550001 labels=,", usage);
        refused_with_usage("/contact add +15550001 name=\"Ann Lee", usage);
        refused_with_usage("/contact add +15550001 name=A name=B", usage);
        refused_with_usage("/contact add +15550001 optin optin", usage);
        refused_with_usage("/contact add +15550001 attr.=x", usage);
        refused_with_usage("/contact add +15550001 attr.a=1 attr.a=2", usage);
        let text = refused("/contact add +15550001 tz=Mars/Olympus");
        assert!(
            text.starts_with("unknown time zone \"Mars/Olympus\""),
            "{text}"
        );
    }

    #[test]
    fn contact_show() {
        assert_eq!(
            ok("/contact show tg:-100123"),
            ContactCommand::Show {
                address: "tg:-100123".into()
            }
        );
        refused_with_usage("/contact show", "/contact show <address>");
        refused_with_usage(
            "/contact show +15550001 +15550002",
            "/contact show <address>",
        );
    }

    #[test]
    fn contact_import_with_and_without_pasted_csv() {
        assert_eq!(ok("/contact import"), ContactCommand::Import { csv: None });
        assert_eq!(
            ok("/contact import\naddress,name\n+15550001,Ann\n"),
            ContactCommand::Import {
                csv: Some("address,name\n+15550001,Ann".into())
            }
        );
        refused_with_usage("/contact import people.csv", "/contact import");
    }

    #[test]
    fn contact_group_refusals_quote_the_group_usage() {
        refused_with_usage("/contact", "/contact add|show|import");
        refused_with_usage("/contact delete +15550001", "/contact add|show|import");
    }
}
