//! Helpers shared by the integration tests: an in-process demo on free ports, and a small
//! raw-IMAP client that sends a command and reads up to its tagged response.

#![allow(dead_code)]

pub mod sign_in;

use std::net::SocketAddr;
use std::time::Duration;

use graphbridge::demo::{self, Demo, DemoOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Starts the demo (emulator + bridge) on free loopback ports.
pub async fn start_demo(data_dir: Option<std::path::PathBuf>) -> Demo {
    demo::start(demo_options(data_dir))
        .await
        .expect("demo starts")
}

/// The options `start_demo` uses, for a test that changes some before starting.
pub fn demo_options(data_dir: Option<std::path::PathBuf>) -> DemoOptions {
    let mut options = DemoOptions {
        imap_port: 0,
        smtp_port: 0,
        http_port: 0,
        data_dir,
        poll_interval_secs: 1,
        ..DemoOptions::default()
    };
    options.emulator.port = 0;
    options
}

/// One response of the server, with literals inlined.
pub struct Reply {
    /// Untagged responses and continuation requests, in order.
    pub untagged: Vec<String>,
    /// The tagged status line, without the tag.
    pub status: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status.starts_with("OK")
    }

    pub fn assert_ok(&self) -> &Reply {
        assert!(
            self.ok(),
            "expected OK, got {}\n{:#?}",
            self.status,
            self.untagged
        );
        self
    }

    pub fn find(&self, needle: &str) -> Option<&String> {
        self.untagged.iter().find(|l| l.contains(needle))
    }
}

pub struct Imap {
    reader: BufReader<TcpStream>,
    next_tag: u32,
    pub greeting: String,
}

impl Imap {
    pub async fn connect(addr: SocketAddr) -> Imap {
        let stream = TcpStream::connect(addr).await.expect("connect to IMAP");
        let mut reader = BufReader::new(stream);
        let greeting = read_response(&mut reader).await;
        Imap {
            reader,
            next_tag: 1,
            greeting,
        }
    }

    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Imap {
        let mut imap = Imap::connect(addr).await;
        imap.cmd(&format!("LOGIN {} {}", quote(user), quote(password)))
            .await
            .assert_ok();
        imap
    }

    /// Sends `command` with a fresh tag and reads every response up to its tagged status.
    pub async fn cmd(&mut self, command: &str) -> Reply {
        let tag = format!("A{:03}", self.next_tag);
        self.next_tag += 1;
        self.send_raw(format!("{tag} {command}\r\n").as_bytes())
            .await;
        self.read_until_tag(&tag).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .await
            .expect("write to IMAP");
    }

    pub async fn read_until_tag(&mut self, tag: &str) -> Reply {
        let mut untagged = Vec::new();
        loop {
            let line =
                tokio::time::timeout(Duration::from_secs(60), read_response(&mut self.reader))
                    .await
                    .expect("IMAP answered in time");
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return Reply {
                    untagged,
                    status: rest.to_string(),
                };
            }
            untagged.push(line);
        }
    }

    /// Reads one response (for IDLE tests or continuation requests).
    pub async fn read_line(&mut self) -> String {
        read_response(&mut self.reader).await
    }
}

