//! UIDVALIDITY and UIDs survive a restart of the bridge on the same data folder, while
//! Microsoft 365 (the emulator) keeps running.

mod common;

use common::Imap;
use graphbridge::demo::{self, RunningEmulator, DEMO_PASSWORD, DEMO_USER};

async fn uid_state(addr: std::net::SocketAddr) -> (String, Vec<String>) {
    uid_state_of(addr, "INBOX").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uids_and_uidvalidity_survive_a_restart() {
    let options = common::demo_options(None);
    let graph = RunningEmulator::start(&options.emulator)
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");

    let first = demo::start_bridge(&options, graph.addr, dir.path())
        .await
        .expect("bridge");
    let before = uid_state(first.imap).await;
    first.stop().await;

    let second = demo::start_bridge(&options, graph.addr, dir.path())
        .await
        .expect("bridge again");
    let after = uid_state(second.imap).await;
    second.stop().await;
    graph.stop().await;

    assert_ne!(
        before.0, "1",
        "UIDVALIDITY comes from the clock, not a counter"
    );
    assert!(!before.1.is_empty());
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_with_a_data_folder_continues_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = common::demo_options(Some(dir.path().to_path_buf()));
    let message = "From: a@example.test\r\nSubject: kept\r\n\r\nStill here.\r\n";

    let first = demo::start(options.clone()).await.expect("demo");
    let mut imap = Imap::login(first.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.send_raw(format!("K1 APPEND Archive {{{}+}}\r\n{message}\r\n", message.len()).as_bytes())
        .await;
    let appended = imap.read_until_tag("K1").await;
    appended.assert_ok();
    let before = uid_state_of(first.running.imap, "Archive").await;
    first.stop().await;

    let second = demo::start(options).await.expect("demo again");
    let after = uid_state_of(second.running.imap, "Archive").await;
    let mut imap = Imap::login(second.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.cmd("EXAMINE Archive").await.assert_ok();
    let fetch = imap
        .cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    second.stop().await;
    assert_eq!(
        before, after,
        "same UIDVALIDITY and UIDs in a folder that changed"
    );
    assert!(
        fetch.find("kept").is_some(),
        "the appended message is still there"
    );
}

async fn uid_state_of(addr: std::net::SocketAddr, folder: &str) -> (String, Vec<String>) {
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let select = imap.cmd(&format!("EXAMINE {folder}")).await;
    select.assert_ok();
    let validity = select
        .find("[UIDVALIDITY ")
        .and_then(|l| l.split("[UIDVALIDITY ").nth(1))
        .and_then(|r| r.split(']').next())
        .expect("UIDVALIDITY")
        .to_string();
    let fetch = imap.cmd("UID FETCH 1:* (UID)").await;
    fetch.assert_ok();
    (validity, fetch.untagged.clone())
}

/// A mailbox the running bridge has no engine for (signed in by the CLI after it started, say)
/// is attached by its first client, with a sync loop that keeps it current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_signed_in_while_running_is_picked_up_by_its_first_client() {
    let demo = common::start_demo(None).await;
    let bridge = demo.running.bridge.clone();
    let mailbox = bridge
        .store
        .call(|c| graphbridge::mailstore::accounts::mailbox_by_address(c, demo::DEMO_MAILBOX))
        .await
        .expect("store")
        .expect("demo mailbox");
    bridge.detach_account(mailbox.id);
    assert!(bridge.sync_for(&mailbox).is_none(), "detached");

    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.cmd("SELECT INBOX").await.assert_ok();
    assert!(bridge.sync_for(&mailbox).is_some(), "attached by SELECT");

    // The loop started with it brings new mail without the client asking.
    common::deliver(
        demo.graph.addr,
        demo::DEMO_MAILBOX,
        "inbox",
        b"From: a@example.test\r\nSubject: picked up\r\n\r\nhello\r\n",
    )
    .await;
    imap.send_raw(b"i1 IDLE\r\n").await;
    let mut saw_exists = false;
    for _ in 0..40 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(1), imap.read_line()).await;
        if line.is_ok_and(|l| l.contains(" EXISTS")) {
            saw_exists = true;
            break;
        }
    }
    assert!(saw_exists, "IDLE saw the new message");
    demo.stop().await;
}

/// A demo killed before it saved the emulated tenant leaves a data folder whose sign-in the
/// next emulator does not know: the next demo signs in again instead of showing the mailbox
/// as needing a sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_whose_emulated_tenant_was_lost_signs_in_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = common::demo_options(Some(dir.path().to_path_buf()));
    let first = demo::start(options.clone()).await.expect("demo");
    let before = uid_state_of(first.running.imap, "INBOX").await;
    first.stop().await;
    std::fs::remove_dir_all(dir.path().join("emulator")).expect("saved tenant removed");

    let second = demo::start(options).await.expect("demo again");
    let mut imap = Imap::login(second.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let examine = imap.cmd("EXAMINE INBOX").await;
    let after = uid_state_of(second.running.imap, "INBOX").await;
    second.stop().await;
    examine.assert_ok();
    assert_eq!(before, after, "the same mail under the same UIDs");
}
