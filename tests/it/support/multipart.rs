//! `multipart/form-data` bodies read byte for byte, as the fake servers need them: a file part
//! must come out with exactly the bytes herald sent (a PNG is not text).

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

impl Part {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string())
}

/// The parts of `body`, in order.
pub fn parse(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut starts = find_all(body, &delimiter);
    starts.push(body.len());
    for pair in starts.windows(2) {
        let segment = &body[pair[0] + delimiter.len()..pair[1].min(body.len())];
        if segment.starts_with(b"--") {
            break;
        }
        let segment = segment.strip_prefix(b"\r\n").unwrap_or(segment);
        let Some(split) = find(segment, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&segment[..split]).into_owned();
        let data = &segment[split + 4..];
        let data = data.strip_suffix(b"\r\n").unwrap_or(data);
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: data.to_vec(),
        };
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                part.name = quoted(line, "name=").unwrap_or_default();
                part.filename = quoted(line, "filename=");
            } else if let Some(value) = lower.strip_prefix("content-type:") {
                part.content_type = Some(value.trim().to_string());
            }
        }
        parts.push(part);
    }
    parts
}

/// The quoted value after `key` (`name="file"` → `file`), not matching inside `filename=`.
fn quoted(line: &str, key: &str) -> Option<String> {
    line.split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(key))
        .map(|v| v.trim_matches('"').to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&haystack[from..], needle) {
        found.push(from + at);
        from += at + needle.len();
    }
    found
}
