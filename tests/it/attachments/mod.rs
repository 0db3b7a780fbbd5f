//! Files through the chat (SPEC section 5), on each real channel against its fake server: an
//! admin imports contacts from a CSV sent with `/contact import` as its caption, or alone and
//! followed by the command; `/campaign report <id> csv|chart` comes back as a document and an
//! image whose bytes are the CSV and a PNG; every file that cannot be imported (a photo, a PNG,
//! a file over 20 MB, a download that fails or times out, a lone file older than 10 minutes)
//! gets one line and changes nothing. `crash` kills `herald run` in the middle of a 100,000-row
//! import sent from WhatsApp.

mod crash;
mod telegram;
mod whatsapp;

/// A CSV of three contacts, one of them with a bad number (line 4).
pub const CSV: &str = "address,name,labels\n+15550001,Ann,vip\n+15550002,Bob,vip\n+12345,Cy,vip\n";

/// What importing [`CSV`] answers.
pub const IMPORTED: &str = "read 3 row(s): 2 added, 0 updated, 0 unchanged, 1 rejected\n\
                            line 4: \"+12345\" is not a phone number: it needs 7 to 15 digits (+15550001)";

/// The first bytes of a PNG image: what a photo of a spreadsheet is.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

/// Width and height of a PNG, after checking its signature.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24, "{} bytes are no PNG", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

/// The rows of a report CSV as (address, status, reason, error_code), sorted.
pub fn report_rows(csv: &[u8]) -> Vec<(String, String, String, String)> {
    let mut reader = csv::Reader::from_reader(csv);
    let headers = reader.headers().expect("a header row").clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column in {headers:?}"))
    };
    let (a, s, r, e) = (
        column("address"),
        column("status"),
        column("reason"),
        column("error_code"),
    );
    let mut rows: Vec<_> = reader
        .records()
        .map(|row| {
            let row = row.expect("a well-formed row");
            (
                row[a].to_string(),
                row[s].to_string(),
                row[r].to_string(),
                row[e].to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// A CSV larger than the 20 MB limit (well-formed rows all the way).
pub fn oversized_csv() -> Vec<u8> {
    let mut csv = b"address,name\n".to_vec();
    let mut i = 0u64;
    while csv.len() <= 20 * 1024 * 1024 + 1024 {
        csv.extend_from_slice(format!("+1555{:07},Name {i}\n", i % 10_000_000).as_bytes());
        i += 1;
    }
    csv
}
