//! Real IMAP clients against the demo, each run as the program people use:
//!
//! - `mbsync` (Debian `isync`) over implicit TLS: a full two-way sync of the personal mailbox
//!   into a Maildir and back (a flag and a new message each way), then a run that changes nothing;
//! - `mutt` in batch mode (under `script`, which gives it a terminal): reads a message and
//!   saves it to Archive;
//! - `curl`: LIST, a search, FETCH of a whole message, APPEND (`--upload-file`), and the same
//!   over implicit TLS with the bridge's self-signed certificate as the CA;
//! - Python's `imaplib`: IDLE, woken by a message delivered to the emulated mailbox.
//!
//! A client that is not installed makes its test print `SKIPPED: <tool> not installed` and
//! pass, except in CI (`CI` set), where it fails: `.ci/run` installs them all.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{deliver, eventually, start_demo, GraphPeek, Imap};
use graphbridge::demo::{Demo, DEMO_MAILBOX, DEMO_PASSWORD, DEMO_USER};

/// True when `tool` is on PATH. Otherwise says so loudly, past the harness's output capture,
/// and fails in CI.
fn available(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed; CI must install Debian's {package} (.ci/run)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n========================================\nSKIPPED: {tool} not installed (apt-get install {package})\n========================================\n"
        );
    }
    found
}

/// Runs a program off the async runtime, with a time limit so that a client waiting for
/// input fails the test instead of hanging it.
async fn run(program: &str, args: Vec<String>, env: Vec<(String, String)>) -> Output {
    let program = program.to_string();
    let shown = format!("{program} {}", args.join(" "));
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["120".to_string(), program];
        all.extend(args);
        Command::new("timeout")
            .args(all)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("{shown}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_success(what: &str, output: &Output) {
    assert!(output.status.success(), "{what} failed: {}", text(output));
}

/// The bridge's self-signed certificate, once the TLS listener made it.
async fn certificate(demo: &Demo) -> PathBuf {
    let cert = demo.data_dir.join("tls").join("cert.pem");
    let made = eventually(Duration::from_secs(30), || async {
        std::fs::read_to_string(&cert)
            .is_ok_and(|pem| pem.trim_end().ends_with("-----END CERTIFICATE-----"))
    })
    .await;
    assert!(made, "the bridge made {cert:?}");
    cert
}

fn message(subject: &str, message_id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice Example <alice@example.com>\r\nTo: sales@contoso.test\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The value of a header field in raw message bytes (first occurrence, unfolded).
fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    head.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// Waits until the bridge's INBOX, seen from a fresh session, satisfies `search` (a SEARCH
/// whose result must not be empty).
async fn bridge_finds(demo: &Demo, search: &str) -> bool {
    eventually(Duration::from_secs(30), || async {
        let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
        imap.cmd("EXAMINE INBOX").await.assert_ok();
        let reply = imap.cmd(&format!("SEARCH {search}")).await;
        reply.ok()
            && reply
                .find("* SEARCH")
                .is_some_and(|l| l.trim() != "* SEARCH")
    })
    .await
}

// ---------------------------------------------------------------------------------------
// mbsync

/// A Maildir tree: every message file, keyed by folder and the file name's unique part, with
/// its flags (the letters after `:2,`).
fn maildir_snapshot(root: &Path) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "cur" || name == "new" {
                let folder = dir
                    .strip_prefix(root)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                for file in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                    let file = file.file_name().to_string_lossy().into_owned();
                    let (unique, flags) = file.split_once(":2,").unwrap_or((&file, ""));
                    out.insert((folder.clone(), unique.to_string()), flags.to_string());
                }
            } else if name != "tmp" {
                stack.push(path);
            }
        }
    }
    out
}

/// Message files of one Maildir folder.
fn maildir_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["cur", "new"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(folder.join(sub)).into_iter().flatten())
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

fn maildir_flags(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.split_once(":2,")
        .map(|(_, f)| f.to_string())
        .unwrap_or_default()
}

/// The file in `folder` whose Message-ID is `id`.
fn maildir_find(folder: &Path, id: &str) -> Option<PathBuf> {
    maildir_files(folder).into_iter().find(|f| {
        std::fs::read(f)
            .ok()
            .and_then(|raw| header(&raw, "Message-ID"))
            .is_some_and(|v| v == id)
    })
}

async fn mbsync(config: &Path) -> Output {
    let output = run(
        "mbsync",
        vec![
            "-c".into(),
            config.display().to_string(),
            "-a".into(),
            "-V".into(),
        ],
        Vec::new(),
    )
    .await;
    assert_success("mbsync", &output);
    output
}

