//! Contract tests for change notifications: `/subscriptions` with the validation handshake,
//! renew, delete, list, and notifications POSTed to a small local receiver (with retries).

mod emulator_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use emulator_common::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq)]
enum Validation {
    Echo,
    WrongToken,
    ServerError,
}

struct Receiver {
    validation: Validation,
    /// Notification POSTs to fail (500) before answering 202.
    fail_next: usize,
    tokens: Vec<String>,
}

type Shared = Arc<(Mutex<Receiver>, mpsc::UnboundedSender<Value>)>;

async fn receive(
    State(state): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let (cfg, tx) = &*state;
    let mut cfg = cfg.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(token) = q.get("validationToken") {
        cfg.tokens.push(token.clone());
        return match cfg.validation {
            Validation::Echo => ([("content-type", "text/plain")], token.clone()).into_response(),
            Validation::WrongToken => ([("content-type", "text/plain")], "nope").into_response(),
            Validation::ServerError => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    }
    if cfg.fail_next > 0 {
        cfg.fail_next -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = tx.send(v);
    StatusCode::ACCEPTED.into_response()
}

struct Listener {
    url: String,
    state: Shared,
    rx: mpsc::UnboundedReceiver<Value>,
}

async fn receiver(validation: Validation) -> Listener {
    let (tx, rx) = mpsc::unbounded_channel();
    let state: Shared = Arc::new((
        Mutex::new(Receiver {
            validation,
            fail_next: 0,
            tokens: Vec::new(),
        }),
        tx,
    ));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Listener {
        url: format!("http://{addr}/hook"),
        state,
        rx,
    }
}

impl Listener {
    /// The next notification batch (a generous bound only so a broken build cannot hang).
    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
            .await
            .ok()
            .flatten()
            .expect("a notification arrives")
    }

    fn tokens(&self) -> Vec<String> {
        self.state
            .0
            .lock()
            .map(|c| c.tokens.clone())
            .unwrap_or_default()
    }
}

fn expiry(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()
}

fn sub_body(url: &str, resource: &str, minutes: i64) -> Value {
    json!({"changeType": "created,updated,deleted", "notificationUrl": url,
           "resource": resource, "expirationDateTime": expiry(minutes),
           "clientState": "secret-42"})
}

async fn deliver(e: &Running, folder: &str, subject: &str) -> Value {
    let resp = e
        .client
        .post(format!(
            "{}/_emulator/mailboxes/{SALES}/deliver?folder={folder}",
            e.base
        ))
        .body(format!(
            "From: x@example.com\r\nTo: {SALES}\r\nSubject: {subject}\r\n\r\nhi\r\n"
        ))
        .send()
        .await
        .expect("deliver");
    assert_eq!(resp.status(), 201);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn subscription_validates_then_notifies_changes_in_its_folder() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let mut hook = receiver(Validation::Echo).await;
    let (status, sub) = e
        .post_json(
            &t,
            "/v1.0/subscriptions",
            sub_body(&hook.url, "me/mailFolders('inbox')/messages", 60),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(hook.tokens().len(), 1, "one validation request");
    assert_eq!(sub["changeType"], "created,updated,deleted");
    assert_eq!(sub["clientState"], "secret-42");
    assert_eq!(sub["resource"], "me/mailFolders('inbox')/messages");
    assert!(sub["id"].is_string() && sub["expirationDateTime"].is_string());

    // A message in a folder nobody watches sends nothing; the inbox one is the next to arrive.
    deliver(&e, "archive", "Not watched").await;
    let created = deliver(&e, "inbox", "Watched").await;
    let batch = hook.next().await;
    let n = &batch["value"][0];
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["clientState"], "secret-42");
    assert_eq!(n["subscriptionId"], sub["id"]);
    assert_eq!(n["resourceData"]["id"], created["id"]);
    assert_eq!(n["resourceData"]["@odata.type"], "#Microsoft.Graph.Message");
    assert!(s(&n["resource"]).starts_with("Users/"));
    assert!(n["tenantId"].is_string());

    let id = s(&created["id"]);
    let (status, _) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{id}"),
            json!({"isRead": true}),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let n = hook.next().await["value"][0].clone();
    assert_eq!(n["changeType"], "updated");
    assert_eq!(n["resourceData"]["id"], created["id"]);

    let resp = e
        .client
        .delete(format!("{}/v1.0/me/messages/{id}", e.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    let n = hook.next().await["value"][0].clone();
    assert_eq!(n["changeType"], "deleted");
    assert_eq!(n["resourceData"]["id"], created["id"]);
}

#[tokio::test]
async fn immutable_subscription_reports_immutable_ids() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let mut hook = receiver(Validation::Echo).await;
    let (status, _) = e
        .send_json(
            reqwest::Method::POST,
            &t,
            "/v1.0/subscriptions",
            sub_body(&hook.url, "/me/messages", 60),
            "IdType=\"ImmutableId\"",
        )
        .await;
    assert_eq!(status, 201);
    let created = deliver(&e, "inbox", "Immutable").await;
    let n = hook.next().await["value"][0].clone();
    assert_eq!(n["resourceData"]["id"], created["immutableId"]);
}

#[tokio::test]
async fn failed_validation_refuses_the_subscription() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    for v in [Validation::ServerError, Validation::WrongToken] {
        let hook = receiver(v).await;
        let (status, err) = e
            .post_json(
                &t,
                "/v1.0/subscriptions",
                sub_body(&hook.url, "me/messages", 60),
            )
            .await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], "ValidationError");
        assert_eq!(hook.tokens().len(), 1);
    }
    // Nobody listening at all.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let (status, err) = e
        .post_json(
            &t,
            "/v1.0/subscriptions",
            sub_body(&format!("http://{closed}/x"), "me/messages", 60),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (_, list) = e.get_with(&t, "/v1.0/subscriptions").await;
    assert_eq!(list["value"], json!([]));
}

