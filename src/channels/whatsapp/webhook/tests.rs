//! Replays every pywa webhook sample in `tests/fixtures/whatsapp/` through [`parse_webhook`] and
//! checks what herald makes of the ones a campaign bot acts on.

use super::*;
use crate::channels::{ChannelEvent, DeliveryStatus, FileKind, FileRef, Inbound, StatusUpdate};
use chrono::TimeZone;
use serde_json::{json, Map, Value};

macro_rules! fixture {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/whatsapp/",
                $file
            )),
        )
    };
}

/// Every sample file with how many events each of its samples must give.
const FIXTURES: &[(&str, &str)] = &[
    fixture!("account_update.json"),
    fixture!("call_connect.json"),
    fixture!("call_permission_update.json"),
    fixture!("call_status.json"),
    fixture!("call_terminate.json"),
    fixture!("callback_button.json"),
    fixture!("callback_selection.json"),
    fixture!("deleted_message.json"),
    fixture!("edited_message.json"),
    fixture!("flow_completion.json"),
    fixture!("message.json"),
    fixture!("message_status.json"),
    fixture!("outgoing_message.json"),
    fixture!("system.json"),
    fixture!("template_category_update.json"),
    fixture!("template_components_update.json"),
    fixture!("template_quality_update.json"),
    fixture!("template_status_update.json"),
    fixture!("user_marketing_preferences.json"),
];

fn samples(file: &str) -> Map<String, Value> {
    let (_, text) = FIXTURES
        .iter()
        .find(|(name, _)| *name == file)
        .unwrap_or_else(|| panic!("no fixture {file}"));
    match serde_json::from_str(text).unwrap() {
        Value::Object(map) => map,
        other => panic!("{file} is not an object of samples: {other}"),
    }
}

fn sample(file: &str, name: &str) -> Value {
    samples(file)
        .remove(name)
        .unwrap_or_else(|| panic!("no sample {name} in {file}"))
}

/// The business number of most samples (and of the tests' own bodies).
const OURS: &str = "1122334455667";

/// The number a body is for (its first change's `metadata.phone_number_id`), or [`OURS`]: the
/// samples come from several numbers, and each is decoded as its own number's.
fn number_of(body: &Value) -> String {
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]
        .as_str()
        .unwrap_or(OURS)
        .to_string()
}

/// Events of a body decoded for its own number, without the billing that follows a status
/// with `pricing` (read by its own test, [`pricing_follows_its_status`]).
fn events_of(body: &Value) -> Vec<ChannelEvent> {
    parse_webhook(body.to_string().as_bytes(), &number_of(body))
        .unwrap()
        .events
        .into_iter()
        .filter(|e| !matches!(e, ChannelEvent::Billed(_)))
        .collect()
}

fn parse(body: &[u8]) -> Result<Vec<ChannelEvent>, WebhookError> {
    parse_webhook(body, OURS).map(|d| d.events)
}

fn events(file: &str, name: &str) -> Vec<ChannelEvent> {
    events_of(&sample(file, name))
}

fn only_inbound(file: &str, name: &str) -> Inbound {
    match events(file, name).as_slice() {
        [ChannelEvent::Inbound(inbound)] => inbound.clone(),
        other => panic!("{file}/{name}: expected one inbound, got {other:?}"),
    }
}

