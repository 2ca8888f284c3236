//! LIST with CHILDREN attributes and LIST-STATUS (RFC 3348, RFC 5819) in RFC 5258's extended
//! syntax, and the session limits: [TOOBIG] for oversized literals and lines, failed logins
//! answered [AUTHENTICATIONFAILED] while the session goes on.

mod common;

use common::{start_demo, Imap};
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_and_list_status() {
    let demo = start_demo(None).await;
    let addr = demo.running.imap;
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    let mut other = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;

    let caps = imap.cmd("CAPABILITY").await;
    let line = caps.find("* CAPABILITY").expect("CAPABILITY");
    assert!(
        line.contains(" CHILDREN") && line.contains(" LIST-STATUS"),
        "{line}"
    );

    imap.cmd("CREATE Tree/Leaf").await.assert_ok();
    let message = "From: a@example.test\r\nSubject: list-status\r\n\r\nHi\r\n";
    imap.send_raw(
        format!(
            "L1 APPEND Tree/Leaf (\\Seen) {{{}+}}\r\n{message}\r\n",
            message.len()
        )
        .as_bytes(),
    )
    .await;
    imap.read_until_tag("L1").await.assert_ok();
    imap.send_raw(
        format!(
            "L2 APPEND Tree/Leaf {{{}+}}\r\n{message}\r\n",
            message.len()
        )
        .as_bytes(),
    )
    .await;
    imap.read_until_tag("L2").await.assert_ok();

    let list = other.cmd("LIST \"\" \"Tree*\"").await;
    list.assert_ok();
    let tree = list.find("\"/\" Tree").expect("Tree");
    assert!(tree.contains("\\HasChildren"), "{tree}");
    let leaf = list.find("Tree/Leaf").expect("Tree/Leaf");
    assert!(leaf.contains("\\HasNoChildren"), "{leaf}");

    // LIST-STATUS: each listed mailbox followed by its STATUS.
    let with_status = other
        .cmd(
            "LIST \"\" (\"Tree\" \"Tree/%\" INBOX) RETURN (CHILDREN STATUS (MESSAGES UNSEEN SIZE))",
        )
        .await;
    with_status.assert_ok();
    let lines = &with_status.untagged;
    let at = lines
        .iter()
        .position(|l| l.starts_with("* LIST") && l.ends_with("Tree/Leaf"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let status = &lines[at + 1];
    assert!(
        status.starts_with("* STATUS Tree/Leaf (MESSAGES 2 UNSEEN 1 SIZE "),
        "{lines:#?}"
    );
    assert!(
        status.contains(&format!("SIZE {}", 2 * message.len())),
        "{status}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("* STATUS INBOX (")),
        "{lines:#?}"
    );
    let lists = lines.iter().filter(|l| l.starts_with("* LIST")).count();
    assert_eq!(lists, 3, "one LIST per matching mailbox: {lines:#?}");

    // Selection by subscription, marked \Subscribed.
    other.cmd("UNSUBSCRIBE Tree").await.assert_ok();
    let subscribed = other.cmd("LIST (SUBSCRIBED) \"\" \"Tree*\"").await;
    subscribed.assert_ok();
    assert_eq!(subscribed.untagged.len(), 1, "{:#?}", subscribed.untagged);
    assert!(subscribed.untagged[0].contains("\\Subscribed"));
    assert!(subscribed.untagged[0].ends_with("Tree/Leaf"));

    // Shared namespace parents are not selectable: listed without a STATUS.
    let shared = other
        .cmd("LIST \"\" \"Shared\" RETURN (STATUS (MESSAGES))")
        .await;
    shared.assert_ok();
    assert!(shared.find("* STATUS").is_none(), "{:#?}", shared.untagged);

    // What the extended syntax cannot be is refused with a reason, and the session goes on.
    for bad in [
        "LIST \"\" * RETURN (BOGUS)",
        "LIST (RECURSIVEMATCH) \"\" *",
        "LIST \"\" * RETURN (STATUS)",
    ] {
        let reply = other.cmd(bad).await;
        assert!(reply.status.starts_with("BAD"), "{bad}: {}", reply.status);
    }
    other.cmd("NOOP").await.assert_ok();
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_input_is_refused_and_the_session_goes_on() {
    let demo = start_demo(None).await;
    let addr = demo.running.imap;
    let mut imap = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;

    // A synchronizing literal over the limit is refused with [TOOBIG] before any byte of it
    // is sent.
    imap.send_raw(b"T1 APPEND INBOX {999999999}\r\n").await;
    let refused = imap.read_until_tag("T1").await;
    assert!(
        refused.status.starts_with("BAD [TOOBIG]"),
        "{}",
        refused.status
    );
    imap.cmd("NOOP").await.assert_ok();

    // A LITERAL+ literal over the limit is read to its end, dropped and answered [TOOBIG].
    let limit = 64 * 1024 * 1024;
    let mut big = format!("T2 APPEND INBOX {{{}+}}\r\n", limit + 1).into_bytes();
    big.resize(big.len() + limit + 1, b'x');
    big.extend_from_slice(b"\r\n");
    imap.send_raw(&big).await;
    let reply = imap.read_until_tag("T2").await;
    assert!(reply.status.starts_with("BAD [TOOBIG]"), "{}", reply.status);
    imap.cmd("NOOP").await.assert_ok();

    // So is a command line longer than any command may be.
    let mut line = b"T3 NOOP ".to_vec();
    line.resize(limit + 128 * 1024, b'a');
    line.extend_from_slice(b"\r\n");
    imap.send_raw(&line).await;
    let reply = imap.read_until_tag("T3").await;
    assert!(reply.status.starts_with("BAD [TOOBIG]"), "{}", reply.status);

    // The session survives all of it; a second connection never noticed.
    imap.cmd("SELECT INBOX").await.assert_ok();
    let mut other = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    other.cmd("NOOP").await.assert_ok();
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_refused_and_do_not_block_others() {
    let demo = start_demo(None).await;
    let addr = demo.running.imap;
    let mut guesser = Imap::connect(addr).await;
    for _ in 0..2 {
        let wrong = guesser.cmd("LOGIN demo wrong").await;
        assert!(
            wrong.status.starts_with("NO [AUTHENTICATIONFAILED]"),
            "{}",
            wrong.status
        );
    }
    // The right password still works on the same connection after failures.
    guesser
        .cmd(&format!("LOGIN {DEMO_USER} {DEMO_PASSWORD}"))
        .await
        .assert_ok();
    // Another connection logs in while one is waiting on its failure.
    let mut slow = Imap::connect(addr).await;
    slow.send_raw(b"S1 LOGIN demo wrong\r\n").await;
    let mut fast = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    fast.cmd("NOOP").await.assert_ok();
    let refused = slow.read_until_tag("S1").await;
    assert!(refused.status.starts_with("NO [AUTHENTICATIONFAILED]"));
    demo.stop().await;
}
