//! Contract tests for folder copy, PATCH of draft content, and `$count`.

mod emulator_common;

use emulator_common::*;
use serde_json::json;

async fn text(e: &Running, t: &str, path: &str) -> (u16, String, String) {
    let resp = e
        .client
        .get(format!("{}{path}", e.base))
        .bearer_auth(t)
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn folder_copy_copies_the_tree_with_new_ids() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let projects = e.folder_by_name(&t, None, "Projects").await;
    let pid = s(&projects["id"]);
    let (status, copy) = e
        .post_json(
            &t,
            &format!("/v1.0/me/mailFolders/{pid}/copy"),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(status, 201, "{copy}");
    assert_eq!(copy["displayName"], "Projects");
    assert_ne!(copy["id"], projects["id"]);
    assert_eq!(copy["totalItemCount"], projects["totalItemCount"]);
    assert_eq!(copy["childFolderCount"], projects["childFolderCount"]);
    let (_, archive) = e.get_with(&t, "/v1.0/me/mailFolders/archive").await;
    assert_eq!(copy["parentFolderId"], archive["id"]);
    let originals = e.folder_messages(&t, &pid).await;
    let copies = e.folder_messages(&t, &s(&copy["id"])).await;
    assert_eq!(originals.len(), copies.len());
    assert!(copies
        .iter()
        .all(|c| originals.iter().all(|o| o["id"] != c["id"])));
    // The original is untouched, and a second copy to the same place is a conflict.
    let (_, again) = e.get_with(&t, &format!("/v1.0/me/mailFolders/{pid}")).await;
    assert_eq!(again["totalItemCount"], projects["totalItemCount"]);
    let (status, err) = e
        .post_json(
            &t,
            &format!("/v1.0/me/mailFolders/{pid}/copy"),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "ErrorFolderExists");
    let (status, _) = e
        .post_json(
            &t,
            "/v1.0/me/mailFolders/inbox/copy",
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(status, 400, "default folders are not copied");
}

#[tokio::test]
async fn draft_content_can_be_patched_and_sent_items_cannot() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let (status, draft) = e
        .post_json(
            &t,
            "/v1.0/me/messages",
            json!({"subject": "Entwurf", "body": {"contentType": "text", "content": "erste Fassung"},
                   "toRecipients": [{"emailAddress": {"address": "a@example.com"}}],
                   "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment",
                                    "name": "a.txt", "contentType": "text/plain",
                                    "contentBytes": "aGFsbG8="}]}),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
    let id = s(&draft["id"]);
    let (status, patched) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{id}"),
            json!({"subject": "Angebot für Größe XL",
                   "body": {"contentType": "html", "content": "<p>zweite Fassung</p>"},
                   "ccRecipients": [{"emailAddress": {"name": "Zoë", "address": "zoe@example.com"}}],
                   "importance": "high", "isRead": false}),
            "",
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["subject"], "Angebot für Größe XL");
    assert!(s(&patched["body"]["content"]).contains("zweite Fassung"));
    assert_eq!(
        patched["ccRecipients"][0]["emailAddress"]["address"],
        "zoe@example.com"
    );
    assert_eq!(
        patched["toRecipients"], draft["toRecipients"],
        "untouched fields stay"
    );
    assert_eq!(patched["importance"], "high");
    assert_eq!(patched["isRead"], false);
    assert_eq!(patched["internetMessageId"], draft["internetMessageId"]);
    assert_eq!(patched["hasAttachments"], true, "attachments survive");
    assert_ne!(patched["changeKey"], draft["changeKey"]);
    let (_, value_ct, value) = text(&e, &t, &format!("/v1.0/me/messages/{id}/$value")).await;
    assert!(value_ct.starts_with("text/plain"));
    assert!(value.contains("zoe@example.com"));

    let (status, bad) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{id}"),
            json!({"toRecipients": "nobody"}),
            "",
        )
        .await;
    assert_eq!(status, 400, "{bad}");

    let sent = e.folder_messages(&t, "sentitems").await;
    let (status, err) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{}", s(&sent[0]["id"])),
            json!({"subject": "x"}),
            "",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["code"],
        "ErrorInvalidPropertyUpdateSentMessage"
    );
}

#[tokio::test]
async fn count_as_segment_and_as_option() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let (_, inbox) = e.get_with(&t, "/v1.0/me/mailFolders/inbox").await;
    let (status, ct, body) = text(&e, &t, "/v1.0/me/mailFolders/inbox/messages/$count").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(body, inbox["totalItemCount"].to_string());
    let (_, listed) = e
        .get_with(&t, "/v1.0/me/mailFolders/inbox/messages?$count=true&$top=2")
        .await;
    assert_eq!(listed["@odata.count"], inbox["totalItemCount"]);
    assert_eq!(listed["value"].as_array().map(Vec::len), Some(2));
    let (_, all) = e.get_with(&t, "/v1.0/me/messages?$count=true&$top=1").await;
    let (_, _, n) = text(&e, &t, "/v1.0/me/messages/$count").await;
    assert_eq!(all["@odata.count"].to_string(), n);
    let (_, folders) = e
        .get_with(&t, "/v1.0/me/mailFolders?$count=true&$top=1")
        .await;
    assert!(
        folders["@odata.count"].as_u64().is_some_and(|n| n > 5),
        "{folders}"
    );
    let (status, _) = e.get_with(&t, "/v1.0/me/messages?$count=maybe").await;
    assert_eq!(status, 400);
    let (status, _, n) = text(
        &e,
        &t,
        "/v1.0/me/mailFolders/inbox/messages/$count?$filter=receivedDateTime%20ge%202100-01-01T00:00:00Z",
    )
    .await;
    assert_eq!((status, n.as_str()), (200, "0"));
}
