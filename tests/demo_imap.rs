//! The demo stack driven over raw IMAP: login, LIST with SPECIAL-USE, SELECT, FETCH, STORE
//! written through to Graph and seen by a second connection, and clear refusals.

mod common;

use common::{start_demo, GraphPeek, Imap};
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_select_fetch_and_store_through_graph() {
    let demo = start_demo(None).await;
    let addr = demo.running.imap;

    let mut imap = Imap::connect(addr).await;
    assert!(imap.greeting.starts_with("* OK"), "{}", imap.greeting);
    let caps = imap.cmd("CAPABILITY").await;
    caps.assert_ok();
    assert!(caps.find("IMAP4REV1").is_some() && caps.find("AUTH=PLAIN").is_some());

    let refused = imap.cmd("SELECT INBOX").await;
    assert!(refused.status.starts_with("BAD"), "{}", refused.status);
    let wrong = imap.cmd("LOGIN demo wrong").await;
    assert!(
        wrong.status.starts_with("NO [AUTHENTICATIONFAILED]"),
        "{}",
        wrong.status
    );
    imap.cmd(&format!("LOGIN {DEMO_USER} {DEMO_PASSWORD}"))
        .await
        .assert_ok();

    let list = imap.cmd("LIST \"\" \"*\"").await;
    list.assert_ok();
    for (name, attr) in [
        ("\"Sent Items\"", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("\"Deleted Items\"", "\\Trash"),
        ("Archive", "\\Archive"),
    ] {
        let line = list
            .untagged
            .iter()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} listed: {:#?}", list.untagged));
        assert!(line.contains(attr), "{line}");
    }
    assert!(list.find("\"/\" INBOX").is_some(), "{:#?}", list.untagged);
    assert!(list.find("Projects/2026").is_some(), "{:#?}", list.untagged);
    assert!(
        list.find("Shared/info@contoso.test/INBOX").is_some(),
        "alias mailbox under Shared/"
    );

    let select = imap.cmd("SELECT INBOX").await;
    select.assert_ok();
    assert!(
        select.status.starts_with("OK [READ-WRITE]"),
        "{}",
        select.status
    );
    let exists: u32 = select
        .untagged
        .iter()
        .find_map(|l| l.strip_prefix("* ").and_then(|r| r.strip_suffix(" EXISTS")))
        .and_then(|n| n.parse().ok())
        .expect("EXISTS");
    assert!(exists >= 5, "the demo inbox has mail, got {exists}");
    assert!(select.find("[UIDVALIDITY ").is_some());
    assert!(select.find("[UIDNEXT ").is_some());

    // Sizes agree with the bytes served.
    let fetch = imap.cmd("FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])").await;
    fetch.assert_ok();
    assert_eq!(fetch.untagged.len() as u32, exists);
    for response in &fetch.untagged {
        let size: usize = response
            .split("RFC822.SIZE ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("RFC822.SIZE");
        let literal = response.split("BODY[] {").nth(1).expect("BODY[] literal");
        let (len, _) = literal.split_once('}').expect("literal length");
        assert_eq!(len.parse::<usize>().expect("number"), size, "{response}");
    }

    let envelope = imap
        .cmd("UID FETCH 1:* (FLAGS INTERNALDATE ENVELOPE)")
        .await;
    envelope.assert_ok();
    assert!(envelope.untagged.iter().all(|l| l.contains("ENVELOPE (")));

    // STORE goes to Graph; a second session sees it.
    let mut other = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    other.cmd("SELECT INBOX").await.assert_ok();
    imap.cmd("STORE 1 -FLAGS (\\Seen \\Flagged)")
        .await
        .assert_ok();
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let flagged_before = count_flagged(&outlook).await;
    let stored = imap.cmd("STORE 1 +FLAGS (\\Flagged)").await;
    stored.assert_ok();
    assert!(stored.find("\\Flagged").is_some(), "{:#?}", stored.untagged);
    let noop = other.cmd("NOOP").await;
    noop.assert_ok();
    assert!(
        noop.find("\\Flagged").is_some(),
        "second session sees the change: {:#?}",
        noop.untagged
    );

    // Graph itself holds the flag, as Outlook would see it.
    assert_eq!(
        count_flagged(&outlook).await,
        flagged_before + 1,
        "the flag reached the emulated mailbox"
    );

    let unsupported = imap.cmd("STORE 1 +FLAGS (\\Draft)").await;
    assert!(
        unsupported.status.starts_with("NO"),
        "{}",
        unsupported.status
    );
    let unknown = imap.cmd("FROBNICATE").await;
    assert!(unknown.status.starts_with("BAD"), "{}", unknown.status);
    let not_yet = imap.cmd("GETQUOTAROOT INBOX").await;
    assert!(not_yet.status.starts_with("NO"), "{}", not_yet.status);

    let logout = imap.cmd("LOGOUT").await;
    logout.assert_ok();
    assert!(logout.find("* BYE").is_some());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mailbox_logins_and_authenticate_plain() {
    let demo = start_demo(None).await;
    let addr = demo.running.imap;

    // address*user opens that mailbox as the personal namespace.
    let mut imap = Imap::login(addr, "info@contoso.test*demo", DEMO_PASSWORD).await;
    let list = imap.cmd("LIST \"\" \"*\"").await;
    list.assert_ok();
    assert!(list.find("Shared").is_none(), "{:#?}", list.untagged);
    imap.cmd("EXAMINE INBOX").await.assert_ok();

    // AUTHENTICATE PLAIN with SASL-IR, authzid naming a mailbox.
    let mut plain = Imap::connect(addr).await;
    let ir = base64_encode(b"sales@contoso.test\0demo\0demo");
    plain
        .cmd(&format!("AUTHENTICATE PLAIN {ir}"))
        .await
        .assert_ok();
    plain.cmd("SELECT INBOX").await.assert_ok();

    // Not assigned → AUTHORIZATIONFAILED.
    let mut refused = Imap::connect(addr).await;
    let reply = refused
        .cmd("LOGIN \"support@contoso.test*demo\" demo")
        .await;
    assert!(
        reply.status.starts_with("NO [AUTHORIZATIONFAILED]"),
        "{}",
        reply.status
    );
    demo.stop().await;
}

async fn count_flagged(outlook: &GraphPeek) -> usize {
    outlook
        .folder_messages("inbox", "flag")
        .await
        .iter()
        .filter(|m| m["flag"]["flagStatus"] == "flagged")
        .count()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
