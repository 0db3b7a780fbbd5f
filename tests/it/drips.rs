//! Drip sequences: each enrolled contact walks the steps on their own clock; a reply or an
//! opt-out ends their sequence.

use chrono::Duration;

use crate::support::console_app::ConsoleApp;

async fn welcome(app: &ConsoleApp) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=new optin",
        "/contact add +15550002 name=Bob labels=new optin",
        "/template add tip en utility Tip for {{1}}: {{2}}",
    ])
    .await;
    let reply = app.admin("/drip new Welcome").await;
    assert!(reply.starts_with("drip 1 created"), "{reply}");
    app.setup(&[
        "/drip step 1 0m text Welcome {{name}}!",
        "/drip step 1 2d template tip en {{name}}|sizing",
        "/drip step 1 1w text Last tip, {{name}}",
    ])
    .await;
    // Templates reach contacts whose window closed; the texts need them to have written.
    app.customer("+15550001", "hi").await;
    app.customer("+15550002", "hi").await;
}

#[tokio::test]
async fn each_contact_walks_the_steps_on_their_own_clock() {
    let app = ConsoleApp::start().await;
    welcome(&app).await;
    app.setup(&["/drip stop-on-reply 1 off"]).await;
    let reply = app.admin("/drip enroll 1 +15550001").await;
    assert!(reply.contains("1 contact(s) enrolled"), "{reply}");
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Welcome Ann!"]);

    // Bob joins a day later (writing in again, so his window is open): his clock starts then.
    app.clock.advance(Duration::days(1));
    app.customer("+15550002", "hello again").await;
    app.admin("/drip enroll 1 new").await;
    app.settle().await;
    assert_eq!(app.received("+15550002"), vec!["Welcome Bob!"]);
    assert_eq!(app.received("+15550001").len(), 1, "enrolled once");

    app.clock.advance(Duration::days(1));
    app.settle().await;
    assert_eq!(
        app.received("+15550001").last().unwrap(),
        "Tip for Ann: sizing"
    );
    assert_eq!(
        app.received("+15550002").len(),
        1,
        "Bob's step 2 is a day away"
    );

    app.clock.advance(Duration::days(1));
    app.settle().await;
    assert_eq!(
        app.received("+15550002").last().unwrap(),
        "Tip for Bob: sizing"
    );

    // The last step is free text a week after step 2 (day 9 for Ann): only a contact who wrote
    // within the day before gets it; Bob does not write, so his sequence ends there.
    app.clock.advance(Duration::days(6) - Duration::hours(1));
    app.customer("+15550001", "thanks for the tips").await;
    app.clock.advance(Duration::hours(2));
    app.settle().await;
    assert_eq!(app.received("+15550001").last().unwrap(), "Last tip, Ann");
    assert_eq!(app.received("+15550001").len(), 3);
    app.clock.advance(Duration::days(2));
    app.settle().await;
    assert_eq!(app.received("+15550002").len(), 2);

    let show = app.admin("/drip show 1").await;
    assert!(show.contains("step 2 after 2d"), "{show}");
    let report = app.report(1).await;
    assert_eq!(report["sent"], "5", "{report:?}");
    assert_eq!(report["skipped.outside_window"], "1", "{report:?}");
}

#[tokio::test]
async fn a_reply_stops_the_sequence_by_default_and_stop_always_does() {
    let app = ConsoleApp::start().await;
    welcome(&app).await;
    app.admin("/drip enroll 1 new").await;
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 1);
    app.customer("+15550001", "can I talk to someone?").await;
    app.customer("+15550002", "STOP").await;
    app.clock.advance(Duration::days(10));
    app.settle().await;
    assert_eq!(
        app.received("+15550001").len(),
        1,
        "reply ended Ann's sequence"
    );
    assert_eq!(
        app.received("+15550002").len(),
        2,
        "welcome + opt-out confirmation"
    );
    let report = app.report(1).await;
    assert_eq!(report["skipped.replied"], "1", "{report:?}");
    assert_eq!(report["skipped.opted_out"], "1", "{report:?}");
}

#[tokio::test]
async fn a_keyword_enrolls_the_contact_once() {
    let app = ConsoleApp::start().await;
    welcome(&app).await;
    let reply = app.admin("/trigger add join drip 1").await;
    assert!(reply.contains("drip 1"), "{reply}");
    app.customer("+15550001", "I want to JOIN").await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Welcome Ann!"]);
    app.customer("+15550001", "join").await;
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 1);
}

#[tokio::test]
async fn drip_commands_refuse_bad_input_in_one_line() {
    let app = ConsoleApp::start().await;
    app.setup(&["/campaign new Plain"]).await;
    app.admin("/drip new Empty").await;
    for (line, expect) in [
        ("/drip step 2 soon text Hi", "Usage: /drip step"),
        ("/drip step 2 1d email Hi", "Usage: /drip step"),
        ("/drip step 1 1d text Hi", "not a drip"),
        ("/drip enroll 2 all", "no steps"),
        ("/drip step 2 1d template nope en", "no template"),
        ("/drip stop-on-reply 2 maybe", "Usage: /drip stop-on-reply"),
        ("/trigger add hi drip 2", "no steps"),
        ("/drip show 9", "no campaign 9"),
    ] {
        let reply = app.admin(line).await;
        assert_eq!(reply.lines().count(), 1, "{line}: {reply}");
        assert!(reply.contains(expect), "{line}: {reply}");
    }
}

#[tokio::test]
async fn pausing_or_cancelling_a_drip_holds_or_ends_every_step() {
    let app = ConsoleApp::start().await;
    welcome(&app).await;
    app.setup(&["/drip stop-on-reply 1 off", "/drip enroll 1 new"])
        .await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Welcome Ann!"]);

    // Paused, step 2 does not go when its day comes.
    let reply = app.admin("/campaign pause 1").await;
    assert!(reply.contains("campaign 1 paused"), "{reply}");
    app.clock.advance(Duration::days(2) + Duration::minutes(1));
    app.settle().await;
    assert_eq!(
        app.received("+15550001").len(),
        1,
        "nothing sent while paused"
    );

    // Resumed, it goes; cancelled, the last step never does.
    let reply = app.admin("/campaign resume 1").await;
    assert!(reply.contains("resumed"), "{reply}");
    app.settle().await;
    assert_eq!(
        app.received("+15550001").last().unwrap(),
        "Tip for Ann: sizing"
    );
    let reply = app.admin("/campaign cancel 1").await;
    assert!(
        reply.contains("2 recipient(s) will not be sent"),
        "the last step of Ann and Bob: {reply}"
    );
    app.clock.advance(Duration::weeks(2));
    app.customer("+15550001", "still here").await;
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 2);
    assert_eq!(app.received("+15550002").len(), 2);
    assert!(app.admin("/campaign resume 1").await.contains("cancelled"));
}
