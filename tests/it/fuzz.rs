//! Fuzzing on stable: property tests that feed the parsers which take input from outside (admin
//! commands, WhatsApp webhook bodies, CSV files, audience expressions) arbitrary and mutated
//! input. None may panic; each answers with a value or a one-line reason. CI runs a short
//! round; a long one is `PROPTEST_CASES=200000 cargo test --test it fuzz -- --test-threads 1`
//! (see README, Development).

use proptest::prelude::*;

use herald::channels::whatsapp::webhook::parse_webhook;
use herald::commands::parse;
use herald::domain::audience::parse_audience;
use herald::domain::csv_import::parse_contacts_csv;

/// Text that looks like an admin command more often than chance would make it.
fn command_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "/(campaign|contact|drip|trigger|template|label|on|optin|optout|help)\
         ( (new|add|send|pace|audience|text|variant|template|schedule|repeat|retry|report|step|enroll|[0-9]{1,20}|-?[0-9.e]{1,12}|[a-z]+=[-0-9.e]{0,8}|\"[^\"]{0,10}\"?|\\{\\{[a-z.]{0,8}\\}?\\}?|[|+,@/:]+|[\\PC]{1,6})){0,8}",
    ]
}

/// Real webhook bodies with one value swapped for something hostile.
fn webhook_body() -> impl Strategy<Value = Vec<u8>> {
    let samples: Vec<String> = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/whatsapp"
    ))
    .expect("fixtures")
    .filter_map(|e| e.ok())
    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
    .collect();
    let hostile = prop_oneof![
        Just("null".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("\"\"".to_string()),
        Just("\"99999999999999999999999\"".to_string()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (
            proptest::sample::select(samples),
            any::<prop::sample::Index>(),
            hostile
        )
            .prop_map(|(sample, at, value)| mutate_json(&sample, at, &value).into_bytes()),
    ]
}

/// Replaces the value after one `:` of `json` (picked by `at`) with `value`.
fn mutate_json(json: &str, at: prop::sample::Index, value: &str) -> String {
    let colons: Vec<usize> = json.match_indices(':').map(|(i, _)| i).collect();
    if colons.is_empty() {
        return json.to_string();
    }
    let start = colons[at.index(colons.len())] + 1;
    let rest = &json[start..];
    // The old value ends at the next `,` or `}` or `]` (close enough for scalars; for objects
    // the result may be malformed, which is a case worth trying too).
    let end = rest.find([',', '}', ']']).map_or(json.len(), |i| start + i);
    format!("{}{value}{}", &json[..start], &json[end..])
}

fn csv_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(address|phone|name|labels|lang|tz|optin|attr\\.[a-z]{1,5})(,(address|name|labels|optin|[a-z]{1,4})){0,4}\
         (\r?\n([+]?[0-9 ()-]{0,18}|tg:-?[0-9]{1,22}|\"[^\"]{0,8}|[a-z]{0,6})(,(\"[^\"\n]{0,8}\"?|[^,\n]{0,8})){0,5}){0,12}",
    ]
}

fn audience_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(((-?[a-zA-Z0-9_]{1,6}([+,][a-z0-9]{1,4}){0,3})|all|\\*|attr\\.[a-zA-Z]{1,5}=[^ ]{0,6}|lang=[a-zA-Z_-]{0,7}|\\+?[0-9]{1,16}|tg:-?[0-9]{1,21}|\"[^\"]{0,6}\"?)( |,){0,2}){1,8}",
    ]
}

proptest! {
    #[test]
    fn fuzz_command_parser(line in command_line()) {
        if let Err(e) = parse(&line) {
            let text = e.to_string();
            prop_assert!(!text.contains('\n'), "multi-line refusal for {line:?}: {text:?}");
            prop_assert!(text.chars().count() < 400, "long refusal for {line:?}");
        }
    }

    #[test]
    fn fuzz_whatsapp_webhook_decoder(
        body in webhook_body(),
        ours in prop_oneof![Just("1122334455667"), Just("106540352242922"), Just("")],
    ) {
        let _ = parse_webhook(&body, ours);
    }

    #[test]
    fn fuzz_csv_import(csv in prop_oneof![
        csv_text().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]) {
        match parse_contacts_csv(&csv) {
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "multi-line: {e}"),
            Ok(parsed) => {
                let lines = csv.split(|b| *b == b'\n').count();
                for e in parsed.rejected.iter().chain(&parsed.notes) {
                    prop_assert!(!e.message.contains('\n'), "multi-line: {:?}", e.message);
                    prop_assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
                }
                // One row per address: a second spelling is rejected, never merged.
                let mut seen = std::collections::HashSet::new();
                for row in &parsed.rows {
                    prop_assert!(seen.insert(row.record.address.to_string()));
                }
            }
        }
    }

    #[test]
    fn fuzz_audience_expressions(spec in audience_text()) {
        if let Ok(expr) = parse_audience(&spec) {
            // What is stored is the canonical form; it must read back as the same audience.
            let canonical = expr.to_string();
            let again = parse_audience(&canonical);
            prop_assert!(again.is_ok(), "{spec:?} -> {canonical:?} does not parse: {again:?}");
            prop_assert_eq!(again.ok(), Some(expr));
        }
    }
}
