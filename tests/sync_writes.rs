//! The sync engine's writes reach Graph (seen as Outlook would) and the store, and keep
//! UIDs and UIDVALIDITY stable where they must be.

mod common;

use common::{deliver, start_demo, GraphPeek};
use graphbridge::demo::DEMO_MAILBOX;
use graphbridge::mailstore::{accounts, folders, messages, Flags, FolderRecord, SpecialUse};
use graphbridge::sync::{FlagChange, MailboxSync, SyncError};
use std::sync::Arc;

async fn folder(sync: &MailboxSync, path: &str) -> FolderRecord {
    let (account, path) = (sync.account_id, path.to_string());
    sync.store()
        .call(move |c| folders::folder_by_path(c, account, &path))
        .await
        .expect("store")
        .expect("folder exists")
}

async fn setup() -> (graphbridge::demo::Demo, Arc<MailboxSync>) {
    let demo = start_demo(None).await;
    let store = demo.running.bridge.store.clone();
    let record = store
        .call(|c| accounts::mailbox_by_address(c, DEMO_MAILBOX))
        .await
        .expect("store")
        .expect("mailbox");
    let sync = demo.running.bridge.sync_for(&record).expect("attached");
    (demo, sync)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_create_rename_delete_keep_uidvalidity() {
    let (demo, sync) = setup().await;
    let projects = folder(&sync, "Projects").await;
    let created = sync
        .create_folder(Some(&projects), "Tenders")
        .await
        .expect("create");
    assert_eq!(created.path, "Projects/Tenders");
    sync.rename_folder(&created, None, "Tenders 2027")
        .await
        .expect("rename and move");
    let renamed = folder(&sync, "Tenders 2027").await;
    assert_eq!(
        renamed.uidvalidity, created.uidvalidity,
        "rename keeps UIDVALIDITY"
    );
    assert_eq!(renamed.graph_id, created.graph_id);
    sync.delete_folder(&renamed).await.expect("delete");
    let account = sync.account_id;
    let gone = sync
        .store()
        .call(move |c| folders::folder_by_path(c, account, "Tenders 2027"))
        .await
        .expect("store");
    assert!(gone.is_none());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_copy_delete_and_append_reach_graph() {
    let (demo, sync) = setup().await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let inbox = folder(&sync, "INBOX").await;
    let archive = folder(&sync, "Archive").await;
    let inbox_id = inbox.id;
    let list = sync
        .store()
        .call(move |c| messages::list_messages(c, inbox_id))
        .await
        .expect("list");
    let first = list[0].clone();
    let body_before = sync.body(&first.graph_id).await.expect("body");

    // Move: new UID in Archive, same immutable id, same bytes.
    let archive_before = outlook.folder_messages("archive", "subject").await.len();
    let moved_uid = sync
        .move_message(&inbox, &first, &archive)
        .await
        .expect("move");
    assert!(moved_uid >= 1);
    assert_eq!(
        outlook.folder_messages("archive", "subject").await.len(),
        archive_before + 1
    );
    let archive_id = archive.id;
    let moved = sync
        .store()
        .call(move |c| messages::message_by_uid(c, archive_id, moved_uid))
        .await
        .expect("store")
        .expect("moved message");
    assert_eq!(
        moved.graph_id, first.graph_id,
        "immutable id survives the move"
    );
    assert_eq!(sync.body(&moved.graph_id).await.expect("body"), body_before);

    // Copy back: the copy serves the same bytes under a new id.
    let copy_uid = sync.copy_message(&moved, &inbox).await.expect("copy");
    let copy = sync
        .store()
        .call(move |c| messages::message_by_uid(c, inbox_id, copy_uid))
        .await
        .expect("store")
        .expect("copy");
    assert_ne!(copy.graph_id, moved.graph_id);
    assert_eq!(sync.body(&copy.graph_id).await.expect("body"), body_before);

    // Delete to Deleted Items.
    let trash_before = outlook
        .folder_messages("deleteditems", "subject")
        .await
        .len();
    sync.delete_message(&inbox, &copy, false)
        .await
        .expect("delete");
    assert_eq!(
        outlook
            .folder_messages("deleteditems", "subject")
            .await
            .len(),
        trash_before + 1
    );

    // Append a non-draft and a draft; the bytes served are the bytes given.
    let raw = b"From: Anna <anna@example.test>\r\nTo: sales@contoso.test\r\nSubject: Appended\r\n\
Message-ID: <appended-1@example.test>\r\n\r\nHello from APPEND.\r\n";
    let uid = sync
        .append(&inbox, raw, Flags(Flags::SEEN), "", 1_700_000_000)
        .await
        .expect("append");
    let appended = sync
        .store()
        .call(move |c| messages::message_by_uid(c, inbox_id, uid))
        .await
        .expect("store")
        .expect("appended");
    assert_eq!(
        sync.body(&appended.graph_id).await.expect("body"),
        raw.to_vec()
    );
    assert_eq!(appended.internal_date, 1_700_000_000);
    let graph_copy = outlook
        .folder_messages("inbox", "subject,isDraft,isRead")
        .await
        .into_iter()
        .find(|m| m["subject"] == "Appended")
        .expect("appended message in Graph");
    assert_eq!(graph_copy["isDraft"], false);
    assert_eq!(graph_copy["isRead"], true);

    let drafts = folder(&sync, "Drafts").await;
    assert_eq!(drafts.special_use, Some(SpecialUse::Drafts));
    sync.append(&drafts, raw, Flags(Flags::DRAFT), "", 1_700_000_000)
        .await
        .expect("append draft");
    let draft = outlook
        .folder_messages("drafts", "subject,isDraft,isRead")
        .await
        .into_iter()
        .find(|m| m["subject"] == "Appended")
        .expect("draft in Graph");
    assert_eq!(draft["isDraft"], true);
    assert_eq!(
        draft["isRead"], false,
        "the client asked for an unread draft"
    );
    demo.stop().await;
}

async fn set_error_rate(graph: std::net::SocketAddr, rate: f64) {
    let response = reqwest::Client::new()
        .post(format!("http://{graph}/_emulator/faults"))
        .json(&serde_json::json!({"errorRate": rate}))
        .send()
        .await
        .expect("faults");
    assert!(response.status().is_success());
}

fn flag_changes(list: &[messages::MessageRecord], flagged: bool) -> Vec<FlagChange> {
    list.iter()
        .map(|m| FlagChange {
            uid: m.uid,
            graph_id: m.graph_id.clone(),
            old_flags: m.flags,
            old_keywords: m.keywords.clone(),
            new_flags: m.flags.with(Flags::FLAGGED, flagged),
            new_keywords: m.keywords.clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_changes_go_out_in_batches_and_each_gets_its_answer() {
    let (demo, sync) = setup().await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    for i in 0..12 {
        let raw = format!(
            "From: Anna <anna@example.test>\r\nTo: sales@contoso.test\r\nSubject: Batch {i}\r\n\
             Message-ID: <batch-{i}@example.test>\r\n\r\nHello.\r\n"
        );
        deliver(demo.graph.addr, DEMO_MAILBOX, "inbox", raw.as_bytes()).await;
    }
    sync.sync_once().await.expect("sync");
    // Bodies first, so the background fetcher sends no batch while this test counts them.
    sync.fetch_missing_bodies().await.expect("bodies");
    let inbox = folder(&sync, "INBOX").await;
    let inbox_id = inbox.id;
    let list = sync
        .store()
        .call(move |c| messages::list_messages(c, inbox_id))
        .await
        .expect("list");
    assert!(list.len() > 20, "more changes than one batch holds");
    // One message is deleted in Outlook before the change reaches Graph.
    let gone = list[3].clone();
    sync.graph_client()
        .delete_message(&gone.graph_id, true)
        .await
        .expect("delete in Graph");

    let batches_before = sync.graph_client().batches_sent();
    let results = sync
        .store_flags_many(&inbox, flag_changes(&list, true))
        .await;
    assert_eq!(results.len(), list.len());
    // Twenty changes to a batch; a lone change left over goes as a plain PATCH.
    // (Messages already flagged need no request.)
    let sent = list.iter().filter(|m| !m.flags.has(Flags::FLAGGED)).count();
    assert!(sent > 20, "more changes than one batch holds");
    let expected = sent / 20 + usize::from(sent % 20 > 1);
    assert_eq!(
        sync.graph_client().batches_sent() - batches_before,
        expected as u64,
        "{sent} changes"
    );
    for (message, result) in list.iter().zip(&results) {
        if message.graph_id == gone.graph_id {
            assert!(matches!(result, Err(SyncError::Gone)), "{result:?}");
        } else {
            assert!(result.is_ok(), "{}: {result:?}", message.uid);
        }
    }
    let flagged_in_graph = outlook
        .folder_messages("inbox", "flag")
        .await
        .into_iter()
        .filter(|m| m["flag"]["flagStatus"] == "flagged")
        .count();
    assert_eq!(flagged_in_graph, list.len() - 1);
    let stored = sync
        .store()
        .call(move |c| messages::list_messages(c, inbox_id))
        .await
        .expect("list");
    for m in stored.iter().filter(|m| m.graph_id != gone.graph_id) {
        assert!(
            m.flags.has(Flags::FLAGGED),
            "the store took what Graph took"
        );
    }
    let still_there: Vec<messages::MessageRecord> = stored
        .into_iter()
        .filter(|m| m.graph_id != gone.graph_id)
        .collect();

    // Inner requests failing for a while (503, 504, dropped) are retried one by one; every
    // change still lands.
    set_error_rate(demo.graph.addr, 0.2).await;
    let results = sync
        .store_flags_many(&inbox, flag_changes(&still_there, false))
        .await;
    set_error_rate(demo.graph.addr, 0.0).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let flagged_in_graph = outlook
        .folder_messages("inbox", "flag")
        .await
        .into_iter()
        .filter(|m| m["flag"]["flagStatus"] == "flagged")
        .count();
    assert_eq!(flagged_in_graph, 0);
    demo.stop().await;
}