#[tokio::test]
async fn expiry_limits_renew_list_and_delete() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let hook = receiver(Validation::Echo).await;
    for (minutes, resource) in [
        (10_081, "me/messages"),
        (-5, "me/messages"),
        (60, "me/events"),
    ] {
        let (status, err) = e
            .post_json(
                &t,
                "/v1.0/subscriptions",
                sub_body(&hook.url, resource, minutes),
            )
            .await;
        assert_eq!(status, 400, "{minutes} {resource}: {err}");
    }
    let (status, sub) = e
        .post_json(
            &t,
            "/v1.0/subscriptions",
            sub_body(
                &hook.url,
                "users/sales@contoso.test/mailFolders/inbox/messages",
                10_000,
            ),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    let id = s(&sub["id"]);
    let later = expiry(10_070);
    let (status, renewed) = e
        .patch_json(
            &t,
            &format!("/v1.0/subscriptions/{id}"),
            json!({"expirationDateTime": later}),
            "",
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(renewed["expirationDateTime"], sub["expirationDateTime"]);
    let (status, _) = e
        .patch_json(
            &t,
            &format!("/v1.0/subscriptions/{id}"),
            json!({"expirationDateTime": expiry(20_000)}),
            "",
        )
        .await;
    assert_eq!(status, 400);
    let (_, list) = e.get_with(&t, "/v1.0/subscriptions").await;
    assert_eq!(list["value"][0]["id"], sub["id"]);
    let (status, one) = e.get_with(&t, &format!("/v1.0/subscriptions/{id}")).await;
    assert_eq!((status, one["id"].clone()), (200, sub["id"].clone()));
    let resp = e
        .client
        .delete(format!("{}/v1.0/subscriptions/{id}", e.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    let (status, _) = e.get_with(&t, &format!("/v1.0/subscriptions/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_notification_again() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let mut hook = receiver(Validation::Echo).await;
    let (status, _) = e
        .post_json(
            &t,
            "/v1.0/subscriptions",
            sub_body(&hook.url, "me/mailFolders/inbox/messages", 60),
        )
        .await;
    assert_eq!(status, 201);
    if let Ok(mut c) = hook.state.0.lock() {
        c.fail_next = 2;
    }
    let created = deliver(&e, "inbox", "Retried").await;
    let n = hook.next().await["value"][0].clone();
    assert_eq!(n["resourceData"]["id"], created["id"]);
    let (_, stats) = e.get_with(&t, "/_emulator/stats").await;
    assert_eq!(stats["notifications"]["failed"], 2, "{stats}");
    assert_eq!(stats["notifications"]["delivered"], 1);
}
