//! Contact import from CSV (`/contact import`, `herald contacts import FILE.csv`): turns a file
//! into contact records plus one error per rejected row, so a bad row never sinks the others and
//! every data row is accounted for: it is either a record or a rejection with its line.
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
//! semicolons or tabs and no comma (spreadsheets in many locales export `;`). Rows whose cells
//! are all empty are counted as blank; a row with a bad value, or whose address an earlier row
//! already gave (however spelled), is rejected.
//!
//! Rows are cut by `csv-core`, fed one line at a time, so a quoted cell that never closes costs
//! one row, not the rest of the file: a row may span at most [`MAX_ROW_LINES`] lines and a cell
//! hold at most [`MAX_CELL_CHARS`] characters; past that the row is rejected and reading starts
//! again on the line after the one it began on.

use std::collections::HashMap;

use chrono_tz::Tz;

use super::address::{looks_like_address, Address};
use super::label::{AttrKey, Label};
use super::lang::Lang;

/// The largest file an import reads (SPEC §5: a CSV attachment of up to 20 MB).
pub const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;

/// The most lines one row may span: a quoted cell may hold a few line breaks (a postal address,
/// a note), but one that runs on is a missing closing quote, not data.
pub const MAX_ROW_LINES: usize = 10;

/// The longest cell, in characters: far past any name or attribute, and short enough that a
/// runaway cell is caught even when it stays on one line.
pub const MAX_CELL_CHARS: usize = 1024;

/// Bounds on one row as `csv-core` copies it out, so a hostile row costs bounded memory.
const MAX_ROW_BYTES: usize = 64 * 1024;
const MAX_CELLS: usize = 1024;

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

/// Why a row was rejected (or, at line 1, a remark on the header). `line` is the file line the
/// row starts on, counting the header as line 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    pub line: usize,
    pub message: String,
}

/// Why a whole file cannot be imported; nothing of it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty: the first row must name the columns, e.g. address,name,labels")]
    Empty,
    #[error("the file has a header row but no rows of contacts")]
    NoRows,
    #[error("this is {0}, not a CSV file: export the contacts as CSV (UTF-8)")]
    NotCsv(&'static str),
    #[error("the file is {0} bytes; the limit is 20 MB: split it into smaller files")]
    TooLarge(usize),
    #[error("the header row cannot be read: {0}")]
    BadHeader(String),
    #[error(
        "no address column: name one column address (or phone, number, mobile, wa_id, chat_id)"
    )]
    NoAddressColumn,
    #[error("the first row must name the columns (e.g. address,name,labels), but it holds {0:?}")]
    HeaderIsData(String),
    #[error("columns {0:?} and {1:?} say the same thing: keep one")]
    DoubledColumn(String, String),
}

/// A valid row and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub line: usize,
    pub record: ContactRecord,
}

/// A file read row by row: `rows.len() + rejected.len()` is the number of data rows in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedCsv {
    /// Valid rows, in file order, no two with the same address.
    pub rows: Vec<ImportRow>,
    /// Rejected rows, in file order.
    pub rejected: Vec<RowError>,
    /// Remarks on the header (a column skipped): they reject no row.
    pub notes: Vec<RowError>,
    /// Rows whose cells are all empty (`,,`), which hold no contact.
    pub blank: usize,
}

impl ParsedCsv {
    /// Rows that hold data: each is in `rows` or in `rejected`.
    pub fn data_rows(&self) -> usize {
        self.rows.len() + self.rejected.len()
    }
}

/// Reads a contacts CSV: each data row becomes a record or a rejection naming its line. A file
/// that is no CSV, has no rows, or whose header lacks an address column is one [`FileError`].
pub fn parse_contacts_csv(data: &[u8]) -> Result<ParsedCsv, FileError> {
    if data.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge(data.len()));
    }
    if let Some(what) = binary_kind(data) {
        return Err(FileError::NotCsv(what));
    }
    // Spreadsheet programs often start UTF-8 exports with a byte-order mark.
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(FileError::Empty);
    }
    let mut rows = Rows::new(data, sniff_delimiter(data));
    let headers = match rows.next() {
        Some(Ok(row)) => row.cells,
        Some(Err(e)) => return Err(FileError::BadHeader(e.message)),
        None => return Err(FileError::Empty),
    };
    let mut parsed = ParsedCsv::default();
    let columns = map_columns(&headers, &mut parsed.notes)?;
    rows.multiline = columns
        .iter()
        .map(|c| matches!(c, Column::Attr(_) | Column::Ignored))
        .collect();

    // Address → line of the row that first gave it.
    let mut seen: HashMap<Address, usize> = HashMap::new();
    for row in rows {
        let row = match row {
            Ok(row) => row,
            Err(rejected) => {
                parsed.rejected.push(rejected);
                continue;
            }
        };
        let line = row.line;
        if row.cells.iter().all(String::is_empty) {
            parsed.blank += 1;
            continue;
        }
        match parse_row(&row.cells, &columns) {
            Ok(record) => {
                if let Some(first) = seen.get(&record.address) {
                    parsed.rejected.push(RowError {
                        line,
                        message: format!("duplicate of line {first} (both are {})", record.address),
                    });
                } else {
                    seen.insert(record.address.clone(), line);
                    parsed.rows.push(ImportRow { line, record });
                }
            }
            Err(problems) => parsed.rejected.push(RowError {
                line,
                message: problems.join("; "),
            }),
        }
    }
    if parsed.data_rows() == 0 {
        return Err(FileError::NoRows);
    }
    Ok(parsed)
}

