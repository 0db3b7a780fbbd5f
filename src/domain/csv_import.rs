//! Contact import from CSV (`/contact import`, `herald contacts import FILE.csv`): turns a file
//! into contact records plus one error per rejected row, so a bad row never sinks the others.
//!
//! The first row must name the columns. Names are case-insensitive; spaces and dashes in them
//! count as `_` (`Phone Number` = `phone_number`, `opt-in` = `opt_in`):
//!
//! | column | alternatives | value |
//! |---|---|---|
//! | `address` | `phone`, `phone_number`, `number`, `mobile`, `msisdn` | `+15550001`, `15550001`, `tg:123` or `wa:15550001`; spaces, dashes, dots and parentheses in phone numbers are dropped |
//! | `wa_id` | `whatsapp` | a WhatsApp number, stored as `wa:<digits>` |
//! | `chat_id` | `telegram_chat_id` | a Telegram chat id, stored as `tg:<id>` |
//! | `name` | `full_name` | free text |
//! | `lang` | `language`, `locale` | `pt`, `pt-BR`, `pt_BR` (kept as written) |
//! | `tz` | `timezone`, `time_zone` | an IANA zone such as `Europe/Lisbon` |
//! | `labels` | `label`, `tags` | labels separated by `,` or `;` |
//! | `consent` | `optin`, `opt_in` | yes/y/true/1/opted_in → opted in; no/n/false/0/opted_out → opted out; empty → unknown |
//! | `attr.KEY` | any other name | an attribute (`city` or `attr.city` → `city`); empty cells set nothing |
//!
//! Exactly one address column is required. Commas separate cells unless the header row has
//! semicolons or tabs and no comma (spreadsheets in many locales export `;`). Empty rows are
//! skipped; a row with a bad value, or whose address already appeared, is rejected.

use std::collections::HashMap;

use chrono_tz::Tz;

use super::address::{looks_like_address, Address};
use super::label::{AttrKey, Label};
use super::lang::Lang;

/// One contact as read from a row; values are trimmed and validated, blanks are `None`/absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    pub address: Address,
    pub name: Option<String>,
    pub lang: Option<Lang>,
    /// Canonical IANA name.
    pub tz: Option<String>,
    /// Labels without repeats.
    pub labels: Vec<Label>,
    /// Attribute keys and values, in column order.
    pub attrs: Vec<(AttrKey, String)>,
    /// `Some(true)` opted in, `Some(false)` opted out, `None` unknown.
    pub consent: Option<bool>,
}

impl ContactRecord {
    /// A contact with only its address known.
    pub fn new(address: Address) -> ContactRecord {
        ContactRecord {
            address,
            name: None,
            lang: None,
            tz: None,
            labels: Vec::new(),
            attrs: Vec::new(),
            consent: None,
        }
    }
}

/// Why a row (or, at line 1, the whole file) was rejected. `line` is the file line the row
/// starts on, counting the header as line 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    pub line: usize,
    pub message: String,
}

/// Parses a contacts CSV into the rows that are valid and an error for each row that is not.
/// A problem with the header (no address column, a column given twice) is a single error at
/// line 1 and yields no records.
pub fn parse_contacts_csv(data: &str) -> (Vec<ContactRecord>, Vec<RowError>) {
    // Spreadsheet programs often start UTF-8 exports with a byte-order mark.
    let data = data.strip_prefix('\u{feff}').unwrap_or(data);
    let fatal = |message: String| (Vec::new(), vec![RowError { line: 1, message }]);
    if data.trim().is_empty() {
        return fatal(
            "empty file: the first row must name the columns, e.g. address,name,labels".into(),
        );
    }

    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sniff_delimiter(data))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data.as_bytes());

    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(e) => return fatal(format!("cannot read the header row: {e}")),
    };
    let mut errors = Vec::new();
    let columns = match map_columns(&headers, &mut errors) {
        Ok(columns) => columns,
        Err(message) => return fatal(message),
    };

    let mut records = Vec::new();
    // Address → line of the row that first used it, for the duplicate message.
    let mut seen: HashMap<Address, usize> = HashMap::new();
    for (index, row) in reader.records().enumerate() {
        // `index + 2` is the line when rows hold no line breaks; the parser's own count is
        // preferred because a quoted cell may span lines.
        let fallback_line = index + 2;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                let line = e.position().map_or(fallback_line, |p| p.line() as usize);
                errors.push(RowError {
                    line,
                    message: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let line = row.position().map_or(fallback_line, |p| p.line() as usize);
        if row.iter().all(str::is_empty) {
            continue;
        }
        match parse_row(&row, &columns) {
            Ok(record) => {
                if let Some(first) = seen.get(&record.address) {
                    errors.push(RowError {
                        line,
                        message: format!(
                            "duplicate address {} (first on line {first}, maybe spelled otherwise)",
                            record.address
                        ),
                    });
                } else {
                    seen.insert(record.address.clone(), line);
                    records.push(record);
                }
            }
            Err(problems) => errors.push(RowError {
                line,
                message: problems.join("; "),
            }),
        }
    }
    (records, errors)
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Address(AddressKind),
    Name,
    Lang,
    Tz,
    Labels,
    Consent,
    Attr(AttrKey),
    Ignored,
}

/// How a value in an address column becomes a channel-qualified address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressKind {
    /// Written in full: `+15550001`, `tg:123`, `wa:15550001`.
    AsWritten,
    WhatsApp,
    Telegram,
}

