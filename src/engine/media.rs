//! A campaign's media as its messages carry it: a link as it is, an attached file's bytes read
//! from the store once and shared by every message of every campaign that shows it (the
//! channels then upload it once). Whether a campaign's content can carry its media is decided
//! here too, for the commands that set either and for the dispatcher before it sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Engine, Result};
use crate::domain::interactive::Choices;
use crate::domain::media::{
    CampaignMedia, MediaFile, MediaKind, MediaOrigin, MediaRef, MediaSource, MAX_CAPTION_CHARS,
};
use crate::store::{Campaign, Template};

/// Files held in memory at most; more are read again from the store when needed. A handful of
/// campaigns send at once, each with one file of at most 20 MB.
const MAX_CACHED_FILES: usize = 8;

/// Attached files read from the store, by SHA-256.
#[derive(Default)]
pub(crate) struct MediaFiles {
    by_sha256: Mutex<HashMap<String, Arc<MediaFile>>>,
}

impl Engine {
    /// The media campaign `c` sends, ready for a channel; `Ok(None)` when it has none, and an
    /// error when its file is missing from the store (the campaign cannot send then).
    pub async fn campaign_media(
        &self,
        c: &Campaign,
    ) -> Result<Option<std::result::Result<MediaRef, String>>> {
        let Some(media) = &c.media else {
            return Ok(None);
        };
        let source = match &media.origin {
            MediaOrigin::Link(url) => MediaSource::Link(url.clone()),
            MediaOrigin::File(info) => {
                let cached = crate::lock(&self.media_files.by_sha256)
                    .get(&info.sha256)
                    .cloned();
                let file = match cached {
                    Some(file) => file,
                    None => {
                        let Some(bytes) = self.store.media_bytes(&info.sha256).await? else {
                            return Ok(Some(Err(format!(
                                "its media file {} is missing from the database: set it again \
                                 with /campaign media {}",
                                info.name, c.id
                            ))));
                        };
                        let file = Arc::new(MediaFile {
                            name: info.name.clone(),
                            mime: info.mime.clone(),
                            sha256: info.sha256.clone(),
                            bytes: Arc::from(bytes),
                        });
                        let mut cache = crate::lock(&self.media_files.by_sha256);
                        if cache.len() >= MAX_CACHED_FILES {
                            cache.clear();
                        }
                        cache.insert(info.sha256.clone(), file.clone());
                        file
                    }
                };
                MediaSource::File(file)
            }
        };
        Ok(Some(Ok(MediaRef {
            kind: media.kind,
            source,
        })))
    }
}

/// Why campaign content cannot carry `media`, in words for the admin; `None` when it can. A
/// text campaign's texts become captions (at most 1,024 characters); reply buttons may show
/// it above the text, a list menu or products cannot; a template needs a synced header of the
/// same kind (IMAGE, VIDEO or DOCUMENT).
pub fn media_misfit(
    c: &Campaign,
    template: Option<&Template>,
    media: &CampaignMedia,
) -> Option<String> {
    if let Some(tref) = &c.template {
        let header = template
            .and_then(|t| t.spec.as_ref())
            .and_then(|spec| spec.header_media());
        return match header {
            Some(kind) if kind == media.kind => None,
            Some(kind) => Some(format!(
                "the header of template {} ({}) is {}, not {}: give the campaign {} {}",
                tref.name,
                tref.lang,
                header_word(kind),
                header_word(media.kind),
                article(kind),
                kind
            )),
            None => Some(format!(
                "template {} ({}) has no IMAGE, VIDEO or DOCUMENT header to carry media \
                 (only a template synced from Meta with such a header takes it)",
                tref.name, tref.lang
            )),
        };
    }
    match &c.choices {
        Some(Choices::Menu { .. }) => {
            return Some("a list menu cannot show media: use reply buttons, or no media".into())
        }
        Some(Choices::Products { .. }) => {
            return Some("a product message shows the product's own images, not media".into())
        }
        Some(Choices::Buttons(_)) | None => {}
    }
    let longest = c.texts().iter().map(|t| t.chars().count()).max();
    match longest {
        Some(n) if n > MAX_CAPTION_CHARS => Some(format!(
            "the campaign's text is {n} characters, and a caption holds at most \
             {MAX_CAPTION_CHARS}: shorten it first"
        )),
        _ => None,
    }
}

fn header_word(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "IMAGE",
        MediaKind::Video => "VIDEO",
        MediaKind::Document => "DOCUMENT",
    }
}

fn article(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "an",
        MediaKind::Video | MediaKind::Document => "a",
    }
}
