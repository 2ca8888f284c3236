//! Hostile input beyond `imap_hostile.rs`: pathological MIME through a real APPEND and FETCH,
//! sequence sets that name four billion messages, a flood of failed logins while another
//! session works, and SMTP junk and floods. Each gets a clear answer; nothing hangs or
//! panics. Memory is printed (resident set before and after), never asserted, and no test
//! asserts timings.

mod common;
mod smtp_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{start_demo, Imap};
use graphbridge::demo::{DEMO_MAILBOX, DEMO_PASSWORD, DEMO_USER};
use smtp_support::Smtp;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The resident set of this test process, in KiB (Linux), for printing.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// APPENDs `message` to INBOX; the UID it got, or None when the server answered NO.
async fn append(imap: &mut Imap, message: &[u8]) -> Option<u32> {
    imap.send_raw(format!("AP1 APPEND INBOX {{{}+}}\r\n", message.len()).as_bytes())
        .await;
    imap.send_raw(message).await;
    imap.send_raw(b"\r\n").await;
    let reply = imap.read_until_tag("AP1").await;
    assert!(
        reply.ok() || reply.status.starts_with("NO"),
        "APPEND gets OK or a clear NO: {}",
        reply.status
    );
    if !reply.ok() {
        println!("APPEND refused: {}", reply.status);
        return None;
    }
    let at = reply.status.find("[APPENDUID ")? + "[APPENDUID ".len();
    reply.status[at..]
        .split_whitespace()
        .nth(1)?
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// A multipart nested `depth` levels deep, a text part at the bottom.
fn deeply_nested(depth: usize) -> Vec<u8> {
    let mut m = String::from("From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
    for level in 0..depth {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
        ));
    }
    m.push_str("Content-Type: text/plain\r\n\r\nthe bottom\r\n");
    for level in (0..depth).rev() {
        m.push_str(&format!("--b{level}--\r\n"));
    }
    m.into_bytes()
}