fn column_for(header: &str) -> Result<Column, String> {
    let name = header
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .to_lowercase()
        .replace('-', "_");
    Ok(match name.as_str() {
        "" => Column::Ignored,
        "address" | "phone" | "phone_number" | "number" | "mobile" | "msisdn" => {
            Column::Address(AddressKind::AsWritten)
        }
        "wa_id" | "whatsapp" => Column::Address(AddressKind::WhatsApp),
        "chat_id" | "telegram_chat_id" => Column::Address(AddressKind::Telegram),
        "name" | "full_name" => Column::Name,
        "lang" | "language" | "locale" => Column::Lang,
        "tz" | "timezone" | "time_zone" => Column::Tz,
        "labels" | "label" | "tags" => Column::Labels,
        "consent" | "optin" | "opt_in" => Column::Consent,
        other => {
            let key = other.strip_prefix("attr.").unwrap_or(other);
            Column::Attr(AttrKey::parse(key).map_err(|_| {
                format!("column {header:?} skipped: attribute names use a-z, 0-9 and _")
            })?)
        }
    })
}

/// Maps every header cell to its column. A column whose name cannot be an attribute is skipped
/// with a warning in `errors`; a missing or doubled column is fatal (`Err`).
fn map_columns(
    headers: &csv::StringRecord,
    errors: &mut Vec<RowError>,
) -> Result<Vec<Column>, String> {
    let mut columns: Vec<Column> = Vec::new();
    for header in headers.iter() {
        let column = column_for(header).unwrap_or_else(|message| {
            errors.push(RowError { line: 1, message });
            Column::Ignored
        });
        let role = |c: &Column| match c {
            Column::Address(_) => Column::Address(AddressKind::AsWritten),
            other => other.clone(),
        };
        if column != Column::Ignored {
            if let Some(i) = columns.iter().position(|c| role(c) == role(&column)) {
                return Err(format!(
                    "columns {:?} and {header:?} say the same thing: keep one",
                    headers.get(i).unwrap_or_default()
                ));
            }
        }
        columns.push(column);
    }
    if !columns.iter().any(|c| matches!(c, Column::Address(_))) {
        if let Some(data) = headers
            .iter()
            .find(|h| looks_like_address(h) && Address::parse(h).is_ok())
        {
            return Err(format!(
                "the first row must name the columns (e.g. address,name,labels), but it holds {data:?}"
            ));
        }
        return Err(
            "no address column: name one column address (or phone, number, mobile, wa_id, chat_id)"
                .into(),
        );
    }
    Ok(columns)
}