fn only_status(file: &str, name: &str) -> StatusUpdate {
    match events(file, name).as_slice() {
        [ChannelEvent::Status(status)] => status.clone(),
        other => panic!("{file}/{name}: expected one status, got {other:?}"),
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// What each sample must turn into, by kind: `i` inbound, `s` status, `b` billing, `p`
/// preference, `a` account or template news.
fn expected_kinds(file: &str, name: &str) -> &'static str {
    match (file, name) {
        ("call_permission_update.json", _)
        | ("callback_button.json", _)
        | ("callback_selection.json", _)
        | ("edited_message.json", _)
        | ("flow_completion.json", _)
        | ("message.json", _) => "i",
        // A status that carries `pricing` is followed by its billing.
        ("message_status.json", "failed" | "group") => "s",
        ("message_status.json", _) => "sb",
        ("user_marketing_preferences.json", _) => "p",
        // What herald acts on in the account: restrictions, violations and bans, template
        // statuses (a DISABLED_UPDATE that reinstates the account is not a stop).
        ("account_update.json", "account_restriction" | "account_violation")
        | ("template_status_update.json", _) => "a",
        // Deleting a message or a number/identity change is not the user writing to us.
        ("deleted_message.json", _) | ("system.json", _) => "",
        // account_update, calls, template_*_update, smb_message_echoes: nothing for herald.
        _ => "",
    }
}

#[test]
fn every_sample_parses_into_the_expected_kinds_of_event() {
    let mut replayed = 0;
    for (file, _) in FIXTURES {
        for (name, body) in samples(file) {
            let parsed = parse_webhook(body.to_string().as_bytes(), &number_of(&body))
                .unwrap_or_else(|e| panic!("{file}/{name} failed: {e}"));
            assert_eq!(parsed.other_number, 0, "{file}/{name}");
            let kinds: String = parsed
                .events
                .iter()
                .map(|e| match e {
                    ChannelEvent::Inbound(_) => 'i',
                    ChannelEvent::Status(_) => 's',
                    ChannelEvent::MarketingPreference { .. } => 'p',
                    ChannelEvent::Billed(_) => 'b',
                    ChannelEvent::Account(_) => 'a',
                })
                .collect();
            assert_eq!(kinds, expected_kinds(file, &name), "{file}/{name}");
            replayed += 1;
        }
    }
    assert_eq!(replayed, 74, "a sample was added or lost: update this test");
}

#[test]
fn every_fixture_file_is_replayed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/whatsapp");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let listed: Vec<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn text_message() {
    assert_eq!(
        only_inbound("message.json", "text"),
        Inbound {
            from: "wa:972987654321".into(),
            name: some("Test Name"),
            text: some("Body Text"),
            button: None,
            at: at(1697043223),
            provider_id: some("wamid.xyzxyz"),
            file: None,
        }
    );
}

#[test]
fn reply_and_forwarded_text_keep_their_text() {
    let reply = only_inbound("message.json", "reply");
    assert_eq!(reply.text, some("replied text"));
    assert_eq!(reply.at, at(1697044746));
    for name in ["forwarded", "forwarded_many_times", "referral"] {
        let inbound = only_inbound("message.json", name);
        assert!(inbound.text.is_some(), "{name}");
        assert_eq!(inbound.button, None, "{name}");
    }
}

#[test]
fn template_quick_reply_gives_title_and_payload() {
    for name in ["quick_reply", "quick_reply_without_context"] {
        let inbound = only_inbound("callback_button.json", name);
        assert_eq!(inbound.from, "wa:972987654321");
        assert_eq!(inbound.text, some("title"), "{name}");
        assert_eq!(inbound.button, some("callback_data"), "{name}");
        assert_eq!(inbound.at, at(1698269027));
    }
    assert_eq!(
        only_inbound("callback_button.json", "quick_reply").provider_id,
        some("wamid.xsidjw")
    );
}

#[test]
fn interactive_button_and_list_replies() {
    let button = only_inbound("callback_button.json", "button");
    assert_eq!(
        (button.text, button.button, button.at),
        (some("title"), some("callback_data"), at(1698266730))
    );
    for name in ["callback", "description"] {
        let row = only_inbound("callback_selection.json", name);
        assert_eq!(row.text, some("title"), "{name}");
        assert_eq!(row.button, some("callback_data"), "{name}");
        assert_eq!(row.provider_id, some("wamid.zyzxyz"));
    }
}

