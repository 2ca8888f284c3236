//! IMAP over TLS, with Python's imaplib as the client: the implicit TLS port, STARTTLS on the
//! plain port, and LOGINDISABLED when plaintext logins are not allowed.

mod common;

use std::process::Command;

use common::Imap;
use graphbridge::demo::{self, DemoOptions, DEMO_PASSWORD, DEMO_USER};

async fn run_client(options: DemoOptions, expect_disabled: bool) {
    let demo = demo::start(options).await.expect("demo starts");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/imap_tls.py");
    let plain = demo.running.imap.port().to_string();
    let tls = demo
        .running
        .imaps
        .expect("implicit TLS port")
        .port()
        .to_string();
    let disabled = if expect_disabled { "1" } else { "0" };
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &plain, &tls, DEMO_USER, DEMO_PASSWORD, disabled])
            .output()
    })
    .await
    .expect("join")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    demo.stop().await;
}

fn options() -> DemoOptions {
    let mut options = DemoOptions {
        imap_port: 0,
        smtp_port: 0,
        http_port: 0,
        poll_interval_secs: 1,
        ..DemoOptions::default()
    };
    options.emulator.port = 0;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_and_starttls() {
    run_client(options(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_login_is_refused_where_it_could_be_overheard() {
    let mut options = options();
    // Treat loopback like any other network, as a bridge on a LAN would.
    options.adjust_config = Some(|config| config.imap.allow_plain_login_on_loopback = false);
    run_client(options.clone(), true).await;

    // A raw client sees the same: no AUTH=PLAIN, LOGINDISABLED, and PRIVACYREQUIRED.
    let demo = demo::start(options).await.expect("demo starts");
    let mut imap = Imap::connect(demo.running.imap).await;
    assert!(imap.greeting.contains("LOGINDISABLED"), "{}", imap.greeting);
    assert!(!imap.greeting.contains("AUTH=PLAIN"), "{}", imap.greeting);
    let refused = imap.cmd("AUTHENTICATE PLAIN AGRlbW8AZGVtbw==").await;
    assert!(
        refused.status.starts_with("NO [PRIVACYREQUIRED]"),
        "{}",
        refused.status
    );
    demo.stop().await;
}
