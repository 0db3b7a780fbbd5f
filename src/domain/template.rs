//! A WhatsApp template as Meta describes it (synced from the Business account), how a campaign's
//! mapping is checked against it, and the parts of a template message beyond its body parameters
//! (header, named parameters, buttons) that a channel puts on the wire.
//!
//! A declared template (`/template add`) has no [`TemplateSpec`]: it is a body with `{{1}}..{{n}}`
//! and nothing else, as before.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub use super::media::{MediaKind, MediaRef, MediaSource};

/// `{{1}}` or `{{first_name}}`: Meta's placeholders (no spaces, no dots).
static META_PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}").expect("placeholder regex is valid")
});

/// Where a template stands with Meta. Only [`TemplateStatus::Approved`] can be sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TemplateStatus {
    Approved,
    Pending,
    Rejected,
    Paused,
    Disabled,
    InAppeal,
    PendingDeletion,
    Deleted,
    Archived,
    LimitExceeded,
    /// A status Meta added after this release; kept as Meta wrote it, never sendable.
    Other(String),
}

impl TemplateStatus {
    /// Meta's word (`APPROVED`, `PAUSED`, ...), in any case.
    pub fn parse(word: &str) -> TemplateStatus {
        match word.trim().to_ascii_uppercase().as_str() {
            "APPROVED" => TemplateStatus::Approved,
            "PENDING" => TemplateStatus::Pending,
            "REJECTED" => TemplateStatus::Rejected,
            "PAUSED" => TemplateStatus::Paused,
            "DISABLED" => TemplateStatus::Disabled,
            "IN_APPEAL" => TemplateStatus::InAppeal,
            "PENDING_DELETION" => TemplateStatus::PendingDeletion,
            "DELETED" => TemplateStatus::Deleted,
            "ARCHIVED" => TemplateStatus::Archived,
            "LIMIT_EXCEEDED" => TemplateStatus::LimitExceeded,
            other => TemplateStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TemplateStatus::Approved => "APPROVED",
            TemplateStatus::Pending => "PENDING",
            TemplateStatus::Rejected => "REJECTED",
            TemplateStatus::Paused => "PAUSED",
            TemplateStatus::Disabled => "DISABLED",
            TemplateStatus::InAppeal => "IN_APPEAL",
            TemplateStatus::PendingDeletion => "PENDING_DELETION",
            TemplateStatus::Deleted => "DELETED",
            TemplateStatus::Archived => "ARCHIVED",
            TemplateStatus::LimitExceeded => "LIMIT_EXCEEDED",
            TemplateStatus::Other(word) => word,
        }
    }

    pub fn is_sendable(&self) -> bool {
        *self == TemplateStatus::Approved
    }

    /// A template that was sendable and becomes this stops the campaigns sending it: Meta
    /// refuses every further message (132001/132015/132016), so going on only piles up errors.
    pub fn stops_campaigns(&self) -> bool {
        matches!(
            self,
            TemplateStatus::Paused
                | TemplateStatus::Disabled
                | TemplateStatus::Rejected
                | TemplateStatus::PendingDeletion
                | TemplateStatus::Deleted
                | TemplateStatus::Archived
        )
    }
}

