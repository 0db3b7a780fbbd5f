//! A campaign's image, video or document (SPEC section 5, "Media in campaigns"): what an admin
//! may set (an `https` link, or a file they attached), the limits WhatsApp puts on each kind
//! (the stricter of the two channels, checked once when the admin sets it), and the media as a
//! message carries it to a channel.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The kind of media a message or a template header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Document,
}

impl MediaKind {
    /// Meta's message and parameter type (`image`, `video`, `document`).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
        }
    }

    /// The largest file WhatsApp sends as this kind (Cloud API media limits: images 5 MB,
    /// videos 16 MB, documents 100 MB; herald fetches at most 20 MB from a chat anyway).
    pub fn max_bytes(self) -> u64 {
        match self {
            MediaKind::Image => 5 * 1024 * 1024,
            MediaKind::Video => 16 * 1024 * 1024,
            MediaKind::Document => 100 * 1024 * 1024,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WhatsApp and Telegram both cut a media caption at 1,024 characters, so a text campaign with
/// media holds at most this much text.
pub const MAX_CAPTION_CHARS: usize = 1024;

/// Longer than this is no link anyone typed.
const MAX_LINK_CHARS: usize = 2000;

/// A file name as the recipient's app shows it: at most this many characters.
const MAX_NAME_CHARS: usize = 120;

/// What a campaign sends besides its text, as stored with the campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignMedia {
    pub kind: MediaKind,
    pub origin: MediaOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOrigin {
    /// An `https` address the channels fetch themselves.
    Link(String),
    /// A file an admin attached; its bytes are stored once, by their SHA-256.
    File(FileInfo),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub sha256: String,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

/// The stored JSON form: `{"kind":"image","link":"https://…"}` or `{"kind":"image","file":{…}}`.
#[derive(Serialize, Deserialize)]
struct Stored {
    kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileInfo>,
}

impl CampaignMedia {
    /// Media an admin named by its address: `https` only (Meta fetches nothing else, and a
    /// customer's phone should not be sent to a plain-text address), with a host and no
    /// password in it. The kind comes from the file name's extension: `.jpg`/`.jpeg`/`.png` an
    /// image, `.mp4`/`.3gp` a video, anything else a document.
    pub fn link(typed: &str) -> Result<CampaignMedia, String> {
        let typed = typed.trim();
        if typed.chars().count() > MAX_LINK_CHARS {
            return Err(format!(
                "the link is longer than {MAX_LINK_CHARS} characters"
            ));
        }
        let url = url::Url::parse(typed)
            .map_err(|e| format!("{} is not a link ({e})", shorten(typed)))?;
        if url.scheme() != "https" {
            return Err(format!(
                "the media link must start with https://, got {}:// (WhatsApp fetches media over \
                 https only)",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the media link has no host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the media link must not carry a user name or password".into());
        }
        let extension = url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .and_then(|last| last.rsplit_once('.'))
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        let kind = match extension.as_str() {
            "jpg" | "jpeg" | "png" => MediaKind::Image,
            "mp4" | "3gp" | "3gpp" => MediaKind::Video,
            "gif" | "webp" | "bmp" | "heic" | "svg" => {
                return Err(format!(
                    "WhatsApp sends images as JPEG or PNG, not .{extension}: convert it, or link \
                     a .jpg or .png"
                ))
            }
            "mov" | "avi" | "mkv" | "webm" => {
                return Err(format!(
                    "WhatsApp sends videos as MP4 or 3GP, not .{extension}: convert it first"
                ))
            }
            _ => MediaKind::Document,
        };
        Ok(CampaignMedia {
            kind,
            origin: MediaOrigin::Link(url.to_string()),
        })
    }

    /// A file an admin attached, checked by its bytes, not by what the sender's app called it:
    /// a JPEG or PNG is an image (at most 5 MB), an MP4 or 3GP a video (at most 16 MB), anything
    /// else a document. `sent_as_photo` is set when the channel delivered it as a photo or
    /// video: such a file must really be one.
    pub fn file(
        name: Option<&str>,
        declared_mime: Option<&str>,
        bytes: &[u8],
        sent_as_media: bool,
    ) -> Result<(CampaignMedia, MediaFile), String> {
        if bytes.is_empty() {
            return Err("the file is empty".into());
        }
        let sniffed = sniff(bytes);
        if sent_as_media && sniffed.is_none() {
            return Err(
                "the photo or video is not a JPEG, PNG, MP4 or 3GP file: send it as a document \
                 to have it sent as one"
                    .into(),
            );
        }
        let (kind, mime) = match sniffed {
            Some((kind, mime)) => (kind, mime.to_string()),
            None => (
                MediaKind::Document,
                declared_mime
                    .map(str::trim)
                    .filter(|m| is_mime(m))
                    .unwrap_or("application/octet-stream")
                    .to_ascii_lowercase(),
            ),
        };
        let size = bytes.len() as u64;
        if size > kind.max_bytes() {
            return Err(format!(
                "the {kind} is {} MB; WhatsApp sends {kind}s of at most {} MB",
                mb(size),
                kind.max_bytes() / (1024 * 1024)
            ));
        }
        let name = file_name(name, kind, &mime);
        let sha256 = hex::encode(Sha256::digest(bytes));
        let info = FileInfo {
            sha256: sha256.clone(),
            name: name.clone(),
            mime: mime.clone(),
            size,
        };
        let file = MediaFile {
            name,
            mime,
            sha256,
            bytes: Arc::from(bytes),
        };
        Ok((
            CampaignMedia {
                kind,
                origin: MediaOrigin::File(info),
            },
            file,
        ))
    }

    pub fn to_stored(&self) -> String {
        let (link, file) = match &self.origin {
            MediaOrigin::Link(url) => (Some(url.clone()), None),
            MediaOrigin::File(info) => (None, Some(info.clone())),
        };
        let stored = Stored {
            kind: self.kind,
            link,
            file,
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    pub fn from_stored(raw: &str) -> Result<CampaignMedia, String> {
        let stored: Stored =
            serde_json::from_str(raw).map_err(|e| format!("campaign media is not valid: {e}"))?;
        let origin = match (stored.link, stored.file) {
            (Some(url), None) => MediaOrigin::Link(url),
            (None, Some(file)) => MediaOrigin::File(file),
            _ => return Err("campaign media needs exactly one of link and file".into()),
        };
        Ok(CampaignMedia {
            kind: stored.kind,
            origin,
        })
    }

    /// One line for `/campaign show` and answers: `image photo.jpg (240 KB)` or
    /// `image https://…`.
    pub fn describe(&self) -> String {
        match &self.origin {
            MediaOrigin::Link(url) => format!("{} {url}", self.kind),
            MediaOrigin::File(info) => {
                format!("{} {} ({})", self.kind, info.name, human_size(info.size))
            }
        }
    }

    /// The file's SHA-256 when the media is an attached file.
    pub fn file_sha256(&self) -> Option<&str> {
        match &self.origin {
            MediaOrigin::File(info) => Some(&info.sha256),
            MediaOrigin::Link(_) => None,
        }
    }
}

/// An attached file's bytes, shared by every message that carries it.
#[derive(Clone)]
pub struct MediaFile {
    pub name: String,
    pub mime: String,
    /// Names the file for the channels' upload caches: the same bytes are uploaded once.
    pub sha256: String,
    pub bytes: Arc<[u8]>,
}

impl PartialEq for MediaFile {
    fn eq(&self, other: &Self) -> bool {
        self.sha256 == other.sha256 && self.name == other.name
    }
}

impl fmt::Debug for MediaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaFile")
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("sha256", &self.sha256)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Where a channel gets the media of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaSource {
    /// An address the channel fetches.
    Link(String),
    /// An id the channel gave when the file was uploaded (a WhatsApp media id).
    Id(String),
    /// The file itself: the channel uploads it once and reuses what it got back.
    File(Arc<MediaFile>),
}

/// The media one message carries.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRef {
    pub kind: MediaKind,
    pub source: MediaSource,
}

impl MediaRef {
    /// The file name a document shows: the attached file's, or the link's last path segment.
    pub fn file_name(&self) -> Option<String> {
        match &self.source {
            MediaSource::File(file) => Some(file.name.clone()),
            MediaSource::Link(link) => url::Url::parse(link)
                .ok()?
                .path_segments()?
                .next_back()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            MediaSource::Id(_) => None,
        }
    }
}

/// What the first bytes say the file is: JPEG, PNG, MP4 or 3GP.
fn sniff(bytes: &[u8]) -> Option<(MediaKind, &'static str)> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some((MediaKind::Image, "image/jpeg"));
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((MediaKind::Image, "image/png"));
    }
    // ISO base media: a box size, then `ftyp` and the major brand.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let brand = &bytes[8..12];
        if brand.starts_with(b"3gp") {
            return Some((MediaKind::Video, "video/3gpp"));
        }
        if brand.starts_with(b"qt") {
            return None; // QuickTime (.mov): WhatsApp does not take it as a video
        }
        return Some((MediaKind::Video, "video/mp4"));
    }
    None
}

/// `type/subtype` with nothing odd in it.
fn is_mime(m: &str) -> bool {
    m.len() <= 100
        && m.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/+-.".contains(c))
        })
}

/// The name the recipient sees: the sender's file name without any folder, on one line and
/// not too long, or one made from the kind.
fn file_name(name: Option<&str>, kind: MediaKind, mime: &str) -> String {
    let cleaned: String = name
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n))
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if !cleaned.is_empty() {
        return cleaned.to_string();
    }
    let ext = match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "application/pdf" => "pdf",
        _ => "bin",
    };
    format!("{kind}.{ext}")
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MB", mb(bytes))
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];

    #[test]
    fn links_must_be_https_and_take_their_kind_from_the_extension() {
        let m = CampaignMedia::link("https://cdn.example.com/sale/Banner.JPG").unwrap();
        assert_eq!(m.kind, MediaKind::Image);
        let m = CampaignMedia::link("https://cdn.example.com/clip.mp4?x=1").unwrap();
        assert_eq!(m.kind, MediaKind::Video);
        let m = CampaignMedia::link("https://cdn.example.com/menu.pdf").unwrap();
        assert_eq!(m.kind, MediaKind::Document);
        let err = CampaignMedia::link("http://cdn.example.com/a.jpg").unwrap_err();
        assert!(err.contains("https://"), "{err}");
        assert!(CampaignMedia::link("ftp://x/a.png").is_err());
        assert!(CampaignMedia::link("cdn.example.com/a.png").is_err());
        assert!(CampaignMedia::link("https://user:pw@cdn.example.com/a.png").is_err());
        assert!(CampaignMedia::link("https://cdn.example.com/a.gif")
            .unwrap_err()
            .contains("JPEG or PNG"));
        let long = format!("https://x.example/{}", "a".repeat(3000));
        assert!(CampaignMedia::link(&long).is_err());
    }

    #[test]
    fn files_are_judged_by_their_bytes() {
        let (m, f) = CampaignMedia::file(Some("dir/photo.jpg"), None, JPEG, true).unwrap();
        assert_eq!(m.kind, MediaKind::Image);
        assert_eq!(f.mime, "image/jpeg");
        assert_eq!(f.name, "photo.jpg");
        // A PDF sent as a document stays one; a "photo" that is not an image is refused.
        let (m, _) = CampaignMedia::file(
            Some("menu.pdf"),
            Some("application/pdf"),
            b"%PDF-1.4",
            false,
        )
        .unwrap();
        assert_eq!(m.kind, MediaKind::Document);
        assert!(CampaignMedia::file(None, None, b"GIF89a", true).is_err());
        assert!(CampaignMedia::file(None, None, b"", false).is_err());
        let mut mp4 = vec![0, 0, 0, 0x18];
        mp4.extend_from_slice(b"ftypisom");
        let (m, f) = CampaignMedia::file(None, None, &mp4, true).unwrap();
        assert_eq!((m.kind, f.name.as_str()), (MediaKind::Video, "video.mp4"));
        // Too big for its kind.
        let mut big = JPEG.to_vec();
        big.resize(6 * 1024 * 1024, 0);
        let err = CampaignMedia::file(None, None, &big, true).unwrap_err();
        assert!(err.contains("at most 5 MB"), "{err}");
    }

    #[test]
    fn stored_form_reads_back() {
        let (m, _) = CampaignMedia::file(Some("a.png"), None, b"\x89PNG\r\n\x1a\n", true).unwrap();
        assert_eq!(CampaignMedia::from_stored(&m.to_stored()).unwrap(), m);
        let l = CampaignMedia::link("https://x.example/a.png").unwrap();
        assert_eq!(CampaignMedia::from_stored(&l.to_stored()).unwrap(), l);
        assert!(CampaignMedia::from_stored(r#"{"kind":"image"}"#).is_err());
    }
}