/// The bridge's view of INBOX as a client sees it: UIDNEXT and every UID with its flags.
async fn bridge_inbox(demo: &Demo) -> (String, Vec<String>) {
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    let status = imap.cmd("STATUS INBOX (MESSAGES UIDNEXT)").await;
    status.assert_ok();
    imap.cmd("EXAMINE INBOX").await.assert_ok();
    let fetch = imap.cmd("FETCH 1:* (UID FLAGS)").await;
    fetch.assert_ok();
    (
        status.find("* STATUS").cloned().unwrap_or_default(),
        fetch.untagged,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbsync_syncs_both_ways_and_then_changes_nothing() {
    if !available("mbsync", "isync") {
        return;
    }
    let demo = start_demo(None).await;
    let work = tempfile::tempdir().expect("tempdir");
    let maildir = work.path().join("mail");
    std::fs::create_dir_all(&maildir).expect("maildir");
    let cert = certificate(&demo).await;
    let config = work.path().join("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount bridge
Host localhost
Port {port}
User {DEMO_USER}
Pass {DEMO_PASSWORD}
SSLType IMAPS
CertificateFile {cert}
PipelineDepth 8

IMAPStore bridge
Account bridge

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel demo
Far :bridge:
Near :local:
Patterns * !Shared*
Create Both
Expunge Both
Sync All
SyncState *
",
            port = demo.running.imaps.expect("imaps port").port(),
            cert = cert.display(),
            maildir = maildir.display(),
        ),
    )
    .expect("mbsyncrc");

    // First run: the whole mailbox comes down.
    mbsync(&config).await;
    let inbox = maildir.join("INBOX");
    let (status, flags) = bridge_inbox(&demo).await;
    assert!(!flags.is_empty(), "the demo INBOX has messages");
    assert_eq!(
        maildir_files(&inbox).len(),
        flags.len(),
        "every INBOX message is in the Maildir ({status})"
    );
    let snapshot = maildir_snapshot(&maildir);
    let folders: std::collections::BTreeSet<&String> = snapshot.keys().map(|(f, _)| f).collect();
    assert!(folders.len() > 1, "more than INBOX came down: {folders:?}");

    // Local changes: flag a message, add a new one.
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let in_graph = outlook
        .folder_messages("inbox", "internetMessageId,flag,isRead,subject")
        .await;
    let unflagged: Vec<&serde_json::Value> = in_graph
        .iter()
        .filter(|m| m["flag"]["flagStatus"] != "flagged")
        .collect();
    assert!(unflagged.len() >= 2, "two unflagged INBOX messages");
    let local_flag_id = unflagged[0]["internetMessageId"]
        .as_str()
        .expect("internetMessageId")
        .to_string();
    let graph_flag_id = unflagged[1]["internetMessageId"]
        .as_str()
        .expect("internetMessageId")
        .to_string();
    let file = maildir_find(&inbox, &local_flag_id).expect("the message is in the Maildir");
    let flags_now = maildir_flags(&file);
    assert!(!flags_now.contains('F'), "{file:?}");
    let mut letters: Vec<char> = flags_now.chars().chain(['F']).collect();
    letters.sort_unstable();
    let flagged_name = format!(
        "{}:2,{}",
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .split(":2,")
            .next()
            .unwrap_or_default(),
        letters.into_iter().collect::<String>()
    );
    std::fs::rename(&file, inbox.join("cur").join(flagged_name)).expect("flag locally");
    let local_new_id = "<mbsync-local-new@example.com>";
    std::fs::write(
        inbox.join("new").join("1700000000.mbsync-test.localhost"),
        message("Written in the Maildir", local_new_id, "Hello from mbsync."),
    )
    .expect("new local message");

    // Outside changes through Graph: a new message arrives, Outlook flags another one.
    let graph_new_id = "<graph-side-new@example.com>";
    deliver(
        demo.graph.addr,
        DEMO_MAILBOX,
        "inbox",
        &message(
            "Delivered in Microsoft 365",
            graph_new_id,
            "Hello from Graph.",
        ),
    )
    .await;
    let graph_flag = unflagged[1]["id"].as_str().expect("id").to_string();
    outlook
        .patch_message(
            &graph_flag,
            serde_json::json!({"flag": {"flagStatus": "flagged"}}),
        )
        .await;
    assert!(
        bridge_finds(
            &demo,
            &format!("FLAGGED HEADER Message-ID \"{graph_flag_id}\"")
        )
        .await,
        "the bridge sees Outlook's flag"
    );
    assert!(
        bridge_finds(&demo, &format!("HEADER Message-ID \"{graph_new_id}\"")).await,
        "the bridge sees the delivered message"
    );

    let second = mbsync(&config).await;

    // Up: the flag and the new message are in Graph.
    let in_graph = outlook
        .folder_messages("inbox", "internetMessageId,flag,subject")
        .await;
    let by_id = |id: &str| {
        in_graph
            .iter()
            .find(|m| m["internetMessageId"] == id)
            .cloned()
    };
    let flagged = by_id(&local_flag_id).expect("still in Graph");
    assert_eq!(flagged["flag"]["flagStatus"], "flagged", "{flagged}");
    // Graph keeps its own rendering of an APPENDed message (its Message-ID too); the
    // bridge serves the bytes mbsync gave it.
    assert!(
        in_graph
            .iter()
            .any(|m| m["subject"] == "Written in the Maildir"),
        "the Maildir's new message reached Graph: {}",
        text(&second)
    );
    assert!(
        bridge_finds(&demo, &format!("HEADER Message-ID \"{local_new_id}\"")).await,
        "the bridge serves the appended bytes"
    );
    // Down: the delivered message and Outlook's flag are in the Maildir.
    let delivered = maildir_find(&inbox, graph_new_id).expect("delivered message came down");
    let body = std::fs::read(&delivered).expect("read");
    assert!(String::from_utf8_lossy(&body).contains("Hello from Graph."));
    let outlook_flagged = maildir_find(&inbox, &graph_flag_id).expect("still in the Maildir");
    assert!(
        maildir_flags(&outlook_flagged).contains('F'),
        "Outlook's flag came down: {outlook_flagged:?}"
    );
    let (_, bridge_flags) = bridge_inbox(&demo).await;
    assert_eq!(maildir_files(&inbox).len(), bridge_flags.len());

    // A third run finds nothing to do, on either side.
    let before_local = maildir_snapshot(&maildir);
    let before_bridge = bridge_inbox(&demo).await;
    let output = mbsync(&config).await;
    assert_eq!(
        maildir_snapshot(&maildir),
        before_local,
        "the Maildir is unchanged: {}",
        text(&output)
    );
    assert_eq!(
        bridge_inbox(&demo).await,
        before_bridge,
        "the bridge is unchanged: {}",
        text(&output)
    );
    demo.stop().await;
}

// ---------------------------------------------------------------------------------------
// mutt

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutt_reads_a_message_and_saves_it_to_another_folder() {
    if !available("mutt", "mutt") || !available("script", "bsdutils") {
        return;
    }
    let demo = start_demo(None).await;
    let target_id = "<mutt-target@example.com>";
    deliver(
        demo.graph.addr,
        DEMO_MAILBOX,
        "inbox",
        &message("Mutt target", target_id, "Read me, then file me."),
    )
    .await;
    assert!(bridge_finds(&demo, "SUBJECT \"Mutt target\"").await);

    let work = tempfile::tempdir().expect("tempdir");
    let muttrc = work.path().join("muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set folder=\"imap://{user}@127.0.0.1:{port}/\"
set spoolfile=\"+INBOX\"
set imap_user=\"{user}\"
set imap_pass=\"{pass}\"
set ssl_starttls=no
set ssl_force_tls=no
set imap_passive=yes
set confirmappend=no
set confirmcreate=no
set mark_old=no
set move=no
set delete=yes
set quit=yes
set beep=no
set wait_key=no
set pager_stop=yes
set header_cache=\"\"
set message_cachedir=\"\"
set record=\"\"
set mbox_type=Maildir
",
            user = DEMO_USER,
            pass = DEMO_PASSWORD,
            port = demo.running.imap.port(),
        ),
    )
    .expect("muttrc");
    // Limit the index to the target, open it in the pager, leave the pager, save it to
    // Archive (which deletes it in INBOX), write the mailbox and quit.
    let keys = "<limit>~s Mutt<enter><display-message><exit><save-message>=Archive<enter><sync-mailbox><quit>";
    let command = format!("mutt -n -F {} -e 'push \"{keys}\"'", muttrc.display());
    let output = run(
        "script",
        vec![
            "-q".into(),
            "-e".into(),
            "-c".into(),
            command,
            work.path().join("typescript").display().to_string(),
        ],
        vec![
            ("TERM".into(), "xterm".into()),
            ("HOME".into(), work.path().display().to_string()),
        ],
    )
    .await;
    let typescript = std::fs::read(work.path().join("typescript")).unwrap_or_default();
    let screen = String::from_utf8_lossy(&typescript);
    assert_success(&format!("mutt (screen: {screen})"), &output);

    // The message left INBOX and is in Archive, read.
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.cmd("EXAMINE INBOX").await.assert_ok();
    let left = imap.cmd("SEARCH SUBJECT \"Mutt target\"").await;
    left.assert_ok();
    assert_eq!(
        left.find("* SEARCH").map(|l| l.trim().to_string()),
        Some("* SEARCH".to_string()),
        "gone from INBOX; mutt's screen:\n{screen}"
    );
    imap.cmd("EXAMINE Archive").await.assert_ok();
    let filed = imap.cmd("SEARCH SEEN SUBJECT \"Mutt target\"").await;
    filed.assert_ok();
    assert!(
        filed
            .find("* SEARCH")
            .is_some_and(|l| l.trim() != "* SEARCH"),
        "in Archive and \\Seen: {:#?}\nmutt's screen:\n{screen}",
        filed.untagged
    );
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let archived = outlook
        .folder_messages("archive", "internetMessageId,isRead")
        .await;
    let moved = archived
        .iter()
        .find(|m| m["internetMessageId"] == target_id)
        .expect("in Graph's Archive folder");
    assert_eq!(moved["isRead"], true, "{moved}");
    demo.stop().await;
}

