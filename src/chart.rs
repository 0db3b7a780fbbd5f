//! The PNG chart of a campaign report.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::store::{Campaign, Report};

pub fn draw(
    _path: &Path,
    _c: &Campaign,
    _r: &Report,
    _send_times: &[DateTime<Utc>],
) -> Result<(), String> {
    Err("charts are not available in this build yet; use /campaign report <id> csv".into())
}
