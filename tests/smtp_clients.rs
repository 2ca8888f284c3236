//! Real SMTP clients against the demo: Python's smtplib, curl, swaks and msmtp, over
//! STARTTLS and implicit TLS. A missing client is skipped loudly, except in CI.

mod common;
mod smtp_support;

use std::process::{Command, Output};

use common::start_demo;
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};
use smtp_support::{require_tool, Outlook};

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("client runs")
}

fn check(output: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{stderr}"
    );
}

const MESSAGE: &str = "From: sales@contoso.test\r\nTo: sales@contoso.test\r\nSubject: SUBJECT\r\n\r\nsent by a real client\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_curl_swaks_and_msmtp_send_over_tls() {
    let demo = start_demo(None).await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let smtp = demo.running.smtp.port().to_string();
    let smtps = demo
        .running
        .smtps
        .expect("implicit TLS port")
        .port()
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = Vec::new();

    if require_tool("python3") {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_clients/send.py");
        let mut c = Command::new("python3");
        c.args([script, &smtp, &smtps, DEMO_USER, DEMO_PASSWORD]);
        check(&run(c).await, "python smtplib");
        expected.extend(["python starttls", "python implicit tls"]);
    }

    if require_tool("curl") {
        for (subject, url, flag) in [
            (
                "curl starttls",
                format!("smtp://127.0.0.1:{smtp}"),
                "--ssl-reqd",
            ),
            (
                "curl implicit tls",
                format!("smtps://127.0.0.1:{smtps}"),
                "--ssl-reqd",
            ),
        ] {
            let file = dir.path().join(format!("{subject}.eml"));
            std::fs::write(&file, MESSAGE.replace("SUBJECT", subject)).expect("write");
            let mut c = Command::new("curl");
            c.args(["-sS", "-k", flag, "--url", &url, "--user", "demo:demo"])
                .args([
                    "--mail-from",
                    "sales@contoso.test",
                    "--mail-rcpt",
                    "sales@contoso.test",
                ])
                .arg("--upload-file")
                .arg(&file);
            check(&run(c).await, subject);
            expected.push(subject);
        }
    }

    if require_tool("swaks") {
        let mut c = Command::new("swaks");
        c.args(["--server", "127.0.0.1", "--port", &smtp, "--tls"])
            .args([
                "--auth",
                "LOGIN",
                "--auth-user",
                "demo",
                "--auth-password",
                "demo",
            ])
            .args(["--from", "sales@contoso.test", "--to", "sales@contoso.test"])
            .args([
                "--header",
                "Subject: swaks starttls",
                "--body",
                "sent by swaks",
            ]);
        check(&run(c).await, "swaks");
        expected.push("swaks starttls");
    }

    if require_tool("msmtp") {
        let config = dir.path().join("msmtprc");
        std::fs::write(
            &config,
            format!(
                "account bridge\nhost 127.0.0.1\nport {smtps}\ntls on\ntls_starttls off\n\
                 tls_certcheck off\nauth plain\nuser demo\npassword demo\n\
                 from sales@contoso.test\naccount default : bridge\n"
            ),
        )
        .expect("msmtprc");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        }
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "printf '{}' | msmtp -C '{}' sales@contoso.test",
            MESSAGE
                .replace("SUBJECT", "msmtp implicit tls")
                .replace("\r\n", "\\n"),
            config.display()
        ));
        check(&run(c).await, "msmtp");
        expected.push("msmtp implicit tls");
    }

    for subject in expected {
        let sent = outlook.with_subject("sentitems", subject).await;
        assert_eq!(sent.len(), 1, "{subject} in Sent Items once");
    }
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunking_and_auth_rules_speak_the_protocol() {
    use smtp_support::Smtp;
    let demo = start_demo(None).await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    assert!(smtp
        .cmd("MAIL FROM:<sales@contoso.test>")
        .await
        .starts_with("250"));
    assert!(smtp
        .cmd("RCPT TO:<sales@contoso.test>")
        .await
        .starts_with("250"));
    let first = "From: sales@contoso.test\r\nTo: sales@contoso.test\r\n";
    let second = "Subject: chunked\r\n\r\nin two chunks\r\n";
    smtp.raw(format!("BDAT {}\r\n{first}", first.len()).as_bytes())
        .await;
    assert!(smtp.reply().await.starts_with("250"));
    smtp.raw(format!("BDAT {} LAST\r\n{second}", second.len()).as_bytes())
        .await;
    let reply = smtp.reply().await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(outlook.with_subject("sentitems", "chunked").await.len(), 1);

    // SIZE declared above the limit is refused at MAIL.
    let reply = smtp
        .cmd("MAIL FROM:<sales@contoso.test> SIZE=999999999")
        .await;
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    // Garbage does not upset the session.
    assert!(smtp.cmd("\u{1}\u{2} nonsense").await.starts_with("5"));
    assert!(smtp.cmd("NOOP").await.starts_with("250"));
    demo.stop().await;
}
