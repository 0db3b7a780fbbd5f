//! `/help` text, usage lines and examples, all read from the Markdown files in the top-level
//! `commands/` folder (embedded at build time; the convention is in `commands/README.md`).

use std::sync::LazyLock;

use super::parse::{Args, ParseError};
use super::Command;

/// In the order `/help` lists them. Paths are as shown to a reader of the repository.
const SOURCES: [(&str, &str); 11] = [
    ("commands/help.md", include_str!("../../commands/help.md")),
    (
        "commands/contact.md",
        include_str!("../../commands/contact.md"),
    ),
    ("commands/label.md", include_str!("../../commands/label.md")),
    (
        "commands/consent.md",
        include_str!("../../commands/consent.md"),
    ),
    (
        "commands/template.md",
        include_str!("../../commands/template.md"),
    ),
    (
        "commands/account.md",
        include_str!("../../commands/account.md"),
    ),
    (
        "commands/campaign.md",
        include_str!("../../commands/campaign.md"),
    ),
    (
        "commands/trigger.md",
        include_str!("../../commands/trigger.md"),
    ),
    ("commands/drip.md", include_str!("../../commands/drip.md")),
    ("commands/on.md", include_str!("../../commands/on.md")),
    (
        "commands/status.md",
        include_str!("../../commands/status.md"),
    ),
];

/// Telegram and WhatsApp both cut text messages at 4096 characters.
pub(super) fn parse_command(args: &mut Args) -> Result<Command, ParseError> {
    let mut words = Vec::new();
    while let Some(word) = args.word()? {
        words.push(word);
    }
    let topic = words
        .join(" ")
        .trim_start_matches('/')
        .trim()
        .to_lowercase();
    Ok(Command::Help {
        topic: (!topic.is_empty()).then_some(topic),
    })
}

#[cfg(test)]
const CHAT_MESSAGE_LIMIT: usize = 4096;

#[derive(Debug)]
struct Group {
    file: &'static str,
    /// The file stem: `campaign`, `consent`.
    key: String,
    title: String,
    paragraphs: Vec<String>,
    usage: Option<String>,
    sections: Vec<Section>,
}

#[derive(Debug)]
struct Section {
    /// Normalised command words without the slash: `campaign send`, `optin`.
    words: String,
    usage: Option<String>,
    paragraphs: Vec<String>,
    examples: Vec<String>,
}

static DOCS: LazyLock<Vec<Group>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(file, text)| read_group(file, text))
        .collect()
});

/// `/help` (no topic), `/help campaign` (a group) or `/help campaign send` (one command).
pub fn help(topic: Option<&str>) -> String {
    let topic = topic.map(normalise).unwrap_or_default();
    if topic.is_empty() {
        return overview();
    }
    for group in DOCS.iter() {
        if let Some(section) = group.sections.iter().find(|s| s.words == topic) {
            return render_section(section, true);
        }
    }
    if let Some(group) = DOCS.iter().find(|g| g.key == topic) {
        return render_group(group);
    }
    let groups: Vec<&str> = DOCS.iter().map(|g| g.key.as_str()).collect();
    format!(
        "No help for {topic:?}. Try /help or /help <group>, with a group one of: {}.",
        groups.join(", ")
    )
}

/// Every documented example as `(source file, example)`; multi-line examples keep their newlines.
pub fn examples() -> Vec<(String, String)> {
    DOCS.iter()
        .flat_map(|g| {
            g.sections
                .iter()
                .flat_map(|s| s.examples.iter().map(|e| (g.file.to_string(), e.clone())))
        })
        .collect()
}

/// The usage line of a command (`"campaign send"`) or of a group (`"campaign"`), as documented.
pub fn usage_of(command_words: &str) -> Option<String> {
    let words = normalise(command_words);
    DOCS.iter()
        .flat_map(|g| g.sections.iter())
        .find(|s| s.words == words)
        .and_then(|s| s.usage.clone())
        .or_else(|| {
            DOCS.iter()
                .find(|g| g.key == words)
                .and_then(|g| g.usage.clone())
        })
}

