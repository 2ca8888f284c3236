//! Python's standard imaplib and smtplib as real clients against the demo: list folders,
//! fetch every INBOX message (len(BODY[]) == RFC822.SIZE), send to two recipients and find
//! the message in Sent.

mod common;

use std::process::Command;

use common::start_demo;
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_and_smtplib_against_the_demo() {
    let demo = start_demo(None).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/imaplib_smtplib.py");
    let imap_port = demo.running.imap.port().to_string();
    let smtp_port = demo.running.smtp.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &imap_port, &smtp_port, DEMO_USER, DEMO_PASSWORD])
            .output()
    })
    .await
    .expect("join")
    .expect("python3 runs (install Python 3)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client script failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    demo.stop().await;
}
