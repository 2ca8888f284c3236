//! Helpers for the SMTP tests: a raw SMTP client, Graph as Outlook sees it, and the
//! emulator's control endpoints.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Smtp {
    reader: BufReader<TcpStream>,
    pub greeting: String,
}

impl Smtp {
    pub async fn connect(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect(addr).await.expect("connect to SMTP");
        let mut reader = BufReader::new(stream);
        let greeting = read_reply(&mut reader).await;
        Smtp { reader, greeting }
    }

    /// Connects, says EHLO and logs in as demo/demo (AUTH PLAIN).
    pub async fn login(addr: SocketAddr) -> Smtp {
        let mut smtp = Smtp::connect(addr).await;
        smtp.cmd("EHLO tests").await;
        let token = base64::engine::general_purpose::STANDARD.encode(b"\0demo\0demo");
        let reply = smtp.cmd(&format!("AUTH PLAIN {token}")).await;
        assert!(reply.starts_with("235"), "{reply}");
        smtp
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    pub async fn raw(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .await
            .expect("write SMTP");
    }

    pub async fn reply(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(60), read_reply(&mut self.reader))
            .await
            .expect("SMTP answered in time")
    }

    /// MAIL, RCPT for each envelope recipient, DATA; returns the reply to the final dot.
    pub async fn send(&mut self, from: &str, to: &[&str], message: &str) -> String {
        let reply = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert!(reply.starts_with("250"), "MAIL: {reply}");
        for r in to {
            let reply = self.cmd(&format!("RCPT TO:<{r}>")).await;
            assert!(reply.starts_with("250"), "RCPT: {reply}");
        }
        let reply = self.cmd("DATA").await;
        assert!(reply.starts_with("354"), "DATA: {reply}");
        let mut body = message.replace("\r\n", "\n").replace('\n', "\r\n");
        if !body.ends_with("\r\n") {
            body.push_str("\r\n");
        }
        let dotted = body.replace("\r\n.", "\r\n..");
        self.raw(format!("{dotted}.\r\n").as_bytes()).await;
        self.reply().await
    }
}

/// One reply, multi-line replies joined with `\n`.
async fn read_reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.expect("read SMTP");
        assert!(n > 0, "SMTP server closed the connection");
        let line = line.trim_end().to_string();
        let last = line.len() < 4 || line.as_bytes()[3] == b' ';
        lines.push(line);
        if last {
            return lines.join("\n");
        }
    }
}

/// Graph as Outlook sees the demo mailbox (sales@contoso.test).
pub struct Outlook {
    http: reqwest::Client,
    pub graph: SocketAddr,
    token: String,
}

impl Outlook {
    pub async fn sign_in(graph: SocketAddr) -> Outlook {
        let http = reqwest::Client::new();
        let token = crate::common::sign_in::emulator_token(
            &http,
            graph,
            "offline_access Mail.ReadWrite Mail.Send",
        )
        .await;
        Outlook { http, graph, token }
    }

    /// Messages of a folder (well-known name), with subject, from, attachments flag, id.
    pub async fn messages(&self, folder: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "http://{}/v1.0/me/mailFolders/{folder}/messages?$top=200&$select=id,subject,from,hasAttachments,isDraft,internetMessageId",
            self.graph
        );
        crate::common::all_pages(&self.http, &self.token, url).await
    }

    pub async fn with_subject(&self, folder: &str, subject: &str) -> Vec<serde_json::Value> {
        self.messages(folder)
            .await
            .into_iter()
            .filter(|m| m["subject"].as_str() == Some(subject))
            .collect()
    }

    pub async fn mime(&self, id: &str) -> String {
        let url = format!("http://{}/v1.0/me/messages/{id}/$value", self.graph);
        let bytes = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .header("Prefer", "IdType=\"ImmutableId\"")
            .send()
            .await
            .expect("$value")
            .bytes()
            .await
            .expect("$value bytes");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Outlook sends a message itself: it lands in Sent Items without the bridge.
    pub async fn send_itself(&self, subject: &str) {
        let body = serde_json::json!({"message": {
            "subject": subject, "body": {"contentType": "text", "content": "from Outlook"},
            "toRecipients": [{"emailAddress": {"address": "someone@example.test"}}]}});
        let status = self
            .http
            .post(format!("http://{}/v1.0/me/sendMail", self.graph))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("sendMail")
            .status();
        assert_eq!(status.as_u16(), 202);
    }

    /// Turns the tenant's SendFromAliasEnabled on or off.
    pub async fn set_send_from_alias(&self, enabled: bool) {
        let status = self
            .http
            .post(format!("http://{}/_emulator/tenant", self.graph))
            .json(&serde_json::json!({"sendFromAliasEnabled": enabled}))
            .send()
            .await
            .expect("tenant switch")
            .status();
        assert!(status.is_success());
    }
}

/// Polls `check` every 200 ms until it returns true or a minute passes.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A message with one PDF attachment; `extra_headers` and `text` vary per test.
pub fn with_attachment(
    from: &str,
    to: &str,
    subject: &str,
    extra_headers: &str,
    text: &str,
    pdf: &[u8],
) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pdf);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra_headers}MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"bnd\"\r\n\r\n--bnd\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--bnd\r\n\
         Content-Type: application/pdf; name=\"offer.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"offer.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--bnd--\r\n"
    )
}

/// A CI run must not skip a real-client test; elsewhere a missing client is reported loudly.
pub fn require_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is not installed, and CI is set: install it (see .ci/run)");
        }
        eprintln!("\n========================================\nSKIPPED: {tool} not installed\n========================================\n");
    }
    found
}
