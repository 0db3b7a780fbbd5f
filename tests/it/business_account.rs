//! The WhatsApp Business account (SPEC section 6) through `herald run`: templates synced from the
//! fake Graph API's paged `message_templates`, sends carrying header, body and button components,
//! and what Meta's webhooks say about templates, quality, tier, restrictions and price. Webhook
//! bodies are Meta's real samples (tests/fixtures/whatsapp) with fresh names, ids and times.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::fake_graph::FakeGraph;
use crate::support::run_app::{count, RunApp, PHONE_NUMBER_ID, TOKEN};

const WABA: &str = "102290129340398";

fn sample(file: &str, name: &str) -> Value {
    let text = match file {
        "account_update.json" => include_str!("../fixtures/whatsapp/account_update.json"),
        "message_status.json" => include_str!("../fixtures/whatsapp/message_status.json"),
        "template_status_update.json" => {
            include_str!("../fixtures/whatsapp/template_status_update.json")
        }
        other => panic!("no sample file {other}"),
    };
    let samples: Value = serde_json::from_str(text).expect("a sample file is JSON");
    samples[name].clone()
}

/// A POSITIONAL marketing template with an IMAGE header and two quick replies.
fn spring_sale(status: &str) -> Value {
    json!({
        "name": "spring_sale", "language": "en_US", "status": status, "category": "MARKETING",
        "parameter_format": "POSITIONAL", "id": "1001",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1n"]}},
            {"type": "BODY", "text": "Hi {{1}}, {{2}} off everything this Friday",
             "example": {"body_text": [["Ana", "20%"]]}},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Yes please"},
                {"type": "QUICK_REPLY", "text": "STOP"}
            ]}
        ]
    })
}

/// A NAMED utility template with a TEXT header parameter, a quick reply and a URL button that
/// takes a suffix.
fn order_update(status: &str) -> Value {
    json!({
        "name": "order_update", "language": "en_US", "status": status, "category": "UTILITY",
        "parameter_format": "NAMED", "id": "1002",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{order_no}}",
             "example": {"header_text_named_params": [{"param_name": "order_no", "example": "A1"}]}},
            {"type": "BODY", "text": "Hi {{first_name}}, order {{order_no}} ships today.",
             "example": {"body_text_named_params": [
                 {"param_name": "first_name", "example": "Ana"},
                 {"param_name": "order_no", "example": "A1"}]}},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Reschedule"},
                {"type": "URL", "text": "Track", "url": "https://shop.example/track/{{1}}",
                 "example": ["https://shop.example/track/A1"]}
            ]}
        ]
    })
}

fn welcome(status: &str) -> Value {
    json!({
        "name": "welcome_new", "language": "en", "status": status, "category": "MARKETING",
        "parameter_format": "POSITIONAL", "id": "1003",
        "components": [{"type": "BODY", "text": "Welcome {{1}}!"}]
    })
}

/// herald run with a Business account id, once its sync at start has asked the fake (which
/// had no templates yet).
async fn start(tier: &str) -> RunApp {
    let app = RunApp::start_with(
        &[
            ("WHATSAPP_BUSINESS_ACCOUNT_ID", WABA),
            ("WHATSAPP_TIER", tier),
        ],
        |_| {},
    )
    .await;
    app.wait_until("the template sync at start", || {
        !app.fake.template_requests().is_empty()
    })
    .await;
    app
}

/// The three templates, two a page, synced.
async fn synced(app: &RunApp) {
    app.fake.set_templates(
        vec![
            spring_sale("APPROVED"),
            order_update("APPROVED"),
            welcome("PENDING"),
        ],
        2,
    );
    let reply = app.admin("/template sync").await;
    assert!(reply.contains("3 added, 0 changed, 0 removed"), "{reply}");
}

