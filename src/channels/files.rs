//! Files through the chat (SPEC section 5): a file a message carried, named the way its channel
//! can fetch it again ([`FileRef`]), and a file herald sends back ([`OutboundFile`]). Channels
//! fetch and send them; which file belongs to which command is the engine's business.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What the channel says a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Sent as a file (a CSV, a PDF, anything): its bytes arrive as they were sent.
    Document,
    /// Sent as a photo (the channel may have recompressed it).
    Image,
    Video,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Document => "document",
            FileKind::Image => "photo",
            FileKind::Video => "video",
        }
    }
}

/// A file a message carried. Only this reference travels with the message: the bytes are
/// fetched when a command needs them, and only for admins.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRef {
    /// The channel's id for it: a WhatsApp media id, a Telegram `file_id`.
    pub id: String,
    pub kind: FileKind,
    /// The file name the sender's app gave, when the channel tells it.
    pub name: Option<String>,
    /// The MIME type the channel declares.
    pub mime: Option<String>,
    /// The size in bytes, when the channel says it before the download.
    pub size: Option<u64>,
}

impl FileRef {
    /// How an answer names the file: its name, or its kind.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("the {}", self.kind.name()),
        }
    }
}

/// How much and how long a fetch may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    pub max_bytes: u64,
    pub timeout: Duration,
}

/// Why a file could not be fetched. Each is a sentence an admin reads after "nothing imported:".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// The channel said the size before the download.
    #[error("the file is {0} bytes; the limit is 20 MB: split it into smaller files")]
    TooLarge(u64),
    /// Counted while downloading: the download stopped there, so the size is not known.
    #[error(
        "the file is larger than 20 MB (the download passed {0} bytes): split it into smaller files"
    )]
    GrewTooLarge(u64),
    #[error("the download took longer than {} s: send the file again", .0.as_secs())]
    TimedOut(Duration),
    #[error("the channel would not hand the file over ({0}): send it again")]
    Refused(String),
    #[error("the download failed ({0}): send the file again")]
    Network(String),
    #[error("this channel cannot fetch attached files")]
    Unsupported,
}

/// A file herald sends to an admin (a report export).
#[derive(Clone, PartialEq)]
pub struct OutboundFile {
    /// The name the admin's app shows (`campaign-1.csv`).
    pub name: String,
    pub mime: String,
    /// [`FileKind::Document`] for a file to open, [`FileKind::Image`] for a picture to look at.
    pub kind: FileKind,
    pub bytes: Vec<u8>,
    pub caption: Option<String>,
}

impl fmt::Debug for OutboundFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundFile")
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("kind", &self.kind)
            .field("bytes", &self.bytes.len())
            .field("caption", &self.caption)
            .finish()
    }
}

/// What a channel got back for the files it uploaded (a WhatsApp media id, a Telegram
/// `file_id`), by the file's SHA-256, so a campaign's file goes up once however many messages
/// show it: the first send of a file holds its slot while it uploads, the others wait and reuse
/// the id. Kept in memory: a restart or a second process uploads once more.
#[derive(Default)]
pub(crate) struct Uploads {
    slots: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Uploaded>>>>>,
}

/// A channel's id for an uploaded file, and when it was uploaded (WhatsApp forgets media ids
/// after 30 days).
#[derive(Debug, Clone)]
pub(crate) struct Uploaded {
    pub(crate) id: String,
    pub(crate) at: std::time::Instant,
}

impl Uploads {
    /// The slot of one file, locked: it holds the id when the file went up already.
    pub(crate) async fn slot(
        &self,
        sha256: &str,
    ) -> tokio::sync::OwnedMutexGuard<Option<Uploaded>> {
        let slot = crate::lock(&self.slots)
            .entry(sha256.to_string())
            .or_default()
            .clone();
        slot.lock_owned().await
    }
}

/// Collects a download chunk by chunk, refusing it as soon as it passes `limit` bytes, so a
/// file whose size was not declared (or was declared wrong) never sits whole in memory.
pub(crate) struct LimitedBody {
    bytes: Vec<u8>,
    limit: u64,
}

impl LimitedBody {
    pub(crate) fn new(limit: u64) -> Self {
        LimitedBody {
            bytes: Vec::new(),
            limit,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        let total = self.bytes.len() as u64 + chunk.len() as u64;
        if total > self.limit {
            return Err(FetchError::GrewTooLarge(total));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_stops_at_the_limit() {
        let mut body = LimitedBody::new(10);
        body.push(b"12345").unwrap();
        body.push(b"67890").unwrap();
        assert_eq!(body.push(b"1"), Err(FetchError::GrewTooLarge(11)));
        assert_eq!(body.finish(), b"1234567890");
    }

    #[test]
    fn refusals_read_as_one_line() {
        assert_eq!(
            FetchError::TimedOut(Duration::from_secs(60)).to_string(),
            "the download took longer than 60 s: send the file again"
        );
        assert_eq!(
            FetchError::TooLarge(25 * 1024 * 1024).to_string(),
            "the file is 26214400 bytes; the limit is 20 MB: split it into smaller files"
        );
    }
}
