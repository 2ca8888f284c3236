//! Contract tests for the Graph emulator, written from `graph-facts.md`: they speak plain HTTP
//! to an emulator started in-process and assert the documented shapes, codes and error bodies.

mod emulator_common;

use emulator_common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn device_code_with_auto_consent_gives_tokens_and_refresh_rotates() {
    let e = start(Opts::default()).await;
    let dc = e.devicecode().await;
    assert_eq!(dc["expires_in"], 900);
    assert_eq!(dc["interval"], 5);
    assert!(dc["verification_uri"]
        .as_str()
        .is_some_and(|u| u.ends_with("/devicelogin")));
    let tok = e.poll_device(&dc).await;
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 3600);
    let refresh = tok["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!refresh.is_empty());
    let (status, again) = e.refresh(&refresh).await;
    assert_eq!(status, 200);
    let new_refresh = again["refresh_token"].as_str().unwrap_or_default();
    assert!(!new_refresh.is_empty());
    assert_ne!(
        new_refresh, refresh,
        "each refresh returns a new refresh token"
    );
    let access = again["access_token"].as_str().unwrap_or_default();
    let (status, me) = e.get_with(access, "/v1.0/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["userPrincipalName"], "sales@contoso.test");
}

#[tokio::test]
async fn device_code_without_consent_is_pending_until_approved() {
    let e = start(Opts {
        auto_consent: false,
        ..Opts::default()
    })
    .await;
    let dc = e.devicecode().await;
    let (status, body) = e.token_poll(&dc).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "authorization_pending");
    assert!(body["error_codes"].is_array());
    let code = dc["user_code"].as_str().unwrap_or_default();
    let resp = e
        .client
        .post(format!("{}/devicelogin", e.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "code={code}&account=support%40contoso.test&action=approve"
        ))
        .send()
        .await
        .expect("devicelogin");
    assert_eq!(resp.status(), 200);
    let (status, tok) = e.token_poll(&dc).await;
    assert_eq!(status, 200);
    let access = tok["access_token"].as_str().unwrap_or_default();
    let (_, me) = e.get_with(access, "/v1.0/me").await;
    assert_eq!(me["userPrincipalName"], "support@contoso.test");
}

