//! Contract tests for JSON batching (`POST /v1.0/$batch`).

mod emulator_common;

use base64::Engine;
use emulator_common::*;
use serde_json::{json, Value};

fn response<'a>(batch: &'a Value, id: &str) -> &'a Value {
    batch["responses"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == id))
        .unwrap_or_else(|| panic!("no response {id} in {batch}"))
}

#[tokio::test]
async fn a_batch_runs_each_request_and_base64s_non_json_bodies() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let m = e
        .find_message(&t, "inbox", "Welcome to the shared sales mailbox")
        .await;
    let id = s(&m["id"]);
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me/mailFolders/inbox"},
        {"id": "2", "method": "GET", "url": format!("/me/messages/{id}/$value")},
        {"id": "3", "method": "PATCH", "url": format!("/me/messages/{id}"),
         "headers": {"Content-Type": "application/json"}, "body": {"isRead": false}},
        {"id": "4", "method": "GET", "url": "/me/messages/AAMkAnotthereAAAAAAAAAAAAAAAAA="}
    ]});
    let (status, out) = e.post_json(&t, "/v1.0/$batch", batch).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(response(&out, "1")["status"], 200);
    assert_eq!(response(&out, "1")["body"]["displayName"], "Inbox");
    let b64 = s(&response(&out, "2")["body"]);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    let file = std::fs::read(fixture("sales/inbox/01-welcome.eml")).unwrap_or_default();
    assert_eq!(raw, file);
    assert_eq!(response(&out, "3")["status"], 200);
    assert_eq!(response(&out, "3")["body"]["isRead"], false);
    assert_eq!(response(&out, "4")["status"], 404);
    assert_eq!(
        response(&out, "4")["body"]["error"]["code"],
        "ErrorItemNotFound"
    );
}

#[tokio::test]
async fn batch_limits_and_failed_dependencies() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me"}))
        .collect();
    let (status, body) = e
        .post_json(&t, "/v1.0/$batch", json!({"requests": many}))
        .await;
    assert_eq!(status, 400, "{body}");
    let dup = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me"},
        {"id": "1", "method": "GET", "url": "/me"}
    ]});
    let (status, _) = e.post_json(&t, "/v1.0/$batch", dup).await;
    assert_eq!(status, 400);
    let no_ct = json!({"requests": [
        {"id": "1", "method": "PATCH", "url": "/me/mailFolders/inbox", "body": {"displayName": "x"}}
    ]});
    let (status, _) = e.post_json(&t, "/v1.0/$batch", no_ct).await;
    assert_eq!(status, 400, "a body needs a Content-Type");
    let chain = json!({"requests": [
        {"id": "a", "method": "GET", "url": "/me/mailFolders/nosuchfolderAAAAAAAAAAAA="},
        {"id": "b", "method": "GET", "url": "/me/mailFolders/inbox", "dependsOn": ["a"]},
        {"id": "c", "method": "GET", "url": "/me/mailFolders/drafts"}
    ]});
    let (status, out) = e.post_json(&t, "/v1.0/$batch", chain).await;
    assert_eq!(status, 200);
    assert_eq!(response(&out, "a")["status"], 404);
    assert_eq!(response(&out, "b")["status"], 424);
    assert_eq!(response(&out, "c")["status"], 200);
}

#[tokio::test]
async fn a_failing_inner_request_is_a_5xx_never_an_empty_200() {
    let args = graphbridge::emulator::EmulatorArgs {
        port: 0,
        fixtures: Some(fixture("")),
        auto_consent: Some(SALES.to_string()),
        error_rate: 1.0,
        ..graphbridge::emulator::EmulatorArgs::default()
    };
    let e = start_with(args).await;
    let t = e.sign_in().await;
    // Every request fails, some as a dropped connection; inside a batch each must still
    // come back as an error status of its own.
    let requests: Vec<Value> = (0..20)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me/mailFolders/inbox"}))
        .collect();
    let (status, out) = e
        .post_json(&t, "/v1.0/$batch", json!({"requests": requests}))
        .await;
    assert_eq!(status, 200, "{out}");
    for i in 0..20 {
        let r = response(&out, &i.to_string());
        let code = r["status"].as_u64().unwrap_or(0);
        assert!(code >= 500, "request {i} answered {r}");
    }
}
