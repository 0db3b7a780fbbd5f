//! Files through the chat (SPEC section 5). A file an admin sends alone is kept, by reference,
//! for that admin's next command that takes a file, for [`KEEP_FOR`]. A file whose caption is a
//! command belongs to that command: it is kept while the command runs (so the command finds it
//! where it finds a lone file) and dropped after, so a command that takes no file ignores it.
//! Only admins' files are kept, so only theirs are ever fetched, and only when a command asks. Files out go to the admin through their channel; where that channel
//! cannot carry files (the console, or no channel when run from the CLI) they are written under
//! `REPORTS_DIR` instead, and only then does herald write a path.
//!
//! Kept files live in this process's memory, not in the database: a reference is worth ten
//! minutes, a restart costs the admin one resend, and no migration is needed for it. Telegram's
//! updates reach the one process that polls; with several `herald run` processes behind one
//! WhatsApp webhook URL, a lone file and the command after it must reach the same process (send
//! the command as the file's caption, which always works).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use super::Engine;
use crate::channels::{FetchError, FetchLimits, FileRef, OutboundFile, SendError};

/// How long a file sent alone waits for its command.
pub const KEEP_FOR: Duration = Duration::minutes(10);

/// The largest file herald fetches from a chat (SPEC section 5: 20 MB).
pub const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// Each admin's last file and when it came.
#[derive(Default)]
pub(crate) struct KeptFiles {
    by_admin: Mutex<HashMap<String, (FileRef, DateTime<Utc>)>>,
}

/// The file a command that needs one gets.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminFile {
    /// Sent with the command, or alone within [`KEEP_FOR`] before it.
    Fresh(FileRef),
    /// Sent alone longer ago than [`KEEP_FOR`]: no longer the admin's file for a command.
    Stale { file: FileRef, at: DateTime<Utc> },
    /// No file sent.
    None,
}

/// Where a file for an admin went.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Sent through the admin's channel.
    Sent,
    /// Written to this path (the admin's channel cannot carry files).
    Saved(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{}", .0.reason)]
    Channel(#[from] SendError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl Engine {
    /// Keeps `admin`'s file for their next command that takes one (replacing an older one).
    pub(crate) fn keep_file(&self, admin: &str, file: FileRef) {
        let now = self.clock.now();
        crate::lock(&self.kept_files.by_admin).insert(admin.to_string(), (file, now));
    }

    /// Drops `admin`'s kept file if it is still `file` (its command did not take it).
    pub(crate) fn forget_file(&self, admin: &str, file: &FileRef) {
        let mut kept = crate::lock(&self.kept_files.by_admin);
        if kept.get(admin).is_some_and(|(f, _)| f == file) {
            kept.remove(admin);
        }
    }

    /// Takes `admin`'s file for a command that needs one: each file serves one command.
    pub fn take_file(&self, admin: &str) -> AdminFile {
        let kept = crate::lock(&self.kept_files.by_admin).remove(admin);
        match kept {
            None => AdminFile::None,
            Some((file, at)) if self.clock.now() - at > KEEP_FOR => AdminFile::Stale { file, at },
            Some((file, _)) => AdminFile::Fresh(file),
        }
    }

    /// Downloads an admin's file through their channel, at most [`MAX_FILE_BYTES`] and within
    /// `FILE_TIMEOUT_SECS` for the whole fetch.
    pub async fn fetch_file(&self, admin: &str, file: &FileRef) -> Result<Vec<u8>, FetchError> {
        let Some(channel) = self.channels.for_address(admin) else {
            return Err(FetchError::Unsupported);
        };
        let limits = FetchLimits {
            max_bytes: MAX_FILE_BYTES,
            timeout: self.config.file_timeout,
        };
        // The channel bounds each request too; this bounds lookup and download together.
        match tokio::time::timeout(limits.timeout, channel.fetch_file(file, limits)).await {
            Ok(fetched) => fetched,
            Err(_) => Err(FetchError::TimedOut(limits.timeout)),
        }
    }

    /// Sends a file to an admin, or writes it under `REPORTS_DIR` when their channel cannot
    /// carry files.
    pub async fn deliver_file(
        &self,
        admin: &str,
        file: &OutboundFile,
    ) -> Result<Delivery, DeliveryError> {
        match self.channels.for_address(admin) {
            Some(channel) if channel.carries_files() => {
                channel.send_file(admin, file).await?;
                Ok(Delivery::Sent)
            }
            _ => save(&self.config.reports_dir, file).map(Delivery::Saved),
        }
    }
}

/// Writes `file` as `dir/<its name>` (the name without any directory part).
fn save(dir: &str, file: &OutboundFile) -> Result<String, DeliveryError> {
    let name = Path::new(&file.name)
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_else(|| "export".into());
    let path = Path::new(dir).join(name);
    let written = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, &file.bytes));
    written.map_err(|source| DeliveryError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(path.display().to_string())
}

/// The answer to a file sent alone (or with a caption that is no command).
pub(crate) fn kept_answer(file: &FileRef) -> String {
    format!(
        "got {}: it is kept for {} minutes for your next command that takes a file, \
         e.g. /contact import",
        file.label(),
        KEEP_FOR.num_minutes()
    )
}