#[tokio::test]
async fn expired_or_missing_token_is_401_in_graph_envelope() {
    let e = start(Opts {
        token_lifetime_secs: 0,
        ..Opts::default()
    })
    .await;
    let token = e.sign_in().await;
    let (status, body) = e.get_with(&token, "/v1.0/me/mailFolders").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    let resp = e
        .client
        .get(format!("{}/v1.0/me/mailFolders", e.base))
        .header("client-request-id", "abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap_or_default();
    let inner = &body["error"]["innerError"];
    assert_eq!(inner["client-request-id"], "abc-123");
    assert!(inner["request-id"].is_string());
    assert!(inner["date"].is_string());
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn folders_are_paged_and_reachable_by_well_known_name() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let (status, page1) = e.get_with(&t, "/v1.0/me/mailFolders").await;
    assert_eq!(status, 200);
    let v1 = page1["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        v1.len(),
        10,
        "default page is 10 (and the demo has 10 visible top-level folders)"
    );
    assert!(page1.get("@odata.nextLink").is_none());
    // Page through the same list four at a time.
    let mut v2 = Vec::new();
    let mut url = format!("{}/v1.0/me/mailFolders?$top=4", e.base);
    let mut pages = 0;
    loop {
        let (status, page) = e.get_url(&t, &url).await;
        assert_eq!(status, 200);
        pages += 1;
        v2.extend(page["value"].as_array().cloned().unwrap_or_default());
        match page.get("@odata.nextLink") {
            Some(next) => {
                url = s(next);
                assert!(
                    url.starts_with(&format!("{}/v1.0/me/mailFolders?", e.base)),
                    "{url}"
                );
                assert!(url.contains("$skip="), "{url}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(v2, v1, "paging returns the same folders in the same order");
    let names: Vec<String> = v1
        .iter()
        .map(|f| f["displayName"].as_str().unwrap_or_default().to_string())
        .collect();
    for n in [
        "Inbox",
        "Sent Items",
        "Drafts",
        "Deleted Items",
        "Archive",
        "Projects",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    assert!(
        !names.contains(&"Scheduled".to_string()),
        "hidden folder listed"
    );
    for f in &v1 {
        assert!(
            f.get("wellKnownName").is_none(),
            "v1.0 has no wellKnownName"
        );
        for k in [
            "id",
            "parentFolderId",
            "childFolderCount",
            "unreadItemCount",
            "totalItemCount",
            "isHidden",
        ] {
            assert!(f.get(k).is_some(), "{k} missing");
        }
    }
    let (_, small) = e.get_with(&t, "/v1.0/me/mailFolders?$top=3").await;
    assert_eq!(small["value"].as_array().map(Vec::len), Some(3));
    assert!(small["@odata.nextLink"]
        .as_str()
        .is_some_and(|l| l.contains("$skip=3")));
    let (_, hidden) = e
        .get_with(
            &t,
            "/v1.0/me/mailFolders?includeHiddenFolders=true&$top=100",
        )
        .await;
    assert!(hidden["value"]
        .as_array()
        .is_some_and(|v| v.iter().any(|f| f["isHidden"] == true)));

    let (status, inbox) = e.get_with(&t, "/v1.0/me/mailFolders/InBoX").await;
    assert_eq!(status, 200);
    assert_eq!(inbox["displayName"], "Inbox");
    let (_, root) = e.get_with(&t, "/v1.0/me/mailFolders/msgfolderroot").await;
    assert_eq!(inbox["parentFolderId"], root["id"]);
    let (_, by_id) = e
        .get_with(&t, &format!("/v1.0/me/mailFolders/{}", s(&inbox["id"])))
        .await;
    assert_eq!(by_id["id"], inbox["id"]);
    assert_eq!(by_id["totalItemCount"], inbox["totalItemCount"]);
}

#[tokio::test]
async fn nested_user_folder_and_child_folders() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let projects = e.folder_by_name(&t, None, "Projects").await;
    assert_eq!(projects["childFolderCount"], 1);
    let (status, kids) = e
        .get_with(
            &t,
            &format!("/v1.0/me/mailFolders/{}/childFolders", s(&projects["id"])),
        )
        .await;
    assert_eq!(status, 200);
    let kids = kids["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0]["displayName"], "2026");
    assert_eq!(kids[0]["parentFolderId"], projects["id"]);
    assert_eq!(kids[0]["totalItemCount"], 3);
}

#[tokio::test]
async fn bad_and_unknown_ids_and_other_mailboxes() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let (status, body) = e.get_with(&t, "/v1.0/me/messages/not!an!id").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "ErrorInvalidIdMalformed");
    let unknown = format!("AAMkA{}", "B".repeat(140));
    let (status, body) = e
        .get_with(&t, &format!("/v1.0/me/messages/{unknown}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "ErrorItemNotFound");
    let (status, body) = e
        .get_with(&t, "/v1.0/users/support@contoso.test/mailFolders")
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "ErrorAccessDenied");
    let (status, _) = e
        .get_with(&t, "/v1.0/users/sales@contoso.test/mailFolders/inbox")
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn delta_pages_then_replays_only_changes() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let prefer = "IdType=\"ImmutableId\", odata.maxpagesize=5";
    let first =
        "/v1.0/me/mailFolders/inbox/messages/delta?$select=subject,isRead,flag,receivedDateTime";
    let (items, delta_link) = e
        .delta_round(&t, &format!("{}{first}", e.base), prefer)
        .await;
    assert_eq!(items.len(), 12, "the demo Inbox has 12 messages");
    for m in &items {
        assert!(m.get("subject").is_some());
        assert!(m.get("body").is_none(), "$select limits the fields");
        assert!(m["id"].as_str().is_some_and(|i| i.starts_with("AAkALg")));
    }
    let (again, delta_link) = e.delta_round(&t, &delta_link, prefer).await;
    assert!(again.is_empty(), "nothing changed: {again:?}");

    let id = s(&items[0]["id"]);
    let (status, patched) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{id}"),
            json!({"isRead": true, "flag": {"flagStatus": "flagged"}}),
            prefer,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["isRead"], true);
    assert_eq!(patched["flag"]["flagStatus"], "flagged");
    let (changes, _) = e.delta_round(&t, &delta_link, prefer).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["id"], items[0]["id"]);
    assert_eq!(changes[0]["flag"]["flagStatus"], "flagged");
    assert!(
        changes[0].get("bodyPreview").is_none(),
        "replay keeps the $select"
    );

    let bogus = delta_link.replace("$deltatoken=", "$deltatoken=x");
    let (status, body) = e.get_url_prefer(&t, &bogus, prefer).await;
    assert_eq!(status, 410);
    assert_eq!(body["error"]["code"], "syncStateNotFound");
}

#[tokio::test]
async fn message_and_its_mime() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let invoice = e.find_message(&t, "inbox", "Invoice INV-2026-0042").await;
    assert_eq!(invoice["hasAttachments"], true);
    assert_eq!(
        invoice["internetMessageId"],
        "<inv-2026-0042@billing.northwind.test>"
    );
    assert_eq!(
        invoice["from"]["emailAddress"]["address"],
        "billing@northwind.test"
    );
    assert_eq!(invoice["categories"], json!(["Finance"]));
    assert_eq!(invoice["receivedDateTime"], "2026-01-08T14:01:05Z");
    let id = s(&invoice["id"]);
    let resp = e
        .client
        .get(format!("{}/v1.0/me/messages/{id}/$value", e.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("$value");
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain")));
    let bytes = resp.bytes().await.unwrap_or_default();
    let file = std::fs::read(fixture("sales/inbox/04-invoice.eml")).unwrap_or_default();
    assert_eq!(bytes.as_ref(), file.as_slice());

    let logo = e
        .find_message(&t, "inbox", "Notre nouvelle identité visuelle")
        .await;
    assert_eq!(
        logo["hasAttachments"], false,
        "an inline image is not an attachment"
    );
    assert_eq!(logo["from"]["emailAddress"]["name"], "Amélie Dubois");
    let umlaut = e
        .find_message(&t, "inbox", "Angebot für Großbestellung Bürostühle")
        .await;
    assert_eq!(umlaut["from"]["emailAddress"]["name"], "Jürgen Müller");
}

#[tokio::test]
async fn immutable_ids_survive_and_plain_ids_work_too() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let m = e
        .find_message(&t, "inbox", "Order #TT-99812 confirmed")
        .await;
    let rest_id = s(&m["id"]);
    let (status, with_prefer) = e
        .get_prefer(
            &t,
            &format!("/v1.0/me/messages/{rest_id}"),
            "IdType=\"ImmutableId\"",
        )
        .await;
    assert_eq!(status, 200);
    let imm = s(&with_prefer["id"]);
    assert_ne!(imm, rest_id);
    let (status, _) = e.get_with(&t, &format!("/v1.0/me/messages/{imm}")).await;
    assert_eq!(status, 200, "Graph accepts both id forms");
    let swapped: String = imm
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let (status, _) = e
        .get_with(&t, &format!("/v1.0/me/messages/{swapped}"))
        .await;
    assert_eq!(status, 404, "ids are case-sensitive");
}

fn mime(from: &str, to: &str, bcc: Option<&str>, subject: &str) -> Vec<u8> {
    let mut m = format!("From: {from}\r\nTo: {to}\r\n");
    if let Some(b) = bcc {
        m.push_str(&format!("Bcc: {b}\r\n"));
    }
    m.push_str(&format!(
        "Subject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo Welt\r\n"
    ));
    m.into_bytes()
}

#[tokio::test]
async fn send_mime_saves_to_sent_items_and_delivers_inside_the_tenant() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let raw = mime(
        "Contoso Sales <sales@contoso.test>",
        "Contoso Support <support@contoso.test>, Someone <someone@external.test>",
        Some("Hidden <hidden@external.test>"),
        "Internal hand-over",
    );
    let (status, body) = e.post_mime(&t, "/v1.0/me/sendMail", &raw).await;
    assert_eq!(status, 202, "{body}");
    let sent = e.find_message(&t, "sentitems", "Internal hand-over").await;
    assert_eq!(sent["isDraft"], false);
    assert_eq!(
        sent["bccRecipients"][0]["emailAddress"]["address"], "hidden@external.test",
        "the Sent Items copy keeps Bcc"
    );
    assert!(sent["internetMessageId"]
        .as_str()
        .is_some_and(|i| i.starts_with('<')));

    // The recipient mailbox, signed in as itself.
    let support_token = e.sign_in_as("support@contoso.test").await;
    let got = e
        .find_message(&support_token, "inbox", "Internal hand-over")
        .await;
    assert_eq!(got["isRead"], false);
    assert_eq!(got["bccRecipients"], json!([]), "recipients never see Bcc");
    let id = s(&got["id"]);
    let resp = e
        .client
        .get(format!("{}/v1.0/me/messages/{id}/$value", e.base))
        .bearer_auth(&support_token)
        .send()
        .await
        .expect("$value");
    let text = resp.text().await.unwrap_or_default();
    assert!(!text.to_ascii_lowercase().contains("bcc:"), "{text}");
}

#[tokio::test]
async fn send_from_alias_and_foreign_from() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let raw = mime(
        "Contoso Info <info@contoso.test>",
        "x@external.test",
        None,
        "From the alias",
    );
    let (status, _) = e.post_mime(&t, "/v1.0/me/sendMail", &raw).await;
    assert_eq!(status, 202);
    let sent = e.find_message(&t, "sentitems", "From the alias").await;
    assert_eq!(sent["from"]["emailAddress"]["address"], "info@contoso.test");

    let raw = mime(
        "Boss <ceo@contoso.test>",
        "x@external.test",
        None,
        "Spoofed",
    );
    let (status, body) = e.post_mime(&t, "/v1.0/me/sendMail", &raw).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "ErrorSendAsDenied");
    let raw = mime(
        "Support <support@contoso.test>",
        "x@external.test",
        None,
        "Not mine",
    );
    let (status, _) = e.post_mime(&t, "/v1.0/me/sendMail", &raw).await;
    assert_eq!(status, 403, "another mailbox without a send-as grant");
}

