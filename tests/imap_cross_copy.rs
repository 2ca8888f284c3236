//! COPY and MOVE between two Microsoft 365 mailboxes: the demo user gets the tenant's second
//! mailbox (support@) assigned and signed in, sees it under `Shared/support@contoso.test/`,
//! and copies and moves messages between its INBOX and the personal INBOX. Checked from a
//! second connection (same bytes, size, flags, INTERNALDATE) and in Graph as Outlook sees
//! each mailbox.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{deliver, sign_in, start_demo, GraphPeek, Imap};
use graphbridge::admin::core as admin;
use graphbridge::demo::{Demo, DEMO_MAILBOX, DEMO_PASSWORD, DEMO_USER};
use graphbridge::mailstore::accounts::{self, StoredTokens};
use graphbridge::mailstore::{SigninState, StoreError};

const SUPPORT: &str = "support@contoso.test";
const SHARED_INBOX: &str = "\"Shared/support@contoso.test/INBOX\"";

/// The demo, with support@ imported, assigned to the demo user and signed in as itself.
async fn start_with_support() -> Demo {
    let demo = start_demo(None).await;
    let bridge = demo.running.bridge.clone();
    admin::import_mailbox(&bridge.store, SUPPORT, None).expect("import support@");
    admin::assign(&bridge.store, SUPPORT, DEMO_USER, admin::Role::Member).expect("assign");
    let tokens = sign_in::emulator_tokens_as(
        &reqwest::Client::new(),
        demo.graph.addr,
        &bridge.config.graph.client_id,
        &bridge.config.graph.scopes.join(" "),
        SUPPORT,
    )
    .await;
    let text = |key: &str| tokens[key].as_str().expect(key).as_bytes().to_vec();
    let lifetime = tokens["expires_in"].as_i64().expect("expires_in");
    let sealed = StoredTokens {
        refresh_token: bridge.secrets.seal(&text("refresh_token")),
        access_token: Some(bridge.secrets.seal(&text("access_token"))),
        access_expires_at: Some(graphbridge::mailstore::now_unix() + lifetime),
    };
    let id = admin::mailbox(&bridge.store, SUPPORT).expect("mailbox").id;
    bridge
        .store
        .call_blocking(|c| {
            accounts::save_tokens(c, id, &sealed)?;
            accounts::set_signin_state(c, id, SigninState::SignedIn, None)?;
            Ok::<_, StoreError>(())
        })
        .expect("tokens saved");
    let record = admin::mailbox(&bridge.store, SUPPORT).expect("mailbox");
    let sync = bridge
        .sync_or_attach(&record)
        .await
        .expect("support@ attached");
    sync.sync_once().await.expect("support@ synced");
    demo
}

/// What a client sees of one message.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    flags: BTreeSet<String>,
    internal_date: String,
    size: u32,
    body: String,
}

async fn fetch_uid(imap: &mut Imap, uid: u32) -> Seen {
    let reply = imap
        .cmd(&format!(
            "UID FETCH {uid} (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"
        ))
        .await;
    reply.assert_ok();
    let line = reply
        .find(&format!("UID {uid} "))
        .unwrap_or_else(|| panic!("UID {uid} fetched: {:#?}", reply.untagged));
    let between = |start: &str, end: char| {
        let rest = line.split(start).nth(1).expect(start);
        rest[..rest.find(end).expect("end")].to_string()
    };
    let body_start = line.find("BODY[] {").expect("BODY[]");
    let body = &line[body_start..];
    let body = &body[body.find("}\r\n").expect("literal") + 3..];
    Seen {
        flags: between("FLAGS (", ')')
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        internal_date: between("INTERNALDATE \"", '"'),
        size: number_after(line, "RFC822.SIZE "),
        body: body.strip_suffix(')').expect("closing paren").to_string(),
    }
}

fn number_after(text: &str, marker: &str) -> u32 {
    text.split(marker)
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{marker} in {text}"))
}