/// What a file is when it is plainly not text: an image or an office file sent by mistake.
fn binary_kind(data: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a zip archive (an .xlsx workbook is one)"),
        (b"\xd0\xcf\x11\xe0", "an .xls workbook"),
        (b"\xff\xfe", "UTF-16 text"),
        (b"\xfe\xff", "UTF-16 text"),
    ];
    if let Some((_, what)) = MAGIC.iter().find(|(magic, _)| data.starts_with(magic)) {
        return Some(what);
    }
    // Text never holds NUL bytes; looking at the start is enough to tell.
    data.iter()
        .take(8192)
        .any(|b| *b == 0)
        .then_some("binary data")
}

/// One row cut from the file: its cells, trimmed, and the line it starts on.
#[derive(Debug)]
struct RawRow {
    line: usize,
    cells: Vec<String>,
}

/// Cuts rows out of CSV data with `csv-core`, feeding it one line at a time so that a row which
/// runs on (an unclosed quote) is noticed after [`MAX_ROW_LINES`] lines, rejected, and reading
/// resumes on the line after the one the row began on.
struct Rows<'a> {
    data: &'a [u8],
    /// Where the next unread byte is, and its line.
    pos: usize,
    line: usize,
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Which cells may hold line breaks (by index; cells past its end may not). A name, an
    /// address or a label never does: a line break there is a quote left open that a later
    /// quote happened to close, swallowing the rows between.
    multiline: Vec<bool>,
    /// Whether the final line's missing line break has been fed.
    fed_final_break: bool,
}

impl<'a> Rows<'a> {
    fn new(data: &'a [u8], delimiter: u8) -> Rows<'a> {
        Rows {
            data,
            pos: 0,
            line: 1,
            reader: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            out: vec![0; MAX_ROW_BYTES],
            ends: vec![0; MAX_CELLS],
            multiline: Vec::new(),
            fed_final_break: false,
        }
    }

    /// The bytes from `pos` to the end of its line, line break included.
    fn rest_of_line(&self) -> &'a [u8] {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => &rest[..=i],
            None => rest,
        }
    }

    /// Gives up on the row that started at `start` on `line`: resets the parser and resumes on
    /// the next line.
    fn reject_from(&mut self, start: usize, line: usize, message: String) -> RowError {
        self.reader.reset();
        self.pos = start;
        self.pos += self.rest_of_line().len();
        self.line = line + 1;
        self.fed_final_break = false;
        RowError { line, message }
    }

    fn cells(&self, nout: usize, nends: usize) -> Result<Vec<String>, String> {
        let mut cells = Vec::with_capacity(nends);
        let mut start = 0;
        for (i, &end) in self.ends[..nends].iter().enumerate() {
            let Ok(text) = std::str::from_utf8(&self.out[start..end.min(nout)]) else {
                return Err("not UTF-8 text: save the file as CSV UTF-8".into());
            };
            let text = text.trim();
            if !self.multiline.get(i).copied().unwrap_or(false) && text.contains(['\n', '\r']) {
                return Err(format!(
                    "cell {} runs over several lines: is a closing quote missing?",
                    i + 1
                ));
            }
            let chars = text.chars().count();
            if chars > MAX_CELL_CHARS {
                return Err(format!(
                    "cell {} is {chars} characters long, more than {MAX_CELL_CHARS}: is a closing quote missing?",
                    i + 1
                ));
            }
            cells.push(text.to_string());
            start = end;
        }
        Ok(cells)
    }
}

