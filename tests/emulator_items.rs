//! Contract tests for folder and message write operations, listing, and folder delta.

mod emulator_common;

use emulator_common::*;
use reqwest::Method;
use serde_json::{json, Value};

const IMM: &str = "IdType=\"ImmutableId\"";

#[tokio::test]
async fn folder_create_rename_move_delete_and_conflicts() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let (status, f) = e
        .post_json(
            &t,
            "/v1.0/me/mailFolders",
            json!({"displayName": "Clients"}),
        )
        .await;
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["displayName"], "Clients");
    let (status, dup) = e
        .post_json(
            &t,
            "/v1.0/me/mailFolders",
            json!({"displayName": "clients"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(dup["error"]["code"], "ErrorFolderExists");
    let id = s(&f["id"]);
    let (status, kid) = e
        .post_json(
            &t,
            &format!("/v1.0/me/mailFolders/{id}/childFolders"),
            json!({"displayName": "Fabrikam"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(kid["parentFolderId"], f["id"]);
    let (status, renamed) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/mailFolders/{id}"),
            json!({"displayName": "Customers"}),
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(renamed["displayName"], "Customers");
    assert_eq!(renamed["id"], f["id"], "folder ids are stable");
    let (status, dup) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/mailFolders/{id}"),
            json!({"displayName": "Inbox"}),
            "",
        )
        .await;
    assert_eq!(status, 409, "{dup}");

    let (status, moved) = e
        .post_json(
            &t,
            &format!("/v1.0/me/mailFolders/{id}/move"),
            json!({"destinationId": "inbox"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, inbox) = e.get_with(&t, "/v1.0/me/mailFolders/inbox").await;
    assert_eq!(moved["parentFolderId"], inbox["id"]);
    assert_eq!(inbox["childFolderCount"], 1);
    let (status, body) = e
        .post_json(
            &t,
            &format!("/v1.0/me/mailFolders/{id}/move"),
            json!({"destinationId": s(&kid["id"])}),
        )
        .await;
    assert_eq!(status, 400, "into its own child: {body}");

    let resp = e
        .client
        .delete(format!("{}/v1.0/me/mailFolders/{id}", e.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    let (_, deleted) = e.get_with(&t, "/v1.0/me/mailFolders/deleteditems").await;
    let (_, got) = e.get_with(&t, &format!("/v1.0/me/mailFolders/{id}")).await;
    assert_eq!(
        got["parentFolderId"], deleted["id"],
        "a deleted folder goes to Deleted Items"
    );

    let resp = e
        .client
        .delete(format!("{}/v1.0/me/mailFolders/inbox", e.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete inbox");
    assert_eq!(resp.status(), 400, "default folders cannot be deleted");
}

#[tokio::test]
async fn folder_delta_lists_the_tree_then_changes() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let url = format!("{}/v1.0/me/mailFolders/delta", e.base);
    let (all, link) = e.delta_round(&t, &url, "odata.maxpagesize=4").await;
    let names: Vec<String> = all.iter().map(|f| s(&f["displayName"])).collect();
    for n in ["Inbox", "Projects", "2026", "Conflicts"] {
        assert!(names.contains(&n.to_string()), "{n} missing in {names:?}");
    }
    let (none, link) = e.delta_round(&t, &link, "").await;
    assert!(none.is_empty(), "{none:?}");
    let projects = all
        .iter()
        .find(|f| f["displayName"] == "Projects")
        .cloned()
        .unwrap_or_default();
    let pid = s(&projects["id"]);
    let (status, _) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/mailFolders/{pid}"),
            json!({"displayName": "Projekte"}),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let (changed, link) = e.delta_round(&t, &link, "").await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["displayName"], "Projekte");
    // Deleting twice removes the folder (and its child) for good.
    for _ in 0..2 {
        let resp = e
            .client
            .delete(format!("{}/v1.0/me/mailFolders/{pid}", e.base))
            .bearer_auth(&t)
            .send()
            .await
            .expect("delete");
        assert_eq!(resp.status(), 204);
    }
    let (changes, _) = e.delta_round(&t, &link, "").await;
    let removed: Vec<&Value> = changes
        .iter()
        .filter(|c| c.get("@removed").is_some())
        .collect();
    assert_eq!(removed.len(), 2, "{changes:?}");
}

#[tokio::test]
async fn message_list_pages_selects_sorts_and_filters() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let (status, p1) = e
        .get_with(
            &t,
            "/v1.0/me/mailFolders/inbox/messages?$top=5&$select=subject,receivedDateTime",
        )
        .await;
    assert_eq!(status, 200);
    let v = p1["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(v.len(), 5);
    assert!(v[0].get("body").is_none());
    assert!(
        v[0]["receivedDateTime"].as_str() > v[1]["receivedDateTime"].as_str(),
        "newest first"
    );
    let next = s(&p1["@odata.nextLink"]);
    assert!(next.contains("$skip=5"), "{next}");
    let (_, p2) = e.get_url(&t, &next).await;
    assert_eq!(p2["value"].as_array().map(Vec::len), Some(5));
    let (_, asc) = e
        .get_with(
            &t,
            "/v1.0/me/mailFolders/inbox/messages?$orderby=receivedDateTime%20asc&$top=1",
        )
        .await;
    assert_eq!(
        asc["value"][0]["subject"],
        "Welcome to the shared sales mailbox"
    );
    let (_, since) = e
        .get_with(&t, "/v1.0/me/mailFolders/inbox/messages?$filter=receivedDateTime%20ge%202026-01-15T00:00:00Z&$top=50")
        .await;
    assert_eq!(since["value"].as_array().map(Vec::len), Some(4));
    let (status, bad) = e
        .get_with(&t, "/v1.0/me/mailFolders/inbox/messages?$select=nonsense")
        .await;
    assert_eq!(status, 400, "{bad}");
    let (status, all) = e.get_with(&t, "/v1.0/me/messages?$top=100").await;
    assert_eq!(status, 200);
    assert_eq!(all["value"].as_array().map(Vec::len), Some(28));
}

#[tokio::test]
async fn create_from_mime_is_a_draft_and_json_with_0x0e07_is_not() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let raw = b"From: sales@contoso.test\r\nTo: a@example.test\r\nSubject: Imported\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\nMessage-ID: <imp-1@contoso.test>\r\n\r\nbody\r\n";
    let (status, m) = e
        .post_mime(&t, "/v1.0/me/mailFolders/inbox/messages", raw)
        .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["isDraft"], true, "MIME creates are always drafts");
    assert_eq!(m["subject"], "Imported");

    let body = json!({
        "subject": "Copy that is not a draft",
        "body": {"contentType": "text", "content": "x"},
        "toRecipients": [{"emailAddress": {"address": "a@example.test"}}],
        "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "4"}]
    });
    let (status, m) = e
        .post_json(&t, "/v1.0/me/mailFolders/inbox/messages", body)
        .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["isDraft"], false);
    let id = s(&m["id"]);
    let (status, _) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{id}"),
            json!({"singleValueExtendedProperties": [{"id": "integer 0x1081", "value": "102"}]}),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let (_, got) = e
        .get_with(&t, &format!("/v1.0/me/messages/{id}?$expand=singleValueExtendedProperties($filter=id%20eq%20'Integer%200x1081'%20or%20id%20eq%20'Integer%200x0E08')"))
        .await;
    let props = got["singleValueExtendedProperties"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        props.contains(&json!({"id": "Integer 0x1081", "value": "102"})),
        "{props:?}"
    );
    assert!(
        props.iter().any(|p| p["id"] == "Integer 0xe08"),
        "{props:?}"
    );
}

#[tokio::test]
async fn move_changes_rest_ids_but_not_immutable_ones() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let m = e
        .find_message(&t, "inbox", "Order #TT-99812 confirmed")
        .await;
    let rest = s(&m["id"]);
    let (_, imm) = e
        .get_prefer(&t, &format!("/v1.0/me/messages/{rest}"), IMM)
        .await;
    let imm_id = s(&imm["id"]);
    let (_, link) = e
        .delta_round(
            &t,
            &format!(
                "{}/v1.0/me/mailFolders/inbox/messages/delta?$select=subject",
                e.base
            ),
            IMM,
        )
        .await;
    let (status, moved) = e
        .post_json(
            &t,
            &format!("/v1.0/me/messages/{rest}/move"),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_ne!(s(&moved["id"]), rest, "the REST id changes on move");
    let (status, _) = e.get_with(&t, &format!("/v1.0/me/messages/{rest}")).await;
    assert_eq!(status, 404, "the old REST id is gone");
    let (status, still) = e
        .get_prefer(&t, &format!("/v1.0/me/messages/{imm_id}"), IMM)
        .await;
    assert_eq!(status, 200);
    assert_eq!(still["id"], imm["id"], "the immutable id survives");
    assert_eq!(still["parentFolderId"], moved["parentFolderId"]);
    let (changes, _) = e.delta_round(&t, &link, IMM).await;
    assert_eq!(
        changes,
        vec![
            json!({"@odata.type": "#microsoft.graph.message", "id": imm_id, "@removed": {"reason": "deleted"}})
        ]
    );
}

#[tokio::test]
async fn delete_copy_and_permanent_delete() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let m = e
        .find_message(&t, "inbox", "Welcome to the shared sales mailbox")
        .await;
    let id = s(&m["id"]);
    let (status, copy) = e
        .post_json(
            &t,
            &format!("/v1.0/me/messages/{id}/copy"),
            json!({"destinationId": "Archive"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_ne!(copy["id"], m["id"]);
    let (status, _) = e.get_with(&t, &format!("/v1.0/me/messages/{id}")).await;
    assert_eq!(status, 200, "the original stays");
    let (status, _) = e
        .send_json(
            Method::DELETE,
            &t,
            &format!("/v1.0/me/messages/{id}"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!(status, 204);
    let deleted = e.folder_messages(&t, "deleteditems").await;
    assert!(deleted
        .iter()
        .any(|d| d["subject"] == "Welcome to the shared sales mailbox"));
    let copy_id = s(&copy["id"]);
    let (status, _) = e
        .post_json(
            &t,
            &format!("/v1.0/me/messages/{copy_id}/permanentDelete"),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = e
        .get_with(&t, &format!("/v1.0/me/messages/{copy_id}"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_json_draft_is_sent_and_delivered() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let draft = json!({
        "subject": "Draft to support",
        "body": {"contentType": "html", "content": "<p>Hallo</p>"},
        "toRecipients": [{"emailAddress": {"address": "support@contoso.test", "name": "Support"}}]
    });
    let (status, d) = e.post_json(&t, "/v1.0/me/messages", draft).await;
    assert_eq!(status, 201);
    assert_eq!(d["isDraft"], true);
    let (_, drafts) = e.get_with(&t, "/v1.0/me/mailFolders/drafts").await;
    assert_eq!(d["parentFolderId"], drafts["id"]);
    let id = s(&d["id"]);
    let (status, _) = e
        .post_json(&t, &format!("/v1.0/me/messages/{id}/send"), json!({}))
        .await;
    assert_eq!(status, 202);
    let sent = e.find_message(&t, "sentitems", "Draft to support").await;
    assert_eq!(sent["isDraft"], false);
    assert_eq!(
        sent["from"]["emailAddress"]["address"],
        "sales@contoso.test"
    );
    let (status, body) = e
        .post_json(
            &t,
            &format!("/v1.0/me/messages/{}/send", s(&sent["id"])),
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "a sent item is no draft: {body}");
    let support = e.sign_in_as("support@contoso.test").await;
    let got = e.find_message(&support, "inbox", "Draft to support").await;
    assert_eq!(got["body"]["contentType"], "html");
}