/// Reads one row; on failure, every problem found in it.
fn parse_row(row: &csv::StringRecord, columns: &[Column]) -> Result<ContactRecord, Vec<String>> {
    // Every file has an address column (map_columns insists), so a row either sets the address
    // or records a problem: the empty placeholder is never returned.
    let mut record = ContactRecord::new(Address::from_canonical(String::new()));
    let mut problems = Vec::new();
    if let Some(extra) = row.iter().skip(columns.len()).find(|v| !v.is_empty()) {
        problems.push(format!(
            "{} cells but the header names {} columns (extra {extra:?}); quote cells that contain the delimiter",
            row.len(),
            columns.len()
        ));
    }
    for (i, column) in columns.iter().enumerate() {
        // A short row (fewer cells than columns) reads as blanks, so a missing address is caught.
        let value = row.get(i).unwrap_or_default();
        match column {
            Column::Address(kind) => match parse_address(value, *kind) {
                Ok(address) => record.address = address,
                Err(message) => problems.push(message),
            },
            Column::Name => record.name = non_empty(value),
            Column::Lang if value.is_empty() => {}
            Column::Lang => match Lang::parse(value) {
                Ok(lang) => record.lang = Some(lang),
                Err(e) => problems.push(e.to_string()),
            },
            Column::Tz if value.is_empty() => {}
            Column::Tz => match value.parse::<Tz>() {
                Ok(tz) => record.tz = Some(tz.name().to_string()),
                Err(_) => problems.push(format!("bad timezone {value:?}")),
            },
            Column::Labels => {
                for raw in value
                    .split([',', ';'])
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                {
                    match Label::parse(raw) {
                        Ok(label) if !record.labels.contains(&label) => record.labels.push(label),
                        Ok(_) => {}
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            }
            Column::Consent => match parse_consent(value) {
                Ok(consent) => record.consent = consent,
                Err(message) => problems.push(message),
            },
            Column::Attr(key) if !value.is_empty() => {
                record.attrs.push((key.clone(), value.to_string()));
            }
            Column::Attr(_) | Column::Ignored => {}
        }
    }
    if problems.is_empty() {
        Ok(record)
    } else {
        Err(problems)
    }
}

fn parse_address(value: &str, kind: AddressKind) -> Result<Address, String> {
    if value.is_empty() {
        return Err("empty address".into());
    }
    let lower = value.to_ascii_lowercase();
    let qualified = match kind {
        AddressKind::WhatsApp if !lower.starts_with("wa:") => format!("wa:{value}"),
        AddressKind::Telegram if !lower.starts_with("tg:") => format!("tg:{value}"),
        _ => value.to_string(),
    };
    if !looks_like_address(&qualified) {
        return Err(format!(
            "bad address {:?}: use a phone number (+15550001) or tg:<chat id>",
            value.chars().take(40).collect::<String>()
        ));
    }
    Address::parse(&qualified).map_err(|e| e.to_string())
}

fn parse_consent(value: &str) -> Result<Option<bool>, String> {
    match value.to_lowercase().replace('-', "_").as_str() {
        "" => Ok(None),
        "yes" | "y" | "true" | "1" | "opted_in" | "opt_in" | "optin" => Ok(Some(true)),
        "no" | "n" | "false" | "0" | "opted_out" | "opt_out" | "optout" => Ok(Some(false)),
        _ => Err(format!(
            "bad consent {value:?} (use yes or no, or leave it empty for unknown)"
        )),
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// `;` or tab when the header row has that and no comma; `,` otherwise.
fn sniff_delimiter(data: &str) -> u8 {
    let header = data.lines().next().unwrap_or_default();
    if header.contains(',') {
        b','
    } else if header.contains(';') {
        b';'
    } else if header.contains('\t') {
        b'\t'
    } else {
        b','
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(data: &str) -> Vec<ContactRecord> {
        let (records, errors) = parse_contacts_csv(data);
        assert!(errors.is_empty(), "unexpected errors: {errors:?}");
        records
    }

    fn errors(data: &str) -> Vec<String> {
        parse_contacts_csv(data)
            .1
            .iter()
            .map(RowError::to_string)
            .collect()
    }

    fn record(address: &str) -> ContactRecord {
        ContactRecord::new(address.into())
    }

    #[test]
    fn reads_every_known_column() {
        let records = ok("address,name,lang,tz,labels,consent,city,attr.plan\n\
             +15550001,Ana Lima,pt-BR,America/Sao_Paulo,\"vip, New;vip\",yes,São Paulo,gold\n");
        assert_eq!(
            records,
            vec![ContactRecord {
                address: "+15550001".into(),
                name: Some("Ana Lima".into()),
                lang: Some("pt-BR".into()),
                tz: Some("America/Sao_Paulo".into()),
                labels: vec!["vip".into(), "new".into()],
                attrs: vec![
                    ("city".into(), "São Paulo".into()),
                    ("plan".into(), "gold".into())
                ],
                consent: Some(true),
            }]
        );
    }

    #[test]
    fn blank_cells_are_absent_values() {
        let records = ok("address,name,lang,tz,labels,consent,city\n+15550001,,,,,,\n+15550002\n");
        assert_eq!(records, vec![record("+15550001"), record("+15550002")]);
    }

    #[test]
    fn a_short_row_without_its_address_cell_is_rejected() {
        assert_eq!(
            errors("name,address\nAna\nBo,+15550001\n"),
            vec!["line 2: empty address"]
        );
    }

    #[test]
    fn header_names_are_case_insensitive_with_synonyms() {
        let records = ok(
            "Phone Number,Full Name,Language,Time Zone,Tags,Opt-In,Favourite Color\n\
             +1 (555) 000-1,Bo,en,UTC,staff,no,blue\n",
        );
        assert_eq!(
            records,
            vec![ContactRecord {
                address: "+15550001".into(),
                name: Some("Bo".into()),
                lang: Some("en".into()),
                tz: Some("UTC".into()),
                labels: vec!["staff".into()],
                attrs: vec![("favourite_color".into(), "blue".into())],
                consent: Some(false),
            }]
        );
        for header in ["ADDRESS", "phone", "number", "mobile", "msisdn"] {
            assert_eq!(
                ok(&format!("{header}\n+15550001\n")),
                vec![record("+15550001")],
                "{header}"
            );
        }
        for header in ["TZ", "timezone", "time_zone"] {
            assert_eq!(
                ok(&format!("address,{header}\n+15550001,Europe/Lisbon\n"))[0]
                    .tz
                    .as_deref(),
                Some("Europe/Lisbon")
            );
        }
    }

    #[test]
    fn channel_id_columns_qualify_addresses() {
        assert_eq!(
            ok("wa_id\n15550001\nwa:15550002\n+1 555 0003\n"),
            vec![
                record("wa:15550001"),
                record("wa:15550002"),
                record("wa:15550003")
            ]
        );
        assert_eq!(
            ok("chat_id\n123\n-1001\ntg:7\n"),
            vec![record("tg:123"), record("tg:-1001"), record("tg:7")]
        );
        assert_eq!(
            ok("address\ntg:1\nWA:15550001\n15550002\n"),
            vec![record("tg:1"), record("wa:15550001"), record("15550002")]
        );
    }

    #[test]
    fn consent_values() {
        let data = "address,consent\n\
            +155501001,yes\n+155501002,Y\n+155501003,TRUE\n+155501004,1\n+155501005,opted_in\n+155501006,opted-in\n\
            +155501007,no\n+155501008,n\n+155501009,False\n+155501010,0\n+155501011,OPTED_OUT\n+155501012,\n";
        let consents: Vec<Option<bool>> = ok(data).iter().map(|r| r.consent).collect();
        let mut want = vec![Some(true); 6];
        want.extend([Some(false); 5]);
        want.push(None);
        assert_eq!(consents, want);
        assert_eq!(
            errors("address,optin\n+155501001,maybe\n"),
            vec!["line 2: bad consent \"maybe\" (use yes or no, or leave it empty for unknown)"]
        );
    }

    #[test]
    fn bad_rows_are_reported_and_skipped() {
        let data = "address,tz,labels,lang\n\
            +15550001,Europe/Lisbon,vip,pt\n\
            ,UTC,,\n\
            abc,,,\n\
            +15550002,Mars/Base,,\n\
            +15550003,,bad label!,\n\
            +15550004,,,portuguese\n\
            +15550005,,,\n";
        let (records, errs) = parse_contacts_csv(data);
        let addresses: Vec<&str> = records.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(addresses, ["wa:15550001", "wa:15550005"]);
        let messages: Vec<String> = errs.iter().map(RowError::to_string).collect();
        assert_eq!(
            messages,
            [
                "line 3: empty address",
                "line 4: bad address \"abc\": use a phone number (+15550001) or tg:<chat id>",
                "line 5: bad timezone \"Mars/Base\"",
                "line 6: bad label \"bad label!\": labels use only a-z, 0-9, _ and -",
                "line 7: bad language \"portuguese\": use a code like pt or pt_BR",
            ]
        );
    }

    #[test]
    fn a_row_lists_all_its_problems() {
        assert_eq!(
            errors("address,tz,consent\nnope,Mars/Base,maybe\n"),
            vec!["line 2: bad address \"nope\": use a phone number (+15550001) or tg:<chat id>; bad timezone \"Mars/Base\"; bad consent \"maybe\" (use yes or no, or leave it empty for unknown)"]
        );
    }

    #[test]
    fn duplicate_addresses_keep_the_first() {
        let (records, errs) =
            parse_contacts_csv("address,name\n+15550001,Ana\n+1 555 0001,Bo\n+15550002,Cy\n");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].name.as_deref(), Some("Ana"));
        assert_eq!(
            errs,
            vec![RowError {
                line: 3,
                message: "duplicate address wa:15550001 (first on line 2, maybe spelled otherwise)"
                    .into()
            }]
        );
    }

    #[test]
    fn missing_address_column_is_one_error() {
        let (records, errs) = parse_contacts_csv("name,city\nAna,Lisbon\nBo,Porto\n");
        assert!(records.is_empty());
        assert_eq!(
            errs.iter().map(RowError::to_string).collect::<Vec<_>>(),
            vec!["line 1: no address column: name one column address (or phone, number, mobile, wa_id, chat_id)"]
        );
    }

    #[test]
    fn header_row_is_required() {
        assert_eq!(
            errors("+15550001,Ana\n+15550002,Bo\n"),
            vec!["line 1: the first row must name the columns (e.g. address,name,labels), but it holds \"+15550001\""]
        );
        assert_eq!(
            errors(""),
            vec![
                "line 1: empty file: the first row must name the columns, e.g. address,name,labels"
            ]
        );
        assert_eq!(errors("  \n"), errors(""));
        assert_eq!(parse_contacts_csv("address\n"), (vec![], vec![]));
    }

    #[test]
    fn doubled_columns_are_fatal() {
        assert_eq!(
            errors("phone,address\n+1555,+1556\n"),
            vec!["line 1: columns \"phone\" and \"address\" say the same thing: keep one"]
        );
        assert_eq!(
            errors("address,city,attr.city\n+1555,a,b\n"),
            vec!["line 1: columns \"city\" and \"attr.city\" say the same thing: keep one"]
        );
    }

    #[test]
    fn odd_attribute_columns_are_skipped_with_a_warning() {
        let (records, errs) = parse_contacts_csv("address,prénom,,city\n+15550001,Zé,x,Porto\n");
        assert_eq!(records[0].attrs, vec![("city".into(), "Porto".to_string())]);
        assert_eq!(
            errs.iter().map(RowError::to_string).collect::<Vec<_>>(),
            vec!["line 1: column \"prénom\" skipped: attribute names use a-z, 0-9 and _"]
        );
    }

    #[test]
    fn extra_cells_are_an_error_but_trailing_empty_ones_are_not() {
        assert_eq!(ok("address,name\n+15550001,Ana,,\n").len(), 1);
        assert_eq!(
            errors("address,name\n+15550001,Lima, Ana\n"),
            vec!["line 2: 3 cells but the header names 2 columns (extra \"Ana\"); quote cells that contain the delimiter"]
        );
    }

    #[test]
    fn handles_bom_crlf_semicolons_tabs_and_multiline_cells() {
        assert_eq!(
            ok("\u{feff}address;name;labels\r\n+15550001;Ana;vip,new\r\n"),
            vec![ContactRecord {
                name: Some("Ana".into()),
                labels: vec!["vip".into(), "new".into()],
                ..record("+15550001")
            }]
        );
        assert_eq!(
            ok("address\tname\n+15550001\tAna\n")[0].name.as_deref(),
            Some("Ana")
        );
        let (records, errs) =
            parse_contacts_csv("address,note\n+15550001,\"two\nlines\"\nbad,\n+15550002,\n");
        assert_eq!(records[0].attrs, vec![("note".into(), "two\nlines".into())]);
        assert_eq!(records.len(), 2);
        // The bad row starts on line 4 because the quoted cell above spans two lines.
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 4);
    }

    #[test]
    fn empty_rows_are_skipped() {
        assert_eq!(
            ok("address,name\n\n+15550001,Ana\n,\n ,  \n+15550002,Bo\n").len(),
            2
        );
    }

    #[test]
    fn row_error_display() {
        let e = RowError {
            line: 4,
            message: "bad timezone \"Mars/Base\"".into(),
        };
        assert_eq!(e.to_string(), "line 4: bad timezone \"Mars/Base\"");
    }
}
