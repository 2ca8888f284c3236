//! Exactly once across `kill -9`: the real `graphbridge serve` binary is stopped dead at each
//! step of a send (after queueing, before the draft, between creating and tagging it, after
//! it — for a large message before its file is uploaded —, before and after Graph's 202, after
//! the commit), restarted, and every message must be in Sent Items (and delivered) exactly
//! once, with its file, and no draft left behind. The Graph emulator runs in this test process, so it survives the kills.

mod common;
mod smtp_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use graphbridge::demo::{self, DemoOptions, RunningEmulator};
use graphbridge::mailstore::{outbox, Store};
use smtp_support::{eventually, Outlook, Smtp};

/// Where the bridge is killed, and whether the message is large (over Graph's 4 MB request,
/// so its file goes up through an upload session after the draft is made).
const POINTS: &[(&str, bool)] = &[
    ("after_enqueue", false),
    ("before_draft", false),
    ("before_tag", false),
    ("after_draft", false),
    ("after_draft", true),
    ("before_send", false),
    ("after_send", false),
    ("after_commit", false),
];

/// A message whose 3.5 MB attachment makes it too large for one Graph request.
fn large_message(subject: &str) -> String {
    let file: Vec<u8> = (0..3_500_000u32).map(|i| (i % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(file);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "From: sales@contoso.test\r\nTo: sales@contoso.test\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nonce\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"big.bin\"\r\n\
         Content-Disposition: attachment; filename=\"big.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n.\r\n",
        lines.join("\r\n")
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Ports {
    imap: u16,
    imaps: u16,
    smtp: u16,
    smtps: u16,
    http: u16,
}

fn write_config(path: &Path, data_dir: &Path, graph: SocketAddr, ports: &Ports) {
    let text = format!(
        "data_dir = {data:?}\n\
         [imap]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\n\
         [smtp]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\nsend_wait_secs = 2\n\
         [http]\nlisten = \"127.0.0.1:{}\"\n\
         [graph]\nbase_url = \"http://{graph}/v1.0\"\nlogin_url = \"http://{graph}\"\n\
         client_id = \"graphbridge-demo\"\n\
         [sync]\npoll_interval_secs = 1\nfull_poll_interval_secs = 2\n",
        ports.imap,
        ports.imaps,
        ports.smtp,
        ports.smtps,
        ports.http,
        data = data_dir.display().to_string(),
    );
    std::fs::write(path, text).expect("config");
}

/// Starts `graphbridge serve`; with `pause_at`, returns once it stopped at that point.
/// A running `graphbridge serve`, killed when dropped: a failed assertion must not leave it
/// running after the test.
struct Bridge(Child);

impl Bridge {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(config: &Path, pause_at: Option<&str>) -> (Bridge, mpsc::Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_graphbridge"));
    command
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(point) = pause_at {
        command.env("GRAPHBRIDGE_PAUSE_AT", point);
    }
    let mut child = command.spawn().expect("graphbridge runs");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (Bridge(child), rx)
}

async fn wait_for_port(port: u16) {
    let up = eventually(|| async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "bridge listens on {port}");
}

async fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => continue,
            Err(mpsc::TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(mpsc::TryRecvError::Disconnected) => break,
        }
    }
    panic!("the bridge never reached {needle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_sent_exactly_once_across_kill_9() {
    let mut emulator_args = demo::demo_emulator_args(Default::default());
    emulator_args.port = 0;
    let graph = RunningEmulator::start(&emulator_args)
        .await
        .expect("emulator");
    let data = tempfile::tempdir().expect("tempdir");

    // Provision the demo user and mailboxes and sign in, then stop.
    let options = DemoOptions {
        imap_port: 0,
        smtp_port: 0,
        http_port: 0,
        poll_interval_secs: 1,
        ..DemoOptions::default()
    };
    demo::start_bridge(&options, graph.addr, data.path())
        .await
        .expect("provisioned")
        .stop()
        .await;

    let ports = Ports {
        imap: free_port(),
        imaps: free_port(),
        smtp: free_port(),
        smtps: free_port(),
        http: free_port(),
    };
    let config = data.path().join("graphbridge.toml");
    write_config(&config, data.path(), graph.addr, &ports);
    let outlook = Outlook::sign_in(graph.addr).await;
    let smtp_addr: SocketAddr = ([127, 0, 0, 1], ports.smtp).into();

    for &(point, large) in POINTS {
        let subject = format!("crash at {point}{}", if large { " (large)" } else { "" });
        let (mut child, lines) = spawn(&config, Some(point));
        wait_for_port(ports.smtp).await;
        let mut smtp = Smtp::login(smtp_addr).await;
        for line in [
            "MAIL FROM:<sales@contoso.test>",
            "RCPT TO:<sales@contoso.test>",
            "DATA",
        ] {
            smtp.cmd(line).await;
        }
        let message = if large {
            large_message(&subject)
        } else {
            format!(
                "From: sales@contoso.test\r\nTo: sales@contoso.test\r\nSubject: {subject}\r\n\r\nonce\r\n.\r\n"
            )
        };
        smtp.raw(message.as_bytes()).await;
        wait_for_line(&lines, &format!("PAUSED AT {point}")).await;
        child.kill();
        drop(smtp);

        let (mut child, _lines) = spawn(&config, None);
        wait_for_port(ports.smtp).await;
        let db = data.path().join("graphbridge.sqlite3");
        let all_sent = eventually(|| {
            let db = db.clone();
            async move {
                let store = match Store::open(&db) {
                    Ok(store) => store,
                    Err(_) => return false,
                };
                store
                    .call(|c| outbox::queued(c))
                    .await
                    .is_ok_and(|q| q.is_empty())
            }
        })
        .await;
        assert!(all_sent, "{point}: the outbox drained after the restart");
        // One more pass of the worker and the sync, then count what Outlook sees.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let sent = outlook.with_subject("sentitems", &subject).await;
        assert_eq!(sent.len(), 1, "{point}: exactly one copy in Sent Items");
        if large {
            assert_eq!(
                sent[0]["hasAttachments"].as_bool(),
                Some(true),
                "{point}: the file went out with the message"
            );
        }
        let delivered = outlook.with_subject("inbox", &subject).await;
        assert_eq!(delivered.len(), 1, "{point}: delivered exactly once");
        let drafts = outlook.with_subject("drafts", &subject).await;
        assert!(drafts.is_empty(), "{point}: no draft left behind");
        child.kill();
    }
    graph.stop().await;
}
