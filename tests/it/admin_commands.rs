//! Admin commands: bad input answers in one line with the usage and changes nothing; customers
//! who type commands learn nothing; consent history is kept.

use crate::support::console_app::ConsoleApp;

#[tokio::test]
async fn malformed_commands_answer_with_a_reason_and_usage_and_change_nothing() {
    let app = ConsoleApp::start().await;
    app.setup(&["/campaign new Real"]).await;
    let before = app.admin("/campaign list").await;
    for line in [
        "/campaign send abc",
        "/campaign audience",
        "/campaign pace 1 rate=fast",
        "/campaign schedule 1 tomorrow",
        "/contact add",
        "/frobnicate",
        "/template add promo en shouting Hello",
    ] {
        let reply = app.admin(line).await;
        assert_eq!(reply.lines().count(), 1, "{line}: {reply}");
        assert!(
            reply.contains("Usage:") || reply.contains("/help"),
            "{line}: {reply}"
        );
    }
    for (line, expect) in [
        ("/campaign send 99", "no campaign 99"),
        ("/campaign text 99 hi", "no campaign 99"),
        ("/contact show +15559999", "no contact"),
        ("/campaign send 1", "no audience"),
        ("/campaign text 1 Hi {{nmae}}", "unknown variable"),
        ("/campaign audience 1 vip+", "audience"),
    ] {
        let reply = app.admin(line).await;
        assert_eq!(reply.lines().count(), 1, "{line}: {reply}");
        assert!(reply.contains(expect), "{line}: {reply}");
    }
    assert_eq!(app.admin("/campaign list").await, before);
    assert_eq!(app.report(1).await["status"], "draft");
}

#[tokio::test]
async fn a_customer_typing_commands_learns_nothing() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/campaign new Secret plans",
    ])
    .await;
    let before = app.console.transcript().len();
    for line in [
        "/campaign list",
        "/contact show +15550001",
        "/help",
        "/campaign report 1",
    ] {
        app.customer("+15559999", line).await;
    }
    app.settle().await;
    let after = app.console.transcript();
    let said: Vec<&String> = after[before..].iter().collect();
    assert!(said.is_empty(), "herald said {said:?}");
}

#[tokio::test]
async fn consent_history_is_kept_and_never_overwritten() {
    let app = ConsoleApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann optin"]).await;
    app.customer("+15550001", "STOP").await;
    app.customer("+15550001", "start").await;
    let show = app.admin("/contact show +15550001").await;
    let history: Vec<&str> = show.lines().filter(|l| l.starts_with("history:")).collect();
    assert_eq!(history.len(), 3, "{show}");
    assert!(history[0].contains("opt_in via admin"), "{show}");
    assert!(history[1].contains("opt_out via keyword (STOP)"), "{show}");
    assert!(history[2].contains("opt_in via keyword"), "{show}");
    assert!(show.contains("consent: opted_in"), "{show}");
}

#[tokio::test]
async fn a_reply_counts_for_the_campaign_last_received() {
    let app = ConsoleApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann labels=vip optin"])
        .await;
    app.customer("+15550001", "hi").await;
    app.setup(&[
        "/campaign new Ask",
        "/campaign audience 1 vip",
        "/campaign text 1 Coming on Friday?",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    app.customer("+15550001", "yes I'll be there").await;
    app.customer("+15550001", "and my friend").await;
    assert_eq!(app.count(1, "replied").await, 1);
}

#[tokio::test]
async fn csv_import_keeps_good_rows_and_names_bad_ones() {
    let app = ConsoleApp::start().await;
    let csv = "address,name,labels,consent,city\n\
               +15550001,Ann,vip;new,yes,Lisbon\n\
               ,Nobody,vip,yes,Porto\n\
               +15550002,Bob,vip,maybe,Faro\n\
               +15550003,Cy,new,,Braga\n";
    let reply = app.admin(&format!("/contact import\n{csv}")).await;
    assert!(reply.contains("2 added"), "{reply}");
    assert!(reply.contains("line 3"), "{reply}");
    assert!(reply.contains("line 4"), "{reply}");
    let ann = app.admin("/contact show +15550001").await;
    assert!(ann.contains("consent: opted_in"), "{ann}");
    assert!(ann.contains("attr.city: Lisbon"), "{ann}");
    assert!(ann.contains("labels: new,vip"), "{ann}");
    assert!(app
        .admin("/contact show +15550002")
        .await
        .contains("no contact"));
}

#[tokio::test]
async fn help_lists_the_command_groups() {
    let app = ConsoleApp::start().await;
    let help = app.admin("/help").await;
    for group in ["/campaign", "/contact", "/template", "/trigger", "/optin"] {
        assert!(help.contains(group), "{group} in {help}");
    }
    let one = app.admin("/help campaign send").await;
    assert!(one.contains("/campaign send <id>"), "{one}");
}

#[tokio::test]
async fn explicit_addresses_are_targeted_even_when_new() {
    let app = ConsoleApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann optin"]).await;
    app.customer("+15550001", "hi").await;
    let reply = app.admin("/campaign new Direct").await;
    assert!(reply.contains("created"));
    let reply = app.admin("/campaign audience 1 +15550001 +15550077").await;
    assert!(reply.contains("2 contact(s)"), "{reply}");
    app.setup(&["/campaign text 1 Direct hello", "/campaign send 1"])
        .await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Direct hello"]);
    assert!(app.received("+15550077").is_empty());
    assert_eq!(app.count(1, "targeted").await, 2);
    assert_eq!(app.count(1, "skipped.no_consent").await, 1);
}
