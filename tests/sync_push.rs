//! Outside changes reach an IMAP client in IDLE (by polling, and by change notifications when
//! the bridge has a public URL), and a refused sign-in turns into "needs sign-in" with the fix.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{eventually, Imap};
use graphbridge::demo::{self, Demo, DemoOptions, DEMO_MAILBOX, DEMO_PASSWORD, DEMO_USER};
use graphbridge::mailstore::{accounts, SigninState};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);

async fn start(poll_interval_secs: u64) -> Demo {
    let mut options = DemoOptions {
        imap_port: 0,
        smtp_port: 0,
        http_port: 0,
        poll_interval_secs,
        ..DemoOptions::default()
    };
    options.emulator.port = 0;
    demo::start(options).await.expect("demo starts")
}

async fn deliver(graph: SocketAddr, subject: &str) -> Value {
    let raw = format!(
        "From: Anna <anna@example.test>\r\nTo: {DEMO_MAILBOX}\r\nSubject: {subject}\r\n\
         Message-ID: <{}@example.test>\r\n\r\nHello.\r\n",
        subject.replace(' ', "-")
    );
    reqwest::Client::new()
        .post(format!(
            "http://{graph}/_emulator/mailboxes/{DEMO_MAILBOX}/deliver"
        ))
        .body(raw)
        .send()
        .await
        .expect("deliver")
        .json()
        .await
        .expect("deliver JSON")
}

/// An IMAP connection idling in INBOX; returns it and INBOX's message count.
async fn idle_in_inbox(addr: SocketAddr) -> (Imap, usize) {
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let select = imap.cmd("SELECT INBOX").await;
    select.assert_ok();
    let exists = select
        .find(" EXISTS")
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("EXISTS");
    imap.send_raw(b"I1 IDLE\r\n").await;
    let go = imap.read_line().await;
    assert!(go.starts_with('+'), "IDLE accepted: {go}");
    (imap, exists)
}

/// Reads untagged responses until one contains `needle` (the deadline is generous; this
/// checks that it arrives, not how fast).
async fn expect_untagged(imap: &mut Imap, needle: &str) -> String {
    tokio::time::timeout(LIMIT, async {
        loop {
            let line = imap.read_line().await;
            if line.contains(needle) {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no untagged response with {needle}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_changes_reach_an_idle_client() {
    let demo = start(1).await;
    let graph = demo.graph.addr;
    let (mut imap, exists) = idle_in_inbox(demo.running.imap).await;

    // New mail.
    let delivered = deliver(graph, "Idle one").await;
    let id = delivered["immutableId"].as_str().expect("id").to_string();
    expect_untagged(&mut imap, &format!("* {} EXISTS", exists + 1)).await;

    // Read in Outlook.
    outlook_call(
        graph,
        "PATCH",
        &format!("/messages/{id}"),
        json!({"isRead": true}),
    )
    .await;
    let fetch = expect_untagged(&mut imap, "FETCH").await;
    assert!(fetch.contains("\\Seen"), "{fetch}");

    // Moved away in Outlook: expunged here.
    outlook_call(
        graph,
        "POST",
        &format!("/messages/{id}/move"),
        json!({"destinationId": "archive"}),
    )
    .await;
    expect_untagged(&mut imap, "EXPUNGE").await;

    // Deleted in Outlook.
    let other = deliver(graph, "Idle two").await;
    let other_id = other["immutableId"].as_str().expect("id").to_string();
    expect_untagged(&mut imap, " EXISTS").await;
    outlook_call(
        graph,
        "DELETE",
        &format!("/messages/{other_id}"),
        Value::Null,
    )
    .await;
    expect_untagged(&mut imap, "EXPUNGE").await;

    imap.send_raw(b"DONE\r\n").await;
    imap.read_until_tag("I1").await.assert_ok();
    demo.stop().await;
}

/// A write as Outlook makes it, with its own sign-in.
async fn outlook_call(graph: SocketAddr, method: &str, path: &str, body: Value) {
    let token = outlook_token(graph).await;
    let mut request = reqwest::Client::new()
        .request(
            method.parse().expect("method"),
            format!("http://{graph}/v1.0/me{path}"),
        )
        .bearer_auth(token)
        .header("Prefer", "IdType=\"ImmutableId\"");
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.expect("Graph");
    assert!(
        response.status().is_success(),
        "{method} {path}: {}",
        response.status()
    );
}

async fn outlook_token(graph: SocketAddr) -> String {
    let http = reqwest::Client::new();
    let base = format!("http://{graph}/common/oauth2/v2.0");
    let code: Value = http
        .post(format!("{base}/devicecode"))
        .form(&[("client_id", "outlook"), ("scope", "Mail.ReadWrite")])
        .send()
        .await
        .expect("devicecode")
        .json()
        .await
        .expect("JSON");
    let token: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "outlook"),
            ("device_code", code["device_code"].as_str().expect("code")),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("JSON");
    token["access_token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_notifications_trigger_a_delta() {
    // Polling so rare that only a notification can bring the new mail within the deadline.
    let demo = start(3600).await;
    let graph = demo.graph.addr;
    let sync = common::demo_engine(&demo).await;
    sync.enable_push(&format!("http://{}", demo.running.http));
    let stats = || async {
        let v: Value = reqwest::get(format!("http://{graph}/_emulator/stats"))
            .await
            .expect("stats")
            .json()
            .await
            .expect("JSON");
        v
    };
    // Probes until the subscriptions exist and Graph notifies the bridge.
    let (mut imap, exists) = idle_in_inbox(demo.running.imap).await;
    let created = eventually(LIMIT, || async {
        deliver(graph, "Pushed probe").await;
        let v = stats().await;
        v["notifications"]["delivered"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert!(created, "Graph delivered a notification to the bridge");
    let line = expect_untagged(&mut imap, " EXISTS").await;
    assert!(line.contains(" EXISTS"), "{line}; was {exists}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_signin_shows_and_names_the_fix() {
    let demo = start(1).await;
    let graph = demo.graph.addr;
    let client = reqwest::Client::new();
    for path in [
        format!("accounts/{DEMO_MAILBOX}/revoke"),
        "tokens/expire".to_string(),
    ] {
        let response = client
            .post(format!("http://{graph}/_emulator/{path}"))
            .send()
            .await
            .expect("control");
        assert!(response.status().is_success());
    }
    let store = demo.running.bridge.store.clone();
    let marked = eventually(LIMIT, || {
        let store = store.clone();
        async move {
            store
                .call(|c| accounts::mailbox_by_address(c, DEMO_MAILBOX))
                .await
                .ok()
                .flatten()
                .is_some_and(|m| m.signin_state == SigninState::NeedsSignin)
        }
    })
    .await;
    assert!(marked, "the mailbox shows needs sign-in");
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let select = imap.cmd("SELECT INBOX").await;
    assert!(select.status.starts_with("NO"), "{}", select.status);
    assert!(
        select.status.contains("mailbox signin"),
        "names the fix: {}",
        select.status
    );
    demo.stop().await;
}