// ---------------------------------------------------------------------------------------
// curl

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_lists_fetches_and_appends() {
    if !available("curl", "curl") {
        return;
    }
    let demo = start_demo(None).await;
    let base = format!("imap://127.0.0.1:{}", demo.running.imap.port());
    let user = format!("{DEMO_USER}:{DEMO_PASSWORD}");
    let curl = |args: Vec<String>| {
        let mut all = vec![
            "--silent".to_string(),
            "--show-error".into(),
            "--user".into(),
        ];
        all.push(user.clone());
        all.extend(args);
        run("curl", all, Vec::new())
    };

    // LIST of the personal namespace.
    let listed = curl(vec![format!("{base}/")]).await;
    assert_success("curl LIST", &listed);
    let list = String::from_utf8_lossy(&listed.stdout);
    for name in ["INBOX", "Sent", "Archive"] {
        assert!(list.contains(name), "{name} listed:\n{list}");
    }

    // A search, then the first hit fetched whole, byte for byte as BODY[].
    let searched = curl(vec![format!("{base}/INBOX?ALL")]).await;
    assert_success("curl SEARCH", &searched);
    let hits = String::from_utf8_lossy(&searched.stdout).into_owned();
    let first: u32 = hits
        .split_whitespace()
        .skip(2)
        .find_map(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a hit: {hits}"));
    let fetched = curl(vec![format!("{base}/INBOX;MAILINDEX={first}")]).await;
    assert_success("curl FETCH", &fetched);
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    imap.cmd("EXAMINE INBOX").await.assert_ok();
    let size = imap.cmd(&format!("FETCH {first} RFC822.SIZE")).await;
    size.assert_ok();
    let expected = format!("RFC822.SIZE {})", fetched.stdout.len());
    assert!(
        size.find(&expected).is_some(),
        "curl got the whole message ({expected}): {:#?}",
        size.untagged
    );

    // APPEND with --upload-file, then found by a search and in Graph.
    let work = tempfile::tempdir().expect("tempdir");
    let upload = work.path().join("upload.eml");
    std::fs::write(
        &upload,
        message(
            "Uploaded by curl",
            "<curl-upload@example.com>",
            "APPEND via curl.",
        ),
    )
    .expect("upload file");
    let appended = curl(vec![
        format!("{base}/Archive"),
        "--upload-file".into(),
        upload.display().to_string(),
    ])
    .await;
    assert_success("curl APPEND", &appended);
    let outlook = GraphPeek::sign_in(demo.graph.addr).await;
    let archived = outlook.folder_messages("archive", "subject").await;
    assert!(
        archived.iter().any(|m| m["subject"] == "Uploaded by curl"),
        "the appended message is in Graph"
    );
    let found = curl(vec![format!("{base}/Archive?SUBJECT%20curl")]).await;
    assert_success("curl SEARCH Archive", &found);
    let hits = String::from_utf8_lossy(&found.stdout).into_owned();
    let seq: u32 = hits
        .split_whitespace()
        .skip(2)
        .find_map(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the upload is found: {hits}"));

    // The same message over implicit TLS, the self-signed certificate trusted as the CA.
    let cert = certificate(&demo).await;
    let tls = curl(vec![
        "--cacert".into(),
        cert.display().to_string(),
        format!(
            "imaps://localhost:{}/Archive;MAILINDEX={seq}",
            demo.running.imaps.expect("imaps port").port()
        ),
    ])
    .await;
    assert_success("curl over imaps", &tls);
    let body = String::from_utf8_lossy(&tls.stdout);
    assert!(body.contains("APPEND via curl."), "{body}");
    demo.stop().await;
}

// ---------------------------------------------------------------------------------------
// Python imaplib

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_idle_wakes_on_delivered_mail() {
    if !available("python3", "python3") {
        return;
    }
    let demo = start_demo(None).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/imap_idle.py");
    let output = run(
        "python3",
        vec![
            script.into(),
            demo.running.imap.port().to_string(),
            demo.graph.addr.port().to_string(),
            DEMO_USER.into(),
            DEMO_PASSWORD.into(),
            DEMO_MAILBOX.into(),
        ],
        Vec::new(),
    )
    .await;
    assert_success("imap_idle.py", &output);
    println!("{}", String::from_utf8_lossy(&output.stdout));
    demo.stop().await;
}
