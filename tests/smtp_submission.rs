//! SMTP submission against the demo: extensions, the Microsoft 365 rules of the help page
//! (10 recipients, serial mail, bulk markers), Bcc, aliases, Sent Items and activities.

mod common;
mod smtp_support;

use common::start_demo;
use graphbridge::mailstore::{accounts, activities::ActivitySource};
use graphbridge::submission;
use smtp_support::{eventually, with_attachment, Outlook, Smtp};

const SALES: &str = "sales@contoso.test";
const INFO: &str = "info@contoso.test";

fn addresses(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("r{i}@example.test")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehlo_offers_the_submission_extensions() {
    let demo = start_demo(None).await;
    let mut smtp = Smtp::connect(demo.running.smtp).await;
    let ehlo = smtp.cmd("EHLO tests").await;
    for ext in [
        "SIZE 36700160",
        "8BITMIME",
        "SMTPUTF8",
        "PIPELINING",
        "CHUNKING",
        "STARTTLS",
        "AUTH PLAIN LOGIN",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.contains(ext), "EHLO lacks {ext}:\n{ehlo}");
    }
    let reply = smtp.cmd("MAIL FROM:<sales@contoso.test>").await;
    assert!(
        reply.starts_with("530 5.7.0"),
        "no relay without AUTH: {reply}"
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_ten_recipients_pass_eleven_are_refused_whole() {
    let demo = start_demo(None).await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;

    // Ten distinct, written with duplicates across To, Cc, Bcc and the envelope.
    let r = addresses(10);
    let message = format!(
        "From: {SALES}\r\nTo: {}\r\nCc: {}, {}\r\nBcc: {}\r\nSubject: ten\r\n\r\nhi\r\n",
        r[..5].join(", "),
        r[4..8].join(", "),
        r[0].to_uppercase(),
        r[8]
    );
    let envelope: Vec<&str> = r.iter().map(String::as_str).collect();
    let reply = smtp.send(SALES, &envelope, &message).await;
    assert!(reply.starts_with("250"), "ten recipients: {reply}");

    let r = addresses(11);
    let message = format!(
        "From: {SALES}\r\nTo: {}\r\nSubject: eleven\r\n\r\nhi\r\n",
        r[..10].join(", ")
    );
    let envelope: Vec<&str> = r.iter().map(String::as_str).collect();
    let reply = smtp.send(SALES, &envelope, &message).await;
    assert!(reply.starts_with("550 5.5.3"), "eleven recipients: {reply}");
    assert!(
        reply.contains("10") && reply.contains("_downloadLink(Text)"),
        "{reply}"
    );

    assert_eq!(outlook.with_subject("sentitems", "ten").await.len(), 1);
    assert!(
        outlook.with_subject("sentitems", "eleven").await.is_empty(),
        "nothing half-sent"
    );
    assert!(outlook.with_subject("drafts", "eleven").await.is_empty());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bcc_reaches_the_recipient_but_not_the_headers() {
    let demo = start_demo(None).await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    // sales is only an envelope recipient: it must get the message, without a Bcc header.
    let message =
        format!("From: {SALES}\r\nTo: someone@example.test\r\nSubject: blind\r\n\r\nhi\r\n");
    let reply = smtp
        .send(SALES, &["someone@example.test", SALES], &message)
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let delivered = outlook.with_subject("inbox", "blind").await;
    assert_eq!(delivered.len(), 1);
    let id = delivered[0]["id"].as_str().expect("id");
    let mime = outlook.mime(id).await;
    assert!(!mime.to_ascii_lowercase().contains("\nbcc:"), "{mime}");
    assert!(!mime.to_ascii_lowercase().starts_with("bcc:"), "{mime}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_mail_with_attachments_is_refused() {
    let demo = start_demo(None).await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let pdf = b"%PDF-1.4 serial\n";

    // A bulk marker with an attachment: refused. Without the attachment: fine.
    let bulk = with_attachment(
        SALES,
        "a@example.test",
        "bulk",
        "Precedence: bulk\r\n",
        "hello",
        pdf,
    );
    let reply = smtp.send(SALES, &["a@example.test"], &bulk).await;
    assert!(reply.starts_with("550 5.7.0"), "{reply}");
    assert!(reply.contains("_downloadLink(Text)"), "{reply}");
    let plain = format!("From: {SALES}\r\nTo: a@example.test\r\nList-Unsubscribe: <mailto:u@contoso.test>\r\nSubject: newsletter\r\n\r\nhi\r\n");
    assert!(smtp
        .send(SALES, &["a@example.test"], &plain)
        .await
        .starts_with("250"));

    // The same attachment to different people: the first two pass, the third is serial mail.
    for (i, to) in ["b@example.test", "c@example.test"].iter().enumerate() {
        let m = with_attachment(SALES, to, &format!("copy {i}"), "", "offer", pdf);
        let reply = smtp.send(SALES, &[to], &m).await;
        assert!(reply.starts_with("250"), "copy {i}: {reply}");
    }
    // Re-sending to someone who had it already is not serial mail.
    let again = with_attachment(SALES, "b@example.test", "again", "", "offer", pdf);
    assert!(smtp
        .send(SALES, &["b@example.test"], &again)
        .await
        .starts_with("250"));
    let third = with_attachment(SALES, "d@example.test", "copy 3", "", "offer", pdf);
    let reply = smtp.send(SALES, &["d@example.test"], &third).await;
    assert!(reply.starts_with("550 5.7.0"), "third copy: {reply}");
    assert!(outlook.with_subject("sentitems", "copy 3").await.is_empty());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_must_be_an_assigned_mailbox() {
    let demo = start_demo(None).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let message = "From: ceo@contoso.test\r\nTo: a@example.test\r\nSubject: x\r\n\r\nhi\r\n";
    let reply = smtp.send(SALES, &["a@example.test"], message).await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    assert!(
        reply.contains(SALES) && reply.contains(INFO),
        "names the allowed: {reply}"
    );
    let message = format!("From: {SALES}\r\nTo: a@example.test\r\nSubject: x\r\n\r\nhi\r\n");
    let reply = smtp
        .send("support@contoso.test", &["a@example.test"], &message)
        .await;
    assert!(
        reply.starts_with("550 5.7.1"),
        "MAIL FROM is checked too: {reply}"
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_sending_allowed_then_refused_with_the_admin_command() {
    let demo = start_demo(None).await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let message =
        format!("From: Info <{INFO}>\r\nTo: a@example.test\r\nSubject: from alias\r\n\r\nhi\r\n");
    let reply = smtp.send(INFO, &["a@example.test"], &message).await;
    assert!(reply.starts_with("250"), "{reply}");
    let sent = outlook.with_subject("sentitems", "from alias").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["from"]["emailAddress"]["address"].as_str(),
        Some(INFO)
    );

    outlook.set_send_from_alias(false).await;
    let message = format!("From: {INFO}\r\nTo: a@example.test\r\nSubject: alias off\r\n\r\nhi\r\n");
    let reply = smtp.send(INFO, &["a@example.test"], &message).await;
    assert!(reply.starts_with("550 5.7.60"), "{reply}");
    assert!(
        reply.contains("Set-OrganizationConfig -SendFromAliasEnabled $true"),
        "{reply}"
    );
    // Known now: the next one is refused before anything goes to Microsoft.
    let message =
        format!("From: {INFO}\r\nTo: a@example.test\r\nSubject: alias off again\r\n\r\nhi\r\n");
    let reply = smtp.send(INFO, &["a@example.test"], &message).await;
    assert!(reply.starts_with("550 5.7.60"), "{reply}");
    assert!(outlook
        .with_subject("sentitems", "alias off again")
        .await
        .is_empty());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_copy_is_recognised_and_activities_are_booked_once() {
    let demo = start_demo(None).await;
    let bridge = demo.running.bridge.clone();
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let message = format!(
        "From: {SALES}\r\nTo: a@example.test\r\nSubject: booked\r\nMessage-ID: <booked-1@contoso.test>\r\n\r\nPlease find the offer.\r\n"
    );
    let reply = smtp.send(SALES, &["a@example.test"], &message).await;
    assert!(reply.starts_with("250"), "{reply}");
    let sent = outlook.with_subject("sentitems", "booked").await;
    assert_eq!(sent.len(), 1);
    let sent_id = sent[0]["id"].as_str().expect("id").to_string();

    // The client APPENDs its own copy to Sent: recognised as the message just sent.
    let mailbox = bridge
        .store
        .call(|c| accounts::mailbox_by_address(c, SALES))
        .await
        .expect("store")
        .expect("sales");
    let found = submission::recent_send_matching(&bridge.store, &mailbox, message.as_bytes())
        .await
        .expect("store");
    assert_eq!(found.as_deref(), Some(sent_id.as_str()));
    let changed = message.replace("Please find", "Please ignore");
    let other = submission::recent_send_matching(&bridge.store, &mailbox, changed.as_bytes())
        .await
        .expect("store");
    assert_eq!(
        other, None,
        "same Message-ID, other content: not the same message"
    );

    // Outlook sends one itself: booked as external, once, beside the bridge's.
    outlook.send_itself("from outlook").await;
    let booked = eventually(|| {
        let store = bridge.store.clone();
        async move {
            submission::activities::list(&store, None, None)
                .await
                .map(|l| l.iter().any(|a| a.subject == "from outlook"))
                .unwrap_or(false)
        }
    })
    .await;
    assert!(booked, "the Outlook send was booked");
    bridge.outbox_ready.notify_one();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let list = submission::activities::list(&bridge.store, Some(SALES.into()), None)
        .await
        .expect("activities");
    let ours: Vec<_> = list.iter().filter(|a| a.subject == "booked").collect();
    assert_eq!(ours.len(), 1, "{list:#?}");
    assert_eq!(ours[0].source, ActivitySource::Bridge);
    assert_eq!(ours[0].kind, "Email – Outbox");
    assert_eq!(ours[0].action, "External email dispatch");
    assert_eq!(ours[0].supervisor.as_deref(), Some("demo"));
    assert_eq!(ours[0].recipients, vec!["a@example.test".to_string()]);
    let outside: Vec<_> = list
        .iter()
        .filter(|a| a.subject == "from outlook")
        .collect();
    assert_eq!(outside.len(), 1);
    assert_eq!(outside[0].source, ActivitySource::External);
    // Fixture mail that was in Sent Items before the bridge started is history, not booked.
    assert!(list
        .iter()
        .all(|a| a.subject != "Re: Q1 pricing for Fabrikam"));

    let mut out = Vec::new();
    let db = graphbridge::mailstore::Store::open(&demo.data_dir.join("graphbridge.sqlite3"))
        .expect("second handle");
    submission::activities::cli(&db, Some(SALES), None, true, &mut out).expect("cli");
    let json: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert!(json.as_array().is_some_and(|a| a.len() == 2), "{json}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_notice_lands_in_the_inbox() {
    let demo = start_demo(None).await;
    let bridge = demo.running.bridge.clone();
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mailbox = bridge
        .store
        .call(|c| accounts::mailbox_by_address(c, SALES))
        .await
        .expect("store")
        .expect("sales");
    let item = graphbridge::mailstore::OutboxItem {
        id: 0,
        mailbox_id: mailbox.id,
        user_id: None,
        mail_from: SALES.into(),
        recipients: vec!["a@example.test".into()],
        message: b"From: sales@contoso.test\r\nSubject: lost\r\n\r\nx\r\n".to_vec(),
        state: graphbridge::mailstore::OutboxState::Queued,
        attempts: 30,
        last_error: None,
        phase: graphbridge::mailstore::SendPhase::New,
        tag: "t".into(),
        draft_id: None,
        sent_graph_id: None,
        next_attempt_at: 0,
        message_id: None,
        fingerprint: None,
        recipient_count: 1,
        links: Vec::new(),
        save_copy: true,
        created_at: 0,
        sent_at: None,
    };
    submission::dsn::deliver(&bridge, &item, "still failing after 24 hours: 503")
        .await
        .expect("notice created");
    let notices = outlook
        .with_subject("inbox", "Undelivered Mail Returned to Sender: lost")
        .await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["isDraft"].as_bool(), Some(false));
    let mime = outlook.mime(notices[0]["id"].as_str().expect("id")).await;
    assert!(mime.contains("message/delivery-status"), "{mime}");
    // IMAP clients get the bridge's RFC 3464 multipart/report.
    let imap_addr = demo.running.imap;
    let served_as_report = common::eventually(std::time::Duration::from_secs(30), || async move {
        let mut imap = common::Imap::login(imap_addr, "demo", "demo").await;
        imap.cmd("EXAMINE INBOX").await.assert_ok();
        let fetch = imap.cmd("FETCH 1:* (BODYSTRUCTURE)").await;
        fetch
            .untagged
            .iter()
            .any(|l| l.contains("\"report\" (\"report-type\" \"delivery-status\""))
    })
    .await;
    assert!(
        served_as_report,
        "IMAP serves the notice as multipart/report"
    );
    demo.stop().await;
}