#[test]
fn reactions_and_media_open_the_window_without_text() {
    for name in [
        "reaction",
        "unreaction_empty",
        "unreaction_no_emoji",
        "image",
        "media_with_url",
        "audio",
        "voice",
        "static_sticker",
        "animated_sticker",
        "current_location",
        "chosen_location",
        "contacts",
        "order",
        "unsupported",
        "unsupported_with_type",
    ] {
        let inbound = only_inbound("message.json", name);
        assert_eq!(inbound.from, "wa:972987654321", "{name}");
        assert_eq!(inbound.text, None, "{name}");
        assert_eq!(inbound.button, None, "{name}");
        assert!(inbound.provider_id.is_some(), "{name}");
    }
    let reaction = only_inbound("message.json", "reaction");
    assert_eq!(reaction.at, at(1697044456));
    assert_eq!(reaction.name, some("Test Name"));
    let image = only_inbound("message.json", "image");
    assert_eq!(image.at, at(1697043379));
}

#[test]
fn media_carry_their_id_name_and_type() {
    let document = only_inbound("message.json", "document").file.unwrap();
    assert_eq!(
        document,
        FileRef {
            id: "1234567890987654321".into(),
            kind: FileKind::Document,
            name: some("filename.pdf"),
            mime: some("application/pdf"),
            size: None,
        }
    );
    let image = only_inbound("message.json", "image").file.unwrap();
    assert_eq!(
        (image.id.as_str(), image.kind),
        ("65463453", FileKind::Image)
    );
    let video = only_inbound("message.json", "video").file.unwrap();
    assert_eq!(
        (video.id.as_str(), video.kind),
        ("765756756", FileKind::Video)
    );
    assert_eq!(only_inbound("message.json", "text").file, None);
    assert_eq!(only_inbound("message.json", "audio").file, None);
    // An edit's media was the original message's: nothing new to fetch.
    assert_eq!(only_inbound("edited_message.json", "image").file, None);
}

#[test]
fn media_captions_are_the_text() {
    assert_eq!(only_inbound("message.json", "video").text, some("caption"));
    assert_eq!(
        only_inbound("message.json", "document").text,
        some("caption")
    );
}

#[test]
fn an_edit_carries_the_new_text() {
    let edit = only_inbound("edited_message.json", "image");
    assert_eq!(edit.from, "wa:16505551234");
    assert_eq!(edit.text, some("Updated image caption"));
    assert_eq!(edit.at, at(1749854575));
}

#[test]
fn flows_and_call_permission_replies_have_no_text() {
    for (file, name) in [
        ("flow_completion.json", "completion"),
        ("flow_completion.json", "without_flow_token"),
        ("call_permission_update.json", "accept"),
        ("call_permission_update.json", "reject"),
    ] {
        let inbound = only_inbound(file, name);
        assert_eq!(
            (inbound.text, inbound.button),
            (None, None),
            "{file}/{name}"
        );
    }
}

#[test]
fn malformed_interactive_does_not_fail_the_body() {
    let inbound = only_inbound("message.json", "interactive_message_with_err");
    assert_eq!(inbound.from, "wa:972987654321");
    assert_eq!(inbound.provider_id, some("wamid.wegrchytvwcggt="));
    assert_eq!((inbound.text, inbound.button), (None, None));
    assert_eq!(inbound.at, at(1700505494));
}

#[test]
fn revoke_and_system_messages_give_nothing() {
    assert!(events("deleted_message.json", "revoke").is_empty());
    assert!(events("system.json", "phone_number_change").is_empty());
    assert!(events("system.json", "identity_change").is_empty());
}

#[test]
fn statuses_sent_delivered_read_played() {
    for (name, status, secs) in [
        ("sent", DeliveryStatus::Sent, 1698266945),
        ("delivered", DeliveryStatus::Delivered, 1698266945),
        ("read", DeliveryStatus::Read, 1689380458),
        ("played", DeliveryStatus::Read, 1689380458),
    ] {
        assert_eq!(
            only_status("message_status.json", name),
            StatusUpdate {
                provider_id: "wamid.xyzxyz".into(),
                callback: None,
                status,
                at: at(secs),
                recipient: some("wa:972987654321"),
            },
            "{name}"
        );
    }
}

