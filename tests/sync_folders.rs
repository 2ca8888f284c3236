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

async fn by_graph_id(sync: &MailboxSync, graph_id: &str) -> FolderRecord {
    let account = sync.account_id;
    let graph_id = graph_id.to_string();
    sync.store()
        .call(move |c| folders::list_folders(c, account))
        .await
        .expect("store")
        .into_iter()
        .find(|f| f.graph_id == graph_id)
        .expect("the folder is in the store")
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
        before.delta_link.is_some(),
        "the junk folder was listed while its role was found by name"
    );
    // Still empty: later passes leave it alone, and its deltaLink stays as it was.
    sync.sync_once().await.expect("sync");
    assert_eq!(junk(&sync).await.delta_link, before.delta_link);

    let raw = b"From: Spam <spam@example.test>\r\nTo: demo\r\nSubject: Cheap\r\n\
                Message-ID: <cheap@example.test>\r\n\r\nBuy.\r\n";
    deliver(demo.graph.addr, DEMO_MAILBOX, "junkemail", raw).await;
    sync.sync_once().await.expect("sync");
    let after = junk(&sync).await;
    assert_eq!(after.uidvalidity, before.uidvalidity);
    assert_ne!(
        after.delta_link, before.delta_link,
        "its delta ran once it had mail"
    );
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

/// A folder that is empty when the sync first meets it is not listed at all: it counts as
/// synced, and its first listing waits for mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_folder_is_listed_only_once_it_has_mail() {
    let demo = start_demo(None).await;
    let sync = common::demo_engine(&demo).await;
    let created = sync
        .graph_client()
        .create_folder(None, "Made in Outlook")
        .await
        .expect("folder created in Graph");
    sync.sync_once().await.expect("sync");
    let before = by_graph_id(&sync, &created.id).await;
    assert!(
        before.delta_link.is_none() && before.empty_unlisted,
        "an empty folder is not listed, only marked empty: {before:?}"
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

    let raw = b"From: a@example.test\r\nSubject: First\r\n\r\nHi.\r\n";
    deliver(demo.graph.addr, DEMO_MAILBOX, &created.id, raw).await;
    sync.sync_once().await.expect("sync");
    let after = by_graph_id(&sync, &created.id).await;
    assert!(after.delta_link.is_some(), "listed once it had mail");
    assert_eq!(after.uidvalidity, before.uidvalidity);
    assert_eq!(stored_ids(&sync, after.id).await.len(), 1);
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
    // Each role is on the folder Graph has under that well-known name.
    for role in SpecialUse::ALL {
        let (status, folder) = outlook
            .get(&format!("/mailFolders/{}", role.well_known_name()))
            .await;
        let with_role: Vec<&FolderRecord> = stored
            .iter()
            .filter(|f| f.special_use == Some(role))
            .collect();
        if status == 404 {
            assert!(with_role.is_empty(), "{role:?} has no folder");
        } else {
            assert_eq!(with_role.len(), 1, "{role:?} names one folder");
            assert_eq!(
                with_role[0].graph_id,
                folder["id"].as_str().unwrap_or_default()
            );
        }
    }
    assert!(stored
        .iter()
        .any(|f| f.path == "INBOX" && f.special_use == Some(SpecialUse::Inbox)));
    demo.stop().await;
}

/// The special folders that hold mail are named by the first message of their listing, begun
/// by well-known name; only an empty one (the demo's junk folder) is looked up by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_folders_cost_a_lookup_only_when_empty() {
    let demo = start_demo(None).await;
    let stats: serde_json::Value =
        reqwest::get(format!("http://{}/_emulator/stats", demo.graph.addr))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON");
    let routes = &stats["mailboxes"][DEMO_MAILBOX]["requestsByRoute"];
    assert_eq!(
        routes["GET/me/mailFolders/{id}"], 1,
        "one folder looked up by name: {routes}"
    );
    demo.stop().await;
}
