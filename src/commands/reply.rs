//! What a command handler answers: the reply, or a one-line refusal; and the lookups most
//! handlers share.

use crate::domain::audience::{parse_audience, AudienceExpr};
use crate::domain::content;
use crate::domain::template::Mapping;
use crate::domain::Address;
use crate::engine::{Engine, EngineError};
use crate::store::{CampaignStatus, Contact, StoreError, TemplateRef};

/// What a handler returns: the reply, or a one-line refusal.
pub(super) type Reply = Result<String, Refusal>;

#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("{0}")]
    Said(String),
    #[error("something went wrong on our side; nothing was changed. Details are in the log.")]
    Internal(#[from] StoreError),
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => Refusal::Internal(e),
            EngineError::Rejected(why) => Refusal::Said(why),
            EngineError::StatusNotStored(why) => Refusal::Internal(StoreError::Invalid(why)),
        }
    }
}

pub(super) fn said<T>(msg: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Said(msg.into()))
}

/// Parses an audience and checks that every address it lists can be reached. The store creates
/// the listed addresses that are not contacts yet in the transaction that uses the audience.
pub(super) fn resolve_audience(engine: &Engine, spec: &str) -> Result<AudienceExpr, Refusal> {
    let expr = parse_audience(spec).map_err(|e| Refusal::Said(format!("audience: {e}")))?;
    if let AudienceExpr::Addresses(list) = &expr {
        for address in list.iter() {
            engine.check_reachable(address)?;
        }
    }
    Ok(expr)
}

/// A template that exists and takes exactly `params.len()` parameters made of known variables.
pub(super) async fn usable_template(
    engine: &Engine,
    name: &str,
    lang: &str,
    params: &[String],
) -> Result<crate::store::Template, Refusal> {
    let Some(t) = engine.store.template(name, lang).await? else {
        return said(format!(
            "no template {name} ({lang}): add it with /template add {name} {lang} <category> <body>"
        ));
    };
    if params.len() as i64 != t.params {
        return said(format!(
            "template {name} takes {} parameter(s), {} given (separate them with |)",
            t.params,
            params.len()
        ));
    }
    for p in params {
        check_variables(p)?;
    }
    Ok(t)
}

/// A template mapping checked against its template: a synced template's whole description
/// (body, header, URL button; names for NAMED), or a declared template's body count. Returns
/// the template and what the campaign stores.
pub(super) async fn usable_mapping(
    engine: &Engine,
    name: &str,
    lang: &str,
    mapping: Mapping,
) -> Result<(crate::store::Template, TemplateRef), Refusal> {
    let Some(t) = engine.store.template(name, lang).await? else {
        let hint = if engine.has_template_catalog() {
            "/template sync reads Meta's templates again"
        } else {
            "add it with /template add <name> <lang> <category> <body>"
        };
        return said(format!("no template {name} ({lang}): {hint}"));
    };
    let Some(spec) = &t.spec else {
        if mapping.header.is_some() || mapping.url.is_some() {
            return said(format!(
                "template {name} ({lang}) was declared with /template add, so herald knows no \
                 header or buttons for it: header= and url= need a template synced from Meta"
            ));
        }
        let t = usable_template(engine, name, lang, &mapping.params).await?;
        let tref = TemplateRef::positional(name.to_string(), lang.to_string(), mapping.params);
        return Ok((t, tref));
    };
    let resolved = spec.resolve(&mapping).map_err(Refusal::Said)?;
    for value in resolved
        .values
        .iter()
        .chain(&resolved.header)
        .chain(&resolved.url)
    {
        check_variables(value)?;
    }
    let tref = TemplateRef {
        name: name.to_string(),
        lang: lang.to_string(),
        params: resolved.values,
        names: resolved.names,
        header: resolved.header,
        url: resolved.url,
    };
    Ok((t, tref))
}

pub(super) async fn find(engine: &Engine, address: &Address) -> Result<Contact, Refusal> {
    engine.store.find_contact(address).await?.ok_or_else(|| {
        Refusal::Said(format!(
            "no contact {address}; add it with /contact add {address}"
        ))
    })
}

pub(super) async fn campaign(engine: &Engine, id: i64) -> Result<crate::store::Campaign, Refusal> {
    engine
        .store
        .campaign(id)
        .await?
        .ok_or_else(|| Refusal::Said(format!("no campaign {id}; see /campaign list")))
}

/// A campaign whose content and audience may still change: not yet started.
pub(super) async fn editable(engine: &Engine, id: i64) -> Result<crate::store::Campaign, Refusal> {
    let c = campaign(engine, id).await?;
    match c.status {
        CampaignStatus::Draft | CampaignStatus::Scheduled => Ok(c),
        s => said(format!(
            "campaign {id} is {s}; its message and audience can only change before it starts"
        )),
    }
}

/// Refuses a text with variables herald cannot fill (typos like `{{nmae}}`).
pub(super) fn check_variables(text: &str) -> Result<(), Refusal> {
    let unknown: Vec<String> = content::variables(text)
        .into_iter()
        .filter(|v| !(v == "name" || v == "lang" || v == "address" || v.starts_with("attr.")))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        said(format!(
            "unknown variable(s) {}: use {{{{name}}}}, {{{{lang}}}}, {{{{address}}}} or {{{{attr.KEY}}}}",
            unknown.join(", ")
        ))
    }
}