#[tokio::test]
async fn send_mime_rejects_bad_base64_and_no_recipients() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let (status, body) = e
        .post_text(&t, "/v1.0/me/sendMail", "this is *not* base64!".into())
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "ErrorMimeContentInvalidBase64String");
    let raw = b"From: sales@contoso.test\r\nSubject: nobody\r\n\r\nx\r\n";
    let (status, body) = e.post_mime(&t, "/v1.0/me/sendMail", raw).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "ErrorInvalidRecipients");
}

#[tokio::test]
async fn send_json_honours_save_to_sent_items() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let msg = |subject: &str| {
        json!({"subject": subject,
               "body": {"contentType": "Text", "content": "Grüße"},
               "toRecipients": [{"emailAddress": {"address": "support@contoso.test"}}]})
    };
    let (status, _) = e
        .post_json(
            &t,
            "/v1.0/me/sendMail",
            json!({"message": msg("Kept"), "saveToSentItems": true}),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = e
        .post_json(
            &t,
            "/v1.0/me/sendMail",
            json!({"message": msg("Not kept"), "saveToSentItems": false}),
        )
        .await;
    assert_eq!(status, 202);
    let sent = e.folder_messages(&t, "sentitems").await;
    assert!(sent.iter().any(|m| m["subject"] == "Kept"));
    assert!(!sent.iter().any(|m| m["subject"] == "Not kept"));
    let kept = e.find_message(&t, "sentitems", "Kept").await;
    assert_eq!(
        kept["from"]["emailAddress"]["address"],
        "sales@contoso.test"
    );
    let support = e.sign_in_as("support@contoso.test").await;
    let inbox = e.folder_messages(&support, "inbox").await;
    assert!(inbox.iter().any(|m| m["subject"] == "Not kept"));
}

#[tokio::test]
async fn mime_rewrite_serves_regenerated_mime() {
    let e = start(Opts {
        mime_rewrite: true,
        ..Opts::default()
    })
    .await;
    let t = e.sign_in().await;
    let m = e
        .find_message(&t, "inbox", "Northwind spring catalogue is out")
        .await;
    let url = format!("{}/v1.0/me/messages/{}/$value", e.base, s(&m["id"]));
    let get = || e.client.get(&url).bearer_auth(&t).send();
    let first = get()
        .await
        .expect("$value")
        .text()
        .await
        .unwrap_or_default();
    let file = String::from_utf8(
        std::fs::read(fixture("sales/inbox/03-newsletter.eml")).unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_ne!(first, file);
    assert!(first.contains("X-MS-Exchange-Organization-SCL"));
    assert!(!first.contains("alt-7f3a9c"), "boundaries are regenerated");
    assert!(first.contains("Subject: Northwind spring catalogue is out"));
    let id = s(&m["id"]);
    let (status, _) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{id}"),
            json!({"isRead": true}),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let second = get()
        .await
        .expect("$value")
        .text()
        .await
        .unwrap_or_default();
    assert_ne!(first, second, "the bytes may change after the item changes");
}
