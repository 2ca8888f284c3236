//! APPEND of messages larger than one Graph request (4 MB): a non-draft and a `\Draft` are
//! created with their attachments added afterwards, served byte for byte from the bridge and
//! seen in Graph as Outlook would see them; a failure half-way leaves nothing behind.

mod common;

use base64::Engine;
use common::{demo_options, start_demo, GraphPeek, Imap};
use graphbridge::demo::{self, DEMO_PASSWORD, DEMO_USER};
use serde_json::Value;

/// Deterministic file contents that do not repeat in short cycles.
fn contents(size: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..size)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8
        })
        .collect()
}

/// A multipart message with a text part and `files` (name, content type, size), base64 at 76
/// columns as mail clients write it.
fn message(subject: &str, files: &[(&str, &str, usize)]) -> Vec<u8> {
    let mut raw = format!(
        "From: Anna <anna@example.test>\r\nTo: sales@contoso.test\r\nSubject: {subject}\r\n\
Message-ID: <{}@example.test>\r\nDate: Mon, 05 Jan 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"large-b\"\r\n\r\n--large-b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nThe files are attached.\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes();
    for (i, (name, content_type, size)) in files.iter().enumerate() {
        raw.extend_from_slice(
            format!(
                "--large-b\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            )
            .as_bytes(),
        );
        let data = base64::engine::general_purpose::STANDARD.encode(contents(*size, i as u32));
        for line in data.as_bytes().chunks(76) {
            raw.extend_from_slice(line);
            raw.extend_from_slice(b"\r\n");
        }
    }
    raw.extend_from_slice(b"--large-b--\r\n");
    raw
}

/// APPENDs `raw` with a LITERAL+ literal and returns the tagged answer.
async fn append(imap: &mut Imap, folder: &str, flags: &str, raw: &[u8]) -> common::Reply {
    let tag = "L1";
    let mut command =
        format!("{tag} APPEND {folder} ({flags}) {{{}+}}\r\n", raw.len()).into_bytes();
    command.extend_from_slice(raw);
    command.extend_from_slice(b"\r\n");
    imap.send_raw(&command).await;
    imap.read_until_tag(tag).await
}

/// The UID of `[APPENDUID validity uid]`.
fn appended_uid(status: &str) -> u64 {
    status
        .split("[APPENDUID ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|r| r.split(' ').nth(1))
        .and_then(|uid| uid.parse().ok())
        .unwrap_or_else(|| panic!("APPENDUID in {status}"))
}

/// On a second connection: the message's FLAGS and RFC822.SIZE, and that BODY.PEEK[] is
/// exactly `raw`.
async fn fetched_flags(demo: &demo::Demo, folder: &str, uid: u64, raw: &[u8]) -> String {
    let mut other = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    other.cmd(&format!("EXAMINE {folder}")).await.assert_ok();
    let fetch = other
        .cmd(&format!("UID FETCH {uid} (FLAGS RFC822.SIZE BODY.PEEK[])"))
        .await;
    fetch.assert_ok();
    let line = fetch.find("FETCH (").expect("FETCH line");
    assert!(
        line.contains(&format!("RFC822.SIZE {}", raw.len())),
        "{}",
        &line[..200]
    );
    // The message is ASCII, so the helper's text is its bytes.
    let text = std::str::from_utf8(raw).expect("ASCII message");
    assert!(
        line.ends_with(&format!("BODY[] {{{}}}\r\n{text})", raw.len())),
        "BODY[] is not the APPENDed bytes"
    );
    line.split("FLAGS (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_default()
        .to_string()
}

/// The message with `subject` in a Graph folder, as Outlook sees it.
async fn in_graph(outlook: &GraphPeek, folder: &str, subject: &str) -> Option<Value> {
    outlook
        .folder_messages(
            folder,
            "subject,isDraft,isRead,categories,flag,hasAttachments",
        )
        .await
        .into_iter()
        .find(|m| m["subject"] == subject)
}

/// Name and size of each attachment of a Graph message, sorted by name.
async fn attachments(outlook: &GraphPeek, id: &str) -> Vec<(String, u64)> {
    let (status, list) = outlook.get(&format!("/messages/{id}/attachments")).await;
    assert_eq!(status, 200, "{list}");
    let mut found: Vec<(String, u64)> = list["value"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    let name = x["name"].as_str().unwrap_or_default().to_string();
                    (name, x["size"].as_u64().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_is_created_with_its_attachments_and_flags() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let subject = "Large quarterly report";
    let raw = message(
        subject,
        &[
            ("report.bin", "application/octet-stream", 6_000_000),
            ("summary.pdf", "application/pdf", 1_000_000),
        ],
    );
    assert!(raw.len() > 8_000_000, "{}", raw.len());

    let reply = append(&mut imap, "INBOX", "\\Seen Projekt", &raw).await;
    assert!(
        reply.status.starts_with("OK [APPENDUID "),
        "{}",
        reply.status
    );
    let uid = appended_uid(&reply.status);

    let flags = fetched_flags(&demo, "INBOX", uid, &raw).await;
    assert!(
        flags.contains("\\Seen") && flags.contains("Projekt"),
        "{flags}"
    );
    assert!(!flags.contains("\\Draft"), "{flags}");

    let item = in_graph(&outlook, "inbox", subject)
        .await
        .expect("the message is in Graph's Inbox");
    assert_eq!(item["isDraft"], false, "{item}");
    assert_eq!(item["isRead"], true, "{item}");
    assert_eq!(item["categories"], serde_json::json!(["Projekt"]), "{item}");
    assert_eq!(item["hasAttachments"], true, "{item}");
    let id = item["id"].as_str().expect("id");
    assert_eq!(
        attachments(&outlook, id).await,
        vec![
            ("report.bin".to_string(), 6_000_000),
            ("summary.pdf".to_string(), 1_000_000)
        ]
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_draft_stays_a_draft() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let subject = "Large draft with plans";
    let raw = message(
        subject,
        &[
            ("plans.dwg", "application/acad", 3_600_000),
            ("cover.txt", "text/plain", 200_000),
        ],
    );
    assert!(raw.len() > 5_000_000, "{}", raw.len());

    let reply = append(&mut imap, "Drafts", "\\Draft \\Flagged", &raw).await;
    assert!(
        reply.status.starts_with("OK [APPENDUID "),
        "{}",
        reply.status
    );
    let uid = appended_uid(&reply.status);

    let flags = fetched_flags(&demo, "Drafts", uid, &raw).await;
    assert!(
        flags.contains("\\Draft") && flags.contains("\\Flagged"),
        "{flags}"
    );
    assert!(!flags.contains("\\Seen"), "{flags}");

    let item = in_graph(&outlook, "drafts", subject)
        .await
        .expect("the draft is in Graph's Drafts");
    assert_eq!(item["isDraft"], true, "{item}");
    assert_eq!(item["isRead"], false, "{item}");
    assert_eq!(item["flag"]["flagStatus"], "flagged", "{item}");
    let id = item["id"].as_str().expect("id");
    assert_eq!(
        attachments(&outlook, id).await,
        vec![
            ("cover.txt".to_string(), 200_000),
            ("plans.dwg".to_string(), 3_600_000)
        ]
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_leaves_nothing_behind() {
    // Graph's upload quota (150 MB per 5 minutes) shared with some other use of the mailbox:
    // here only 2 MB are left, so the first chunk of an upload session is refused with 429,
    // after the message itself was created.
    let mut options = demo_options(None);
    options.emulator.upload_mb_per_5min = 2;
    let demo = demo::start(options).await.expect("demo starts");
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let cases = [
        ("INBOX", "inbox", "\\Seen", "Refused large message"),
        ("Drafts", "drafts", "\\Draft", "Refused large draft"),
    ];
    for (folder, graph_folder, flags, subject) in cases {
        let raw = message(
            subject,
            &[
                ("report.bin", "application/octet-stream", 4_000_000),
                ("summary.pdf", "application/pdf", 500_000),
            ],
        );
        let reply = append(&mut imap, folder, flags, &raw).await;
        assert!(reply.status.starts_with("NO "), "{}", reply.status);
        assert!(
            reply.status.contains("report.bin") && reply.status.contains("429"),
            "the reason names the file and Graph's answer: {}",
            reply.status
        );
        assert!(
            in_graph(&outlook, graph_folder, subject).await.is_none(),
            "the half-made message was removed from {graph_folder}"
        );
        // Removed for good, not moved to Deleted Items.
        assert!(in_graph(&outlook, "deleteditems", subject).await.is_none());
        let mut other = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
        other.cmd(&format!("EXAMINE {folder}")).await.assert_ok();
        let search = other
            .cmd(&format!("UID SEARCH SUBJECT \"{subject}\""))
            .await;
        search.assert_ok();
        assert_eq!(
            search.find("* SEARCH").map(|l| l.trim()),
            Some("* SEARCH"),
            "nothing stored for {folder}"
        );
    }
    demo.stop().await;
}
