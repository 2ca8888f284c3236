//! Hostile and malformed IMAP input gets clear protocol errors, never a panic or a hung
//! session, and other sessions keep working.

mod common;

use common::{start_demo, Imap};
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_commands_get_bad_and_the_session_goes_on() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.cmd("SELECT INBOX").await.assert_ok();

    for (junk, expected) in [
        ("FETCH 1 (FLAGS", "BAD"),
        ("FETCH 0 FLAGS", "BAD"),
        ("STORE 1 +FLAGS (\\Recent)", "BAD"),
        ("SELECT \"unterminated", "BAD"),
        ("LIST \"\" \"&AAA\"", "BAD"),
        ("UID FETCH 4294967296 FLAGS", "BAD"),
        ("SEARCH CHARSET KOI8-R TEXT x", "NO [BADCHARSET"),
        // Well-formed, but names a part that does not exist: an empty answer.
        (
            "FETCH 1 (BODY.PEEK[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20])",
            "OK",
        ),
    ] {
        let reply = imap.cmd(junk).await;
        assert!(
            reply.status.starts_with(expected),
            "{junk}: {}",
            reply.status
        );
    }

    // Invalid UTF-8 and a 1 MB line without a space in it.
    imap.send_raw(b"X1 SELECT \xff\xfe\r\n").await;
    let reply = imap.read_until_tag("X1").await;
    assert!(reply.status.starts_with("BAD"), "{}", reply.status);
    let long = format!("X2 NOOP{}\r\n", "a".repeat(1024 * 1024));
    imap.send_raw(long.as_bytes()).await;
    let reply = imap.read_until_tag("X2").await;
    assert!(reply.status.starts_with("BAD"), "{}", reply.status);

    // A literal far larger than allowed is refused before it is sent.
    imap.send_raw(b"X3 APPEND INBOX {4000000000}\r\n").await;
    let reply = imap.read_until_tag("X3").await;
    assert!(
        reply.status.starts_with("BAD") || reply.status.starts_with("NO"),
        "{}",
        reply.status
    );

    // A pipelined flood is answered in order.
    let mut flood = String::new();
    for i in 0..500 {
        flood.push_str(&format!("P{i} NOOP\r\n"));
    }
    imap.send_raw(flood.as_bytes()).await;
    let last = imap.read_until_tag("P499").await;
    assert!(last.ok(), "{}", last.status);

    // The session still works, and so does a new one.
    imap.cmd("FETCH 1 (FLAGS)").await.assert_ok();
    let mut other = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    other.cmd("EXAMINE INBOX").await.assert_ok();
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_hold_up_others() {
    let demo = start_demo(None).await;
    // A client that connects and never speaks (slowloris), and one that stops mid-command.
    let _silent = tokio::net::TcpStream::connect(demo.running.imap)
        .await
        .expect("connect");
    let mut half = Imap::connect(demo.running.imap).await;
    half.send_raw(b"H1 LOGIN demo").await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.cmd("SELECT INBOX").await.assert_ok();
    imap.cmd("FETCH 1:3 (UID ENVELOPE)").await.assert_ok();
    demo.stop().await;
}
