//! The Business account's templates as Meta lists them: `GET {api_url}/{waba-id}/message_templates`,
//! page after page through `paging.next`, turned into [`TemplateSpec`]s.
//!
//! Reading is lenient like the webhooks: a template whose description does not fit is logged and
//! left out, not the whole sync. Only an answer that is not a page at all fails the sync, and then
//! the store keeps what it had.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use crate::channels::{CatalogError, TemplateCatalog};
use crate::domain::template::{
    Button, ButtonKind, Header, HeaderKind, ParameterFormat, TemplateSpec, TemplateStatus,
};

use super::errors;

/// Meta's largest page.
const PAGE_SIZE: u32 = 100;
/// A Business account has at most a few thousand templates; past this many pages Meta's paging
/// is going round in a circle.
const MAX_PAGES: usize = 200;
/// What the sync reads of each template.
const FIELDS: &str = "name,language,status,category,parameter_format,components";

/// Reads the templates of one Business account.
pub struct TemplateClient {
    http: reqwest::Client,
    first_page: reqwest::Url,
    authorization: reqwest::header::HeaderValue,
}

impl fmt::Debug for TemplateClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateClient")
            .field("first_page", &self.first_page.as_str())
            .finish_non_exhaustive()
    }
}

impl TemplateClient {
    pub fn new(
        api_url: &str,
        account_id: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<TemplateClient, super::ClientBuildError> {
        use super::ClientBuildError::Config;
        let account_id = account_id.trim();
        if account_id.is_empty() || !account_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(Config("the Business account id is a number"));
        }
        let mut first_page = format!(
            "{}/{account_id}/message_templates",
            api_url.trim().trim_end_matches('/')
        )
        .parse::<reqwest::Url>()
        .map_err(|_| Config("api_url is not a valid URL"))?;
        first_page
            .query_pairs_mut()
            .append_pair("limit", &PAGE_SIZE.to_string())
            .append_pair("fields", FIELDS);
        let mut authorization = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Config("the token has characters a header cannot carry"))?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(TemplateClient {
            http,
            first_page,
            authorization,
        })
    }

    async fn page(&self, url: reqwest::Url) -> Result<Page, CatalogError> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(|e| {
                CatalogError(if e.is_timeout() {
                    "Meta did not answer in time".to_string()
                } else {
                    format!("could not reach Meta: {}", crate::error_chain(&e))
                })
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CatalogError(format!("Meta's answer was cut: {e}")))?;
        if !status.is_success() {
            let error = errors::classify(status.as_u16(), &text, None);
            return Err(CatalogError(format!(
                "Meta answered {}: {} (code {})",
                status.as_u16(),
                error.reason,
                error.code
            )));
        }
        serde_json::from_str::<Page>(&text)
            .map_err(|e| CatalogError(format!("Meta's template list is unreadable: {e}")))
    }

    /// `paging.next`, followed only on the host the first page came from: the bearer token
    /// goes along, and must not be handed to whatever host a page names.
    fn next_page(&self, next: Option<&str>) -> Result<Option<reqwest::Url>, CatalogError> {
        let Some(next) = next.filter(|n| !n.trim().is_empty()) else {
            return Ok(None);
        };
        let url = next
            .parse::<reqwest::Url>()
            .map_err(|_| CatalogError(format!("Meta's next page is not a URL: {next:?}")))?;
        if url.origin() != self.first_page.origin() {
            return Err(CatalogError(format!(
                "Meta's next page is on another host ({}); not followed",
                url.host_str().unwrap_or("?")
            )));
        }
        Ok(Some(url))
    }
}

#[async_trait]
impl TemplateCatalog for TemplateClient {
    #[tracing::instrument(skip_all)]
    async fn templates(&self) -> Result<Vec<TemplateSpec>, CatalogError> {
        let mut specs = Vec::new();
        let mut url = Some(self.first_page.clone());
        let mut pages = 0;
        while let Some(page_url) = url {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(CatalogError(format!(
                    "Meta's template list goes past {MAX_PAGES} pages"
                )));
            }
            let page = self.page(page_url).await?;
            specs.extend(page.data.iter().filter_map(spec_of));
            url = self.next_page(page.paging.as_ref().and_then(|p| p.next.as_deref()))?;
        }
        tracing::info!(templates = specs.len(), pages, "templates read from Meta");
        Ok(specs)
    }
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WaTemplate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    parameter_format: Option<String>,
    #[serde(default)]
    components: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct WaComponent {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    buttons: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct WaButton {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// One template of a page; `None` (logged) when it lacks a name or language.
pub fn spec_of(raw: &Value) -> Option<TemplateSpec> {
    let t: WaTemplate = match serde_json::from_value(raw.clone()) {
        Ok(t) => t,
        Err(error) => {
            tracing::warn!(%error, "skipping a template of unexpected shape");
            return None;
        }
    };
    let (Some(name), Some(lang)) = (
        t.name.filter(|n| !n.trim().is_empty()),
        t.language.filter(|l| !l.trim().is_empty()),
    ) else {
        tracing::warn!("skipping a template without name or language");
        return None;
    };
    let mut spec = TemplateSpec {
        name,
        lang,
        category: t.category.unwrap_or_default().to_ascii_lowercase(),
        status: TemplateStatus::parse(t.status.as_deref().unwrap_or("PENDING")),
        format: ParameterFormat::parse(t.parameter_format.as_deref().unwrap_or("POSITIONAL")),
        header: None,
        body: String::new(),
        footer: None,
        buttons: Vec::new(),
    };
    for raw in &t.components {
        let Ok(c) = serde_json::from_value::<WaComponent>(raw.clone()) else {
            tracing::warn!(template = %spec.name, "skipping a template component of unexpected shape");
            continue;
        };
        match c.kind.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("HEADER") => {
                spec.header = c
                    .format
                    .as_deref()
                    .and_then(HeaderKind::parse)
                    .map(|kind| Header { kind, text: c.text });
            }
            Some("BODY") => spec.body = c.text.unwrap_or_default(),
            Some("FOOTER") => spec.footer = c.text,
            Some("BUTTONS") => {
                spec.buttons = c
                    .buttons
                    .iter()
                    .filter_map(|b| serde_json::from_value::<WaButton>(b.clone()).ok())
                    .map(|b| Button {
                        kind: ButtonKind::parse(b.kind.as_deref().unwrap_or_default()),
                        text: b.text.unwrap_or_default(),
                        url: b.url,
                    })
                    .collect();
            }
            _ => {}
        }
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_template_reads_its_components_and_ignores_what_it_does_not_know() {
        let raw = json!({
            "name": "spring_sale", "language": "en_US", "status": "APPROVED",
            "category": "MARKETING", "parameter_format": "POSITIONAL", "id": "1",
            "sub_category": "CUSTOM",
            "components": [
                {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["h"]}},
                {"type": "BODY", "text": "Hi {{1}}, {{2}} off"},
                {"type": "FOOTER", "text": "Reply STOP to opt out"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Yes"},
                    {"type": "URL", "text": "Shop", "url": "https://shop.example/{{1}}"},
                    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550100"},
                    {"type": "COPY_CODE", "example": "X"}
                ]},
                "not a component"
            ]
        });
        let spec = spec_of(&raw).unwrap();
        assert_eq!(spec.category, "marketing");
        assert_eq!(spec.header.as_ref().unwrap().kind, HeaderKind::Image);
        assert_eq!(spec.body_params(), ["1", "2"]);
        assert_eq!(spec.buttons.len(), 4);
        assert_eq!(spec.url_buttons(), [1]);
        assert!(spec_of(&json!({"language": "en"})).is_none());
    }
}
