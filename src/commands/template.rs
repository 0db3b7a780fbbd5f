//! `/template add|list|sync`: WhatsApp templates, declared by an admin or synced from the
//! Business account: the parser, the handler and their tests. Grammar and examples:
//! `commands/template.md`.

use super::parse::{shorten, Args, ParseError, MAX_TEMPLATE_BODY};
use super::reply::{Refusal, Reply};
use crate::domain::content;
use crate::domain::Lang;
use crate::engine::Engine;

#[derive(Debug, Clone, PartialEq)]
pub enum TemplateCommand {
    Add {
        name: String,
        lang: Lang,
        category: TemplateCategory,
        body: String,
    },
    List,
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

impl TemplateCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateCategory::Marketing => "marketing",
            TemplateCategory::Utility => "utility",
            TemplateCategory::Authentication => "authentication",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "marketing" => Some(TemplateCategory::Marketing),
            "utility" => Some(TemplateCategory::Utility),
            "authentication" => Some(TemplateCategory::Authentication),
            _ => None,
        }
    }
}

pub(super) fn parse(args: &mut Args) -> Result<TemplateCommand, ParseError> {
    let sub = args.keyword("subcommand")?;
    match sub.as_str() {
        "add" => {
            let args = args.with_usage("template add");
            let name = args.require("template name")?;
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(args.err(format!(
                    "template name must be letters, digits and _, got {}",
                    shorten(&name)
                )));
            }
            let lang = args.lang()?;
            let category_word = args.require("category")?;
            let category = TemplateCategory::from_name(&category_word).ok_or_else(|| {
                args.err(format!(
                    "category must be marketing, utility or authentication, got {}",
                    shorten(&category_word)
                ))
            })?;
            let body = args.text_within("template body", MAX_TEMPLATE_BODY)?;
            check_placeholders(&body).map_err(|reason| args.err(reason))?;
            Ok(TemplateCommand::Add {
                name,
                lang,
                category,
                body,
            })
        }
        "list" => {
            args.with_usage("template list").end()?;
            Ok(TemplateCommand::List)
        }
        "sync" => {
            args.with_usage("template sync").end()?;
            Ok(TemplateCommand::Sync)
        }
        other => Err(args.err(format!("unknown subcommand {}", shorten(other)))),
    }
}

/// WhatsApp rejects a template whose parameters are not numbered `{{1}}..{{n}}` without gaps.
fn check_placeholders(body: &str) -> Result<(), String> {
    let mut numbers = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("template body has an unclosed {{".to_string());
        };
        let inner = after[..end].trim();
        match inner.parse::<u32>() {
            Ok(n) if n >= 1 => numbers.push(n),
            _ => {
                return Err(format!(
                    "template parameters are numbered {{{{1}}}}..{{{{n}}}}, got {}",
                    shorten(&format!("{{{{{inner}}}}}"))
                ))
            }
        }
        rest = &after[end + 2..];
    }
    numbers.sort_unstable();
    numbers.dedup();
    for (expected, n) in (1..).zip(&numbers) {
        if *n != expected {
            return Err(format!(
                "template parameters must run from {{{{1}}}} without gaps; {{{{{expected}}}}} is missing"
            ));
        }
    }
    Ok(())
}

pub(super) async fn apply(engine: &Engine, _admin: &str, command: TemplateCommand) -> Reply {
    let _now = engine.clock.now();
    let store = &engine.store;
    match command {
        TemplateCommand::Add {
            name,
            lang,
            category,
            body,
        } => {
            let params = content::template_param_count(&body)
                .map_err(|e| Refusal::Said(format!("template body: {e}")))?;
            let t = store
                .add_template(&name, &lang, category.as_str(), &body, params as i64)
                .await?;
            Ok(format!(
                "template {} ({}) saved: {}, {} parameter(s)",
                t.name, t.lang, t.category, t.params
            ))
        }
        TemplateCommand::List => {
            let templates = store.templates().await?;
            if templates.is_empty() {
                let hint = if engine.has_template_catalog() {
                    "/template sync reads them from Meta"
                } else {
                    "/template add <name> <lang> <category> <body>"
                };
                return Ok(format!("no templates yet: {hint}"));
            }
            Ok(templates
                .iter()
                .map(list_line)
                .collect::<Vec<_>>()
                .join("\n"))
        }
        TemplateCommand::Sync => {
            let diff = engine.sync_templates().await?;
            Ok(sync_reply(&diff))
        }
    }
}

/// One template in `/template list`: a synced one with its status, header kind, buttons and
/// parameter count; a declared one with its body.
fn list_line(t: &crate::store::Template) -> String {
    let Some(spec) = &t.spec else {
        return format!("{} {} [{}] {}", t.name, t.lang, t.category, t.body);
    };
    let header = spec.header.as_ref().map_or("none", |h| h.kind.as_str());
    let buttons = if spec.buttons.is_empty() {
        "none".to_string()
    } else {
        spec.buttons
            .iter()
            .map(|b| format!("{}:{}", b.kind.as_str(), b.text))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{} {} [{}] {} {}: header {header}; buttons {buttons}; {} parameter(s)",
        t.name,
        t.lang,
        t.category,
        t.status,
        spec.format.as_str(),
        spec.parameter_count()
    )
}

/// What a sync changed, one line per kind that is not empty.
fn sync_reply(diff: &crate::store::SyncDiff) -> String {
    let mut lines = vec![format!(
        "templates synced from Meta: {} added, {} changed, {} removed; {} stored",
        diff.added.len(),
        diff.changed.len(),
        diff.removed.len(),
        diff.total
    )];
    for (what, names) in [
        ("added", &diff.added),
        ("changed", &diff.changed),
        ("removed", &diff.removed),
    ] {
        if !names.is_empty() {
            lines.push(format!("{what}: {}", names.join(", ")));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::parse::test_support::*;

    group_ok!(Template, TemplateCommand);

    #[test]
    fn template_add_and_list() {
        assert_eq!(
            ok("/template add spring_sale en MARKETING Hi {{1}}, sale starts {{2}}."),
            TemplateCommand::Add {
                name: "spring_sale".into(),
                lang: "en".into(),
                category: TemplateCategory::Marketing,
                body: "Hi {{1}}, sale starts {{2}}.".into()
            }
        );
        let TemplateCommand::Add { category, body, .. } =
            ok("/template add code en authentication {{1}} is your code.\nDo not share it.")
        else {
            panic!("not a template add");
        };
        assert_eq!(category, TemplateCategory::Authentication);
        assert_eq!(body, "{{1}} is your code.\nDo not share it.");
        assert_eq!(ok("/template list"), TemplateCommand::List);
        assert_eq!(ok("/template sync"), TemplateCommand::Sync);
    }

    #[test]
    fn template_refusals() {
        let usage = "/template add <name> <lang> <marketing|utility|authentication>";
        refused_with_usage("/template add", usage);
        refused_with_usage("/template add promo en", usage);
        refused_with_usage("/template add promo en promo Hi", usage);
        refused_with_usage("/template add promo en utility", usage);
        refused_with_usage("/template add promo-1 en utility Hi", usage);
        refused_with_usage("/template add promo xx-toolong utility Hi", usage);
        refused_with_usage("/template add promo en utility Hi {{2}}", usage);
        refused_with_usage("/template add promo en utility Hi {{name}}", usage);
        refused_with_usage("/template add promo en utility Hi {{1", usage);
        refused_with_usage("/template list all", "/template list");
        refused_with_usage("/template sync now", "/template sync");
        refused_with_usage("/template remove x", "/template add|list|sync");
    }
}
