//! A campaign's message for one contact: the deterministic variant of free text, or the template
//! with its parameters filled.

use crate::channels::OutboundBody;
use crate::domain::content::{self, ContactFields, MissingVars};
use crate::domain::media::MediaRef;
use crate::domain::template::{
    ButtonKind, ButtonParam, HeaderParam, ParameterFormat, TemplateParts,
};
use crate::store::{Campaign, Contact, Template, TemplateRef};

/// A message ready for one contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub body: OutboundBody,
    pub variant: Option<i64>,
    /// Template category, or `free` for free text (for cost).
    pub category: String,
}

/// Renders a campaign's content for one contact: the deterministic variant of free text, or the
/// template with its parameters filled. A missing variable is an error, never a blank.
///
/// `media` is the campaign's media as the channel gets it (loaded once per campaign by the
/// caller): a text campaign's text becomes its caption (or the text under it, with reply
/// buttons), a synced template whose header is IMAGE, VIDEO or DOCUMENT takes it there.
pub fn render_for(
    campaign: &Campaign,
    template: Option<&Template>,
    contact: &Contact,
    media: Option<&MediaRef>,
) -> std::result::Result<Rendered, RenderError> {
    let fields = ContactFields {
        name: contact.name.as_deref(),
        address: &contact.address,
        lang: contact.lang.as_deref(),
        attrs: &contact.attrs,
    };
    match (&campaign.template, template) {
        (Some(tref), Some(t)) if t.spec.is_some() => synced(tref, t, &fields, media),
        (Some(tref), Some(t)) => {
            let mut params = Vec::with_capacity(tref.params.len());
            let mut missing = Vec::new();
            for p in &tref.params {
                match content::render(p, &fields) {
                    Ok(v) => params.push(v),
                    Err(MissingVars(m)) => missing.extend(m),
                }
            }
            if !missing.is_empty() {
                return Err(RenderError::Missing(missing));
            }
            let rendered = content::fill_template(&t.body, &params);
            Ok(Rendered {
                body: OutboundBody::Template {
                    name: t.name.clone(),
                    lang: t.lang.clone(),
                    params,
                    rendered,
                    buttons: Vec::new(),
                    parts: Box::default(),
                },
                variant: None,
                category: t.category.clone(),
            })
        }
        (Some(tref), None) => Err(RenderError::NoTemplate(format!(
            "template {} ({}) does not exist",
            tref.name, tref.lang
        ))),
        (None, _) => {
            let texts = campaign.texts();
            if texts.is_empty() {
                return Err(RenderError::NoContent);
            }
            let variant = content::choose_variant(campaign.id, contact.id, texts.len());
            let text = content::render(texts[variant], &fields)
                .map_err(|MissingVars(m)| RenderError::Missing(m))?;
            // Buttons or a menu ride with the text; they are free form like it (same window).
            let body = match (&campaign.choices, media) {
                (Some(choices), media) => OutboundBody::Interactive {
                    text,
                    choices: choices.clone(),
                    header: media.cloned(),
                },
                (None, Some(media)) => OutboundBody::Media {
                    media: media.clone(),
                    caption: text,
                },
                (None, None) => OutboundBody::Text(text),
            };
            Ok(Rendered {
                body,
                variant: (texts.len() > 1).then_some(variant as i64),
                category: "free".into(),
            })
        }
    }
}

/// A template synced from Meta: body values (named or positional), the TEXT header's parameter,
/// the URL button's suffix and a payload for each quick reply (its own title, so a press reads
/// as `clicked:<title>`), each value rendered for the contact.
fn synced(
    tref: &TemplateRef,
    t: &Template,
    fields: &ContactFields,
    media: Option<&MediaRef>,
) -> std::result::Result<Rendered, RenderError> {
    let Some(spec) = t.spec.as_ref() else {
        return Err(RenderError::NoTemplate(format!(
            "template {} ({}) has no description from Meta",
            t.name, t.lang
        )));
    };
    let mut missing = Vec::new();
    let mut fill = |value: &str| match content::render(value, fields) {
        Ok(v) => v,
        Err(MissingVars(m)) => {
            missing.extend(m);
            String::new()
        }
    };
    let params: Vec<String> = tref.params.iter().map(|p| fill(p)).collect();
    let header = tref.header.as_deref().map(&mut fill);
    let url = tref.url.as_deref().map(&mut fill);
    if !missing.is_empty() {
        return Err(RenderError::Missing(missing));
    }
    let names = match spec.format {
        ParameterFormat::Named => tref.names.clone(),
        ParameterFormat::Positional => spec.body_params(),
    };
    let pairs: Vec<(String, String)> = names.iter().cloned().zip(params.clone()).collect();
    let rendered = spec.render(&pairs, header.as_deref());
    let mut buttons = Vec::new();
    for (index, button) in spec.buttons.iter().enumerate() {
        if button.kind == ButtonKind::QuickReply {
            buttons.push(ButtonParam::QuickReply {
                index,
                payload: button.text.clone(),
            });
        } else if button.takes_suffix() {
            if let Some(text) = &url {
                buttons.push(ButtonParam::UrlSuffix {
                    index,
                    text: text.clone(),
                });
            }
        }
    }
    let parts = Box::new(TemplateParts {
        names: match spec.format {
            ParameterFormat::Named => tref.names.clone(),
            ParameterFormat::Positional => Vec::new(),
        },
        // A media header takes the campaign's media (`template_problem` stops a campaign
        // whose media is missing or of another kind before it sends).
        header: match (spec.header_media(), media) {
            (Some(_), Some(media)) => Some(HeaderParam::Media(media.clone())),
            _ => header.map(HeaderParam::Text),
        },
        header_name: match spec.format {
            ParameterFormat::Named => spec.header_param(),
            ParameterFormat::Positional => None,
        },
        buttons,
    });
    Ok(Rendered {
        body: OutboundBody::Template {
            name: t.name.clone(),
            lang: t.lang.clone(),
            params,
            rendered,
            buttons: Vec::new(),
            parts,
        },
        variant: None,
        category: t.category.clone(),
    })
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("missing {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("{0}")]
    NoTemplate(String),
    #[error("the campaign has no message yet: use /campaign text or /campaign template")]
    NoContent,
}
