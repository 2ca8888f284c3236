//! ESEARCH (RFC 4731) over raw IMAP against the demo: `SEARCH RETURN (...)` answered with
//! `* ESEARCH (TAG ...)`, refused RETURN options answered BAD with the reason, ESEARCH
//! pipelined with other commands and with an APPEND whose message holds `SEARCH RETURN`,
//! MODSEQ under CONDSTORE, and `[TOOBIG]` on a refused synchronizing literal. Python's
//! imaplib and curl send a `SEARCH RETURN` too.

mod common;

use std::process::Command;

use common::{fill_folder, number_after, start_demo, Imap};
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};

/// Sends `tag command` and reads up to its tagged status.
async fn tagged(imap: &mut Imap, tag: &str, command: &str) -> common::Reply {
    imap.send_raw(format!("{tag} {command}\r\n").as_bytes())
        .await;
    imap.read_until_tag(tag).await
}

/// The one `* ESEARCH` line of a reply.
fn esearch(reply: &common::Reply) -> String {
    let lines: Vec<&String> = reply
        .untagged
        .iter()
        .filter(|l| l.starts_with("* ESEARCH"))
        .collect();
    assert_eq!(lines.len(), 1, "{:#?} / {}", reply.untagged, reply.status);
    lines[0].clone()
}