/// One `(command, description)` per top-level command word, for Telegram's `setMyCommands`.
///
/// Usually that is one per group; a group holding several top-level commands (`consent`:
/// `/optin`, `/optout`) gives one entry each, because Telegram's menu lists what can be typed.
pub fn command_list() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for group in DOCS.iter() {
        let mut tops: Vec<&str> = Vec::new();
        for section in &group.sections {
            let top = section.words.split(' ').next().unwrap_or_default();
            if !top.is_empty() && !tops.contains(&top) {
                tops.push(top);
            }
        }
        for top in &tops {
            let description = if tops.len() == 1 {
                summary(&group.paragraphs)
            } else {
                group
                    .sections
                    .iter()
                    .find(|s| s.words.split(' ').next() == Some(top))
                    .map(|s| summary(&s.paragraphs))
                    .unwrap_or_default()
            };
            out.push((top.to_string(), description));
        }
    }
    out
}

/// Lowercase, no leading slash, single spaces: what admins type and what headings say compare equal.
fn normalise(words: &str) -> String {
    words
        .trim()
        .trim_start_matches('/')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn read_group(file: &'static str, text: &str) -> Group {
    let key = file
        .trim_start_matches("commands/")
        .trim_end_matches(".md")
        .to_string();
    let mut group = Group {
        file,
        key,
        title: String::new(),
        paragraphs: Vec::new(),
        usage: None,
        sections: Vec::new(),
    };
    // A paragraph's lines are gathered here until a blank line (or anything else) ends it.
    let mut paragraph: Vec<&str> = Vec::new();
    let mut expect_examples = false;
    let mut in_fence = false;
    let mut fence_holds_examples = false;

    for line in text.lines() {
        let trimmed = line.trim();
        if in_fence {
            if trimmed.starts_with("```") {
                in_fence = false;
            } else if fence_holds_examples {
                if let Some(section) = group.sections.last_mut() {
                    add_example_line(&mut section.examples, line);
                }
            }
            continue;
        }
        if trimmed.starts_with("```") {
            flush(&mut paragraph, &mut group);
            in_fence = true;
            fence_holds_examples = expect_examples;
            expect_examples = false;
            continue;
        }
        if trimmed.is_empty() {
            flush(&mut paragraph, &mut group);
            continue;
        }
        expect_examples = false;
        if let Some(heading) = trimmed.strip_prefix("## ") {
            flush(&mut paragraph, &mut group);
            group.sections.push(Section {
                words: normalise(heading),
                usage: None,
                paragraphs: Vec::new(),
                examples: Vec::new(),
            });
        } else if let Some(title) = trimmed.strip_prefix("# ") {
            flush(&mut paragraph, &mut group);
            group.title = title.trim().to_string();
        } else if let Some(usage) = trimmed.strip_prefix("Usage: ") {
            flush(&mut paragraph, &mut group);
            let usage = Some(usage.trim().to_string());
            match group.sections.last_mut() {
                Some(section) => section.usage = usage,
                None => group.usage = usage,
            }
        } else if trimmed == "Examples:" {
            flush(&mut paragraph, &mut group);
            expect_examples = true;
        } else {
            paragraph.push(trimmed);
        }
    }
    flush(&mut paragraph, &mut group);
    for section in &mut group.sections {
        for example in &mut section.examples {
            // Blank lines between examples attach to the one before; they are not part of it.
            let kept = example.trim_end().len();
            example.truncate(kept);
        }
    }
    group
}

/// A line starting `/` begins an example; any other line continues the last one (pasted CSV,
/// multi-line messages).
fn add_example_line(examples: &mut Vec<String>, line: &str) {
    match examples.last_mut() {
        Some(last) if !line.starts_with('/') => {
            last.push('\n');
            last.push_str(line);
        }
        _ if line.trim().is_empty() => {}
        _ => examples.push(line.to_string()),
    }
}

fn flush(paragraph: &mut Vec<&str>, group: &mut Group) {
    if paragraph.is_empty() {
        return;
    }
    let text = paragraph.join(" ");
    paragraph.clear();
    match group.sections.last_mut() {
        Some(section) => section.paragraphs.push(text),
        None => group.paragraphs.push(text),
    }
}

/// The first sentence of the first paragraph, as chat text.
fn summary(paragraphs: &[String]) -> String {
    let first = paragraphs.first().map(String::as_str).unwrap_or_default();
    let sentence = match first.find(". ") {
        Some(end) => &first[..=end],
        None => first,
    };
    plain(sentence)
}

/// Markdown backticks mean nothing in a chat message.
fn plain(text: &str) -> String {
    text.replace('`', "")
}

fn section_usage(section: &Section) -> String {
    section
        .usage
        .clone()
        .unwrap_or_else(|| format!("/{}", section.words))
}

fn overview() -> String {
    // Usage lines only, grouped: with every command listed, summaries would pass the 4096
    // characters a chat message may have. `/help <group>` has them.
    let mut out = String::from(
        "Admin commands (send /help <group> or /help <command> for details and examples):\n",
    );
    for group in DOCS.iter() {
        out.push_str(&format!("\n{} (/help {}):\n", group.title, group.key));
        for section in &group.sections {
            out.push_str(&section_usage(section));
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

fn render_group(group: &Group) -> String {
    let mut out = format!("{}: {}\n", group.title, plain(&group.paragraphs.join(" ")));
    for section in &group.sections {
        out.push('\n');
        out.push_str(&render_section(section, false));
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// `full` shows the whole description and every example; a group listing shows only each
/// command's summary and first example, so a large group (`/help campaign`) stays one chat
/// message.
fn render_section(section: &Section, full: bool) -> String {
    let mut out = section_usage(section);
    out.push('\n');
    if full {
        for paragraph in &section.paragraphs {
            out.push_str(&plain(paragraph));
            out.push('\n');
        }
    } else {
        out.push_str(&summary(&section.paragraphs));
        out.push('\n');
    }
    if !section.examples.is_empty() {
        out.push_str("Examples:\n");
        let shown = if full { section.examples.len() } else { 1 };
        for example in section.examples.iter().take(shown) {
            out.push_str("  ");
            out.push_str(&example.replace('\n', "\n    "));
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_title_a_summary_and_commands() {
        for group in DOCS.iter() {
            assert!(!group.title.is_empty(), "{} has no # title", group.file);
            assert!(
                !group.paragraphs.is_empty(),
                "{} has no summary",
                group.file
            );
            assert!(
                !group.sections.is_empty(),
                "{} has no ## /command",
                group.file
            );
        }
    }

    #[test]
    fn every_command_has_usage_description_and_examples_of_itself() {
        for group in DOCS.iter() {
            for s in &group.sections {
                let usage = s
                    .usage
                    .as_deref()
                    .unwrap_or_else(|| panic!("{}: /{} has no Usage: line", group.file, s.words));
                assert_eq!(
                    normalise(usage)
                        .split(' ')
                        .take(s.words.split(' ').count())
                        .collect::<Vec<_>>()
                        .join(" "),
                    s.words,
                    "{}: usage {usage:?} does not start with /{}",
                    group.file,
                    s.words
                );
                assert!(
                    !s.paragraphs.is_empty(),
                    "{}: /{} has no description",
                    group.file,
                    s.words
                );
                assert!(
                    !s.examples.is_empty(),
                    "{}: /{} has no examples",
                    group.file,
                    s.words
                );
                for example in &s.examples {
                    let first_line = example.lines().next().unwrap_or_default();
                    assert!(
                        normalise(first_line).starts_with(&s.words),
                        "{}: example {example:?} is not a /{} example",
                        group.file,
                        s.words
                    );
                }
            }
        }
    }

    #[test]
    fn group_usage_starts_with_the_command_word() {
        for group in DOCS.iter() {
            if let Some(usage) = &group.usage {
                let top = group.sections[0]
                    .words
                    .split(' ')
                    .next()
                    .unwrap_or_default();
                assert!(normalise(usage).starts_with(top), "{}: {usage}", group.file);
            }
        }
    }

    #[test]
    fn usage_of_finds_commands_and_groups() {
        assert_eq!(
            usage_of("campaign send").as_deref(),
            Some("/campaign send <id>")
        );
        assert_eq!(
            usage_of("/Campaign   SEND").as_deref(),
            Some("/campaign send <id>")
        );
        assert_eq!(usage_of("optin").as_deref(), Some("/optin <address>"));
        assert!(usage_of("campaign")
            .unwrap_or_default()
            .starts_with("/campaign new|"));
        assert_eq!(usage_of("campaign launch"), None);
        assert_eq!(usage_of("consent"), None);
    }

    #[test]
    fn help_without_topic_lists_every_usage_by_group() {
        let text = help(None);
        for section in DOCS.iter().flat_map(|g| g.sections.iter()) {
            assert!(text.contains(&section_usage(section)), "{}", section.words);
        }
        for group in DOCS.iter() {
            assert!(text.contains(&format!("(/help {})", group.key)));
        }
        assert!(text.contains("\n/campaign send <id>\n"));
        assert!(!text.contains('`'));
        assert_eq!(help(Some("  ")), text);
    }

    #[test]
    fn help_for_a_group_shows_its_commands_and_examples() {
        let text = help(Some("campaign"));
        assert!(text.starts_with("Campaigns: "));
        assert!(text.contains("/campaign pace <id> [rate=<n>]"));
        assert!(text.contains("  /campaign pace 3 rate=5\n"));
        assert!(!text.contains("/contact add"));
        let consent = help(Some("/consent"));
        assert!(consent.contains("/optin <address>") && consent.contains("/optout <address>"));
    }

    #[test]
    fn help_for_a_command_shows_only_it() {
        let text = help(Some("campaign send"));
        assert!(text.starts_with("/campaign send <id>\nStarts sending"));
        assert!(text.contains("Examples:\n  /campaign send 3"));
        assert!(!text.contains("/campaign pause"));
        assert_eq!(help(Some("CAMPAIGN Send")), text);
        assert!(help(Some("optout")).starts_with("/optout <address>"));
    }

    #[test]
    fn multi_line_examples_stay_whole_and_indented() {
        let text = help(Some("contact import"));
        assert!(text.contains("  /contact import\n    address,name,lang,labels,consent\n"));
        assert!(examples()
            .iter()
            .any(|(file, e)| file == "commands/contact.md"
                && e.starts_with("/contact import\naddress,name")
                && e.ends_with("opted_in")));
    }

    #[test]
    fn unknown_topic_is_one_line_naming_the_groups() {
        let text = help(Some("launch rockets"));
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("\"launch rockets\""));
        for group in [
            "help", "contact", "label", "consent", "template", "campaign", "trigger",
        ] {
            assert!(text.contains(group), "{text}");
        }
    }

    #[test]
    fn every_help_text_fits_one_chat_message() {
        let mut topics: Vec<String> = DOCS.iter().map(|g| g.key.clone()).collect();
        topics.extend(
            DOCS.iter()
                .flat_map(|g| g.sections.iter().map(|s| s.words.clone())),
        );
        assert!(help(None).chars().count() <= CHAT_MESSAGE_LIMIT);
        for topic in topics {
            let n = help(Some(&topic)).chars().count();
            assert!(n <= CHAT_MESSAGE_LIMIT, "/help {topic} is {n} characters");
        }
    }

    #[test]
    fn command_list_suits_telegram_set_my_commands() {
        let list = command_list();
        let names: Vec<&str> = list.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "help", "contact", "label", "optin", "optout", "template", "account", "campaign",
                "trigger", "drip", "on", "status"
            ]
        );
        for (command, description) in &list {
            // Bot API: command 1-32 of [a-z0-9_], description 1-256 characters.
            assert!(command.len() <= 32);
            assert!(command
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            let n = description.chars().count();
            assert!((1..=256).contains(&n), "{command}: {description:?}");
        }
    }
}