/// Reads one response line, with any `{n}` literals inlined (lossy UTF-8).
async fn read_response(reader: &mut BufReader<TcpStream>) -> String {
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .expect("read IMAP");
        assert!(n > 0, "IMAP server closed the connection");
        let literal = literal_length(&line);
        out.extend_from_slice(&line);
        match literal {
            Some(len) => {
                let mut data = vec![0u8; len];
                reader.read_exact(&mut data).await.expect("read literal");
                out.extend_from_slice(&data);
            }
            None => break,
        }
    }
    while out.ends_with(b"\n") || out.ends_with(b"\r") {
        out.pop();
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn literal_length(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let inner = text.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}

/// An IMAP quoted string.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Polls `check` every 200 ms until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
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

/// Graph as an outside client sees it (Outlook, say): a token from the emulator's device-code
/// flow (approved at once in the demo) and plain HTTP.
pub struct GraphPeek {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl GraphPeek {
    pub async fn sign_in(graph: SocketAddr) -> GraphPeek {
        let http = reqwest::Client::new();
        let token = sign_in::emulator_token(&http, graph, "offline_access Mail.ReadWrite").await;
        GraphPeek {
            http,
            base: format!("http://{graph}/v1.0"),
            token,
        }
    }

    /// Graph as Outlook signed in to `account` sees it (another mailbox of the tenant than
    /// the one the demo approves automatically).
    pub async fn sign_in_as(graph: SocketAddr, account: &str) -> GraphPeek {
        let http = reqwest::Client::new();
        let tokens = sign_in::emulator_tokens_as(
            &http,
            graph,
            "tests",
            "offline_access Mail.ReadWrite",
            account,
        )
        .await;
        let token = tokens["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        GraphPeek {
            http,
            base: format!("http://{graph}/v1.0"),
            token,
        }
    }

    /// Display names of every folder, through folder delta.
    pub async fn folder_names(&self) -> Vec<String> {
        let url = format!("{}/me/mailFolders/delta", self.base);
        all_pages(&self.http, &self.token, url)
            .await
            .iter()
            .filter_map(|folder| folder["displayName"].as_str().map(str::to_string))
            .collect()
    }

    /// Every message of a folder with the selected fields, through a fresh delta.
    pub async fn folder_messages(&self, folder: &str, select: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "{}/me/mailFolders/{folder}/messages/delta?$select={select}",
            self.base
        );
        all_pages(&self.http, &self.token, url).await
    }
}

/// Every item of a Graph collection: `url`'s page and the pages its nextLinks lead to.
pub async fn all_pages(
    http: &reqwest::Client,
    token: &str,
    mut url: String,
) -> Vec<serde_json::Value> {
    let mut items = Vec::new();
    loop {
        let page: serde_json::Value = http
            .get(&url)
            .bearer_auth(token)
            .header("Prefer", "IdType=\"ImmutableId\"")
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list JSON");
        items.extend(page["value"].as_array().cloned().unwrap_or_default());
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return items,
        }
    }
}

impl GraphPeek {
    /// `GET` of a path under the signed-in user (`/messages/{id}/attachments`): status and JSON.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}/me{path}", self.base))
            .bearer_auth(&self.token)
            .header("Prefer", "IdType=\"ImmutableId\"")
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Changes a message as Outlook would: `PATCH /me/messages/{id}` with `changes`.
    pub async fn patch_message(&self, id: &str, changes: serde_json::Value) {
        let response = self
            .http
            .patch(format!("{}/me/messages/{id}", self.base))
            .bearer_auth(&self.token)
            .json(&changes)
            .send()
            .await
            .expect("PATCH message");
        assert!(
            response.status().is_success(),
            "PATCH message: {}",
            response.status()
        );
    }
}

/// Delivers a raw RFC 822 message to `upn`'s folder in the emulator, as mail arriving from
/// outside; returns the message's Graph id.
pub async fn deliver(graph: SocketAddr, upn: &str, folder: &str, raw: &[u8]) -> String {
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "http://{graph}/_emulator/mailboxes/{upn}/deliver?folder={folder}"
        ))
        .body(raw.to_vec())
        .send()
        .await
        .expect("deliver")
        .json()
        .await
        .expect("deliver JSON");
    reply["id"].as_str().expect("delivered id").to_string()
}

/// The number right after `marker` in `text`.
pub fn number_after(text: &str, marker: &str) -> u64 {
    text.split(marker)
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{marker} in {text}"))
}

/// Creates `folder` and APPENDs `count` small messages to it, subjects `<label> 0` …;
/// returns their UIDs (from APPENDUID).
pub async fn fill_folder(imap: &mut Imap, folder: &str, label: &str, count: usize) -> Vec<u64> {
    imap.cmd(&format!("CREATE {folder}")).await.assert_ok();
    let mut uids = Vec::new();
    for i in 0..count {
        let message = format!(
            "From: a@example.test\r\nTo: b@example.test\r\nSubject: {label} {i}\r\n\
Message-ID: <{label}-{folder}-{i}@example.test>\r\n\r\nBody {i}\r\n"
        );
        let tag = format!("F{i}");
        imap.send_raw(
            format!(
                "{tag} APPEND {folder} {{{}+}}\r\n{message}\r\n",
                message.len()
            )
            .as_bytes(),
        )
        .await;
        let reply = imap.read_until_tag(&tag).await;
        reply.assert_ok();
        let appended = reply.status.split("[APPENDUID ").nth(1).unwrap_or("");
        uids.push(number_after(appended, " "));
    }
    uids
}

/// The sync engine of the demo mailbox.
pub async fn demo_engine(demo: &Demo) -> std::sync::Arc<graphbridge::sync::MailboxSync> {
    let record = demo
        .running
        .bridge
        .store
        .call(|c| graphbridge::mailstore::accounts::mailbox_by_address(c, demo::DEMO_MAILBOX))
        .await
        .expect("store")
        .expect("mailbox");
    demo.running.bridge.sync_for(&record).expect("attached")
}