/// `[COPYUID validity source destination]` as its three parts.
fn copyuid(text: &str) -> (u32, String, String) {
    let inner = text
        .split("[COPYUID ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_else(|| panic!("COPYUID in {text}"));
    let parts: Vec<&str> = inner.split(' ').collect();
    assert_eq!(parts.len(), 3, "{inner}");
    (
        parts[0].parse().expect("uidvalidity"),
        parts[1].to_string(),
        parts[2].to_string(),
    )
}

fn uidvalidity(select: &common::Reply) -> u32 {
    let line = select.find("[UIDVALIDITY ").expect("UIDVALIDITY");
    number_after(line, "[UIDVALIDITY ")
}

/// The UID of the one message with `subject` in the selected folder, once the bridge has it.
async fn wait_uid(imap: &mut Imap, subject: &str) -> u32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        imap.cmd("NOOP").await.assert_ok();
        let reply = imap.cmd(&format!("UID SEARCH SUBJECT \"{subject}\"")).await;
        let uids: Vec<u32> = reply
            .find("* SEARCH")
            .map(|l| l.split_whitespace().skip(2).filter_map(|n| n.parse().ok()))
            .into_iter()
            .flatten()
            .collect();
        if let [uid] = uids[..] {
            return uid;
        }
        assert!(tokio::time::Instant::now() < deadline, "{subject} arrives");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn subjects(outlook: &GraphPeek, folder: &str) -> Vec<String> {
    outlook
        .folder_messages(folder, "subject")
        .await
        .iter()
        .filter_map(|m| m["subject"].as_str().map(str::to_string))
        .collect()
}

fn count(subjects: &[String], subject: &str) -> usize {
    subjects.iter().filter(|s| *s == subject).count()
}

fn message(subject: &str, text: &str) -> String {
    format!(
        "From: Anna <anna@example.test>\r\nTo: sales@contoso.test\r\nSubject: {subject}\r\n\
Message-ID: <{}@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n",
        subject.replace(' ', "-")
    )
}

async fn append(imap: &mut Imap, flags: &str, date: &str, message: &str) {
    imap.send_raw(
        format!(
            "AP1 APPEND INBOX ({flags}) \"{date}\" {{{}+}}\r\n{message}\r\n",
            message.len()
        )
        .as_bytes(),
    )
    .await;
    imap.read_until_tag("AP1").await.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_move_between_mailboxes_and_back() {
    let demo = start_with_support().await;
    let addr = demo.running.imap;
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let mut other = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let sales = GraphPeek::sign_in(demo.graph.addr).await;
    let support = GraphPeek::sign_in_as(demo.graph.addr, SUPPORT).await;

    // A: appended by a client (bridge-written bytes), with every kind of flag and a date.
    // B: arriving from outside (Graph's bytes, maybe not fetched by the bridge yet).
    let a = message("Cross A", "Grüße aus dem Vertrieb.");
    append(
        &mut imap,
        "\\Seen \\Flagged \\Answered Kunde",
        "05-Jan-2026 10:00:00 +0100",
        &a,
    )
    .await;
    let b = message("Cross B", "Von außen gekommen.");
    deliver(demo.graph.addr, DEMO_MAILBOX, "inbox", b.as_bytes()).await;
    imap.cmd("SELECT INBOX").await.assert_ok();
    let uid_a = wait_uid(&mut imap, "Cross A").await;
    let uid_b = wait_uid(&mut imap, "Cross B").await;
    // Sync passes have run since the APPEND: the flags are those Graph holds too.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen_a = fetch_uid(&mut imap, uid_a).await;
    assert_eq!(seen_a.body, a);
    let expected: BTreeSet<String> = ["\\Seen", "\\Flagged", "\\Answered", "Kunde"]
        .map(String::from)
        .into();
    assert_eq!(seen_a.flags, expected);
    assert!(
        seen_a.internal_date.starts_with("05-Jan-2026"),
        "{seen_a:?}"
    );

    // UID COPY into the other mailbox: COPYUID, and the copy is the same message.
    let copy = imap.cmd(&format!("UID COPY {uid_a} {SHARED_INBOX}")).await;
    copy.assert_ok();
    let (validity, source, target) = copyuid(&copy.status);
    assert_eq!(source, uid_a.to_string());
    let copy_uid: u32 = target.parse().expect("one UID");
    let select = other.cmd(&format!("SELECT {SHARED_INBOX}")).await;
    select.assert_ok();
    assert_eq!(uidvalidity(&select), validity);
    assert_eq!(fetch_uid(&mut other, copy_uid).await, seen_a);
    let in_support = support
        .folder_messages("inbox", "subject,isRead,isDraft,flag,categories")
        .await;
    let graph_copy = in_support
        .iter()
        .find(|m| m["subject"] == "Cross A")
        .expect("the copy is in support@'s Inbox in Graph");
    assert_eq!(graph_copy["isDraft"], false);
    assert_eq!(graph_copy["isRead"], true);
    assert_eq!(graph_copy["flag"]["flagStatus"], "flagged");
    assert_eq!(graph_copy["categories"][0], "Kunde");
    assert_eq!(count(&subjects(&sales, "inbox").await, "Cross A"), 1);
    // A few sync passes later Graph's view has not taken \Answered away: it reached Graph.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    other.cmd("NOOP").await.assert_ok();
    assert_eq!(fetch_uid(&mut other, copy_uid).await, seen_a);

    // MOVE (sequence form): untagged OK COPYUID, then EXPUNGE; gone from sales@ for good.
    let seen_b = fetch_uid(&mut imap, uid_b).await;
    let search = imap.cmd("SEARCH SUBJECT \"Cross B\"").await;
    let seq_b = number_after(search.find("* SEARCH").expect("SEARCH"), "* SEARCH ");
    let moved = imap.cmd(&format!("MOVE {seq_b} {SHARED_INBOX}")).await;
    moved.assert_ok();
    let untagged_ok = moved.find("OK [COPYUID ").expect("untagged COPYUID");
    let (validity_b, source_b, target_b) = copyuid(untagged_ok);
    assert_eq!((validity_b, source_b), (validity, uid_b.to_string()));
    let expunge = moved
        .find(&format!("* {seq_b} EXPUNGE"))
        .expect("EXPUNGE of the moved message");
    let ok_index = moved.untagged.iter().position(|l| l == untagged_ok);
    let expunge_index = moved.untagged.iter().position(|l| l == expunge);
    assert!(ok_index < expunge_index, "COPYUID before EXPUNGE");
    let moved_uid: u32 = target_b.parse().expect("one UID");
    other.cmd("NOOP").await.assert_ok();
    assert_eq!(fetch_uid(&mut other, moved_uid).await, seen_b);
    assert_eq!(count(&subjects(&sales, "inbox").await, "Cross B"), 0);
    assert_eq!(count(&subjects(&sales, "deleteditems").await, "Cross B"), 0);
    assert_eq!(count(&subjects(&support, "inbox").await, "Cross B"), 1);

    // And back: UID MOVE from the shared mailbox into the personal INBOX.
    let back = other.cmd(&format!("UID MOVE {moved_uid} INBOX")).await;
    back.assert_ok();
    let (_, source_back, target_back) =
        copyuid(back.find("OK [COPYUID ").expect("untagged COPYUID"));
    assert_eq!(source_back, moved_uid.to_string());
    imap.cmd("NOOP").await.assert_ok();
    let back_uid: u32 = target_back.parse().expect("one UID");
    assert_eq!(fetch_uid(&mut imap, back_uid).await, seen_b);
    assert_eq!(count(&subjects(&support, "inbox").await, "Cross B"), 0);
    assert_eq!(
        count(&subjects(&support, "deleteditems").await, "Cross B"),
        0
    );
    assert_eq!(count(&subjects(&sales, "inbox").await, "Cross B"), 1);

    // COPY (sequence form) of a support@ message into a personal folder other than INBOX.
    let first_uid = first_uid(&mut other).await;
    let first = fetch_uid(&mut other, first_uid).await;
    let copy = other.cmd("COPY 1 Archive").await;
    copy.assert_ok();
    let (_, _, archived) = copyuid(&copy.status);
    imap.cmd("SELECT Archive").await.assert_ok();
    assert_eq!(
        fetch_uid(&mut imap, archived.parse().expect("one UID")).await,
        first
    );
    demo.stop().await;
}

/// The UID of message 1 of the selected folder.
async fn first_uid(imap: &mut Imap) -> u32 {
    let reply = imap.cmd("FETCH 1 (UID)").await;
    reply.assert_ok();
    number_after(reply.find("FETCH").expect("FETCH"), "UID ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_lose_nothing() {
    let demo = start_with_support().await;
    let addr = demo.running.imap;
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let mut other = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let sales = GraphPeek::sign_in(demo.graph.addr).await;
    let support = GraphPeek::sign_in_as(demo.graph.addr, SUPPORT).await;
    let small = message("Cross small", "Klein.");
    deliver(demo.graph.addr, DEMO_MAILBOX, "inbox", small.as_bytes()).await;
    // Over Graph's 4 MB request limit however it is sent.
    let line = "Eine lange Zeile, damit die Nachricht groß wird. 0123456789\r\n";
    let big = message("Cross big", &line.repeat(5 * 1024 * 1024 / line.len()));
    deliver(demo.graph.addr, DEMO_MAILBOX, "inbox", big.as_bytes()).await;
    imap.cmd("SELECT INBOX").await.assert_ok();
    let uid_small = wait_uid(&mut imap, "Cross small").await;
    let uid_big = wait_uid(&mut imap, "Cross big").await;
    let seen_big = fetch_uid(&mut imap, uid_big).await;
    assert_eq!(seen_big.body, big);
    let select = other.cmd(&format!("SELECT {SHARED_INBOX}")).await;
    select.assert_ok();
    let exists_before = select.find(" EXISTS").cloned().expect("EXISTS");
    let support_before = subjects(&support, "inbox").await.len();

    // A target folder that does not exist.
    for command in ["UID COPY", "UID MOVE"] {
        let reply = imap
            .cmd(&format!(
                "{command} {uid_small} \"Shared/support@contoso.test/Nowhere\""
            ))
            .await;
        assert!(
            reply.status.starts_with("NO [TRYCREATE]"),
            "{}",
            reply.status
        );
    }

    // COPY of a small and a big message: all or nothing, the big one named.
    let copy = imap
        .cmd(&format!("UID COPY {uid_small},{uid_big} {SHARED_INBOX}"))
        .await;
    assert!(copy.status.starts_with("NO [TOOBIG]"), "{}", copy.status);
    assert!(
        copy.status.contains(&format!("UID {uid_big} ")),
        "{}",
        copy.status
    );
    assert_eq!(subjects(&support, "inbox").await.len(), support_before);
    let reselect = other.cmd(&format!("SELECT {SHARED_INBOX}")).await;
    assert_eq!(
        reselect.find(" EXISTS").cloned().expect("EXISTS"),
        exists_before
    );

    // MOVE of both: the small one moves, the big one stays where it was, NO says why.
    let moved = imap
        .cmd(&format!("UID MOVE {uid_small},{uid_big} {SHARED_INBOX}"))
        .await;
    assert!(moved.status.starts_with("NO [TOOBIG]"), "{}", moved.status);
    let (_, source, _) = copyuid(moved.find("OK [COPYUID ").expect("COPYUID"));
    assert_eq!(source, uid_small.to_string());
    assert!(moved.find(" EXPUNGE").is_some(), "{:#?}", moved.untagged);
    let in_sales = subjects(&sales, "inbox").await;
    assert_eq!(count(&in_sales, "Cross small"), 0);
    assert_eq!(count(&in_sales, "Cross big"), 1);
    assert_eq!(
        count(&subjects(&sales, "deleteditems").await, "Cross small"),
        0
    );
    let in_support = subjects(&support, "inbox").await;
    assert_eq!(count(&in_support, "Cross small"), 1);
    assert_eq!(count(&in_support, "Cross big"), 0);
    assert_eq!(fetch_uid(&mut imap, uid_big).await, seen_big);
    demo.stop().await;
}
