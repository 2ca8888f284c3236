//! The folder pass: the tree comes from one folder delta, and a folder that is empty in Graph
//! and in the store costs no message delta until mail arrives in it — not even a first
//! listing — which the next pass still notices, as it notices the last message leaving a
//! folder.

mod common;

use common::{deliver, start_demo, GraphPeek};
use graphbridge::demo::DEMO_MAILBOX;
use graphbridge::mailstore::{folders, messages, FolderRecord, SpecialUse};
use graphbridge::sync::MailboxSync;

async fn junk(sync: &MailboxSync) -> FolderRecord {
    let account = sync.account_id;
    sync.store()
        .call(move |c| folders::folder_by_special_use(c, account, SpecialUse::Junk))
        .await
        .expect("store")
        .expect("the demo mailbox has a junk folder")
}

async fn stored_ids(sync: &MailboxSync, folder_id: i64) -> Vec<String> {
    sync.store()
        .call(move |c| messages::list_messages(c, folder_id))
        .await
        .expect("store")
        .into_iter()
        .map(|m| m.graph_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_folder_waits_for_mail_and_mail_in_it_is_noticed() {
    let demo = start_demo(None).await;
    let sync = common::demo_engine(&demo).await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    assert!(
        outlook
            .folder_messages("junkemail", "subject")
            .await
            .is_empty(),
        "the demo's junk folder starts empty"
    );
    sync.sync_once().await.expect("sync");
    let before = junk(&sync).await;
    assert!(
        before.delta_link.is_none() && before.empty_unlisted,
        "an empty folder is not listed, only marked empty"
    );
    let account = sync.account_id;
    let progress = sync
        .store()
        .call(move |c| graphbridge::mailstore::accounts::sync_progress(c, account))
        .await
        .expect("progress");
    assert_eq!(
        progress.folders_synced, progress.folders,
        "an empty folder counts as synced"
    );
    // Still empty: later passes leave it alone.
    sync.sync_once().await.expect("sync");
    assert_eq!(junk(&sync).await, before);

    let raw = b"From: Spam <spam@example.test>\r\nTo: demo\r\nSubject: Cheap\r\n\
                Message-ID: <cheap@example.test>\r\n\r\nBuy.\r\n";
    deliver(demo.graph.addr, DEMO_MAILBOX, "junkemail", raw).await;
    sync.sync_once().await.expect("sync");
    let after = junk(&sync).await;
    assert_eq!(after.uidvalidity, before.uidvalidity);
    assert!(after.delta_link.is_some(), "its delta ran once it had mail");
    let ids = stored_ids(&sync, after.id).await;
    assert_eq!(ids.len(), 1, "the new message is in the store");

    // Gone in Outlook: Graph counts 0 again, but the store still holds it, so the delta runs
    // and removes it.
    sync.graph_client()
        .delete_message(&ids[0], true)
        .await
        .expect("permanent delete");
    sync.sync_once().await.expect("sync");
    assert!(stored_ids(&sync, after.id).await.is_empty());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_and_the_special_folders_match_graph() {
    let demo = start_demo(None).await;
    let sync = common::demo_engine(&demo).await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    sync.sync_once().await.expect("sync");
    let account = sync.account_id;
    let stored = sync
        .store()
        .call(move |c| folders::list_folders(c, account))
        .await
        .expect("store");
    // Every visible Graph folder is in the store, under its parent's path.
    let names = outlook.folder_names().await;
    for folder in &stored {
        let leaf = folder.path.rsplit('/').next().unwrap_or_default();
        assert!(
            leaf == "INBOX" || names.iter().any(|n| n.replace('/', "_") == leaf),
            "{} is a Graph folder",
            folder.path
        );
        if let Some(parent) = &folder.parent_graph_id {
            if let Some(p) = stored.iter().find(|f| &f.graph_id == parent) {
                assert!(folder.path.starts_with(&format!("{}/", p.path)));
            }
        }
    }
    for role in SpecialUse::ALL {
        let found = stored
            .iter()
            .filter(|f| f.special_use == Some(role))
            .count();
        assert!(found <= 1, "{role:?} names one folder at most");
    }
    assert!(stored
        .iter()
        .any(|f| f.path == "INBOX" && f.special_use == Some(SpecialUse::Inbox)));
    demo.stop().await;
}
