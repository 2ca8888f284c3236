//! Contract tests for what survives an emulator restart: stable ids for fixture content,
//! and dump/reload of the whole state.

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

/// What must survive a dump and reload, per message (changeKey and etag may differ).
async fn state_of(e: &Running, t: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, id) in folder_ids(e, t).await {
        let url = format!(
            "{}/v1.0/me/mailFolders/{id}/messages?$top=1000&$select=subject,isRead,isDraft,flag,categories,receivedDateTime,createdDateTime,lastModifiedDateTime,parentFolderId&$expand=singleValueExtendedProperties($filter=id eq 'Integer 0x1081')",
            e.base
        );
        for prefer in ["", IMM] {
            let (status, v) = e.get_url_prefer(t, &url, prefer).await;
            assert_eq!(status, 200, "{v}");
            for mut m in v["value"].as_array().cloned().unwrap_or_default() {
                if let Some(o) = m.as_object_mut() {
                    o.remove("@odata.etag");
                }
                m["folder"] = json!(name);
                out.push(m);
            }
        }
        let (_, mut f) = e.get_with(t, &format!("/v1.0/me/mailFolders/{id}")).await;
        if let Some(o) = f.as_object_mut() {
            o.remove("@odata.context");
        }
        out.push(f);
    }
    out
}

#[tokio::test]
async fn dump_and_reload_restore_ids_and_state() {
    let e = start(Opts::default()).await;
    let login = {
        let dc = e.devicecode().await;
        e.poll_device(&dc).await
    };
    let t = s(&login["access_token"]);
    // Change things the way a client and the outside world would.
    let (_, clients) = e
        .post_json(
            &t,
            "/v1.0/me/mailFolders",
            json!({"displayName": "Clients/Partners"}),
        )
        .await;
    let cid = s(&clients["id"]);
    let (status, _) = e
        .post_json(
            &t,
            &format!("/v1.0/me/mailFolders/{cid}/childFolders"),
            json!({"displayName": "100% Fabrikam"}),
        )
        .await;
    assert_eq!(status, 201);
    let msg = e
        .find_message(&t, "inbox", "Welcome to the shared sales mailbox")
        .await;
    let (status, patched) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{}", s(&msg["id"])),
            json!({"isRead": false, "flag": {"flagStatus": "flagged"}, "categories": ["Kunde", "VIP"],
                   "singleValueExtendedProperties": [{"id": "Integer 0x1081", "value": "102"}]}),
            "",
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let (status, moved) = e
        .post_json(
            &t,
            &format!("/v1.0/me/messages/{}/move", s(&msg["id"])),
            json!({"destinationId": cid}),
        )
        .await;
    assert_eq!(status, 201, "{moved}");
    let deliver = e
        .client
        .post(format!("{}/_emulator/mailboxes/{SALES}/deliver", e.base))
        .body("From: x@example.com\r\nTo: sales@contoso.test\r\nSubject: Neu\r\n\r\nHallo\r\n")
        .send()
        .await
        .expect("deliver");
    assert_eq!(deliver.status(), 201);
    let draft = b"From: sales@contoso.test\r\nTo: b@example.com\r\nSubject: Entwurf\r\n\r\nx\r\n";
    let (status, _) = e.post_mime(&t, "/v1.0/me/messages", draft).await;
    assert_eq!(status, 201);
    let before = state_of(&e, &t).await;
    let moved_value = e
        .client
        .get(format!(
            "{}/v1.0/me/messages/{}/$value",
            e.base,
            s(&moved["id"])
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("value")
        .bytes()
        .await
        .expect("bytes");

    let dir = tempfile::tempdir().expect("tempdir");
    let summary = e.emulator.dump(dir.path()).expect("dump");
    assert_eq!(summary.mailboxes, 2);
    assert!(summary.messages >= 31, "{summary:?}");

    let again = start_with(graphbridge::emulator::EmulatorArgs {
        port: 0,
        fixtures: Some(dir.path().to_path_buf()),
        auto_consent: Some(SALES.to_string()),
        ..Default::default()
    })
    .await;
    // The refresh token issued before the dump still works.
    let (status, refreshed) = again.refresh(&s(&login["refresh_token"])).await;
    assert_eq!(status, 200, "{refreshed}");
    let t2 = s(&refreshed["access_token"]);
    let after = state_of(&again, &t2).await;
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
    let value_again = again
        .client
        .get(format!(
            "{}/v1.0/me/messages/{}/$value",
            again.base,
            s(&moved["id"])
        ))
        .bearer_auth(&t2)
        .send()
        .await
        .expect("value")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(moved_value, value_again, "MIME bytes survive");

    // Dumping the reloaded state writes the same description.
    let dir2 = tempfile::tempdir().expect("tempdir");
    again.emulator.dump(dir2.path()).expect("dump again");
    for rel in ["tenant.json", "001-sales_contoso.test/mailbox.json"] {
        let a = std::fs::read_to_string(dir.path().join(rel)).expect("first");
        let b = std::fs::read_to_string(dir2.path().join(rel)).expect("second");
        assert_eq!(a, b, "{rel}");
    }
}

#[tokio::test]
async fn malformed_dump_entries_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tenant.json"),
        r#"{"mailboxes":[{"userPrincipalName":"a@b.test","displayName":"A","dir":"a"}]}"#,
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("a")).expect("mkdir");
    for bad in [
        r#"{"folders":[{"wellKnownName":"nosuch","id":"AAMkAAAAAAAAAAAAAAAAAAAA"}]}"#,
        r#"{"folders":[{"path":"X","id":"not an id!"}]}"#,
        r#"{"folders":[{"id":"AAMkAAAAAAAAAAAAAAAAAAAA"}]}"#,
        r#"{"folders":[{"path":"X","colour":"red"}]}"#,
    ] {
        std::fs::write(dir.path().join("a/mailbox.json"), bad).expect("write");
        let args = graphbridge::emulator::EmulatorArgs {
            fixtures: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        assert!(
            graphbridge::emulator::Emulator::new(&args).is_err(),
            "{bad}"
        );
    }
}