#[test]
fn failed_status_keeps_code_and_reason() {
    let failed = only_status("message_status.json", "failed");
    assert_eq!(
        failed.status,
        DeliveryStatus::Failed {
            code: "130472".into(),
            title: "User's number is part of an experiment: Failed to send message because this \
                    user's phone number is part of an experiment"
                .into(),
        }
    );
    assert_eq!(failed.recipient, some("wa:972987654321"));
}

#[test]
fn status_with_tracker_echoes_the_callback() {
    let tracked = only_status("message_status.json", "with_tracker");
    assert_eq!(tracked.callback, some("some data"));
    assert_eq!(tracked.status, DeliveryStatus::Sent);
}

#[test]
fn group_status_has_no_phone_recipient() {
    let group = only_status("message_status.json", "group");
    assert_eq!(group.status, DeliveryStatus::Read);
    assert_eq!(group.recipient, None);
}

#[test]
fn marketing_preferences_resume_signup_and_stop() {
    for name in ["resume", "signup"] {
        assert_eq!(
            events("user_marketing_preferences.json", name),
            vec![ChannelEvent::MarketingPreference {
                from: "wa:16505551234".into(),
                stop: false,
                at: at(1731705721),
            }],
            "{name}"
        );
    }
    // pywa has no "stop" sample: the same body with Meta's other value.
    let mut stop = sample("user_marketing_preferences.json", "resume");
    stop["entry"][0]["changes"][0]["value"]["user_preferences"][0]["value"] = json!("stop");
    stop["entry"][0]["changes"][0]["value"]["user_preferences"][0]["detail"] =
        json!("User requested to stop marketing messages");
    assert_eq!(
        events_of(&stop),
        vec![ChannelEvent::MarketingPreference {
            from: "wa:16505551234".into(),
            stop: true,
            at: at(1731705721),
        }]
    );
    // Another category or an unknown value is not a marketing stop.
    let mut other = stop.clone();
    other["entry"][0]["changes"][0]["value"]["user_preferences"][0]["category"] =
        json!("something_else");
    assert!(events_of(&other).is_empty());
    let mut odd = stop;
    odd["entry"][0]["changes"][0]["value"]["user_preferences"][0]["value"] = json!("maybe");
    assert!(events_of(&odd).is_empty());
}

#[test]
fn mapping_follows_the_body_not_the_sample_values() {
    // Vary number, name, id and timestamp: nothing may be tied to pywa's placeholders.
    let mut body = sample("message.json", "text");
    let value = &mut body["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["wa_id"] = json!("15550001");
    value["contacts"][0]["profile"]["name"] = json!("Ana");
    value["messages"][0]["from"] = json!("15550001");
    value["messages"][0]["id"] = json!("wamid.unique-1");
    value["messages"][0]["timestamp"] = json!("1767225600");
    value["messages"][0]["text"]["body"] = json!("STOP");
    assert_eq!(
        events_of(&body),
        vec![ChannelEvent::Inbound(Inbound {
            from: "wa:15550001".into(),
            name: some("Ana"),
            text: some("STOP"),
            button: None,
            at: at(1767225600),
            provider_id: some("wamid.unique-1"),
            file: None,
        })]
    );
}

#[test]
fn several_entries_changes_and_items_keep_their_order() {
    let text = sample("message.json", "text");
    let status = sample("message_status.json", "delivered");
    let mut value = text["entry"][0]["changes"][0]["value"].clone();
    let mut second = value["messages"][0].clone();
    second["from"] = json!("15550002");
    second["id"] = json!("wamid.second");
    value["messages"].as_array_mut().unwrap().push(second);
    value["contacts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"profile": {"name": "Bo"}, "wa_id": "15550002"}));
    value["statuses"] = status["entry"][0]["changes"][0]["value"]["statuses"].clone();
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [{"field": "messages", "value": value}]},
            status["entry"][0].clone(),
        ]
    });
    let parsed = events_of(&body);
    let summary: Vec<(char, Option<String>)> = parsed
        .iter()
        .map(|e| match e {
            ChannelEvent::Inbound(i) => ('i', i.name.clone()),
            ChannelEvent::Status(s) => ('s', Some(s.provider_id.clone())),
            ChannelEvent::MarketingPreference { .. } => ('p', None),
            ChannelEvent::Billed(_) => ('b', None),
            ChannelEvent::Account(_) => ('a', None),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ('i', some("Test Name")),
            ('i', some("Bo")),
            ('s', some("wamid.xyzxyz")),
            ('s', some("wamid.xyzxyz")),
        ]
    );
}