/// A template status webhook from Meta's `approved` sample with this template, event and time.
fn template_status(app: &RunApp, name: &str, lang: &str, event: &str, reason: &str) -> String {
    let mut body = sample("template_status_update.json", "approved");
    body["entry"][0]["time"] = json!(app.now_secs());
    let value = &mut body["entry"][0]["changes"][0]["value"];
    value["event"] = json!(event);
    value["message_template_name"] = json!(name);
    value["message_template_language"] = json!(lang);
    value["reason"] = json!(reason);
    body.to_string()
}

/// `phone_number_quality_update` in Meta's documented shape (there is no sample of it).
fn quality_update(app: &RunApp, event: &str, limit: &str) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "time": app.now_secs(), "changes": [{
            "field": "phone_number_quality_update",
            "value": {"display_phone_number": "15550783881", "event": event,
                      "current_limit": limit, "max_daily_conversations_per_business": limit}
        }]}]
    })
    .to_string()
}

/// A `sent` status with `pricing`, from Meta's `sent` sample, for the message in `request`.
fn priced_status(app: &RunApp, wamid: &str, to: &str, callback: &str, pricing: Value) -> String {
    let mut body = sample("message_status.json", "sent");
    let value = &mut body["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = json!(PHONE_NUMBER_ID);
    value["contacts"][0]["wa_id"] = json!(to);
    let status = &mut value["statuses"][0];
    status["id"] = json!(wamid);
    status["recipient_id"] = json!(to);
    status["timestamp"] = json!(app.now_secs().to_string());
    status["biz_opaque_callback_data"] = json!(callback);
    status["pricing"] = pricing;
    body.to_string()
}

async fn post(app: &RunApp, body: &str) {
    assert_eq!(app.post_webhook(body).await, StatusCode::OK, "{body}");
}

/// `n` opted-in contacts labelled `vip`, none of whom wrote in (every send is business-initiated).
async fn vips(app: &RunApp, n: usize) {
    for i in 1..=n {
        app.setup(&[&format!(
            "/contact add +1555000{i} name=P{i} labels=vip optin attr.order=A{i}"
        )])
        .await;
    }
}

fn digits(i: usize) -> String {
    format!("1555000{i}")
}

#[tokio::test]
async fn a_sync_reads_every_page_and_list_shows_status_header_buttons_and_parameters() {
    let app = start("250").await;
    synced(&app).await;
    // Two pages, the second through `paging.next`, each with the token.
    let requests = app.fake.template_requests();
    let sync: Vec<_> = requests[requests.len() - 2..].to_vec();
    assert!(sync[0].query.contains("limit=100"), "{sync:?}");
    assert!(!sync[0].query.contains("after="), "{sync:?}");
    assert!(sync[1].query.contains("after=idx2"), "{sync:?}");
    for r in &sync {
        assert_eq!(r.waba_id, WABA);
        assert_eq!(
            r.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }

    let list = app.admin("/template list").await;
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
            .to_string()
    };
    let spring = line("spring_sale en_US");
    for part in [
        "[marketing]",
        "APPROVED",
        "POSITIONAL",
        "header IMAGE",
        "QUICK_REPLY:Yes please, QUICK_REPLY:STOP",
        "2 parameter(s)",
    ] {
        assert!(spring.contains(part), "{part:?} in {spring}");
    }
    let order = line("order_update en_US");
    for part in [
        "[utility]",
        "NAMED",
        "header TEXT",
        "URL:Track",
        "4 parameter(s)",
    ] {
        assert!(order.contains(part), "{part:?} in {order}");
    }
    assert!(line("welcome_new en").contains("PENDING"), "{list}");

    // Meta approves one, drops another and adds a third: the sync says so.
    app.fake.set_templates(
        vec![
            spring_sale("APPROVED"),
            welcome("APPROVED"),
            json!({"name": "restock", "language": "pt_BR", "status": "APPROVED",
                   "category": "MARKETING", "components": [{"type": "BODY", "text": "Voltou!"}]}),
        ],
        2,
    );
    let reply = app.admin("/template sync").await;
    assert!(
        reply.contains("1 added, 1 changed, 1 removed; 3 stored"),
        "{reply}"
    );
    assert!(reply.contains("added: restock (pt_BR)"), "{reply}");
    assert!(reply.contains("changed: welcome_new (en)"), "{reply}");
    assert!(reply.contains("removed: order_update (en_US)"), "{reply}");
    // Nothing changed at Meta: nothing changes here.
    let reply = app.admin("/template sync").await;
    assert!(reply.contains("0 added, 0 changed, 0 removed"), "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn a_mapping_that_does_not_fit_is_refused_with_what_is_missing_and_extra() {
    let app = start("250").await;
    synced(&app).await;
    vips(&app, 1).await;
    app.setup(&["/campaign new Orders", "/campaign audience 1 vip"])
        .await;

    let reply = app
        .admin("/campaign template 1 order_update en_US first_name={{name}}|coupon=X")
        .await;
    for part in [
        "missing body {{order_no}}",
        "extra {{coupon}}",
        "missing header=",
        "missing url=",
    ] {
        assert!(reply.contains(part), "{part:?} in {reply}");
    }
    assert_eq!(reply.lines().count(), 1, "{reply}");
    let reply = app
        .admin("/campaign template 1 spring_sale en_US {{name}} url=x")
        .await;
    assert!(reply.contains("missing body {{2}}"), "{reply}");
    assert!(reply.contains("extra url="), "{reply}");
    // Nothing was stored by a refusal.
    let show = app.admin("/campaign show 1").await;
    assert!(!show.contains("template:"), "{show}");

    // A PENDING template can be mapped, but not sent; neither can an IMAGE header without media.
    let reply = app
        .admin("/campaign template 1 welcome_new en {{name}}")
        .await;
    assert!(reply.contains("PENDING at Meta"), "{reply}");
    let reply = app.admin("/campaign send 1").await;
    assert!(reply.contains("welcome_new (en) is PENDING"), "{reply}");
    let reply = app
        .admin("/campaign template 1 spring_sale en_US {{name}}|20%")
        .await;
    assert!(
        reply.contains("IMAGE header needs the campaign's media"),
        "{reply}"
    );
    let reply = app.admin("/campaign send 1").await;
    assert!(
        reply.contains("the IMAGE header of template spring_sale (en_US) needs media"),
        "{reply}"
    );
    assert_eq!(app.report(1).await["status"], "draft");
    assert!(app.campaign_sends().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_synced_template_goes_out_with_header_body_and_button_components() {
    let app = start("250").await;
    synced(&app).await;
    vips(&app, 1).await;
    app.setup(&[
        "/campaign new Orders",
        "/campaign audience 1 vip",
        "/campaign template 1 order_update en_US order_no={{attr.order}}|first_name={{name}} \
         header={{attr.order}} url=t/{{attr.order}}",
        "/on 1 clicked:reschedule label+=moving",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(1).await;
    let sent = app.campaign_send_to(&digits(1));
    assert_eq!(
        sent.body["template"],
        json!({
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [
                    {"type": "text", "parameter_name": "order_no", "text": "A1"}]},
                {"type": "body", "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": "P1"},
                    {"type": "text", "parameter_name": "order_no", "text": "A1"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "Reschedule"}]},
                {"type": "button", "sub_type": "url", "index": "1",
                 "parameters": [{"type": "text", "text": "t/A1"}]}
            ]
        })
    );
    app.wait_for_idle(1).await;
    assert_eq!(app.report(1).await["sent.utility"], "1");

    // The customer presses the quick reply: it counts as clicked:<button text>.
    let press = crate::support::fake_graph::webhooks::quick_reply(
        &digits(1),
        "P1",
        "Reschedule",
        "Reschedule",
        &app.wamid(),
        app.now_secs(),
    );
    post(&app, &press).await;
    let labels = app.contact("+15550001").await.labels;
    assert!(labels.iter().any(|l| l.as_str() == "moving"), "{labels:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_paused_template_pauses_its_sending_campaign_and_resume_sends_exactly_the_rest() {
    // A tier of one keeps the campaign sending: one message goes, the rest wait for the tier.
    let app = start("1").await;
    synced(&app).await;
    vips(&app, 3).await;
    app.setup(&[
        "/campaign new Orders",
        "/campaign audience 1 vip",
        "/campaign template 1 order_update en_US first_name={{name}}|order_no={{attr.order}} \
         header={{attr.order}} url={{attr.order}}",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.report(1).await["status"], "sending");

    post(
        &app,
        &template_status(&app, "order_update", "en_US", "PAUSED", "NONE"),
    )
    .await;
    let notice = app.wait_for_admin_text("campaign 1 paused").await;
    assert!(
        notice.contains("template order_update (en_US) is PAUSED at Meta"),
        "{notice}"
    );
    assert_eq!(app.report(1).await["status"], "paused");
    assert!(app.admin("/template list").await.contains("PAUSED"));
    let reply = app.admin("/campaign resume 1").await;
    assert!(reply.contains("is PAUSED at Meta"), "{reply}");

    // Approved again: resume, and let the tier roll.
    post(
        &app,
        &template_status(&app, "order_update", "en_US", "APPROVED", "NONE"),
    )
    .await;
    let reply = app.admin("/campaign resume 1").await;
    assert!(reply.contains("resumed"), "{reply}");
    for _ in 0..2 {
        app.advance(Duration::hours(24) + Duration::seconds(5));
        app.wait_for_idle(1).await;
    }
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    for i in 1..=3 {
        assert_eq!(app.fake.accepted_for(&digits(i)), 1, "{i}");
    }
    assert_eq!(app.report(1).await["status"], "completed");
    app.stop().await;
}

#[tokio::test]
async fn a_quality_update_raising_a_250_tier_to_1k_lets_held_recipients_go_and_survives_a_restart()
{
    let mut app = start("250").await;
    app.setup(&["/template add hello en utility Hello {{1}}"])
        .await;
    let mut csv = String::from("address,name,labels,consent\n");
    for i in 0..252 {
        csv.push_str(&format!("+1555{i:07},C{i},crowd,opted_in\n"));
    }
    herald::commands::handlers::import_contacts(&app.engine, csv.as_bytes())
        .await
        .expect("contacts imported");
    app.setup(&[
        "/campaign new Crowd",
        "/campaign audience 1 crowd",
        "/campaign template 1 hello en {{name}}",
        "/campaign pace 1 rate=0",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(250).await;
    app.wait_for_idle(1).await;
    let report = app.report(1).await;
    assert_eq!((count(&report, "sent"), count(&report, "queued")), (250, 2));

    post(&app, &quality_update(&app, "UPGRADE", "TIER_1K")).await;
    let notice = app.wait_for_admin_text("WhatsApp quality: UPGRADE").await;
    assert!(
        notice.contains("messaging limit now 1000 contacts per 24 h (was 250)"),
        "{notice}"
    );
    // No time passes: the two held recipients go because the tier rose.
    app.wait_for_campaign_sends(252).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.report(1).await["status"], "completed");

    app.restart().await;
    let account = app.admin("/account").await;
    assert!(
        account.contains("tier: 1000 contacts per 24 h (from Meta"),
        "{account}"
    );
    assert!(account.contains("quality: UPGRADE"), "{account}");
    assert!(
        account.contains("252 contact(s) reached outside their window, of 1000"),
        "{account}"
    );
    // The operator's views follow Meta's tier too.
    let status = app.admin("/status").await;
    assert!(
        status.contains("tier: 252 of 1,000 contacts outside their window"),
        "{status}"
    );
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "herald_tier_limit 1000"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_account_restriction_holds_business_initiated_sends_until_it_expires() {
    let mut app = start("250").await;
    app.setup(&["/template add hello en utility Hello {{1}}"])
        .await;
    vips(&app, 2).await;
    // Contact 9 wrote in a minute ago: a free-text reply to them is inside the window.
    app.setup(&["/contact add +15550009 name=Nine labels=talk optin"])
        .await;
    app.customer_says("+15550009", "hello?").await;

    let until = app.now() + Duration::hours(2);
    let mut body = sample("account_update.json", "account_restriction");
    body["entry"][0]["time"] = json!(app.now_secs());
    body["entry"][0]["changes"][0]["value"]["restriction_info"][0]["expiration"] =
        json!(until.timestamp());
    post(&app, &body.to_string()).await;
    // Meta redelivers: the admins are told once.
    post(&app, &body.to_string()).await;
    let notice = app
        .wait_for_admin_text("WhatsApp restricted the account")
        .await;
    let told = app.admin_texts();
    assert_eq!(
        told.iter()
            .filter(|t| t.starts_with("WhatsApp restricted"))
            .count(),
        1,
        "{told:?}"
    );
    assert!(notice.contains("held until 2026-11-22 12:00"), "{notice}");

    app.restart().await;
    let account = app.admin("/account").await;
    assert!(
        account.contains("RESTRICTED_BIZ_INITIATED_MESSAGING until 2026-11-22 12:00"),
        "{account}"
    );
    app.setup(&[
        "/campaign new Promo",
        "/campaign audience 1 vip",
        "/campaign template 1 hello en {{name}}",
        "/campaign send 1",
        "/campaign new Reply",
        "/campaign audience 2 talk",
        "/campaign text 2 Thanks for writing, {{name}}",
        "/campaign send 2",
    ])
    .await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    app.wait_for_idle(2).await;
    // The reply inside the window went; the business-initiated template did not.
    assert_eq!(app.fake.accepted_for("15550009"), 1);
    assert_eq!(app.fake.accepted_for(&digits(1)), 0);
    assert_eq!(app.report(1).await["queued"], "2");

    app.advance(Duration::hours(1));
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.accepted_for(&digits(1)), 0);
    app.advance(Duration::hours(1) + Duration::seconds(1));
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.report(1).await["status"], "completed");
    assert!(app.admin("/account").await.contains("restrictions: none"));
    app.stop().await;
}

#[tokio::test]
async fn pricing_in_statuses_is_reported_as_billed_per_category() {
    let app = start("250").await;
    app.setup(&["/template add promo en marketing Hi {{1}}"])
        .await;
    vips(&app, 3).await;
    app.setup(&[
        "/campaign new Promo",
        "/campaign audience 1 vip",
        "/campaign template 1 promo en {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    let marketing = json!({"billable": true, "pricing_model": "PMP", "category": "marketing",
                           "type": "regular"});
    let free = json!({"billable": false, "pricing_model": "PMP", "category": "marketing",
                      "type": "free_entry_point"});
    for (i, pricing) in [(1, &marketing), (2, &marketing), (3, &free)] {
        let sent = app.campaign_send_to(&digits(i));
        let body = priced_status(
            &app,
            sent.wamid.as_deref().unwrap(),
            &digits(i),
            sent.callback().unwrap(),
            pricing.clone(),
        );
        post(&app, &body).await;
        // Meta repeats pricing on every status, and redelivers: counted once.
        post(&app, &body).await;
    }
    let report = app.report(1).await;
    assert_eq!(report["billed.marketing"], "2", "{report:?}");
    assert_eq!(report["billed.free"], "1", "{report:?}");
    assert_eq!(report["sent.marketing"], "3", "{report:?}");
    assert!(report.contains_key("estimated_cost"));

    // Pricing that comes with a status that moves the row (delivered) is written by that same
    // update; Meta corrected the third message to billable here, and the report follows.
    for i in 1..=3 {
        let sent = app.campaign_send_to(&digits(i));
        let mut body: Value = serde_json::from_str(&priced_status(
            &app,
            sent.wamid.as_deref().unwrap(),
            &digits(i),
            sent.callback().unwrap(),
            marketing.clone(),
        ))
        .unwrap();
        body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = json!("delivered");
        post(&app, &body.to_string()).await;
    }
    let report = app.report(1).await;
    assert_eq!(report["delivered"], "3", "{report:?}");
    assert_eq!(report["billed.marketing"], "3", "{report:?}");
    assert_eq!(
        report.get("billed.free").map_or("0", String::as_str),
        "0",
        "{report:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_sync_refused_with_401_keeps_the_stored_templates_across_a_restart() {
    let mut app = start("250").await;
    synced(&app).await;
    app.fake.fail_templates(
        401,
        FakeGraph::meta_error(
            190,
            "Error validating access token: Session has expired",
            "",
        ),
    );
    let reply = app.admin("/template sync").await;
    assert!(
        reply.starts_with("template sync failed: Meta answered 401"),
        "{reply}"
    );
    assert!(reply.contains("Session has expired"), "{reply}");
    assert!(
        reply.contains("the 3 stored template(s) are kept"),
        "{reply}"
    );
    assert_eq!(reply.lines().count(), 1, "{reply}");

    // The sync at the next start fails too; the templates are still there.
    let before = app.fake.template_requests().len();
    app.restart().await;
    app.wait_until("the sync at restart", || {
        app.fake.template_requests().len() > before
    })
    .await;
    let list = app.admin("/template list").await;
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(
        list.contains("order_update en_US [utility] APPROVED"),
        "{list}"
    );
    let account = app.admin("/account").await;
    assert!(account.contains("last sync: failed"), "{account}");
    assert!(account.contains("APPROVED 2, PENDING 1"), "{account}");

    // A 5xx is answered the same way.
    app.fake.fail_templates(
        500,
        FakeGraph::meta_error(1, "An unknown error occurred", ""),
    );
    let reply = app.admin("/template sync").await;
    assert!(reply.contains("Meta answered 500"), "{reply}");
    app.fake.serve_templates();
    let reply = app.admin("/template sync").await;
    assert!(reply.contains("0 added, 0 changed, 0 removed"), "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn an_account_violation_pauses_every_sending_campaign_and_the_admins_are_told() {
    // A tier of one keeps the campaign sending with two recipients waiting.
    let app = start("1").await;
    app.setup(&["/template add hello en utility Hello {{1}}"])
        .await;
    vips(&app, 3).await;
    app.setup(&[
        "/campaign new Promo",
        "/campaign audience 1 vip",
        "/campaign template 1 hello en {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.report(1).await["status"], "sending");

    let mut body = sample("account_update.json", "account_violation");
    body["entry"][0]["time"] = json!(app.now_secs());
    post(&app, &body.to_string()).await;
    let paused = app.wait_for_admin_text("campaign 1 paused").await;
    assert!(
        paused.contains("WhatsApp account ACCOUNT_VIOLATION (ADULT)"),
        "{paused}"
    );
    let notice = app.wait_for_admin_text("WhatsApp reported").await;
    assert!(notice.contains("1 sending campaign(s) paused"), "{notice}");
    assert_eq!(app.report(1).await["status"], "paused");
    app.advance(Duration::hours(48));
    app.wait_for_idle(1).await;
    assert_eq!(app.campaign_sends().len(), 1, "nothing leaves while paused");
    assert!(app
        .admin("/account")
        .await
        .contains("account: ACCOUNT_VIOLATION (ADULT)"));
    app.stop().await;
}

#[tokio::test]
async fn templates_are_read_again_every_six_hours() {
    let app = start("250").await;
    app.fake.set_templates(vec![welcome("APPROVED")], 100);
    let before = app.fake.template_requests().len();
    app.advance(Duration::hours(6));
    app.wait_until("the periodic sync", || {
        app.fake.template_requests().len() > before
    })
    .await;
    // The sync stores what it read soon after asking (waiting for its I/O, not for a time).
    let mut listed = String::new();
    for _ in 0..500 {
        listed = app.admin("/template list").await;
        if listed.contains("welcome_new en") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        listed.contains("welcome_new en [marketing] APPROVED"),
        "{listed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_business_account_id_templates_are_declared_and_the_tier_configured() {
    let app = RunApp::start_with(&[("WHATSAPP_TIER", "2000")], |_| {}).await;
    let reply = app.admin("/template sync").await;
    assert!(
        reply.starts_with("template sync needs WHATSAPP_BUSINESS_ACCOUNT_ID"),
        "{reply}"
    );
    let account = app.admin("/account").await;
    assert!(
        account.contains("tier: 2000 contacts per 24 h (configured WHATSAPP_TIER)"),
        "{account}"
    );
    assert!(account.contains("declared with /template add"), "{account}");
    assert!(app.fake.template_requests().is_empty());

    // A restriction lifted early by Meta releases what it held at once.
    app.setup(&["/template add hello en utility Hello {{1}}"])
        .await;
    vips(&app, 1).await;
    let mut body = sample("account_update.json", "account_restriction");
    body["entry"][0]["time"] = json!(app.now_secs());
    body["entry"][0]["changes"][0]["value"]["restriction_info"][0]["expiration"] =
        json!((app.now() + Duration::days(3)).timestamp());
    post(&app, &body.to_string()).await;
    app.setup(&[
        "/campaign new Promo",
        "/campaign audience 1 vip",
        "/campaign template 1 hello en {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_idle(1).await;
    assert!(app.campaign_sends().is_empty());
    body["entry"][0]["time"] = json!(app.now_secs() + 60);
    body["entry"][0]["changes"][0]["value"]["restriction_info"] = json!([]);
    post(&app, &body.to_string()).await;
    app.wait_for_admin_text("WhatsApp reports no restriction")
        .await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.report(1).await["status"], "completed");
    app.stop().await;
}

/// The status writer's store call, driven directly: a billing whose row a status of the same
/// batch moves forward is written by that update (none left over); one whose status changes
/// nothing (a replay) is left for the billing statement.
#[tokio::test]
async fn a_billing_rides_on_its_rows_status_write() {
    use herald::channels::{Billing, DeliveryStatus, StatusUpdate};
    use herald::domain::account::Pricing;
    let app = start("250").await;
    app.setup(&["/template add promo en marketing Hi {{1}}"])
        .await;
    vips(&app, 1).await;
    app.setup(&[
        "/campaign new Promo",
        "/campaign audience 1 vip",
        "/campaign template 1 promo en {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    let sent = app.campaign_send_to(&digits(1));
    let wamid = sent.wamid.clone().unwrap();
    let callback = sent.callback().map(str::to_string);
    let status = |status| StatusUpdate {
        provider_id: wamid.clone(),
        callback: callback.clone(),
        status,
        at: app.now(),
        recipient: Some(digits(1)),
    };
    let billing = Billing {
        provider_id: wamid.clone(),
        callback: callback.clone(),
        pricing: Pricing {
            billable: Some(true),
            model: Some("PMP".into()),
            category: Some("utility".into()),
            kind: Some("regular".into()),
        },
    };
    let store = &app.engine.store;
    // `sent` again changes nothing: the billing is left for its own statement.
    let (changes, left) = store
        .apply_statuses_billed(
            &[status(DeliveryStatus::Sent)],
            &[None],
            std::slice::from_ref(&billing),
        )
        .await
        .unwrap();
    assert_eq!(changes, vec![None]);
    assert_eq!(left, vec![0]);
    assert!(!app.report(1).await.contains_key("billed.utility"));
    // `delivered` moves the row: the billing goes with it.
    let (changes, left) = store
        .apply_statuses_billed(&[status(DeliveryStatus::Delivered)], &[None], &[billing])
        .await
        .unwrap();
    assert!(changes[0].is_some());
    assert!(left.is_empty(), "{left:?}");
    let report = app.report(1).await;
    assert_eq!(report["delivered"], "1", "{report:?}");
    assert_eq!(report["billed.utility"], "1", "{report:?}");
    app.stop().await;
}
