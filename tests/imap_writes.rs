//! IMAP writes through the demo: CREATE/RENAME/DELETE/SUBSCRIBE/STATUS, APPEND with
//! APPENDUID served byte for byte, COPY/MOVE with COPYUID, STORE of every flag and EXPUNGE,
//! each checked in Graph (as Outlook sees it) and from a second connection.

mod common;

use common::{start_demo, GraphPeek, Imap};
use graphbridge::demo::{DEMO_MAILBOX, DEMO_PASSWORD, DEMO_USER};

fn number_after(text: &str, marker: &str) -> u32 {
    text.split(marker)
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{marker} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_created_renamed_and_deleted_in_graph() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;

    imap.cmd("CREATE Clients/Contoso/2026").await.assert_ok();
    let again = imap.cmd("CREATE Clients").await;
    assert!(
        again.status.starts_with("NO [ALREADYEXISTS]"),
        "{}",
        again.status
    );
    let list = imap.cmd("LIST \"\" \"Clients*\"").await;
    assert_eq!(list.untagged.len(), 3, "{:#?}", list.untagged);
    assert!(outlook.folder_names().await.contains(&"2026".to_string()));

    let status = imap
        .cmd("STATUS Clients/Contoso (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
        .await;
    status.assert_ok();
    let line = status.find("* STATUS").expect("STATUS line");
    assert!(
        line.contains("MESSAGES 0") && line.contains("UIDNEXT 1"),
        "{line}"
    );
    let validity = number_after(line, "UIDVALIDITY ");

    imap.cmd("RENAME Clients/Contoso Customers")
        .await
        .assert_ok();
    let status = imap.cmd("STATUS Customers (UIDVALIDITY)").await;
    assert_eq!(
        number_after(status.find("* STATUS").expect("status"), "UIDVALIDITY "),
        validity
    );
    let list = imap.cmd("LIST \"\" \"Customers/*\"").await;
    assert!(
        list.find("Customers/2026").is_some(),
        "children move along: {:#?}",
        list.untagged
    );

    imap.cmd("UNSUBSCRIBE Customers").await.assert_ok();
    let lsub = imap.cmd("LSUB \"\" \"Cust*\"").await;
    assert!(
        lsub.find("\"/\" Customers\"").is_none()
            && !lsub.untagged.iter().any(|l| l.ends_with(" Customers"))
    );
    imap.cmd("SUBSCRIBE Customers").await.assert_ok();

    let parent = imap.cmd("DELETE Customers").await;
    assert!(
        parent.status.starts_with("NO"),
        "a folder with children: {}",
        parent.status
    );
    imap.cmd("DELETE Customers/2026").await.assert_ok();
    imap.cmd("DELETE Customers").await.assert_ok();
    let inbox = imap.cmd("DELETE INBOX").await;
    assert!(inbox.status.starts_with("NO"), "{}", inbox.status);
    let sent = imap.cmd("DELETE \"Sent Items\"").await;
    assert!(sent.status.starts_with("NO [CANNOT]"), "{}", sent.status);
    // Exchange moves a deleted folder to Deleted Items.
    let list = imap.cmd("LIST \"\" \"%/Customers\"").await;
    assert_eq!(list.untagged.len(), 1, "{:#?}", list.untagged);
    assert!(
        list.untagged[0].ends_with("\"Deleted Items/Customers\""),
        "{:#?}",
        list.untagged
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_copy_move_store_expunge() {
    let demo = start_demo(None).await;
    let addr = demo.running.imap;
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let mut watcher = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    imap.cmd("CREATE Work").await.assert_ok();

    // APPEND with a literal; the bytes come back exactly.
    let message = "From: Anna <anna@example.test>\r\nTo: sales@contoso.test\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <append-test@example.test>\r\n\r\nHallo!\r\n";
    let tag = "P1";
    imap.send_raw(
        format!(
            "{tag} APPEND Work (\\Seen $Important) \"05-Jan-2026 10:00:00 +0100\" {{{}+}}\r\n{message}\r\n",
            message.len()
        )
        .as_bytes(),
    )
    .await;
    let appended = imap.read_until_tag(tag).await;
    appended.assert_ok();
    assert!(
        appended.status.contains("[APPENDUID "),
        "{}",
        appended.status
    );
    let uid = number_after(&appended.status, "[APPENDUID ").to_string();
    let uid = appended
        .status
        .split("[APPENDUID ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|r| r.split(' ').nth(1))
        .map(str::to_string)
        .unwrap_or(uid);

    let select = imap.cmd("SELECT Work").await;
    select.assert_ok();
    let fetch = imap
        .cmd(&format!(
            "UID FETCH {uid} (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"
        ))
        .await;
    fetch.assert_ok();
    let line = &fetch.untagged[0];
    assert!(
        line.contains(&format!("RFC822.SIZE {}", message.len())),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("{message})")),
        "byte for byte: {line}"
    );
    assert!(
        line.contains("\\Seen") && line.contains("$Important"),
        "{line}"
    );
    assert!(
        line.contains("05-Jan-2026 10:00:00 +0000") || line.contains("05-Jan-2026 09:00:00 +0000"),
        "{line}"
    );

    // COPY to INBOX answers COPYUID; MOVE answers COPYUID and EXPUNGE.
    let copy = imap.cmd(&format!("UID COPY {uid} INBOX")).await;
    copy.assert_ok();
    assert!(copy.status.contains("[COPYUID "), "{}", copy.status);
    let missing = imap.cmd("COPY 1 Nowhere").await;
    assert!(
        missing.status.starts_with("NO [TRYCREATE]"),
        "{}",
        missing.status
    );

    watcher.cmd("SELECT Work").await.assert_ok();
    let moved = imap.cmd(&format!("UID MOVE {uid} Archive")).await;
    moved.assert_ok();
    assert!(moved.find("[COPYUID ").is_some(), "{:#?}", moved.untagged);
    assert!(moved.find("* 1 EXPUNGE").is_some(), "{:#?}", moved.untagged);
    let seen = watcher.cmd("NOOP").await;
    assert!(
        seen.find("EXPUNGE").is_some(),
        "the other session hears of the move: {:#?}",
        seen.untagged
    );
    assert!(outlook
        .folder_messages("archive", "subject")
        .await
        .iter()
        .any(|m| m["subject"] == "Grüße"));

    // STORE every flag kind, then \Deleted + EXPUNGE deletes in Graph.
    imap.cmd("SELECT INBOX").await.assert_ok();
    let store = imap
        .cmd("STORE 1 +FLAGS (\\Answered $Forwarded Kunde)")
        .await;
    store.assert_ok();
    let flags = store.find("FETCH").expect("FETCH FLAGS");
    assert!(
        flags.contains("$Forwarded") && flags.contains("Kunde"),
        "{flags}"
    );
    let draft = imap.cmd("STORE 1 +FLAGS (\\Draft)").await;
    assert!(draft.status.starts_with("NO"), "{}", draft.status);
    let inbox_before = outlook.folder_messages("inbox", "subject").await.len();
    imap.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        .await
        .assert_ok();
    let expunge = imap.cmd("EXPUNGE").await;
    expunge.assert_ok();
    assert!(
        expunge.find("* 1 EXPUNGE").is_some(),
        "{:#?}",
        expunge.untagged
    );
    assert_eq!(
        outlook.folder_messages("inbox", "subject").await.len(),
        inbox_before - 1
    );

    let namespace = imap.cmd("NAMESPACE").await;
    namespace.assert_ok();
    assert!(
        namespace.find("(\"Shared/\" \"/\")").is_some(),
        "{:#?}",
        namespace.untagged
    );
    demo.stop().await;
}

/// Outlook's categories and IMAP keywords map both ways without loss: spaces, `_`, `&` and
/// non-ASCII survive the trip in either direction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_and_keywords_map_both_ways() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let raw = b"From: a@example.test\r\nTo: sales@contoso.test\r\nSubject: Categories\r\n\r\nx\r\n";
    let id = common::deliver(demo.graph.addr, DEMO_MAILBOX, "inbox", raw).await;
    outlook
        .patch_message(
            &id,
            serde_json::json!({"categories": ["Red category", "Größe (intern)", "R&D"]}),
        )
        .await;
    imap.cmd("SELECT INBOX").await.assert_ok();
    let expected = ["Red_category", "Gr&APYA3w-e_&ACg-intern&ACk-", "R&D"];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let flags = loop {
        let reply = imap
            .cmd("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await;
        let line = reply
            .untagged
            .iter()
            .find(|l| l.contains("Subject: Categories"))
            .cloned()
            .unwrap_or_default();
        if expected.iter().all(|k| line.contains(k)) || tokio::time::Instant::now() > deadline {
            break line;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let shown = expected.iter().all(|k| flags.contains(k));
    assert!(shown, "Outlook's categories as keywords: {flags}");
    let seq = flags
        .trim_start_matches("* ")
        .split(' ')
        .next()
        .expect("sequence number")
        .to_string();

    imap.cmd(&format!("STORE {seq} +FLAGS (Kund&AOk- New_tag)"))
        .await
        .assert_ok();
    imap.cmd(&format!("STORE {seq} -FLAGS (Red_category)"))
        .await
        .assert_ok();
    let categories = outlook
        .folder_messages("inbox", "subject,categories")
        .await
        .into_iter()
        .find(|m| m["subject"] == "Categories")
        .map(|m| m["categories"].clone())
        .expect("the message in Graph");
    assert_eq!(
        categories,
        serde_json::json!(["Größe (intern)", "R&D", "Kundé", "New tag"]),
        "keywords reach Outlook as readable categories"
    );
}