#[test]
fn odd_items_are_skipped_not_fatal() {
    let mut body = sample("message.json", "text");
    let value = &mut body["entry"][0]["changes"][0]["value"];
    let good = value["messages"][0].clone();
    value["messages"] = json!([
        "not an object",
        {"from": 42, "id": "wamid.bad-from-type"},
        {"id": "wamid.no-sender", "type": "text", "text": {"body": "hi"}},
        {"from": "15550003", "id": "wamid.no-time", "type": "text", "text": {"body": "hi"}, "timestamp": "soon"},
        good,
    ]);
    value["statuses"] = json!([{"status": "sent"}, {"id": "wamid.x", "status": "deleted"}, 7]);
    value["contacts"] = json!({"not": "a list"});
    let before = Utc::now();
    let parsed = events_of(&body);
    assert_eq!(parsed.len(), 2, "{parsed:?}");
    match &parsed[0] {
        ChannelEvent::Inbound(i) => {
            assert_eq!(i.from, "wa:15550003");
            assert!(i.at >= before, "a broken timestamp falls back to now");
        }
        other => panic!("{other:?}"),
    }
    match &parsed[1] {
        ChannelEvent::Inbound(i) => assert_eq!(
            (i.text.as_deref(), i.name.as_deref()),
            (Some("Body Text"), None)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn failed_status_without_errors_still_fails() {
    let mut body = sample("message_status.json", "failed");
    body["entry"][0]["changes"][0]["value"]["statuses"][0]
        .as_object_mut()
        .unwrap()
        .remove("errors");
    match only(&events_of(&body)) {
        ChannelEvent::Status(s) => assert!(matches!(
            &s.status,
            DeliveryStatus::Failed { code, .. } if code == "unknown"
        )),
        other => panic!("{other:?}"),
    }
}

fn only(events: &[ChannelEvent]) -> &ChannelEvent {
    match events {
        [one] => one,
        other => panic!("expected one event, got {other:?}"),
    }
}

#[test]
fn numeric_timestamps_and_string_codes_are_accepted() {
    let mut body = sample("message_status.json", "failed");
    let status = &mut body["entry"][0]["changes"][0]["value"]["statuses"][0];
    status["timestamp"] = json!(1700000000);
    status["errors"][0]["code"] = json!("131026");
    match only(&events_of(&body)) {
        ChannelEvent::Status(s) => {
            assert_eq!(s.at, at(1700000000));
            assert!(matches!(&s.status, DeliveryStatus::Failed { code, .. } if code == "131026"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bodies_that_are_not_json_objects_are_errors() {
    assert!(matches!(parse(b"{not json"), Err(WebhookError::Json(_))));
    assert!(matches!(parse(b""), Err(WebhookError::Json(_))));
    assert!(matches!(parse(b"[]"), Err(WebhookError::NotAnObject)));
    assert!(matches!(parse(b"42"), Err(WebhookError::NotAnObject)));
}

#[test]
fn odd_but_valid_bodies_give_no_events() {
    for body in [
        r#"{}"#,
        r#"{"object":"whatsapp_business_account"}"#,
        r#"{"object":"whatsapp_business_account","entry":[]}"#,
        r#"{"object":"whatsapp_business_account","entry":"x"}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":null}]}]}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":"x"}]}]}"#,
        r#"{"object":"page","entry":[{"changes":[{"field":"messages","value":{"messages":[{"from":"1","id":"m","type":"text","text":{"body":"hi"}}]}}]}]}"#,
    ] {
        assert_eq!(parse(body.as_bytes()).unwrap(), vec![], "{body}");
    }
}

/// `body` with every change's `metadata.phone_number_id` set to `number`.
fn addressed_to(body: &Value, number: &str) -> Value {
    let mut body = body.clone();
    for entry in body["entry"].as_array_mut().into_iter().flatten() {
        for change in entry["changes"].as_array_mut().into_iter().flatten() {
            if change["value"]["metadata"].is_object() {
                change["value"]["metadata"]["phone_number_id"] = json!(number);
            }
        }
    }
    body
}

#[test]
fn changes_for_another_business_number_are_left_out() {
    let text = sample("message.json", "text");
    let stop = sample("user_marketing_preferences.json", "resume");
    let status = sample("message_status.json", "delivered");
    // The status comes with its billing.
    for (body, events) in [(&text, 1), (&stop, 1), (&status, 2)] {
        let ours = parse_webhook(addressed_to(body, OURS).to_string().as_bytes(), OURS).unwrap();
        assert_eq!(
            (ours.events.len(), ours.other_number),
            (events, 0),
            "{body}"
        );
        let theirs =
            parse_webhook(addressed_to(body, "999888777").to_string().as_bytes(), OURS).unwrap();
        assert_eq!((theirs.events.len(), theirs.other_number), (0, 1), "{body}");
    }

    // One body, two numbers: only our change is read.
    let mut both = addressed_to(&text, OURS);
    let theirs = addressed_to(&stop, "999888777");
    both["entry"][0]["changes"]
        .as_array_mut()
        .unwrap()
        .push(theirs["entry"][0]["changes"][0].clone());
    let decoded = parse_webhook(both.to_string().as_bytes(), OURS).unwrap();
    assert!(matches!(
        decoded.events.as_slice(),
        [ChannelEvent::Inbound(_)]
    ));
    assert_eq!(decoded.other_number, 1);

    // No number configured: a change that names one is nobody's.
    let unconfigured = parse_webhook(text.to_string().as_bytes(), "").unwrap();
    assert_eq!(
        (unconfigured.events.len(), unconfigured.other_number),
        (0, 1)
    );
}

#[test]
fn a_change_without_metadata_names_no_other_number() {
    let mut body = sample("message_status.json", "delivered");
    let value = body["entry"][0]["changes"][0]["value"]
        .as_object_mut()
        .unwrap();
    value.remove("metadata");
    let decoded = parse_webhook(body.to_string().as_bytes(), OURS).unwrap();
    // The status and its billing.
    assert_eq!((decoded.events.len(), decoded.other_number), (2, 0));
}

#[test]
fn handshake_echoes_the_challenge_only_when_asked_right() {
    let ok = verify_handshake(
        Some("subscribe"),
        Some("s3cret"),
        Some("1158201444"),
        "s3cret",
    );
    assert_eq!(ok.as_deref(), Some("1158201444"));
    assert_eq!(
        verify_handshake(Some("subscribe"), Some("wrong"), Some("1"), "s3cret"),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), Some("s3cre"), Some("1"), "s3cret"),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), None, Some("1"), "s3cret"),
        None
    );
    assert_eq!(
        verify_handshake(Some("unsubscribe"), Some("s3cret"), Some("1"), "s3cret"),
        None
    );
    assert_eq!(
        verify_handshake(None, Some("s3cret"), Some("1"), "s3cret"),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), Some("s3cret"), None, "s3cret"),
        None
    );
    // An unconfigured token must not let an empty one through.
    assert_eq!(
        verify_handshake(Some("subscribe"), Some(""), Some("1"), ""),
        None
    );
}

#[test]
fn pricing_follows_its_status() {
    let body = sample("message_status.json", "sent");
    let parsed = parse_webhook(body.to_string().as_bytes(), &number_of(&body)).unwrap();
    match parsed.events.as_slice() {
        [ChannelEvent::Status(status), ChannelEvent::Billed(billing)] => {
            assert_eq!(billing.provider_id, status.provider_id);
            assert_eq!(billing.pricing.billable, Some(true));
            assert_eq!(billing.pricing.model.as_deref(), Some("CBP"));
            assert_eq!(billing.pricing.billed_as(), "service");
        }
        other => panic!("expected a status and its billing, got {other:?}"),
    }
    // A pricing of another shape costs the billing, never the status.
    let mut odd = body.clone();
    odd["entry"][0]["changes"][0]["value"]["statuses"][0]["pricing"] = json!("free");
    let parsed = parse_webhook(odd.to_string().as_bytes(), &number_of(&odd)).unwrap();
    assert!(matches!(
        parsed.events.as_slice(),
        [ChannelEvent::Status(_)]
    ));
}

#[test]
fn account_and_template_news_are_read() {
    use crate::domain::account::{AccountEvent, MessagingLimit};
    use crate::domain::template::TemplateStatus;
    let account = |file: &str, name: &str| match events(file, name).as_slice() {
        [ChannelEvent::Account(event)] => event.clone(),
        other => panic!("{file}/{name}: expected one account event, got {other:?}"),
    };
    match account("account_update.json", "account_restriction") {
        AccountEvent::Restricted { restrictions, .. } => {
            assert_eq!(restrictions.len(), 2);
            assert!(restrictions[0].holds_business_initiated());
            assert_eq!(restrictions[0].expires, Some(at(1641330498)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        account("account_update.json", "account_violation"),
        AccountEvent::Stopped { detail: Some(d), .. } if d == "ADULT"
    ));
    match account("template_status_update.json", "rejected") {
        AccountEvent::TemplateStatus {
            name,
            lang,
            status,
            reason,
        } => {
            assert_eq!((name.as_str(), lang.as_str()), ("abandoned_cart", "en"));
            assert_eq!(status, TemplateStatus::Rejected);
            assert!(reason.unwrap().starts_with("INVALID_FORMAT: Your template"));
        }
        other => panic!("{other:?}"),
    }
    // phone_number_quality_update has no sample: Meta's documented shapes, old and new.
    for (value, limit) in [
        (
            json!({"display_phone_number": "15550783881", "event": "UPGRADE",
                   "current_limit": "TIER_1K"}),
            Some(MessagingLimit::Limited(1_000)),
        ),
        (
            json!({"display_phone_number": "15550783881", "event": "UPGRADE",
                   "old_limit": "TIER_250", "current_limit": "TIER_250",
                   "max_daily_conversations_per_business": "TIER_2K"}),
            Some(MessagingLimit::Limited(2_000)),
        ),
        (
            json!({"event": "FLAGGED", "current_limit": "TIER_NOT_SET", "extra": [1]}),
            None,
        ),
    ] {
        let body = json!({"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398", "time": 1748454394,
            "changes": [{"field": "phone_number_quality_update", "value": value}]}]});
        match events_of(&body).as_slice() {
            [ChannelEvent::Account(AccountEvent::Quality {
                limit: got, at: t, ..
            })] => {
                assert_eq!(*got, limit);
                assert_eq!(*t, at(1748454394));
            }
            other => panic!("{other:?}"),
        }
        // Another Business account's news is left out like another number's.
        let theirs =
            super::parse_webhook_for(body.to_string().as_bytes(), OURS, Some("42")).unwrap();
        assert_eq!((theirs.events.len(), theirs.other_number), (0, 1));
    }
}
