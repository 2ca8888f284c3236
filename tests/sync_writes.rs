//! The sync engine's writes reach Graph (seen as Outlook would) and the store, and keep
//! UIDs and UIDVALIDITY stable where they must be.

mod common;

use common::{start_demo, GraphPeek};
use graphbridge::demo::DEMO_MAILBOX;
use graphbridge::mailstore::{accounts, folders, messages, Flags, FolderRecord, SpecialUse};
use graphbridge::sync::MailboxSync;
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