/// Sorted numbers as a compact sequence set.
fn compact(numbers: &[u64]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            numbers[i].to_string()
        } else {
            format!("{}:{}", numbers[i], numbers[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_return_answers_esearch() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let caps = imap.cmd("CAPABILITY").await;
    let line = caps.find("* CAPABILITY").expect("CAPABILITY");
    assert!(line.contains(" ESEARCH"), "{line}");
    assert!(!line.contains("SEARCHRES"), "{line}");

    let uids = fill_folder(&mut imap, "Esearch", "esearch", 5).await;
    imap.cmd("SELECT Esearch").await.assert_ok();
    imap.cmd("STORE 2,4 +FLAGS (\\Flagged)").await.assert_ok();

    let all = tagged(&mut imap, "s1", "SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED").await;
    all.assert_ok();
    assert_eq!(
        esearch(&all),
        "* ESEARCH (TAG \"s1\") MIN 2 MAX 4 COUNT 2 ALL 2,4"
    );
    let every = tagged(&mut imap, "s2", "SEARCH RETURN (MIN MAX COUNT ALL) ALL").await;
    assert_eq!(
        esearch(&every),
        "* ESEARCH (TAG \"s2\") MIN 1 MAX 5 COUNT 5 ALL 1:5"
    );
    // An empty list means ALL; UID SEARCH says UID and gives UIDs.
    let by_uid = tagged(&mut imap, "s3", "UID SEARCH RETURN () ALL").await;
    by_uid.assert_ok();
    assert_eq!(
        esearch(&by_uid),
        format!("* ESEARCH (TAG \"s3\") UID ALL {}", compact(&uids))
    );
    let lower = tagged(&mut imap, "s4.x", "uid search return (max) unflagged").await;
    assert_eq!(
        esearch(&lower),
        format!("* ESEARCH (TAG \"s4.x\") UID MAX {}", uids[4])
    );

    // No match: COUNT 0, and MIN/MAX/ALL left out.
    let none = tagged(&mut imap, "n1", "SEARCH RETURN (COUNT) SUBJECT \"no such\"").await;
    none.assert_ok();
    assert_eq!(esearch(&none), "* ESEARCH (TAG \"n1\") COUNT 0");
    let empty = tagged(
        &mut imap,
        "n2",
        "SEARCH RETURN (MIN MAX ALL) SUBJECT nothing",
    )
    .await;
    assert_eq!(esearch(&empty), "* ESEARCH (TAG \"n2\")");

    // Criteria with a synchronizing literal.
    imap.send_raw(b"l1 SEARCH RETURN (COUNT MIN) CHARSET UTF-8 SUBJECT {9}\r\n")
        .await;
    let cont = imap.read_line().await;
    assert!(cont.starts_with('+'), "{cont}");
    imap.send_raw(b"esearch 3\r\n").await;
    let literal = imap.read_until_tag("l1").await;
    assert_eq!(esearch(&literal), "* ESEARCH (TAG \"l1\") MIN 4 COUNT 1");

    // A plain SEARCH is still answered with SEARCH.
    let plain = imap.cmd("SEARCH FLAGGED").await;
    assert!(
        plain.find("* SEARCH 2 4").is_some(),
        "{:#?}",
        plain.untagged
    );
    assert!(plain.find("ESEARCH").is_none());

    // Refused RETURN options: BAD with the reason, and the session goes on.
    for (command, reason) in [
        ("SEARCH RETURN (SAVE) ALL", "SEARCHRES"),
        ("UID SEARCH RETURN (MIN FOO) ALL", "FOO"),
        ("SEARCH RETURN MIN ALL", "parenthesised"),
        ("SEARCH RETURN (MIN ALL", "parenthesised"),
        ("SEARCH RETURN (MIN)", "criteria"),
        ("SEARCH RETURN (PARTIAL 1:10) ALL", "PARTIAL"),
    ] {
        let reply = tagged(&mut imap, "b1", command).await;
        assert!(
            reply.status.starts_with("BAD "),
            "{command}: {}",
            reply.status
        );
        assert!(reply.status.contains(reason), "{command}: {}", reply.status);
        assert!(reply.find("ESEARCH").is_none(), "{command}");
    }
    // Well-formed RETURN with bad criteria: imap-codec's BAD.
    let bad = tagged(&mut imap, "b2", "SEARCH RETURN (MIN) NOSUCHKEY").await;
    assert!(bad.status.starts_with("BAD"), "{}", bad.status);
    // Outside a selected mailbox, as SEARCH.
    imap.cmd("UNSELECT").await.assert_ok();
    let unselected = tagged(&mut imap, "b3", "SEARCH RETURN (COUNT) ALL").await;
    assert!(
        unselected.status.starts_with("BAD"),
        "{}",
        unselected.status
    );
    imap.cmd("NOOP").await.assert_ok();
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esearch_pipelined_with_an_append_that_holds_search_return() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let uids = fill_folder(&mut imap, "Piped", "esearch", 3).await;
    imap.cmd("SELECT Piped").await.assert_ok();

    let message = "From: a@example.test\r\nTo: b@example.test\r\nSubject: tricky\r\n\
Message-ID: <tricky@example.test>\r\n\r\np9 SEARCH RETURN (MIN) ALL\r\nq9 LOGOUT\r\n";
    let batch = format!(
        "p1 SEARCH RETURN (COUNT) ALL\r\n\
p2 APPEND Piped {{{}+}}\r\n{message}\r\n\
p3 NOOP\r\n\
p4 UID SEARCH RETURN (MAX COUNT) ALL\r\n\
p5 SEARCH ALL\r\n",
        message.len()
    );
    imap.send_raw(batch.as_bytes()).await;
    let p1 = imap.read_until_tag("p1").await;
    assert_eq!(esearch(&p1), "* ESEARCH (TAG \"p1\") COUNT 3");
    let p2 = imap.read_until_tag("p2").await;
    p2.assert_ok();
    let new_uid = number_after(p2.status.split("[APPENDUID ").nth(1).unwrap_or(""), " ");
    assert!(new_uid > uids[2]);
    let p3 = imap.read_until_tag("p3").await;
    p3.assert_ok();
    let p4 = imap.read_until_tag("p4").await;
    assert_eq!(
        esearch(&p4),
        format!("* ESEARCH (TAG \"p4\") UID MAX {new_uid} COUNT 4")
    );
    // The new message was announced before a result that names it.
    let mut seen: Vec<&String> = p2.untagged.iter().collect();
    seen.extend(&p3.untagged);
    seen.extend(&p4.untagged);
    let exists = seen.iter().position(|l| *l == "* 4 EXISTS");
    let answer = seen.iter().position(|l| l.starts_with("* ESEARCH"));
    assert!(exists.is_some() && exists < answer, "{seen:#?}");
    let p5 = imap.read_until_tag("p5").await;
    assert!(p5.find("* SEARCH 1 2 3 4").is_some(), "{:#?}", p5.untagged);

    // The message is stored as sent, and its lines were never taken for commands.
    let body = imap.cmd(&format!("UID FETCH {new_uid} BODY.PEEK[]")).await;
    body.assert_ok();
    assert!(
        body.untagged.iter().any(|l| l.contains(message)),
        "{:#?}",
        body.untagged
    );
    let after = imap.cmd("NOOP").await;
    after.assert_ok();
    for reply in [&p1, &p2, &p3, &p4, &p5, &after] {
        assert!(
            !reply
                .untagged
                .iter()
                .any(|l| l.starts_with("p9") || l.starts_with("q9")),
            "{:#?}",
            reply.untagged
        );
    }
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esearch_with_modseq_under_condstore() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    fill_folder(&mut imap, "Modseq", "esearch", 4).await;
    imap.cmd("ENABLE CONDSTORE").await.assert_ok();
    imap.cmd("SELECT Modseq").await.assert_ok();
    imap.cmd("STORE 3 +FLAGS (\\Seen)").await.assert_ok();
    let fetch = imap.cmd("FETCH 1:4 (MODSEQ)").await;
    let modseq = |n: usize| {
        let line = fetch
            .find(&format!("* {n} FETCH"))
            .unwrap_or_else(|| panic!("{:#?}", fetch.untagged));
        number_after(line, "MODSEQ (")
    };
    let highest = (1..=4).map(modseq).max().unwrap_or_default();
    assert_eq!(highest, modseq(3));

    // ALL: the highest MODSEQ of every match, as plain SEARCH gives it.
    let plain = imap.cmd("SEARCH MODSEQ 1").await;
    let line = plain.find("* SEARCH").expect("SEARCH");
    assert_eq!(*line, format!("* SEARCH 1 2 3 4 (MODSEQ {highest})"));
    let all = tagged(&mut imap, "m1", "SEARCH RETURN (ALL) MODSEQ 1").await;
    all.assert_ok();
    assert_eq!(
        esearch(&all),
        format!("* ESEARCH (TAG \"m1\") ALL 1:4 MODSEQ {highest}")
    );
    // MIN alone: the MODSEQ of the message it returns.
    let min = tagged(&mut imap, "m2", "SEARCH RETURN (MIN) MODSEQ 1").await;
    assert_eq!(
        esearch(&min),
        format!("* ESEARCH (TAG \"m2\") MIN 1 MODSEQ {}", modseq(1))
    );
    // No match: no MODSEQ.
    let none = tagged(
        &mut imap,
        "m3",
        &format!("SEARCH RETURN (COUNT) MODSEQ {}", highest + 1),
    )
    .await;
    assert_eq!(esearch(&none), "* ESEARCH (TAG \"m3\") COUNT 0");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_synchronizing_literal_says_toobig() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.send_raw(b"T1 APPEND INBOX {999999999}\r\n").await;
    let refused = imap.read_until_tag("T1").await;
    assert!(
        refused.status.starts_with("BAD [TOOBIG] Literal too big"),
        "{}",
        refused.status
    );
    // The literal was never sent: the next line is a command of its own.
    let next = tagged(&mut imap, "T2", "SEARCH RETURN (COUNT) ALL").await;
    assert!(
        next.status.starts_with("BAD"),
        "no mailbox selected: {}",
        next.status
    );
    imap.cmd("SELECT INBOX").await.assert_ok();
    let next = tagged(&mut imap, "T3", "SEARCH RETURN (COUNT) ALL").await;
    next.assert_ok();
    assert!(esearch(&next).starts_with("* ESEARCH (TAG \"T3\") COUNT "));
    demo.stop().await;
}

/// Python's imaplib sends `SEARCH RETURN (...)` and reads the ESEARCH response.
const IMAPLIB: &str = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
assert "ESEARCH" in m.capabilities, m.capabilities
m.select("INBOX", readonly=True)
typ, data = m._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")
assert typ == "OK", (typ, data)
typ, data = m._untagged_response(typ, data, "ESEARCH")
print(data[0].decode())
typ, data = m.search(None, "ALL")
print(len(data[0].split()))
m.logout()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_and_curl_use_esearch() {
    let demo = start_demo(None).await;
    let port = demo.running.imap.port().to_string();
    let output = tokio::task::spawn_blocking({
        let port = port.clone();
        move || {
            Command::new("python3")
                .args(["-c", IMAPLIB, &port, DEMO_USER, DEMO_PASSWORD])
                .output()
        }
    })
    .await
    .expect("join")
    .expect("python3 runs (install Python 3)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    let esearch = lines.next().unwrap_or_default().to_string();
    let count: usize = lines.next().and_then(|n| n.parse().ok()).expect("count");
    assert!(count > 0, "{stdout}");
    assert!(esearch.starts_with("(TAG \""), "{esearch}");
    assert!(
        esearch.ends_with(&format!(") MIN 1 MAX {count} COUNT {count}")),
        "{esearch}"
    );

    // curl prints the untagged responses of a custom request.
    let url = format!("imap://127.0.0.1:{port}/INBOX");
    let user = format!("{DEMO_USER}:{DEMO_PASSWORD}");
    let curl = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args([
                "-s",
                "--user",
                &user,
                &url,
                "-X",
                "SEARCH RETURN (COUNT) ALL",
            ])
            .output()
    })
    .await
    .expect("join");
    match curl {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "curl: {text}");
            assert!(
                text.contains("* ESEARCH (TAG \"") && text.contains(&format!("COUNT {count}")),
                "{text}"
            );
        }
        Err(e) => println!("SKIPPED curl: {e}"),
    }
    demo.stop().await;
}