impl std::fmt::Display for TemplateStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `parameter_format`: `{{1}}..{{n}}` or `{{name}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParameterFormat {
    Positional,
    Named,
}

impl ParameterFormat {
    pub fn parse(word: &str) -> ParameterFormat {
        if word.trim().eq_ignore_ascii_case("NAMED") {
            ParameterFormat::Named
        } else {
            ParameterFormat::Positional
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParameterFormat::Positional => "POSITIONAL",
            ParameterFormat::Named => "NAMED",
        }
    }
}

/// What a template's header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderKind {
    Text,
    Image,
    Video,
    Document,
    Location,
}

impl HeaderKind {
    pub fn parse(word: &str) -> Option<HeaderKind> {
        match word.trim().to_ascii_uppercase().as_str() {
            "TEXT" => Some(HeaderKind::Text),
            "IMAGE" => Some(HeaderKind::Image),
            "VIDEO" => Some(HeaderKind::Video),
            "DOCUMENT" => Some(HeaderKind::Document),
            "LOCATION" => Some(HeaderKind::Location),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HeaderKind::Text => "TEXT",
            HeaderKind::Image => "IMAGE",
            HeaderKind::Video => "VIDEO",
            HeaderKind::Document => "DOCUMENT",
            HeaderKind::Location => "LOCATION",
        }
    }

    /// The media kind a header of this kind carries, if it carries media.
    pub fn media(self) -> Option<MediaKind> {
        match self {
            HeaderKind::Image => Some(MediaKind::Image),
            HeaderKind::Video => Some(MediaKind::Video),
            HeaderKind::Document => Some(MediaKind::Document),
            HeaderKind::Text | HeaderKind::Location => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub kind: HeaderKind,
    /// The text of a TEXT header, with its placeholder if it has one.
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ButtonKind {
    QuickReply,
    Url,
    PhoneNumber,
    /// COPY_CODE, OTP, FLOW, ...: shown in `/template list`, sent without parameters.
    Other(String),
}

impl ButtonKind {
    pub fn parse(word: &str) -> ButtonKind {
        match word.trim().to_ascii_uppercase().as_str() {
            "QUICK_REPLY" => ButtonKind::QuickReply,
            "URL" => ButtonKind::Url,
            "PHONE_NUMBER" => ButtonKind::PhoneNumber,
            other => ButtonKind::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ButtonKind::QuickReply => "QUICK_REPLY",
            ButtonKind::Url => "URL",
            ButtonKind::PhoneNumber => "PHONE_NUMBER",
            ButtonKind::Other(word) => word,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub kind: ButtonKind,
    pub text: String,
    /// A URL button's address; `{{1}}` at its end is the suffix filled per message.
    pub url: Option<String>,
}

impl Button {
    /// Whether this is a URL button whose address ends in a parameter.
    pub fn takes_suffix(&self) -> bool {
        self.kind == ButtonKind::Url
            && self
                .url
                .as_deref()
                .is_some_and(|u| META_PLACEHOLDER.is_match(u))
    }
}

/// A template as Meta holds it: everything `/template list` shows and a send needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub name: String,
    pub lang: String,
    /// Lower case: `marketing`, `utility`, `authentication`.
    pub category: String,
    pub status: TemplateStatus,
    pub format: ParameterFormat,
    pub header: Option<Header>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<Button>,
}

/// The placeholders of `text` in order of first appearance, each once.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for caps in META_PLACEHOLDER.captures_iter(text) {
        let name = caps[1].to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// What an admin typed to map a template (`<p1>|<p2> [header=<param>] [url=<param>]`): each
/// value is literal text, `{{name}}` or `{{attr.KEY}}`, rendered per contact at send time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Body parameters as typed: values in order (POSITIONAL) or `name=value` (NAMED).
    pub params: Vec<String>,
    pub header: Option<String>,
    pub url: Option<String>,
}

/// A mapping checked against its template: what a campaign stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Body values in the template's order.
    pub values: Vec<String>,
    /// For a NAMED template, the parameter name of each value; empty for POSITIONAL.
    pub names: Vec<String>,
    pub header: Option<String>,
    pub url: Option<String>,
}

impl TemplateSpec {
    /// Body parameters in the order Meta expects them: `1..n` for POSITIONAL (by number), the
    /// names in order of appearance for NAMED.
    pub fn body_params(&self) -> Vec<String> {
        let mut names = placeholders(&self.body);
        if self.format == ParameterFormat::Positional {
            names.sort_by_key(|n| n.parse::<u64>().unwrap_or(u64::MAX));
        }
        names
    }

    /// The placeholder of a TEXT header, if it has one.
    pub fn header_param(&self) -> Option<String> {
        let header = self.header.as_ref()?;
        if header.kind != HeaderKind::Text {
            return None;
        }
        placeholders(header.text.as_deref()?).into_iter().next()
    }

    /// The index (among all buttons) of each URL button that takes a suffix.
    pub fn url_buttons(&self) -> Vec<usize> {
        self.buttons
            .iter()
            .enumerate()
            .filter(|(_, b)| b.takes_suffix())
            .map(|(i, _)| i)
            .collect()
    }

    /// The media kind its header needs, if any.
    pub fn header_media(&self) -> Option<MediaKind> {
        self.header.as_ref()?.kind.media()
    }

    /// Every parameter a send fills: body, header, URL suffix.
    pub fn parameter_count(&self) -> usize {
        self.body_params().len()
            + usize::from(self.header_param().is_some())
            + self.url_buttons().len()
    }

    /// Checks `mapping` against the template and puts it in the template's order; the error
    /// names everything missing or extra at once.
    pub fn resolve(&self, mapping: &Mapping) -> Result<Resolved, String> {
        let mut problems: Vec<String> = Vec::new();
        let wanted = self.body_params();
        let mut resolved = Resolved::default();
        match self.format {
            ParameterFormat::Positional => {
                let given = mapping.params.len();
                if given < wanted.len() {
                    let missing: Vec<String> = wanted[given..]
                        .iter()
                        .map(|n| format!("{{{{{n}}}}}"))
                        .collect();
                    problems.push(format!("missing body {}", missing.join(", ")));
                } else if given > wanted.len() {
                    problems.push(format!(
                        "{} extra body parameter(s): the body takes {}",
                        given - wanted.len(),
                        wanted.len()
                    ));
                }
                resolved.values = mapping.params.clone();
            }
            ParameterFormat::Named => {
                let mut pairs: Vec<(String, String)> = Vec::new();
                for p in &mapping.params {
                    match p.split_once('=') {
                        Some((name, value)) if !name.trim().is_empty() => {
                            let name = name.trim().to_string();
                            if pairs.iter().any(|(n, _)| *n == name) {
                                problems.push(format!("{{{{{name}}}}} given twice"));
                            }
                            pairs.push((name, value.trim().to_string()));
                        }
                        _ => problems.push(format!(
                            "{p:?} is not name=value (the template's parameters are named)"
                        )),
                    }
                }
                let missing: Vec<String> = wanted
                    .iter()
                    .filter(|w| !pairs.iter().any(|(n, _)| n == *w))
                    .map(|n| format!("{{{{{n}}}}}"))
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!("missing body {}", missing.join(", ")));
                }
                let extra: Vec<String> = pairs
                    .iter()
                    .filter(|(n, _)| !wanted.contains(n))
                    .map(|(n, _)| format!("{{{{{n}}}}}"))
                    .collect();
                if !extra.is_empty() {
                    problems.push(format!("extra {} (not in the body)", extra.join(", ")));
                }
                for name in &wanted {
                    if let Some((_, value)) = pairs.iter().find(|(n, _)| n == name) {
                        resolved.names.push(name.clone());
                        resolved.values.push(value.clone());
                    }
                }
            }
        }
        match (self.header_param(), &mapping.header) {
            (Some(p), None) => {
                problems.push(format!("missing header= (the header has {{{{{p}}}}})"))
            }
            (None, Some(_)) => problems.push(
                match self.header.as_ref().filter(|h| h.kind.media().is_some()) {
                    Some(h) => format!(
                        "extra header=: the {} header takes the campaign's media",
                        h.kind.as_str()
                    ),
                    None => "extra header=: the template's header takes no parameter".to_string(),
                },
            ),
            _ => resolved.header = mapping.header.clone(),
        }
        match (self.url_buttons().len(), &mapping.url) {
            (0, Some(_)) => {
                problems.push("extra url=: no URL button of the template takes a suffix".into())
            }
            (1, None) => problems.push("missing url= (the URL button takes a suffix)".into()),
            (n, _) if n > 1 => problems.push(format!(
                "{n} URL buttons take a suffix; herald fills templates with at most one"
            )),
            _ => resolved.url = mapping.url.clone(),
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(format!(
                "template {} ({}) does not fit: {}",
                self.name,
                self.lang,
                problems.join("; ")
            ))
        }
    }

    /// The text a person sees, with the values filled in (for previews, the console and
    /// Telegram).
    pub fn render(&self, body: &[(String, String)], header: Option<&str>) -> String {
        let fill = |text: &str, values: &[(String, String)]| {
            META_PLACEHOLDER
                .replace_all(text, |caps: &regex::Captures| {
                    values
                        .iter()
                        .find(|(n, _)| *n == caps[1])
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| caps[0].to_string())
                })
                .into_owned()
        };
        let mut out = String::new();
        if let Some(h) = self.header.as_ref().and_then(|h| h.text.as_deref()) {
            let values: Vec<(String, String)> = match (self.header_param(), header) {
                (Some(p), Some(v)) => vec![(p, v.to_string())],
                _ => Vec::new(),
            };
            out.push_str(&fill(h, &values));
            out.push('\n');
        }
        out.push_str(&fill(&self.body, body));
        if let Some(footer) = &self.footer {
            out.push('\n');
            out.push_str(footer);
        }
        out
    }
}

/// The header parameter of one message: text, or media by link, uploaded id or file.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderParam {
    Text(String),
    Media(MediaRef),
}

/// A button's parameter in one message, by the button's index in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonParam {
    /// The payload that comes back when the quick reply is pressed.
    QuickReply { index: usize, payload: String },
    /// The suffix appended to a URL button's address.
    UrlSuffix { index: usize, text: String },
}

/// What a template message carries besides its positional body parameters. The default is a
/// declared template's message: body parameters only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateParts {
    /// For a NAMED template, the name of each body parameter (same order); empty otherwise.
    pub names: Vec<String>,
    pub header: Option<HeaderParam>,
    /// For a NAMED template, the name of the TEXT header's parameter.
    pub header_name: Option<String>,
    pub buttons: Vec<ButtonParam>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: ParameterFormat, body: &str) -> TemplateSpec {
        TemplateSpec {
            name: "t".into(),
            lang: "en".into(),
            category: "marketing".into(),
            status: TemplateStatus::Approved,
            format,
            header: None,
            body: body.into(),
            footer: None,
            buttons: Vec::new(),
        }
    }

    fn mapping(params: &[&str]) -> Mapping {
        Mapping {
            params: params.iter().map(|p| p.to_string()).collect(),
            ..Mapping::default()
        }
    }

    #[test]
    fn positional_parameters_are_counted_by_number() {
        let t = spec(ParameterFormat::Positional, "{{2}} then {{1}} and {{2}}");
        assert_eq!(t.body_params(), ["1", "2"]);
        assert!(t.resolve(&mapping(&["a", "b"])).is_ok());
        let err = t.resolve(&mapping(&["a"])).unwrap_err();
        assert!(err.contains("missing body {{2}}"), "{err}");
        let err = t.resolve(&mapping(&["a", "b", "c"])).unwrap_err();
        assert!(err.contains("1 extra body parameter"), "{err}");
    }

    #[test]
    fn named_parameters_name_what_is_missing_and_extra() {
        let t = spec(ParameterFormat::Named, "Hi {{first_name}}, order {{order}}");
        let ok = t
            .resolve(&mapping(&["order={{attr.order}}", "first_name={{name}}"]))
            .unwrap();
        assert_eq!(ok.names, ["first_name", "order"]);
        assert_eq!(ok.values, ["{{name}}", "{{attr.order}}"]);
        let err = t
            .resolve(&mapping(&["first_name=Ana", "coupon=X"]))
            .unwrap_err();
        assert!(err.contains("missing body {{order}}"), "{err}");
        assert!(err.contains("extra {{coupon}}"), "{err}");
        assert!(t.resolve(&mapping(&["Ana", "1"])).is_err());
    }

    #[test]
    fn header_and_url_parameters_are_checked() {
        let mut t = spec(ParameterFormat::Positional, "Hi {{1}}");
        t.header = Some(Header {
            kind: HeaderKind::Text,
            text: Some("Sale for {{1}}".into()),
        });
        t.buttons = vec![
            Button {
                kind: ButtonKind::QuickReply,
                text: "Yes".into(),
                url: None,
            },
            Button {
                kind: ButtonKind::Url,
                text: "Track".into(),
                url: Some("https://x.example/t/{{1}}".into()),
            },
        ];
        assert_eq!(t.url_buttons(), [1]);
        assert_eq!(t.parameter_count(), 3);
        let err = t.resolve(&mapping(&["a"])).unwrap_err();
        assert!(err.contains("missing header="), "{err}");
        assert!(err.contains("missing url="), "{err}");
        let m = Mapping {
            header: Some("Ana".into()),
            url: Some("{{attr.order}}".into()),
            ..mapping(&["a"])
        };
        assert!(t.resolve(&m).is_ok());
        t.header = Some(Header {
            kind: HeaderKind::Image,
            text: None,
        });
        let err = t.resolve(&m).unwrap_err();
        assert!(
            err.contains("IMAGE header takes the campaign's media"),
            "{err}"
        );
    }

    #[test]
    fn render_fills_header_body_and_footer() {
        let mut t = spec(ParameterFormat::Named, "Hi {{first_name}}");
        t.header = Some(Header {
            kind: HeaderKind::Text,
            text: Some("For {{who}}".into()),
        });
        t.footer = Some("Reply STOP to opt out".into());
        let text = t.render(&[("first_name".into(), "Ana".into())], Some("you"));
        assert_eq!(text, "For you\nHi Ana\nReply STOP to opt out");
    }

    #[test]
    fn statuses_read_meta_words() {
        assert_eq!(TemplateStatus::parse("approved"), TemplateStatus::Approved);
        assert!(TemplateStatus::parse("PAUSED").stops_campaigns());
        assert!(!TemplateStatus::parse("PENDING").stops_campaigns());
        assert_eq!(TemplateStatus::parse("NEW_THING").as_str(), "NEW_THING");
        assert!(!TemplateStatus::parse("NEW_THING").is_sendable());
    }
}
