//! The documentation in `commands/*.md` cannot drift from the parser: every example parses, every
//! kind of command has an example, and `/help` lists every command group.

use std::collections::BTreeSet;

use herald::commands::help::{command_list, examples, help, usage_of};
use herald::commands::{
    parse, CampaignCommand, Command, ConsentCommand, ContactCommand, DripCommand, LabelCommand,
    TemplateCommand, TriggerCommand,
};

/// Declares every kind of command once: the top-level `Command` variants, then each group's
/// variants. `kind` matches exhaustively, so a new variant does not compile until it is listed
/// here, and then the test below demands an example for it.
macro_rules! command_kinds {
    (
        $($top:ident),* ;
        $($group:ident($group_enum:ident) { $($variant:ident),* $(,)? }),* $(,)?
    ) => {
        const ALL_KINDS: &[&str] = &[
            $(stringify!($top),)*
            $($(concat!(stringify!($group), stringify!($variant)),)*)*
        ];

        fn kind(command: &Command) -> &'static str {
            match command {
                $(Command::$top { .. } => stringify!($top),)*
                $($(
                    Command::$group($group_enum::$variant { .. }) => {
                        concat!(stringify!($group), stringify!($variant))
                    }
                )*)*
            }
        }
    };
}

command_kinds!(
    Help, On, Status, Account;
    Contact(ContactCommand) { Add, Show, Import },
    Label(LabelCommand) { Add, Remove },
    Consent(ConsentCommand) { OptIn, OptOut },
    Template(TemplateCommand) { Add, List, Sync },
    Campaign(CampaignCommand) {
        New, Audience, Text, Variant, Template, Pace, Schedule, Repeat, Preview, Test, Send,
        Pause, Resume, Cancel, List, Show, Report, Retry, Choices, Media,
        NoChoices,
    },
    Trigger(TriggerCommand) { Add, List, Remove },
    Drip(DripCommand) { New, Step, Enroll, StopOnReply, Show },
);

/// What admins type first; `/help` must mention each.
const TOP_LEVEL_COMMANDS: [&str; 12] = [
    "help", "contact", "label", "optin", "optout", "template", "account", "campaign", "trigger",
    "drip", "on", "status",
];

fn parsed_examples() -> Vec<(String, String, Command)> {
    let mut failures = Vec::new();
    let mut parsed = Vec::new();
    for (file, example) in examples() {
        match parse(&example) {
            Ok(command) => parsed.push((file, example, command)),
            Err(e) => failures.push(format!("{file}: {example:?}\n    -> {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "documented examples that do not parse:\n{}",
        failures.join("\n")
    );
    parsed
}

#[test]
fn every_documented_example_parses() {
    let parsed = parsed_examples();
    assert!(parsed.len() >= ALL_KINDS.len());
}

#[test]
fn every_kind_of_command_has_a_documented_example() {
    let documented: BTreeSet<&str> = parsed_examples().iter().map(|(_, _, c)| kind(c)).collect();
    let missing: Vec<&str> = ALL_KINDS
        .iter()
        .copied()
        .filter(|k| !documented.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "no example in commands/*.md for: {missing:?}"
    );
}

#[test]
fn examples_come_from_every_command_file() {
    let files: BTreeSet<String> = examples().into_iter().map(|(file, _)| file).collect();
    for group in [
        "help", "contact", "label", "consent", "template", "campaign", "trigger",
    ] {
        assert!(
            files.contains(&format!("commands/{group}.md")),
            "no examples read from commands/{group}.md"
        );
    }
}

#[test]
fn help_lists_every_command_group() {
    let text = help(None);
    for command in TOP_LEVEL_COMMANDS {
        assert!(
            text.contains(&format!("\n/{command}")) || text.contains(&format!("\n/{command} ")),
            "/help does not mention /{command}:\n{text}"
        );
    }
    let menu: Vec<String> = command_list().into_iter().map(|(c, _)| c).collect();
    assert_eq!(menu, TOP_LEVEL_COMMANDS);
}

#[test]
fn help_for_each_group_shows_its_examples() {
    for (group, example) in [
        ("campaign", "/campaign send 3"),
        ("contact", "/contact show +15550001"),
        ("consent", "/optout +15550001"),
        ("trigger", "/trigger add pizza campaign 3"),
    ] {
        let text = help(Some(group));
        assert!(
            text.contains(example),
            "/help {group} lacks {example:?}:\n{text}"
        );
    }
}

#[test]
fn parse_errors_quote_the_documented_usage() {
    let usage = usage_of("campaign pace").expect("campaign pace is documented");
    let error = parse("/campaign pace 3 rate=fast").expect_err("rate must be a number");
    assert!(error.to_string().ends_with(&format!("Usage: {usage}")));
}

#[test]
fn every_command_file_is_built_into_help() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/commands");
    let documented: BTreeSet<String> = examples().into_iter().map(|(file, _)| file).collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".md") && name != "README.md" {
            assert!(
                documented.contains(&format!("commands/{name}")),
                "commands/{name} is not embedded in src/commands/help.rs"
            );
        }
    }
}