/// A multipart/mixed of `parts` small text parts.
fn many_parts(parts: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: a@example.com\r\nSubject: many\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n",
    );
    for i in 0..parts {
        m.push_str(&format!(
            "--p\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    m.push_str("--p--\r\n");
    m.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathological_mime_through_append_and_fetch() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.cmd("SELECT INBOX").await.assert_ok();
    let before = rss_kib();

    let long_header = format!(
        "From: a@example.com\r\nSubject: long\r\nX-Long: {}\r\n\r\nbody\r\n",
        "a".repeat(1024 * 1024)
    );
    let bad_2047 = "From: =?utf-8?B?!!!not base64?= <a@example.com>\r\n\
        To: =?x-unknown-charset?Q?abc?= <b@example.com>, =?utf-8?Q?=FF=FE=?= <c@example.com>\r\n\
        Subject: =?utf-8?B?  =?=?=?utf-8?q?unterminated\r\n\
        Content-Type: text/plain; charset=\"=?utf-8?B?x?=\"\r\n\r\nbody\r\n";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("200 levels of nesting", deeply_nested(200)),
        ("10,000 parts", many_parts(10_000)),
        ("a 1 MB header line", long_header.into_bytes()),
        ("invalid RFC 2047", bad_2047.as_bytes().to_vec()),
    ];
    for (what, message) in cases {
        let Some(uid) = append(&mut imap, &message).await else {
            continue;
        };
        let reply = imap
            .cmd(&format!(
                "UID FETCH {uid} (RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (X-Long Subject)] BODY.PEEK[1])"
            ))
            .await;
        assert!(reply.ok(), "{what}: {}", reply.status);
        let fetched = reply.find("BODYSTRUCTURE").expect("a FETCH response");
        assert!(
            fetched.contains(&format!("RFC822.SIZE {}", message.len())),
            "{what}: RFC822.SIZE is the appended length"
        );
        let search = imap.cmd("UID SEARCH SUBJECT abc FROM example").await;
        assert!(search.ok(), "{what}: {}", search.status);
        println!("{what}: FETCH answered {} bytes", fetched.len());
    }
    // The session and a new one still work.
    imap.cmd("FETCH 1:* (FLAGS)").await.assert_ok();
    let mut other = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    other.cmd("EXAMINE INBOX").await.assert_ok();
    println!("RSS {before} KiB before, {} KiB after", rss_kib());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_sets_naming_four_billion_messages_are_answered() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.cmd("SELECT INBOX").await.assert_ok();
    for command in [
        "FETCH 1:4294967295 (FLAGS)",
        "FETCH 4294967295:1 (UID)",
        "UID FETCH 1:4294967295 (FLAGS)",
        "UID FETCH 4294967295,1:4294967294,* (UID)",
        "UID SEARCH UID 1:4294967295",
        "UID STORE 4000000000:4294967295 +FLAGS (\\Flagged)",
        "UID COPY 4000000000:4294967295 INBOX",
    ] {
        let reply = imap.cmd(command).await;
        assert!(
            reply.ok() || reply.status.starts_with("NO"),
            "{command}: {}",
            reply.status
        );
    }
    // Numbers above the last message name nothing.
    let none = imap.cmd("UID FETCH 4000000000:4294967295 (FLAGS)").await;
    none.assert_ok();
    assert!(none.find("FETCH").is_none(), "{:?}", none.untagged);
    let last = imap.cmd("FETCH 4294967295:* (UID)").await;
    last.assert_ok();
    assert_eq!(last.untagged.len(), 1, "{:?}", last.untagged);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_flood_does_not_starve_a_working_session() {
    const ATTEMPTS: usize = 10_000;
    const ATTACKERS: usize = 64;
    // The flood stops at this many attempts or when this time is up, whichever is first.
    const ATTACK_LIMIT: Duration = Duration::from_secs(60);
    let demo = start_demo(None).await;
    let addr = demo.running.imap;
    let mut worker = Imap::login(addr, DEMO_USER, DEMO_PASSWORD).await;
    worker.cmd("SELECT INBOX").await.assert_ok();
    let before = rss_kib();

    let attempts = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut attackers = Vec::new();
    for a in 0..ATTACKERS {
        let (attempts, refused, stop) = (attempts.clone(), refused.clone(), stop.clone());
        attackers.push(tokio::spawn(async move {
            let mut conn: Option<BufReader<tokio::net::TcpStream>> = None;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed)
                && attempts.fetch_add(1, Ordering::Relaxed) < ATTEMPTS
                && started.elapsed() < ATTACK_LIMIT
            {
                if conn.is_none() {
                    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                        continue;
                    };
                    let mut reader = BufReader::new(tcp);
                    let mut greeting = String::new();
                    if reader.read_line(&mut greeting).await.unwrap_or(0) == 0 {
                        continue;
                    }
                    conn = Some(reader);
                }
                let Some(reader) = conn.as_mut() else {
                    continue;
                };
                n += 1;
                // Mostly guessed names; one in ten a wrong password for the real user.
                let line = if n % 10 == 0 {
                    format!("F{n} LOGIN {DEMO_USER} wrong-{a}-{n}\r\n")
                } else {
                    format!("F{n} LOGIN guess{a}x{n} wrong\r\n")
                };
                if reader.get_mut().write_all(line.as_bytes()).await.is_err() {
                    conn = None;
                    continue;
                }
                // Read to the tagged reply; a server that hangs up is reconnected to.
                let tag = format!("F{n} ");
                loop {
                    let mut reply = String::new();
                    match tokio::time::timeout(ATTACK_LIMIT, reader.read_line(&mut reply)).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                            conn = None;
                            break;
                        }
                        Ok(Ok(_)) => {
                            if reply.starts_with(&tag) {
                                assert!(!reply[tag.len()..].starts_with("OK"), "{reply}");
                                refused.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                }
            }
        }));
    }

    // Meanwhile the logged-in session keeps working; count what it gets done.
    let mut done = 0usize;
    let mut slowest = Duration::ZERO;
    while attackers.iter().any(|a| !a.is_finished()) {
        let t = Instant::now();
        let command = match done % 3 {
            0 => "NOOP",
            1 => "FETCH 1:* (FLAGS UID)",
            _ => "UID SEARCH ALL",
        };
        worker.cmd(command).await.assert_ok();
        slowest = slowest.max(t.elapsed());
        done += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.await.expect("attacker task");
    }
    let refused = refused.load(Ordering::Relaxed);
    println!(
        "{refused} failed logins in {:.1} s; meanwhile the working session completed {done} \
         commands (slowest {} ms); RSS {before} KiB before, {} KiB after",
        started.elapsed().as_secs_f64(),
        slowest.as_millis(),
        rss_kib()
    );
    assert!(refused > 0, "the flood got answers");
    assert!(
        done >= 10,
        "the working session completed only {done} commands during the flood"
    );
    // Still serving: the working session, and (however the flood is throttled) a new one
    // is answered.
    worker.cmd("FETCH 1 (UID FLAGS)").await.assert_ok();
    let mut late = Imap::connect(addr).await;
    let reply = late
        .cmd(&format!("LOGIN {DEMO_USER} {DEMO_PASSWORD}"))
        .await;
    println!("a correct login after the flood: {}", reply.status);
    assert!(!reply.status.starts_with("BAD"), "{}", reply.status);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_junk_and_floods_get_replies_and_the_session_goes_on() {
    let demo = start_demo(None).await;
    let before = rss_kib();
    let mut smtp = Smtp::connect(demo.running.smtp).await;
    assert!(smtp.greeting.starts_with("220"), "{}", smtp.greeting);
    smtp.cmd("EHLO hostile").await;

    // Junk commands each get an error reply.
    for junk in [
        &b"\x00\x01\x02\xff\xfe\r\n"[..],
        b"MAIL FROM:<<<>>>\r\n",
        b"RCPT TO:<a@example.com>\r\n",
        b"BDAT 99999999999999999999\r\n",
        b"AUTH CRAM-MD5\r\n",
        b"DATA\r\n",
        b"\xc3\x28 invalid utf-8\r\n",
    ] {
        smtp.raw(junk).await;
        let reply = smtp.reply().await;
        assert!(
            reply.starts_with('5') || reply.starts_with('4'),
            "{:?}: {reply}",
            String::from_utf8_lossy(junk)
        );
    }

    // A pipelined flood of 5,000 commands: one reply each, in order.
    let flood = "NOOP\r\n".repeat(5_000);
    smtp.raw(flood.as_bytes()).await;
    for i in 0..5_000 {
        let reply = smtp.reply().await;
        assert!(reply.starts_with("250"), "NOOP {i}: {reply}");
    }

    // A line of 1 MB: refused (or the connection closed), never swallowed silently.
    let mut long = Smtp::connect(demo.running.smtp).await;
    long.cmd("EHLO long").await;
    let line = format!("NOOP {}\r\n", "x".repeat(1024 * 1024));
    long.raw(line.as_bytes()).await;
    let reply = long.reply().await;
    assert!(reply.starts_with('5'), "1 MB line: {reply}");

    // The first session still sends mail, including one with a 1 MB header line and broken
    // encoded words, which gets a clear reply either way.
    let token = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b"\0demo\0demo")
    };
    let auth = smtp.cmd(&format!("AUTH PLAIN {token}")).await;
    assert!(auth.starts_with("235"), "{auth}");
    let reply = smtp
        .send(
            DEMO_MAILBOX,
            &["someone@example.com"],
            &format!(
                "From: {DEMO_MAILBOX}\r\nTo: someone@example.com\r\n\
                 Subject: =?utf-8?B?!!!?= =?bogus?Q?x?=\r\nX-Long: {}\r\n\r\nhello\r\n",
                "y".repeat(1024 * 1024)
            ),
        )
        .await;
    assert!(
        reply.starts_with("250") || reply.starts_with('5'),
        "long header: {reply}"
    );
    let reply = smtp
        .send(
            DEMO_MAILBOX,
            &["someone@example.com"],
            &format!(
                "From: {DEMO_MAILBOX}\r\nTo: someone@example.com\r\nSubject: after\r\n\r\nok\r\n"
            ),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    println!("RSS {before} KiB before, {} KiB after", rss_kib());
    demo.stop().await;
}
