//! Contract tests for what survives an emulator restart: stable ids for fixture content,
//! and dump/reload of the whole state.

#[path = "emulator_common.rs"]
mod emulator_common;

use emulator_common::*;
use serde_json::{json, Value};

const IMM: &str = "IdType=\"ImmutableId\"";

/// (subject, id) of every message in a folder, sorted by subject.
async fn ids_in(e: &Running, t: &str, folder: &str, prefer: &str) -> Vec<(String, String)> {
    let url = format!("{}/v1.0/me/mailFolders/{folder}/messages/delta", e.base);
    let prefer = if prefer.is_empty() {
        "odata.maxpagesize=50".to_string()
    } else {
        format!("{prefer}, odata.maxpagesize=50")
    };
    let (items, _) = e.delta_round(t, &url, &prefer).await;
    let mut v: Vec<(String, String)> = items
        .iter()
        .map(|m| (s(&m["subject"]), s(&m["id"])))
        .collect();
    v.sort();
    v
}

/// Every folder id (flat, through folder delta), sorted by display name.
async fn folder_ids(e: &Running, t: &str) -> Vec<(String, String)> {
    let url = format!("{}/v1.0/me/mailFolders/delta", e.base);
    let (items, _) = e.delta_round(t, &url, "odata.maxpagesize=100").await;
    let mut v: Vec<(String, String)> = items
        .iter()
        .map(|f| (s(&f["displayName"]), s(&f["id"])))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn fixture_ids_are_the_same_after_a_restart() {
    let a = start(Opts::default()).await;
    let b = start(Opts::default()).await;
    let (ta, tb) = (a.sign_in().await, b.sign_in().await);
    assert_eq!(folder_ids(&a, &ta).await, folder_ids(&b, &tb).await);
    for folder in ["inbox", "sentitems", "drafts"] {
        let ia = ids_in(&a, &ta, folder, "").await;
        assert!(!ia.is_empty(), "{folder} has fixture messages");
        assert_eq!(
            ia,
            ids_in(&b, &tb, folder, "").await,
            "REST ids in {folder}"
        );
        assert_eq!(
            ids_in(&a, &ta, folder, IMM).await,
            ids_in(&b, &tb, folder, IMM).await,
            "immutable ids in {folder}"
        );
    }
    let (_, me_a) = a.get_with(&ta, "/v1.0/me").await;
    let (_, me_b) = b.get_with(&tb, "/v1.0/me").await;
    assert_eq!(me_a["id"], me_b["id"]);
    // REST and immutable ids of one item differ, and ids keep Exchange's look.
    let rest = ids_in(&a, &ta, "inbox", "").await;
    let imm = ids_in(&a, &ta, "inbox", IMM).await;
    assert_ne!(rest[0].1, imm[0].1);
    assert!(rest[0].1.starts_with("AAMkA") && rest[0].1.len() > 100);
}

#[tokio::test]
async fn ids_made_at_run_time_are_random() {
    let a = start(Opts::default()).await;
    let b = start(Opts::default()).await;
    let (ta, tb) = (a.sign_in().await, b.sign_in().await);
    let body = json!({"displayName": "Fresh"});
    let (_, fa) = a.post_json(&ta, "/v1.0/me/mailFolders", body.clone()).await;
    let (_, fb) = b.post_json(&tb, "/v1.0/me/mailFolders", body).await;
    assert_ne!(fa["id"], Value::Null);
    assert_ne!(fa["id"], fb["id"]);
    let raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n\r\nhi\r\n";
    let (_, ma) = a.post_mime(&ta, "/v1.0/me/messages", raw).await;
    let (_, mb) = b.post_mime(&tb, "/v1.0/me/messages", raw).await;
    assert_ne!(ma["id"], mb["id"]);
}