impl Iterator for Rows<'_> {
    type Item = Result<RawRow, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        use csv_core::ReadRecordResult as R;
        // Line breaks between rows are skipped here rather than by the parser, so the row's
        // first line is known.
        while let Some(b) = self
            .data
            .get(self.pos)
            .filter(|b| matches!(b, b'\n' | b'\r'))
        {
            self.line += usize::from(*b == b'\n');
            self.pos += 1;
        }
        if self.pos >= self.data.len() {
            return None;
        }
        let (start, line) = (self.pos, self.line);
        let (mut nout, mut nends, mut lines) = (0, 0, 1);
        loop {
            let input: &[u8] = if self.pos < self.data.len() {
                self.rest_of_line()
            } else if !self.fed_final_break {
                // A last line without a line break gets one, so a row that is only ended by
                // the end of the file is one whose quote never closed.
                self.fed_final_break = true;
                b"\n"
            } else {
                &[]
            };
            let (result, nin, o, e) =
                self.reader
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nends..]);
            if self.pos < self.data.len() {
                self.line += input[..nin].iter().filter(|b| **b == b'\n').count();
                self.pos += nin;
            }
            nout += o;
            nends += e;
            let problem = match result {
                // Only the end of the file ended the row (or could not): its quote never closed.
                R::Record | R::InputEmpty if input.is_empty() => Problem::NeverCloses,
                R::Record => {
                    return Some(match self.cells(nout, nends) {
                        Ok(cells) => Ok(RawRow { line, cells }),
                        // The row may have swallowed the lines after its first: read them again.
                        Err(message) => Err(self.reject_from(start, line, message)),
                    });
                }
                R::End => return None,
                R::InputEmpty => {
                    lines += 1;
                    if lines <= MAX_ROW_LINES || self.pos >= self.data.len() {
                        continue;
                    }
                    Problem::TooManyLines
                }
                R::OutputFull => Problem::TooLong,
                R::OutputEndsFull => Problem::TooManyCells,
            };
            return Some(Err(self.reject_from(start, line, problem.to_string())));
        }
    }
}

