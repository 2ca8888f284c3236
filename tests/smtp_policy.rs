//! The administrator's per-mailbox settings steer sending: attachments turned into download
//! links or refused, the client's copy as the only Sent copy; and activities reach a webhook
//! that fails at first.

mod common;
mod smtp_support;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, start_demo, Imap};
use graphbridge::demo::{self, DemoOptions, DEMO_MAILBOX, DEMO_PASSWORD, DEMO_USER};
use graphbridge::mailstore::accounts::{self, AttachmentPolicy, MailboxSettings, SentCopy};
use smtp_support::{with_attachment, Outlook, Smtp};

const SALES: &str = DEMO_MAILBOX;

async fn set(demo: &demo::Demo, settings: MailboxSettings) {
    demo.running
        .bridge
        .store
        .call(move |c| {
            let mailbox = accounts::mailbox_by_address(c, SALES)?.expect("mailbox");
            accounts::save_mailbox_settings(c, mailbox.id, &settings)
        })
        .await
        .expect("settings saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_policy_download_link_and_refuse() {
    let demo = start_demo(None).await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let pdf = b"%PDF-1.4 policy\n";

    set(
        &demo,
        MailboxSettings {
            attachment_policy: AttachmentPolicy::Refuse,
            ..MailboxSettings::default()
        },
    )
    .await;
    let m = with_attachment(SALES, "a@example.test", "refused one", "", "offer", pdf);
    let reply = smtp.send(SALES, &["a@example.test"], &m).await;
    assert!(
        reply.starts_with("550 5.7.0") && reply.contains("_downloadLink"),
        "{reply}"
    );

    // With download links, bulk mail with an attachment goes out with a link instead.
    set(
        &demo,
        MailboxSettings {
            attachment_policy: AttachmentPolicy::DownloadLink,
            ..MailboxSettings::default()
        },
    )
    .await;
    let bulk = with_attachment(
        SALES,
        "b@example.test",
        "linked bulk",
        "Precedence: bulk\r\n",
        "offer",
        pdf,
    );
    let reply = smtp.send(SALES, &["b@example.test"], &bulk).await;
    assert!(reply.starts_with("250"), "{reply}");
    let sent = outlook.with_subject("sentitems", "linked bulk").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["hasAttachments"], false,
        "the attachment became a link"
    );
    let id = sent[0]["id"].as_str().expect("id").to_string();
    assert!(
        outlook.mime(&id).await.contains("/d/"),
        "the body carries the link"
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_copy_client_leaves_the_clients_append_as_the_only_copy() {
    let demo = start_demo(None).await;
    set(
        &demo,
        MailboxSettings {
            sent_copy: SentCopy::Client,
            ..MailboxSettings::default()
        },
    )
    .await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let message = "From: sales@contoso.test\r\nTo: c@example.test\r\nSubject: client copy\r\n\
Message-ID: <client-copy-1@contoso.test>\r\n\r\nmine\r\n";
    let mut smtp = Smtp::login(demo.running.smtp).await;
    assert!(smtp
        .send(SALES, &["c@example.test"], message)
        .await
        .starts_with("250"));
    // Give the bridge time to send and to remove Graph's copy.
    assert!(
        eventually(Duration::from_secs(30), || async {
            demo.running
                .bridge
                .store
                .call(|c| graphbridge::mailstore::outbox::queued(c))
                .await
                .map(|q| q.is_empty())
                .unwrap_or(false)
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(30), || async {
            outlook
                .with_subject("sentitems", "client copy")
                .await
                .is_empty()
        })
        .await,
        "Graph's copy is not kept"
    );
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.send_raw(
        format!(
            "C1 APPEND \"Sent Items\" (\\Seen) {{{}+}}\r\n{message}\r\n",
            message.len()
        )
        .as_bytes(),
    )
    .await;
    imap.read_until_tag("C1").await.assert_ok();
    assert_eq!(
        outlook.with_subject("sentitems", "client copy").await.len(),
        1,
        "the client's APPEND is the copy"
    );
    demo.stop().await;
}

static HOOK_PORT: AtomicU16 = AtomicU16::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_reach_a_webhook_that_fails_at_first() {
    // A receiver that refuses the first delivery and accepts the next.
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let calls = Arc::new(AtomicU16::new(0));
    let app = {
        let (received, calls) = (received.clone(), calls.clone());
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::Json<serde_json::Value>| {
                let (received, calls) = (received.clone(), calls.clone());
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    received.lock().expect("lock").push(body.0);
                    axum::http::StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    HOOK_PORT.store(
        listener.local_addr().expect("addr").port(),
        Ordering::SeqCst,
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut options = DemoOptions {
        imap_port: 0,
        smtp_port: 0,
        http_port: 0,
        poll_interval_secs: 1,
        ..DemoOptions::default()
    };
    options.emulator.port = 0;
    options.adjust_config = Some(|config| {
        let port = HOOK_PORT.load(Ordering::SeqCst);
        config.submission.activity_webhook = Some(format!("http://127.0.0.1:{port}/hook"));
    });
    let demo = demo::start(options).await.expect("demo");
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let message = "From: sales@contoso.test\r\nTo: d@example.test\r\nSubject: hooked\r\n\r\nhi\r\n";
    assert!(smtp
        .send(SALES, &["d@example.test"], message)
        .await
        .starts_with("250"));
    let delivered = eventually(Duration::from_secs(120), || async {
        received
            .lock()
            .expect("lock")
            .iter()
            .any(|a| a.to_string().contains("hooked"))
    })
    .await;
    assert!(
        delivered,
        "the activity reached the webhook after a refusal"
    );
    assert!(calls.load(Ordering::SeqCst) >= 2);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_for_a_new_signin_when_microsoft_refused_the_old_one() {
    let demo = start_demo(None).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let graph = demo.graph.addr;
    let http = reqwest::Client::new();
    for path in [format!("accounts/{SALES}/revoke"), "tokens/expire".into()] {
        let response = http
            .post(format!("http://{graph}/_emulator/{path}"))
            .send()
            .await
            .expect("control");
        assert!(response.status().is_success(), "{path}");
    }
    // A client's SELECT makes the bridge talk to Graph, which refuses the refresh token.
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let _ = imap.cmd("SELECT INBOX").await;
    let store = demo.running.bridge.store.clone();
    let marked = eventually(Duration::from_secs(60), || {
        let store = store.clone();
        async move {
            store
                .call(|c| accounts::mailbox_by_address(c, SALES))
                .await
                .ok()
                .flatten()
                .is_some_and(|m| m.signin_state == accounts::SigninState::NeedsSignin)
        }
    })
    .await;
    assert!(marked, "the refused sign-in is noticed");
    let reply = smtp.cmd(&format!("MAIL FROM:<{SALES}>")).await;
    assert!(
        reply.starts_with("451 4.7.0") && reply.contains(&format!("mailbox signin {SALES}")),
        "{reply}"
    );
    demo.stop().await;
}
