//! A client that sends through the bridge and then APPENDs its own copy to Sent (as most do)
//! gets the message Graph already saved, not a duplicate.

mod common;
mod smtp_support;

use common::{eventually, start_demo, Imap};
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};
use smtp_support::Smtp;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appending_a_just_sent_message_to_sent_does_not_duplicate_it() {
    let demo = start_demo(None).await;
    let message = "From: sales@contoso.test\r\nTo: anna@example.test\r\n\
Subject: Dedup check\r\nMessage-ID: <dedup-check-1@contoso.test>\r\n\r\nOne copy only.\r\n";
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let reply = smtp
        .send("sales@contoso.test", &["anna@example.test"], message)
        .await;
    assert!(reply.starts_with("250"), "{reply}");

    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let in_sent = || async {
        let mut probe = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
        probe.cmd("EXAMINE \"Sent Items\"").await.assert_ok();
        let fetch = probe
            .cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await;
        fetch
            .untagged
            .iter()
            .filter(|l| l.contains("dedup-check-1@contoso.test"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(30), || async { in_sent().await == 1 }).await,
        "Graph saved the sent message in Sent Items"
    );

    let tag = "S1";
    imap.send_raw(
        format!(
            "{tag} APPEND \"Sent Items\" (\\Seen) {{{}+}}\r\n{message}\r\n",
            message.len()
        )
        .as_bytes(),
    )
    .await;
    let appended = imap.read_until_tag(tag).await;
    appended.assert_ok();
    assert!(
        appended.status.contains("[APPENDUID "),
        "{}",
        appended.status
    );
    assert_eq!(in_sent().await, 1, "no duplicate in Sent Items");
    demo.stop().await;
}
