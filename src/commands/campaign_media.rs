//! `/campaign media <id> [<https-url>|none]`: the image, video or document a campaign sends, by
//! link or as the file the admin attached (SPEC section 5). Checked against what the campaign
//! sends (a caption's length, a template's header, buttons or a menu) when it is set, so a
//! campaign never starts with media it cannot carry.

use chrono::{DateTime, Utc};

use super::reply::{editable, said, Refusal, Reply};
use crate::channels::FileKind;
use crate::domain::media::{CampaignMedia, MediaFile, MAX_CAPTION_CHARS};
use crate::engine::files::{self, AdminFile};
use crate::engine::media::media_misfit;
use crate::engine::Engine;
use crate::store::Campaign;

/// What `/campaign media` was given besides the campaign id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaArg {
    /// An address the channels fetch (checked when applied: `https` only).
    Link(String),
    /// The file attached to the command, or sent alone just before it.
    Attached,
    /// `none`: the campaign sends no media.
    Remove,
}

pub(super) async fn apply(
    engine: &Engine,
    admin: &str,
    id: i64,
    arg: MediaArg,
    now: DateTime<Utc>,
) -> Reply {
    let campaign = editable(engine, id).await?;
    let (media, file) = match arg {
        MediaArg::Remove => {
            engine.store.set_media(id, None, None, now).await?;
            return Ok(format!("campaign {id} sends no media now"));
        }
        MediaArg::Link(typed) => (
            CampaignMedia::link(&typed)
                .map_err(|why| Refusal::Said(format!("no media set: {why}")))?,
            None,
        ),
        MediaArg::Attached => {
            let (media, file) = attached(engine, admin, id).await?;
            (media, Some(file))
        }
    };
    fits(engine, &campaign, &media).await?;
    engine
        .store
        .set_media(id, Some(&media), file.as_ref(), now)
        .await?;
    let how = if let Some(t) = &campaign.template {
        format!(
            "it fills the {} header of template {} ({})",
            media.kind.as_str().to_ascii_uppercase(),
            t.name,
            t.lang
        )
    } else if campaign.choices.is_some() {
        "shown above the text and its buttons, inside the 24-hour window only".to_string()
    } else {
        "sent with the text as its caption, inside the 24-hour window only (outside it, use a \
         template with a media header)"
            .to_string()
    };
    let once = if file.is_some() {
        "; the file is uploaded once per channel, not per recipient"
    } else {
        ""
    };
    Ok(format!(
        "campaign {id} media: {}; {how}{once}",
        media.describe()
    ))
}

/// Why campaign `c` cannot carry `media`, its template read from the store; `None` when it can.
async fn misfit(
    engine: &Engine,
    c: &Campaign,
    media: &CampaignMedia,
) -> Result<Option<String>, Refusal> {
    let template = match &c.template {
        Some(t) => engine.store.template(&t.name, &t.lang).await?,
        None => None,
    };
    Ok(media_misfit(c, template.as_ref(), media))
}

/// Refuses media the campaign's content cannot carry, with nothing changed.
async fn fits(engine: &Engine, c: &Campaign, media: &CampaignMedia) -> Result<(), Refusal> {
    match misfit(engine, c, media).await? {
        Some(why) => said(format!("no media set: {why}")),
        None => Ok(()),
    }
}

/// The admin's attached file, downloaded and checked: a JPEG or PNG image, an MP4 or 3GP video,
/// or any document, within WhatsApp's size for its kind.
async fn attached(
    engine: &Engine,
    admin: &str,
    id: i64,
) -> Result<(CampaignMedia, MediaFile), Refusal> {
    let file = match engine.take_file(admin) {
        AdminFile::Fresh(file) => file,
        AdminFile::Stale { file, at } => {
            return said(format!(
                "no media set: {} came at {}, more than {} minutes ago: send it again with the \
                 caption /campaign media {id}",
                file.label(),
                engine.local_time(at),
                files::KEEP_FOR.num_minutes()
            ))
        }
        AdminFile::None => {
            return said(format!(
                "attach an image, video or document with the caption /campaign media {id}, or \
                 give its https link: /campaign media {id} https://example.com/sale.jpg"
            ))
        }
    };
    let bytes = engine
        .fetch_file(admin, &file)
        .await
        .map_err(|e| Refusal::Said(format!("no media set: {e}")))?;
    let sent_as_media = file.kind != FileKind::Document;
    CampaignMedia::file(
        file.name.as_deref(),
        file.mime.as_deref(),
        &bytes,
        sent_as_media,
    )
    .map_err(|why| Refusal::Said(format!("no media set: {why}")))
}

/// Refuses a text longer than a caption for a campaign that has media.
pub(super) fn caption_fits(c: &Campaign, text: &str) -> Result<(), Refusal> {
    let n = text.chars().count();
    if c.media.is_some() && c.template.is_none() && n > MAX_CAPTION_CHARS {
        return said(format!(
            "campaign {} has media, and its text is its caption: at most {MAX_CAPTION_CHARS} \
             characters, this one is {n}",
            c.id
        ));
    }
    Ok(())
}

/// Refuses a change of content (a template, a menu) that the campaign's media would not fit.
pub(super) async fn still_fits(engine: &Engine, changed: &Campaign) -> Result<(), Refusal> {
    let Some(media) = &changed.media else {
        return Ok(());
    };
    match misfit(engine, changed, media).await? {
        Some(why) => said(format!(
            "campaign {} has media ({}): {why}; remove it first with /campaign media {} none",
            changed.id,
            media.describe(),
            changed.id
        )),
        None => Ok(()),
    }
}