/// Why the cutter gave up on a row.
#[derive(Debug, thiserror::Error)]
enum Problem {
    #[error("a quoted cell opened on this line never closes: is a closing quote missing?")]
    NeverCloses,
    #[error("a quoted cell opened on this line is still open {MAX_ROW_LINES} lines later: is a closing quote missing?")]
    TooManyLines,
    #[error("the row is longer than {MAX_ROW_BYTES} bytes: is a closing quote missing?")]
    TooLong,
    #[error("the row has more than {MAX_CELLS} cells")]
    TooManyCells,
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
/// with a note; a missing or doubled column is fatal (`Err`).
fn map_columns(headers: &[String], notes: &mut Vec<RowError>) -> Result<Vec<Column>, FileError> {
    let mut columns: Vec<Column> = Vec::new();
    for header in headers {
        let column = column_for(header).unwrap_or_else(|message| {
            notes.push(RowError { line: 1, message });
            Column::Ignored
        });
        let role = |c: &Column| match c {
            Column::Address(_) => Column::Address(AddressKind::AsWritten),
            other => other.clone(),
        };
        if column != Column::Ignored {
            if let Some(i) = columns.iter().position(|c| role(c) == role(&column)) {
                return Err(FileError::DoubledColumn(
                    headers.get(i).cloned().unwrap_or_default(),
                    header.clone(),
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
            return Err(FileError::HeaderIsData(data.clone()));
        }
        return Err(FileError::NoAddressColumn);
    }
    Ok(columns)
}

/// Reads one row; on failure, every problem found in it.
fn parse_row(row: &[String], columns: &[Column]) -> Result<ContactRecord, Vec<String>> {
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
        let value = row.get(i).map_or("", String::as_str);
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
fn sniff_delimiter(data: &[u8]) -> u8 {
    let header = data.split(|b| *b == b'\n').next().unwrap_or_default();
    if header.contains(&b',') {
        b','
    } else if header.contains(&b';') {
        b';'
    } else if header.contains(&b'\t') {
        b'\t'
    } else {
        b','
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &str) -> ParsedCsv {
        parse_contacts_csv(data.as_bytes()).expect("a readable file")
    }

    fn records(parsed: &ParsedCsv) -> Vec<ContactRecord> {
        parsed.rows.iter().map(|r| r.record.clone()).collect()
    }

    fn ok(data: &str) -> Vec<ContactRecord> {
        let parsed = parse(data);
        assert!(parsed.rejected.is_empty(), "unexpected errors: {parsed:?}");
        records(&parsed)
    }

    fn errors(data: &str) -> Vec<String> {
        parse(data)
            .rejected
            .iter()
            .map(RowError::to_string)
            .collect()
    }

    fn fatal(data: &[u8]) -> String {
        parse_contacts_csv(data)
            .expect_err("a file that cannot be imported")
            .to_string()
    }

    fn record(address: &str) -> ContactRecord {
        ContactRecord::new(address.into())
    }

    fn record_named(address: &str, name: &str) -> ContactRecord {
        ContactRecord {
            name: Some(name.into()),
            ..record(address)
        }
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
        let parsed = parse(data);
        let errs = parsed.rejected;
        let addresses: Vec<&str> = parsed
            .rows
            .iter()
            .map(|r| r.record.address.as_str())
            .collect();
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
        let parsed =
            parse("address,name\n+15550001,Ana\n+1 555 0001,Bo\n+15550002,Cy\n15550001,Di\n");
        let records = records(&parsed);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].name.as_deref(), Some("Ana"));
        assert_eq!(
            parsed.rejected,
            vec![
                RowError {
                    line: 3,
                    message: "duplicate of line 2 (both are wa:15550001)".into()
                },
                RowError {
                    line: 5,
                    message: "duplicate of line 2 (both are wa:15550001)".into()
                }
            ]
        );
    }

    #[test]
    fn missing_address_column_is_one_error() {
        assert_eq!(
            fatal(b"name,city\nAna,Lisbon\nBo,Porto\n"),
            "no address column: name one column address (or phone, number, mobile, wa_id, chat_id)"
        );
    }

    #[test]
    fn header_row_is_required() {
        assert_eq!(
            fatal(b"+15550001,Ana\n+15550002,Bo\n"),
            "the first row must name the columns (e.g. address,name,labels), but it holds \"+15550001\""
        );
        assert_eq!(
            fatal(b""),
            "the file is empty: the first row must name the columns, e.g. address,name,labels"
        );
        assert_eq!(fatal(b"  \n\r\n"), fatal(b""));
        assert_eq!(fatal(b"\xef\xbb\xbf"), fatal(b""));
        let header_only = "the file has a header row but no rows of contacts";
        assert_eq!(fatal(b"address\n"), header_only);
        assert_eq!(fatal(b"address,name"), header_only);
        assert_eq!(fatal(b"address,name\n\n,\n"), header_only);
    }

    #[test]
    fn doubled_columns_are_fatal() {
        assert_eq!(
            fatal(b"phone,address\n+1555,+1556\n"),
            "columns \"phone\" and \"address\" say the same thing: keep one"
        );
        assert_eq!(
            fatal(b"address,city,attr.city\n+1555,a,b\n"),
            "columns \"city\" and \"attr.city\" say the same thing: keep one"
        );
    }

    #[test]
    fn odd_attribute_columns_are_skipped_with_a_warning() {
        let parsed = parse("address,prénom,,city\n+15550001,Zé,x,Porto\n");
        assert_eq!(
            parsed.rows[0].record.attrs,
            vec![("city".into(), "Porto".to_string())]
        );
        assert!(parsed.rejected.is_empty());
        assert_eq!(
            parsed
                .notes
                .iter()
                .map(RowError::to_string)
                .collect::<Vec<_>>(),
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
        let parsed = parse("address,note\n+15550001,\"two\nlines\"\nbad,\n+15550002,\n");
        let records = records(&parsed);
        assert_eq!(records[0].attrs, vec![("note".into(), "two\nlines".into())]);
        assert_eq!(records.len(), 2);
        // The bad row starts on line 4 because the quoted cell above spans two lines.
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 4);
        assert_eq!(
            parse("address\r\n+15550001\r\n\r\n+15550002").rows[1].line,
            4
        );
    }

    #[test]
    fn empty_rows_are_counted_as_blank() {
        let parsed = parse("address,name\n\n+15550001,Ana\n,\n ,  \n+15550002,Bo\n");
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[1].line, 6);
        assert_eq!(parsed.blank, 2);
        assert_eq!(parsed.data_rows(), 2);
    }

    #[test]
    fn an_unclosed_quote_costs_its_row_only() {
        let mut data = String::from("address,name\n+15550000,\"Unclosed name\n");
        for i in 1..=999 {
            data.push_str(&format!("+1555{i:07},Name {i}\n"));
        }
        let parsed = parse(&data);
        assert_eq!(parsed.rows.len(), 999);
        assert_eq!(parsed.rows[0].line, 3);
        assert_eq!(parsed.rows[998].line, 1001);
        assert_eq!(
            errors(&data),
            ["line 2: a quoted cell opened on this line is still open 10 lines later: is a closing quote missing?"]
        );
        assert_eq!(parsed.data_rows(), 1000);
    }

    #[test]
    fn an_unclosed_quote_near_the_end_is_caught_too() {
        let parsed = parse("address,name\n+15550001,\"Ann\n+15550002,Bo\n+15550003,\"Cy");
        assert_eq!(
            parsed.rejected,
            [
                RowError {
                    line: 2,
                    message: "cell 2 runs over several lines: is a closing quote missing?".into()
                },
                RowError {
                    line: 4,
                    message: "a quoted cell opened on this line never closes: is a closing quote missing?".into()
                }
            ]
        );
        assert_eq!(records(&parsed), [record_named("+15550002", "Bo")]);
    }

    #[test]
    fn quoted_cells_may_hold_a_few_line_breaks_but_not_more() {
        // A cell of ten lines: the row spans lines 2 to 11.
        let note = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj";
        let parsed = parse(&format!(
            "address,note\n+15550001,\"{note}\"\n+15550002,x\n"
        ));
        assert_eq!(parsed.rows[0].record.attrs[0].1, note);
        assert_eq!(parsed.rows[1].line, 12);
        // Eleven lines is a quote left open.
        let long = format!("{note}\nk");
        let parsed = parse(&format!(
            "address,note\n+15550001,\"{long}\"\n+15550002,x\n"
        ));
        assert_eq!(parsed.rejected[0].line, 2);
        // Reading resumes on line 3: the rest of the runaway cell are rows of their own, and
        // rejected as such, until the real rows come back.
        let last = parsed.rows.last().map(|r| r.record.address.as_str());
        assert_eq!((parsed.rows.len(), last), (1, Some("wa:15550002")));
        assert_eq!(parsed.data_rows(), 1 + 10 + 1);
    }

    #[test]
    fn a_cell_past_the_cap_is_rejected() {
        let name = "x".repeat(MAX_CELL_CHARS + 1);
        let row_too_long = "y".repeat(MAX_ROW_BYTES + 10);
        let data =
            format!("address,name\n+15550001,{name}\n+15550002,\"{row_too_long}\"\n+15550003,Cy\n");
        assert_eq!(
            errors(&data),
            [
                "line 2: cell 2 is 1025 characters long, more than 1024: is a closing quote missing?"
                    .to_string(),
                format!("line 3: the row is longer than {MAX_ROW_BYTES} bytes: is a closing quote missing?"),
            ]
        );
        assert_eq!(ok("address,name\n+15550003,Cy\n"), records(&parse(&data)));
    }

    #[test]
    fn every_row_is_a_record_or_a_rejection() {
        let parsed = parse(
            "address,name\n+15550001,A\n+12345,B\ntg:99999999999999999999,C\n+15550002,D\n+15550003,E\n+15550004,F\n",
        );
        assert_eq!(parsed.data_rows(), 6);
        assert_eq!(parsed.rows.len(), 4);
        assert_eq!(
            parsed
                .rejected
                .iter()
                .map(RowError::to_string)
                .collect::<Vec<_>>(),
            [
                "line 3: \"+12345\" is not a phone number: it needs 7 to 15 digits (+15550001)",
                "line 4: \"tg:99999999999999999999\" is not a Telegram chat id (tg:<number>)",
            ]
        );
    }

    #[test]
    fn a_row_that_is_not_utf8_is_rejected_alone() {
        let parsed = parse_contacts_csv(b"address,name\n+15550001,Jos\xe9\n+15550002,Bo\n")
            .expect("readable");
        assert_eq!(
            parsed.rejected,
            [RowError {
                line: 2,
                message: "not UTF-8 text: save the file as CSV UTF-8".into()
            }]
        );
        assert_eq!(parsed.rows.len(), 1);
    }

    #[test]
    fn files_that_are_not_csv_are_refused_whole() {
        assert_eq!(
            fatal(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            "this is a PNG image, not a CSV file: export the contacts as CSV (UTF-8)"
        );
        assert_eq!(
            fatal(b"address,name\n+15550001,\0\0\0\n"),
            "this is binary data, not a CSV file: export the contacts as CSV (UTF-8)"
        );
        assert!(fatal(b"PK\x03\x04rest").contains(".xlsx"));
        let huge = vec![b'a'; MAX_FILE_BYTES + 1];
        assert_eq!(
            fatal(&huge),
            "the file is 20971521 bytes; the limit is 20 MB: split it into smaller files"
        );
        assert!(fatal(b"address,\"name\n+1555\n").starts_with("the header row cannot be read"));
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
