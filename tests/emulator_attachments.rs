//! Contract tests for attachments and upload sessions.

mod emulator_common;

use base64::Engine;
use emulator_common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn attachments_of_a_received_message() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let m = e.find_message(&t, "inbox", "Invoice INV-2026-0042").await;
    let (status, list) = e
        .get_with(
            &t,
            &format!("/v1.0/me/messages/{}/attachments", s(&m["id"])),
        )
        .await;
    assert_eq!(status, 200);
    let a = &list["value"][0];
    assert_eq!(a["name"], "INV-2026-0042.pdf");
    assert_eq!(a["contentType"], "application/pdf");
    assert_eq!(a["isInline"], false);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s(&a["contentBytes"]))
        .unwrap_or_default();
    assert!(bytes.starts_with(b"%PDF-1.4"));
    assert_eq!(a["size"], bytes.len());
    let (status, one) = e
        .get_with(
            &t,
            &format!(
                "/v1.0/me/messages/{}/attachments/{}",
                s(&m["id"]),
                s(&a["id"])
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["name"], a["name"]);
    // "You can add an attachment to an existing message" (Graph docs, "Add attachment"):
    // a received message, no draft, takes one too.
    let (status, body) = e
        .post_json(&t, &format!("/v1.0/me/messages/{}/attachments", s(&m["id"])), json!({
            "@odata.type": "#microsoft.graph.fileAttachment", "name": "x.txt", "contentBytes": "eA=="}))
        .await;
    assert_eq!(status, 201, "a received message takes attachments: {body}");
    assert_eq!(body["name"], "x.txt");
    let (_, list) = e
        .get_with(
            &t,
            &format!("/v1.0/me/messages/{}/attachments", s(&m["id"])),
        )
        .await;
    let names: Vec<String> = list["value"]
        .as_array()
        .map(|a| a.iter().map(|x| s(&x["name"])).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["INV-2026-0042.pdf", "x.txt"]);
    let again = e.find_message(&t, "inbox", "Invoice INV-2026-0042").await;
    assert_eq!(again["isDraft"], false);
}

#[tokio::test]
async fn an_upload_session_attaches_to_a_message_that_is_no_draft() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let m = e.find_message(&t, "inbox", "Invoice INV-2026-0042").await;
    let id = s(&m["id"]);
    let file: Vec<u8> = (0..3_500_000u32).map(|i| (i % 253) as u8).collect();
    let (status, session) = e
        .post_json(
            &t,
            &format!("/v1.0/me/messages/{id}/attachments/createUploadSession"),
            json!({"AttachmentItem": {"attachmentType": "file", "name": "logo.png",
                "contentType": "image/png", "isInline": true, "contentId": "logo@x",
                "size": file.len()}}),
        )
        .await;
    assert_eq!(
        status, 201,
        "an upload session is for any Outlook item: {session}"
    );
    let url = s(&session["uploadUrl"]);
    let done = e
        .client
        .put(&url)
        .header(
            "Content-Range",
            format!("bytes 0-{}/{}", file.len() - 1, file.len()),
        )
        .body(file.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(done.status(), 201);
    let (_, list) = e
        .get_with(&t, &format!("/v1.0/me/messages/{id}/attachments"))
        .await;
    let logo = list["value"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "logo.png").cloned())
        .unwrap_or_default();
    assert_eq!(logo["size"], file.len());
    assert_eq!(logo["isInline"], true);
    assert_eq!(logo["contentId"], "logo@x");
}

#[tokio::test]
async fn a_large_file_goes_through_an_upload_session_then_the_draft_is_sent() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let (status, d) = e
        .post_json(
            &t,
            "/v1.0/me/messages",
            json!({
            "subject": "Big file",
            "body": {"contentType": "text", "content": "see attachment"},
            "toRecipients": [{"emailAddress": {"address": "support@contoso.test"}}]}),
        )
        .await;
    assert_eq!(status, 201);
    let id = s(&d["id"]);
    let (status, small) = e
        .post_json(
            &t,
            &format!("/v1.0/me/messages/{id}/attachments"),
            json!({
            "@odata.type": "#microsoft.graph.fileAttachment", "name": "note.txt",
            "contentType": "text/plain", "contentBytes": "aGVsbG8="}),
        )
        .await;
    assert_eq!(status, 201, "{small}");
    assert_eq!(small["name"], "note.txt");

    let file: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let (status, session) = e
        .post_json(
            &t,
            &format!("/v1.0/me/messages/{id}/attachments/createUploadSession"),
            json!({
            "AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": file.len()}}),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["nextExpectedRanges"], json!(["0-"]));
    let url = s(&session["uploadUrl"]);
    let put = |a: usize, b: usize| {
        e.client
            .put(&url)
            .header("Content-Range", format!("bytes {a}-{b}/{}", file.len()))
            .body(file[a..=b].to_vec())
            .send()
    };
    let wrong = put(10, 20).await.expect("put");
    assert_eq!(wrong.status(), 416, "chunks must come in order");
    let first = put(0, 3_999_999).await.expect("put");
    assert_eq!(first.status(), 200);
    let v: Value = first.json().await.unwrap_or_default();
    assert_eq!(v["nextExpectedRanges"], json!(["4000000-"]));
    let last = put(4_000_000, file.len() - 1).await.expect("put");
    assert_eq!(last.status(), 201);
    assert!(last.headers().get("location").is_some());

    let (_, list) = e
        .get_with(&t, &format!("/v1.0/me/messages/{id}/attachments"))
        .await;
    let names: Vec<String> = list["value"]
        .as_array()
        .map(|a| a.iter().map(|x| s(&x["name"])).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["note.txt", "big.bin"]);
    let big = list["value"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "big.bin").cloned())
        .unwrap_or_default();
    assert_eq!(big["size"], file.len());

    let (status, _) = e
        .post_json(&t, &format!("/v1.0/me/messages/{id}/send"), json!({}))
        .await;
    assert_eq!(status, 202);
    let support = e.sign_in_as("support@contoso.test").await;
    let got = e.find_message(&support, "inbox", "Big file").await;
    assert_eq!(got["hasAttachments"], true);
}
