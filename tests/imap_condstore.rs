//! CONDSTORE, QRESYNC and ENABLE (RFC 7162, RFC 5161) over raw IMAP against the demo: MODSEQ
//! in FETCH and STORE, CHANGEDSINCE, UNCHANGEDSINCE with [MODIFIED], HIGHESTMODSEQ in SELECT
//! and STATUS, SEARCH MODSEQ, STATUS=SIZE, and a QRESYNC client that comes back after another
//! connection changed and expunged messages. Python's imaplib does the same resync.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::{fill_folder, number_after, start_demo, Imap};
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};

fn highest_modseq(reply: &common::Reply) -> u64 {
    let line = reply
        .find("[HIGHESTMODSEQ ")
        .unwrap_or_else(|| panic!("HIGHESTMODSEQ in {:#?}", reply.untagged));
    number_after(line, "[HIGHESTMODSEQ ")
}

/// The UID of every untagged FETCH in a reply.
fn fetched_uids(reply: &common::Reply) -> Vec<u64> {
    reply
        .untagged
        .iter()
        .filter(|l| l.contains(" FETCH ("))
        .map(|l| number_after(l, "UID "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_and_condstore_fetch_store_search_status() {
    let demo = start_demo(None).await;
    let addr = demo.running.imap;
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let mut other = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;

    let caps = imap.cmd("CAPABILITY").await;
    let line = caps.find("* CAPABILITY").expect("CAPABILITY");
    for cap in [" ENABLE", " CONDSTORE", " QRESYNC", " STATUS=SIZE"] {
        assert!(line.contains(cap), "{cap} in {line}");
    }
    let uids = fill_folder(&mut imap, "Cond", "condstore", 3).await;

    // QRESYNC in SELECT needs ENABLE QRESYNC first.
    let early = imap.cmd("SELECT Cond (QRESYNC (1 1))").await;
    assert!(early.status.starts_with("BAD"), "{}", early.status);

    // ENABLE names only what it turned on, unknown names are ignored.
    let enable = imap.cmd("ENABLE CONDSTORE X-UNKNOWN").await;
    enable.assert_ok();
    assert_eq!(enable.untagged, vec!["* ENABLED CONDSTORE".to_string()]);
    let again = imap.cmd("ENABLE CONDSTORE").await;
    again.assert_ok();
    assert_eq!(again.untagged, vec!["* ENABLED".to_string()]);

    let select = imap.cmd("SELECT Cond").await;
    select.assert_ok();
    let start = highest_modseq(&select);

    let fetch = imap.cmd("FETCH 1:* (UID FLAGS MODSEQ)").await;
    fetch.assert_ok();
    assert_eq!(fetch.untagged.len(), 3, "{:#?}", fetch.untagged);
    for line in &fetch.untagged {
        assert!(number_after(line, "MODSEQ (") <= start, "{line}");
    }

    // STORE answers with the new MODSEQ, above everything before.
    let store = imap.cmd("STORE 1 +FLAGS (\\Flagged)").await;
    store.assert_ok();
    let answer = store.find("* 1 FETCH").expect("FETCH of the STORE");
    let first_change = number_after(answer, "MODSEQ (");
    assert!(first_change > start, "{answer}");
    assert!(answer.contains("\\Flagged"), "{answer}");

    // Only the changed message is newer than `start`.
    let changed = imap
        .cmd(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {start})"))
        .await;
    changed.assert_ok();
    assert_eq!(
        fetched_uids(&changed),
        vec![uids[0]],
        "{:#?}",
        changed.untagged
    );
    assert!(changed.untagged[0].contains(&format!("MODSEQ ({first_change})")));

    // Another connection changes message 2; the conditional STORE then leaves it alone.
    other.cmd("SELECT Cond").await.assert_ok();
    other
        .cmd("STORE 2 +FLAGS.SILENT (\\Seen)")
        .await
        .assert_ok();
    let conditional = imap
        .cmd(&format!(
            "STORE 1:3 (UNCHANGEDSINCE {first_change}) +FLAGS.SILENT (\\Answered)"
        ))
        .await;
    conditional.assert_ok();
    assert!(
        conditional.status.starts_with("OK [MODIFIED 2]"),
        "{}",
        conditional.status
    );
    // .SILENT under CONDSTORE still reports the new MODSEQs of what changed.
    assert!(
        conditional.find("* 1 FETCH (MODSEQ (").is_some()
            && conditional.find("* 3 FETCH (MODSEQ (").is_some(),
        "{:#?}",
        conditional.untagged
    );
    let zero = imap
        .cmd("UID STORE 1:* (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
        .await;
    assert!(
        zero.status
            .starts_with(&format!("OK [MODIFIED {}:{}]", uids[0], uids[2])),
        "UNCHANGEDSINCE 0 always fails: {}",
        zero.status
    );
    other.cmd("NOOP").await.assert_ok();
    let seen = other.cmd("FETCH 1:3 (FLAGS)").await;
    let flags = |n: usize| {
        seen.find(&format!("* {n} FETCH"))
            .cloned()
            .unwrap_or_default()
    };
    assert!(flags(1).contains("\\Answered") && flags(1).contains("\\Flagged"));
    assert!(!flags(2).contains("\\Answered") && flags(2).contains("\\Seen"));
    assert!(flags(3).contains("\\Answered"), "{:#?}", seen.untagged);

    // SEARCH MODSEQ answers with the highest MODSEQ of what it found.
    let search = imap.cmd(&format!("SEARCH MODSEQ {}", start + 1)).await;
    search.assert_ok();
    let line = search.find("* SEARCH").expect("SEARCH");
    assert!(line.starts_with("* SEARCH 1 2 3 (MODSEQ "), "{line}");

    // STATUS: HIGHESTMODSEQ as SELECT reports it, SIZE the sum of RFC822.SIZE.
    let sizes = imap.cmd("FETCH 1:* (RFC822.SIZE)").await;
    let total: u64 = sizes
        .untagged
        .iter()
        .filter(|l| l.contains("FETCH"))
        .map(|l| number_after(l, "RFC822.SIZE "))
        .sum();
    let status = other.cmd("STATUS Cond (MESSAGES HIGHESTMODSEQ SIZE)").await;
    status.assert_ok();
    let line = status.find("* STATUS").expect("STATUS");
    assert!(line.contains("MESSAGES 3"), "{line}");
    assert_eq!(number_after(line, "SIZE "), total, "{line}");
    let noop = imap.cmd("NOOP").await;
    noop.assert_ok();
    let reselect = other.cmd("EXAMINE Cond").await;
    assert_eq!(
        number_after(line, "HIGHESTMODSEQ "),
        highest_modseq(&reselect)
    );

    // A CONDSTORE session hears of another's flag change with UID and MODSEQ.
    other.cmd("SELECT Cond").await.assert_ok();
    other
        .cmd("STORE 3 -FLAGS.SILENT (\\Answered)")
        .await
        .assert_ok();
    let noop = imap.cmd("NOOP").await;
    let pushed = noop.find("* 3 FETCH").expect("unsolicited FETCH");
    assert!(
        pushed.contains(&format!("UID {}", uids[2])) && pushed.contains("MODSEQ ("),
        "{pushed}"
    );
    demo.stop().await;
}

/// A CONDSTORE-enabling command issued with a mailbox selected announces HIGHESTMODSEQ;
/// a plain session gets no MODSEQ it did not ask for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condstore_is_enabled_by_first_use() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    fill_folder(&mut imap, "Plain", "condstore", 1).await;
    imap.cmd("SELECT Plain").await.assert_ok();
    let store = imap.cmd("STORE 1 +FLAGS (\\Flagged)").await;
    let answer = store.find("* 1 FETCH").expect("FETCH");
    assert!(!answer.contains("MODSEQ"), "{answer}");
    let fetch = imap.cmd("FETCH 1 (FLAGS MODSEQ)").await;
    fetch.assert_ok();
    assert!(
        fetch.find("* OK [HIGHESTMODSEQ ").is_some(),
        "{:#?}",
        fetch.untagged
    );
    let store = imap.cmd("STORE 1 -FLAGS (\\Flagged)").await;
    assert!(store.find("MODSEQ (").is_some(), "{:#?}", store.untagged);
    let bad = imap
        .cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
        .await;
    assert!(
        bad.status.starts_with("BAD"),
        "VANISHED needs QRESYNC: {}",
        bad.status
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qresync_client_comes_back() {
    let demo = start_demo(None).await;
    let addr = demo.running.imap;
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let uids = fill_folder(&mut imap, "Resync", "condstore", 5).await;

    imap.cmd("ENABLE QRESYNC").await.assert_ok();
    let select = imap.cmd("SELECT Resync").await;
    select.assert_ok();
    let validity = number_after(
        select.find("[UIDVALIDITY ").expect("UIDVALIDITY"),
        "[UIDVALIDITY ",
    );
    let modseq = highest_modseq(&select);
    imap.cmd("LOGOUT").await;

    // While the client is away: a flag change on the 2nd, the 4th expunged.
    let mut other = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    other.cmd("SELECT Resync").await.assert_ok();
    other.cmd("STORE 2 +FLAGS (\\Flagged)").await.assert_ok();
    other.cmd("STORE 4 +FLAGS (\\Deleted)").await.assert_ok();
    other.cmd("EXPUNGE").await.assert_ok();

    let mut back = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    back.cmd("ENABLE QRESYNC").await.assert_ok();
    let resync = back
        .cmd(&format!("SELECT Resync (QRESYNC ({validity} {modseq}))"))
        .await;
    resync.assert_ok();
    let vanished: Vec<&String> = resync
        .untagged
        .iter()
        .filter(|l| l.starts_with("* VANISHED"))
        .collect();
    assert_eq!(
        vanished,
        vec![&format!("* VANISHED (EARLIER) {}", uids[3])],
        "{:#?}",
        resync.untagged
    );
    assert_eq!(
        fetched_uids(&resync),
        vec![uids[1]],
        "{:#?}",
        resync.untagged
    );
    let changed = resync.find(" FETCH (").expect("FETCH");
    assert!(
        changed.contains("\\Flagged") && changed.contains("MODSEQ ("),
        "{changed}"
    );
    // The VANISHED comes before the FETCHes, both after the SELECT's own responses.
    let position = |needle: &str| resync.untagged.iter().position(|l| l.contains(needle));
    assert!(position("VANISHED") < position(" FETCH ("));
    assert!(position("[UIDVALIDITY") < position("VANISHED"));

    // The same question asked of UID FETCH.
    let again = back
        .cmd(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
        ))
        .await;
    again.assert_ok();
    assert_eq!(
        again.untagged[0],
        format!("* VANISHED (EARLIER) {}", uids[3]),
        "{:#?}",
        again.untagged
    );
    assert_eq!(fetched_uids(&again), vec![uids[1]]);

    // Known UIDs limit the answer; a stale UIDVALIDITY gets a plain SELECT.
    let limited = back
        .cmd(&format!(
            "SELECT Resync (QRESYNC ({validity} {modseq} {}:{}))",
            uids[0], uids[2]
        ))
        .await;
    limited.assert_ok();
    assert!(
        limited.find("VANISHED").is_none(),
        "{:#?}",
        limited.untagged
    );
    assert_eq!(fetched_uids(&limited), vec![uids[1]]);
    let stale = back
        .cmd(&format!(
            "SELECT Resync (QRESYNC ({} {modseq}))",
            validity + 1
        ))
        .await;
    stale.assert_ok();
    assert!(
        stale.find("VANISHED").is_none() && stale.find(" FETCH (").is_none(),
        "{:#?}",
        stale.untagged
    );

    // With QRESYNC on, expunges by others arrive as VANISHED, never EXPUNGE.
    other
        .cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        .await
        .assert_ok();
    other.cmd("EXPUNGE").await.assert_ok();
    let noop = back.cmd("NOOP").await;
    assert!(
        noop.find(&format!("* VANISHED {}", uids[0])).is_some(),
        "{:#?}",
        noop.untagged
    );
    assert!(noop.find("EXPUNGE").is_none(), "{:#?}", noop.untagged);
    // And its own EXPUNGE too.
    back.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        .await
        .assert_ok();
    let own = back.cmd("EXPUNGE").await;
    own.assert_ok();
    assert_eq!(own.untagged, vec![format!("* VANISHED {}", uids[1])]);
    let plain = other.cmd("NOOP").await;
    assert!(
        plain.find("* 1 EXPUNGE").is_some(),
        "a session without QRESYNC gets EXPUNGE: {:#?}",
        plain.untagged
    );

    // A folder whose expunges were recorded only from a later MODSEQ on (one that predates
    // the record): every UID below UIDNEXT that is missing counts as vanished.
    demo.running
        .bridge
        .store
        .call(|c| {
            c.execute(
                "UPDATE folders SET expunges_known_from = highest_modseq WHERE path = 'Resync'",
                [],
            )?;
            Ok(())
        })
        .await
        .expect("store");
    let fallback = back
        .cmd(&format!("SELECT Resync (QRESYNC ({validity} {modseq}))"))
        .await;
    fallback.assert_ok();
    assert_eq!(
        fallback.find("* VANISHED"),
        Some(&format!(
            "* VANISHED (EARLIER) {}:{},{}",
            uids[0], uids[1], uids[3]
        )),
        "{:#?}",
        fallback.untagged
    );
    let within = back
        .cmd(&format!(
            "UID FETCH {}:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)",
            uids[1]
        ))
        .await;
    assert_eq!(
        within.untagged[0],
        format!("* VANISHED (EARLIER) {},{}", uids[1], uids[3]),
        "{:#?}",
        within.untagged
    );
    demo.stop().await;
}

/// Python's imaplib as a QRESYNC client that was offline: it comes back with
/// `SELECT Folder (QRESYNC (v m))` and gets exactly the VANISHED and changed FETCHes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_qresync_resync() {
    let demo = start_demo(None).await;
    let addr: SocketAddr = demo.running.imap;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/imaplib_qresync.py"
    );
    let port = addr.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &port, DEMO_USER, DEMO_PASSWORD])
            .output()
    })
    .await
    .expect("join")
    .expect("python3 runs (install Python 3)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client script failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    demo.stop().await;
}
