//! Soak: the real `graphbridge serve` binary under 200 IMAP clients (IDLE, FETCH, STORE, MOVE,
//! APPEND) and 5 SMTP senders, against the emulator (in this process) failing 10 % of Graph
//! requests, with a 429 storm, every access token expired, and one `kill -9` + restart of the
//! bridge along the way. At the end it checks that every message appended (OK) or sent (250)
//! exists exactly once in Graph, every flag set (OK) is in Graph, no client saw a UID or
//! UIDVALIDITY change, and the bridge's store equals the emulator; it prints commands/s,
//! p50/p99 latency per command, the bridge's peak RSS and the counts it checked.
//!
//! `cargo bench --bench soak -- --minutes 10` (default 10; `--clients N`, `--senders N`).
//! Loopback only; it stops by itself. Exits non-zero when a check fails.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graphbridge::demo::{self, DemoOptions, RunningEmulator, DEMO_MAILBOX};
use graphbridge::mailstore::{accounts, folders, messages, outbox, Flags, Store};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Most messages one IMAP client appends (bounds the run's size).
const MAX_APPENDS: usize = 15;
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

struct Settings {
    minutes: f64,
    clients: usize,
    senders: usize,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Settings {
        minutes: value("--minutes").unwrap_or(10.0).clamp(0.5, 120.0),
        clients: value("--clients").unwrap_or(200.0).clamp(1.0, 1000.0) as usize,
        senders: value("--senders").unwrap_or(5.0).clamp(0.0, 50.0) as usize,
    }
}

fn main() -> Result<(), AnyError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let failures = runtime.block_on(run(settings()))?;
    if failures > 0 {
        eprintln!("soak: {failures} check(s) failed");
        std::process::exit(1);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Figures

#[derive(Default)]
struct Stats {
    latencies: Mutex<HashMap<&'static str, Vec<u32>>>,
    commands: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
    uid_changes: AtomicUsize,
    uidvalidity_changes: AtomicUsize,
    uid_checks: AtomicUsize,
}

impl Stats {
    fn record(&self, command: &'static str, took: Duration) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        if let Ok(mut map) = self.latencies.lock() {
            map.entry(command).or_default().push(micros);
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// The bridge process

fn free_port() -> Result<u16, AnyError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Bridge {
    config: std::path::PathBuf,
    child: Child,
    imap: SocketAddr,
    smtp: SocketAddr,
    peak_rss_kib: Arc<AtomicU64>,
}

impl Bridge {
    fn spawn(config: &Path) -> Result<Child, AnyError> {
        Ok(Command::new(env!("CARGO_BIN_EXE_graphbridge"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }

    async fn wait_ready(&self) -> Result<(), AnyError> {
        for _ in 0..600 {
            if TcpStream::connect(self.imap).await.is_ok()
                && TcpStream::connect(self.smtp).await.is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the bridge did not start listening".into())
    }

    fn watch_rss(&self) {
        let pid = self.child.id();
        let peak = self.peak_rss_kib.clone();
        tokio::spawn(async move {
            let path = format!("/proc/{pid}/status");
            while let Ok(status) = tokio::fs::read_to_string(&path).await {
                let hwm = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                peak.fetch_max(hwm, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }

    async fn kill_and_restart(&mut self) -> Result<(), AnyError> {
        self.child.kill()?; // SIGKILL
        self.child.wait()?;
        self.child = Bridge::spawn(&self.config)?;
        self.wait_ready().await?;
        self.watch_rss();
        Ok(())
    }

    /// A clean stop (SIGTERM), so the store can be read afterwards.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// A raw IMAP client

struct Imap {
    reader: BufReader<TcpStream>,
    tag: u32,
}

struct Reply {
    untagged: Vec<String>,
    status: String,
}

impl Reply {
    fn ok(&self) -> bool {
        self.status.starts_with("OK")
    }
}

async fn read_response(reader: &mut BufReader<TcpStream>) -> Result<String, AnyError> {
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err("connection closed".into());
        }
        let literal = std::str::from_utf8(&line)
            .ok()
            .and_then(|t| t.trim_end().strip_suffix('}'))
            .and_then(|t| {
                t.rfind('{')
                    .map(|i| t[i + 1..].trim_end_matches('+').to_string())
            })
            .and_then(|n| n.parse::<usize>().ok());
        out.extend_from_slice(&line);
        match literal {
            Some(len) => {
                let mut data = vec![0u8; len];
                reader.read_exact(&mut data).await?;
                out.extend_from_slice(&data);
            }
            None => break,
        }
    }
    while out.ends_with(b"\n") || out.ends_with(b"\r") {
        out.pop();
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

impl Imap {
    async fn login(addr: SocketAddr) -> Result<Imap, AnyError> {
        let stream = TcpStream::connect(addr).await?;
        let mut imap = Imap {
            reader: BufReader::new(stream),
            tag: 0,
        };
        read_response(&mut imap.reader).await?;
        let reply = imap.cmd("LOGIN demo demo").await?;
        if !reply.ok() {
            return Err(format!("LOGIN: {}", reply.status).into());
        }
        Ok(imap)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), AnyError> {
        self.reader.get_mut().write_all(bytes).await?;
        Ok(())
    }

    async fn until_tag(&mut self, tag: &str) -> Result<Reply, AnyError> {
        let prefix = format!("{tag} ");
        let mut untagged = Vec::new();
        loop {
            let line = tokio::time::timeout(COMMAND_TIMEOUT, read_response(&mut self.reader))
                .await
                .map_err(|_| "no answer in time")??;
            if let Some(status) = line.strip_prefix(&prefix) {
                return Ok(Reply {
                    untagged,
                    status: status.to_string(),
                });
            }
            untagged.push(line);
        }
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("S{}", self.tag)
    }

    async fn cmd(&mut self, command: &str) -> Result<Reply, AnyError> {
        let tag = self.next_tag();
        self.send(format!("{tag} {command}\r\n").as_bytes()).await?;
        self.until_tag(&tag).await
    }

    /// SELECT; returns UIDVALIDITY.
    async fn select(&mut self, folder: &str) -> Result<Option<u32>, AnyError> {
        let reply = self.cmd(&format!("SELECT {folder}")).await?;
        if !reply.ok() {
            return Ok(None);
        }
        Ok(reply
            .untagged
            .iter()
            .find_map(|l| number_after(l, "[UIDVALIDITY ")))
    }
}

fn number_after(text: &str, marker: &str) -> Option<u32> {
    let at = text.find(marker)? + marker.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// One IMAP client

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    Inbox,
    Archive,
    /// The command moving it got no answer: it is in one of the two.
    Unknown,
}

struct Own {
    message_id: String,
    subject: String,
    place: Place,
    uid: Option<u32>,
    /// \Flagged was set with an OK (Some(true)), or the STORE's outcome is unknown (None).
    flagged: Option<bool>,
    /// The APPEND was answered OK (not NO or nothing).
    confirmed: bool,
}

struct ClientResult {
    own: Vec<Own>,
}

fn append_message(run: &str, client: usize, n: usize) -> (String, String, String) {
    let subject = format!("soak {run} imap c{client} n{n}");
    let message_id = format!("<soak.{run}.c{client}.n{n}@soak.test>");
    let text = format!(
        "From: demo@contoso.test\r\nTo: sales@contoso.test\r\nSubject: {subject}\r\n\
         Message-ID: {message_id}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nSoak message {n} of client {client}.\r\n"
    );
    (subject, message_id, text)
}

async fn imap_client(
    addr: Arc<Mutex<SocketAddr>>,
    index: usize,
    run: String,
    deadline: Instant,
    stats: Arc<Stats>,
) -> ClientResult {
    let mut own: Vec<Own> = Vec::new();
    let mut uidvalidity: HashMap<&'static str, u32> = HashMap::new();
    let mut rng = fastrand_seed(index as u64 + 1);
    let mut appended = 0;
    let mut step = 0usize;
    'session: while Instant::now() < deadline {
        let target = *addr.lock().expect("address");
        let mut imap = match Imap::login(target).await {
            Ok(imap) => imap,
            Err(_) => {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match imap.select("INBOX").await {
            Ok(Some(v)) => check_uidvalidity(&mut uidvalidity, "INBOX", v, &stats),
            Ok(None) => continue,
            Err(_) => continue,
        }
        while Instant::now() < deadline {
            step += 1;
            // Clients pause between commands as people's mail programs do.
            tokio::time::sleep(Duration::from_millis(200 + next(&mut rng) % 800)).await;
            let roll = next(&mut rng) % 100;
            let started = Instant::now();
            let outcome: Result<(), AnyError> = if roll < 25 && appended < MAX_APPENDS {
                appended += 1;
                let (subject, message_id, text) = append_message(&run, index, appended);
                own.push(Own {
                    message_id,
                    subject,
                    place: Place::Inbox,
                    uid: None,
                    flagged: Some(false),
                    confirmed: false,
                });
                let tag = imap.next_tag();
                let result = async {
                    imap.send(format!("{tag} APPEND INBOX {{{}+}}\r\n", text.len()).as_bytes())
                        .await?;
                    imap.send(text.as_bytes()).await?;
                    imap.send(b"\r\n").await?;
                    imap.until_tag(&tag).await
                }
                .await;
                match result {
                    Ok(reply) if reply.ok() => {
                        let last = own.last_mut().expect("just pushed");
                        last.confirmed = true;
                        last.uid = reply
                            .status
                            .find("[APPENDUID ")
                            .and_then(|at| {
                                reply.status[at + 11..]
                                    .split_whitespace()
                                    .nth(1)
                                    .map(String::from)
                            })
                            .and_then(|u| u.trim_end_matches(']').parse().ok());
                        stats.record("APPEND", started.elapsed());
                        Ok(())
                    }
                    Ok(_) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else if roll < 55 {
                // FETCH: general, and own INBOX messages by UID with their Message-ID.
                let uids: Vec<String> = own
                    .iter()
                    .filter(|o| o.place == Place::Inbox)
                    .filter_map(|o| o.uid.map(|u| u.to_string()))
                    .collect();
                let command = if uids.is_empty() || step.is_multiple_of(3) {
                    "FETCH 1:* (UID FLAGS)".to_string()
                } else {
                    format!(
                        "UID FETCH {} (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
                        uids.join(",")
                    )
                };
                match imap.cmd(&command).await {
                    Ok(reply) if reply.ok() => {
                        stats.record("FETCH", started.elapsed());
                        check_uids(&own, Place::Inbox, &reply, &stats);
                        Ok(())
                    }
                    Ok(_) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else if roll < 75 {
                let candidates: Vec<usize> = (0..own.len())
                    .filter(|&i| own[i].place == Place::Inbox && own[i].uid.is_some())
                    .collect();
                match pick(&candidates, &mut rng) {
                    None => Ok(()),
                    Some(i) => {
                        let uid = own[i].uid.unwrap_or(0);
                        own[i].flagged = None;
                        match imap
                            .cmd(&format!("UID STORE {uid} +FLAGS (\\Flagged)"))
                            .await
                        {
                            Ok(reply) if reply.ok() => {
                                own[i].flagged = Some(true);
                                stats.record("STORE", started.elapsed());
                                Ok(())
                            }
                            Ok(_) => {
                                // NO: Graph refused, so the flag is not set there.
                                own[i].flagged = Some(false);
                                stats.errors.fetch_add(1, Ordering::Relaxed);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            } else if roll < 85 {
                let candidates: Vec<usize> = (0..own.len())
                    .filter(|&i| own[i].place == Place::Inbox && own[i].uid.is_some())
                    .collect();
                match pick(&candidates, &mut rng) {
                    None => Ok(()),
                    Some(i) => {
                        let uid = own[i].uid.unwrap_or(0);
                        own[i].place = Place::Unknown;
                        match imap.cmd(&format!("UID MOVE {uid} Archive")).await {
                            Ok(reply) if reply.ok() => {
                                own[i].place = Place::Archive;
                                own[i].uid = reply
                                    .untagged
                                    .iter()
                                    .chain(std::iter::once(&reply.status))
                                    .find_map(|l| {
                                        let at = l.find("[COPYUID ")?;
                                        l[at + 9..]
                                            .split_whitespace()
                                            .nth(2)?
                                            .trim_end_matches(']')
                                            .parse()
                                            .ok()
                                    });
                                stats.record("MOVE", started.elapsed());
                                Ok(())
                            }
                            Ok(_) => {
                                own[i].place = Place::Inbox;
                                stats.errors.fetch_add(1, Ordering::Relaxed);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            } else if roll < 95 {
                let tag = imap.next_tag();
                let result = async {
                    imap.send(format!("{tag} IDLE\r\n").as_bytes()).await?;
                    let first = read_response(&mut imap.reader).await?;
                    if !first.starts_with('+') {
                        return Err(AnyError::from(format!("IDLE: {first}")));
                    }
                    let idle = Duration::from_millis(1000 + next(&mut rng) % 4000);
                    let _ = tokio::time::timeout(idle, async {
                        loop {
                            if read_response(&mut imap.reader).await.is_err() {
                                return;
                            }
                        }
                    })
                    .await;
                    imap.send(b"DONE\r\n").await?;
                    imap.until_tag(&tag).await
                }
                .await;
                match result {
                    Ok(reply) if reply.ok() => {
                        stats.record("IDLE", started.elapsed());
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                }
            } else {
                match imap.cmd("NOOP").await {
                    Ok(_) => {
                        stats.record("NOOP", started.elapsed());
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            if outcome.is_err() {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                continue 'session;
            }
        }
    }

    // Final check, from a fresh session: each own message still has its UID, in both folders.
    for _ in 0..20 {
        let target = *addr.lock().expect("address");
        let Ok(mut imap) = Imap::login(target).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let mut done = true;
        for (folder, place) in [("INBOX", Place::Inbox), ("Archive", Place::Archive)] {
            match imap.select(folder).await {
                Ok(Some(v)) => check_uidvalidity(&mut uidvalidity, static_name(folder), v, &stats),
                _ => {
                    done = false;
                    continue;
                }
            }
            let uids: Vec<String> = own
                .iter()
                .filter(|o| o.place == place)
                .filter_map(|o| o.uid.map(|u| u.to_string()))
                .collect();
            if uids.is_empty() {
                continue;
            }
            let command = format!(
                "UID FETCH {} (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
                uids.join(",")
            );
            match imap.cmd(&command).await {
                Ok(reply) if reply.ok() => check_uids(&own, place, &reply, &stats),
                _ => done = false,
            }
        }
        if done {
            break;
        }
    }
    ClientResult { own }
}

fn static_name(folder: &str) -> &'static str {
    if folder == "INBOX" {
        "INBOX"
    } else {
        "Archive"
    }
}

fn check_uidvalidity(
    seen: &mut HashMap<&'static str, u32>,
    folder: &'static str,
    value: u32,
    stats: &Stats,
) {
    let first = *seen.entry(folder).or_insert(value);
    if first != value {
        stats.uidvalidity_changes.fetch_add(1, Ordering::Relaxed);
        eprintln!("UIDVALIDITY of {folder} changed: {first} -> {value}");
    }
}

/// Every FETCH line for a UID this client owns must carry that message's Message-ID.
fn check_uids(own: &[Own], place: Place, reply: &Reply, stats: &Stats) {
    let by_uid: HashMap<u32, &Own> = own
        .iter()
        .filter(|o| o.place == place)
        .filter_map(|o| Some((o.uid?, o)))
        .collect();
    for line in &reply.untagged {
        let lower = line.to_ascii_lowercase();
        let Some(at) = lower.find("message-id:") else {
            continue;
        };
        let Some(uid) = number_after(line, "UID ") else {
            continue;
        };
        let Some(expected) = by_uid.get(&uid) else {
            continue;
        };
        stats.uid_checks.fetch_add(1, Ordering::Relaxed);
        if !line[at..].contains(&expected.message_id) {
            stats.uid_changes.fetch_add(1, Ordering::Relaxed);
            eprintln!("UID {uid} no longer names {}: {line}", expected.message_id);
        }
    }
}

// A small xorshift generator: the soak needs no crypto-grade randomness.
fn fastrand_seed(seed: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

fn pick(items: &[usize], rng: &mut u64) -> Option<usize> {
    if items.is_empty() {
        None
    } else {
        Some(items[(next(rng) % items.len() as u64) as usize])
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP senders

async fn smtp_reply(reader: &mut BufReader<TcpStream>) -> Result<String, AnyError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(COMMAND_TIMEOUT, reader.read_line(&mut line))
            .await
            .map_err(|_| "no SMTP answer in time")??;
        if read == 0 {
            return Err("SMTP connection closed".into());
        }
        let line = line.trim_end().to_string();
        let last = line.len() < 4 || line.as_bytes()[3] == b' ';
        lines.push(line);
        if last {
            return Ok(lines.join("\n"));
        }
    }
}

/// Sends one message; Ok(true) on 250, Ok(false) on a refusal, Err when the answer was lost.
async fn smtp_send(addr: SocketAddr, subject: &str) -> Result<bool, AnyError> {
    let mut reader = BufReader::new(TcpStream::connect(addr).await?);
    smtp_reply(&mut reader).await?;
    // demo / demo, SASL PLAIN.
    for line in [
        "EHLO soak",
        "AUTH PLAIN AGRlbW8AZGVtbw==",
        "MAIL FROM:<sales@contoso.test>",
    ] {
        reader
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        let reply = smtp_reply(&mut reader).await?;
        if reply.starts_with('4') || reply.starts_with('5') {
            return Ok(false);
        }
    }
    for line in ["RCPT TO:<sales@contoso.test>", "DATA"] {
        reader
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        let reply = smtp_reply(&mut reader).await?;
        if reply.starts_with('4') || reply.starts_with('5') {
            return Ok(false);
        }
    }
    let message = format!(
        "From: sales@contoso.test\r\nTo: sales@contoso.test\r\nSubject: {subject}\r\n\r\nsoak\r\n.\r\n"
    );
    reader.get_mut().write_all(message.as_bytes()).await?;
    let reply = smtp_reply(&mut reader).await?;
    let _ = reader.get_mut().write_all(b"QUIT\r\n").await;
    Ok(reply.starts_with("250"))
}

struct Sent {
    confirmed: Vec<String>,
    uncertain: Vec<String>,
}

async fn smtp_sender(
    addr: Arc<Mutex<SocketAddr>>,
    index: usize,
    run: String,
    deadline: Instant,
    stats: Arc<Stats>,
) -> Sent {
    let mut sent = Sent {
        confirmed: Vec::new(),
        uncertain: Vec::new(),
    };
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let subject = format!("soak {run} smtp s{index} n{n}");
        let target = *addr.lock().expect("address");
        let started = Instant::now();
        match smtp_send(target, &subject).await {
            Ok(true) => {
                stats.record("SMTP send", started.elapsed());
                sent.confirmed.push(subject);
            }
            Ok(false) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                sent.uncertain.push(subject);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    sent
}

// ---------------------------------------------------------------------------------------------
// Graph, as Outlook sees it

struct Graph {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Graph {
    async fn sign_in(addr: SocketAddr) -> Result<Graph, AnyError> {
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        let code: Value = http
            .post(format!("{base}/common/oauth2/v2.0/devicecode"))
            .form(&[
                ("client_id", "soak"),
                ("scope", "offline_access Mail.ReadWrite"),
            ])
            .send()
            .await?
            .json()
            .await?;
        let device_code = code["device_code"]
            .as_str()
            .ok_or("device_code")?
            .to_string();
        let token: Value = http
            .post(format!("{base}/common/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "soak"),
                ("device_code", device_code.as_str()),
            ])
            .send()
            .await?
            .json()
            .await?;
        let token = token["access_token"]
            .as_str()
            .ok_or("access_token")?
            .to_string();
        Ok(Graph { http, base, token })
    }

    async fn control(&self, path: &str, body: Option<Value>) -> Result<(), AnyError> {
        let mut request = self.http.post(format!("{}/_emulator/{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let status = request.send().await?.status();
        if !status.is_success() {
            return Err(format!("/_emulator/{path}: {status}").into());
        }
        Ok(())
    }

    /// Every message of a folder (by Graph id): id, subject, internetMessageId, flag.
    async fn messages(&self, folder_id: &str) -> Result<Vec<Value>, AnyError> {
        let mut url = format!(
            "{}/v1.0/me/mailFolders/{folder_id}/messages?$top=200&$select=id,subject,internetMessageId,flag",
            self.base
        );
        let mut all = Vec::new();
        loop {
            let page: Value = self
                .http
                .get(&url)
                .bearer_auth(&self.token)
                .header("Prefer", "IdType=\"ImmutableId\"")
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            all.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => return Ok(all),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run(settings: Settings) -> Result<usize, AnyError> {
    graphbridge::tls::install_crypto_provider();
    let duration = Duration::from_secs_f64(settings.minutes * 60.0);
    let run_id = format!("{:x}", std::process::id());
    println!(
        "soak: {} IMAP clients, {} SMTP senders, {:.1} minutes, Graph error rate 10 %",
        settings.clients, settings.senders, settings.minutes
    );

    let mut emulator_args = demo::demo_emulator_args(Default::default());
    emulator_args.port = 0;
    let emulator = RunningEmulator::start(&emulator_args).await?;
    let data = tempfile::tempdir()?;
    // Provision the demo user and mailbox and sign in, then hand over to the real binary.
    let options = DemoOptions {
        imap_port: 0,
        smtp_port: 0,
        http_port: 0,
        poll_interval_secs: 1,
        ..DemoOptions::default()
    };
    demo::start_bridge(&options, emulator.addr, data.path())
        .await?
        .stop()
        .await;
    let (imap_port, smtp_port) = (free_port()?, free_port()?);
    let config = data.path().join("graphbridge.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n\
             [imap]\nlisten = \"127.0.0.1:{imap_port}\"\n\
             [smtp]\nlisten = \"127.0.0.1:{smtp_port}\"\ntls_listen = \"127.0.0.1:{}\"\n\
             [http]\nlisten = \"127.0.0.1:{}\"\n\
             [graph]\nbase_url = \"http://{graph}/v1.0\"\nlogin_url = \"http://{graph}\"\n\
             client_id = \"graphbridge-demo\"\n\
             [sync]\npoll_interval_secs = 2\nfull_poll_interval_secs = 30\n",
            free_port()?,
            free_port()?,
            data = data.path().display().to_string(),
            graph = emulator.addr,
        ),
    )?;
    let graph = Graph::sign_in(emulator.addr).await?;
    graph
        .control(
            "faults",
            Some(serde_json::json!({"latencyMs": 5, "jitterMs": 20, "errorRate": 0.1})),
        )
        .await?;

    let mut bridge = Bridge {
        child: Bridge::spawn(&config)?,
        config: config.clone(),
        imap: ([127, 0, 0, 1], imap_port).into(),
        smtp: ([127, 0, 0, 1], smtp_port).into(),
        peak_rss_kib: Arc::new(AtomicU64::new(0)),
    };
    bridge.wait_ready().await?;
    bridge.watch_rss();

    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let deadline = started + duration;
    let imap_addr = Arc::new(Mutex::new(bridge.imap));
    let smtp_addr = Arc::new(Mutex::new(bridge.smtp));
    let mut clients = Vec::new();
    for i in 0..settings.clients {
        clients.push(tokio::spawn(imap_client(
            imap_addr.clone(),
            i,
            run_id.clone(),
            deadline,
            stats.clone(),
        )));
        // Stagger the logins over the first seconds.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut senders = Vec::new();
    for i in 0..settings.senders {
        senders.push(tokio::spawn(smtp_sender(
            smtp_addr.clone(),
            i,
            run_id.clone(),
            deadline,
            stats.clone(),
        )));
    }

    // The faults, at fixed points of the run.
    let at = |share: f64| started + duration.mul_f64(share);
    tokio::time::sleep_until(at(0.3).into()).await;
    println!(
        "{:>6.1} s: 429 storm for 30 s",
        started.elapsed().as_secs_f64()
    );
    graph.control("storm?seconds=30", None).await?;
    tokio::time::sleep_until(at(0.5).into()).await;
    println!(
        "{:>6.1} s: every access token expired",
        started.elapsed().as_secs_f64()
    );
    graph.control("tokens/expire", None).await?;
    tokio::time::sleep_until(at(0.6).into()).await;
    println!(
        "{:>6.1} s: kill -9 of the bridge, restart",
        started.elapsed().as_secs_f64()
    );
    bridge.kill_and_restart().await?;
    let progress = tokio::spawn({
        let stats = stats.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                println!(
                    "{:>6.1} s: {} commands, {} reconnects",
                    started.elapsed().as_secs_f64(),
                    stats.commands.load(Ordering::Relaxed),
                    stats.reconnects.load(Ordering::Relaxed)
                );
            }
        }
    });

    tokio::time::sleep_until(deadline.into()).await;
    let load_secs = started.elapsed().as_secs_f64();
    let commands = stats.commands.load(Ordering::Relaxed);
    // Faults off, so that the outbox and the writes in flight settle.
    graph
        .control(
            "faults",
            Some(serde_json::json!({"latencyMs": 0, "jitterMs": 0, "errorRate": 0.0})),
        )
        .await?;
    let mut sent = Sent {
        confirmed: Vec::new(),
        uncertain: Vec::new(),
    };
    for s in senders {
        let s = s.await?;
        sent.confirmed.extend(s.confirmed);
        sent.uncertain.extend(s.uncertain);
    }
    // The outbox sends at most 30 messages a minute (Exchange's limit), and messages that met
    // a fault wait out their retry backoff (30 s, doubling): it may take minutes to drain.
    // Bounded: ten minutes, plus two seconds for each message queued when the load stopped.
    let db = data.path().join("graphbridge.sqlite3");
    let queued_at_start = match Store::open(&db) {
        Ok(store) => store
            .call(|c| outbox::queued(c))
            .await
            .map_or(0, |q| q.len()),
        Err(_) => 0,
    };
    let drain_bound = Duration::from_secs(600 + 2 * queued_at_start as u64);
    println!(
        "outbox: {queued_at_start} queued when the load stopped; waiting up to {} s",
        drain_bound.as_secs()
    );
    let mut still_queued = usize::MAX;
    let drain_started = Instant::now();
    while drain_started.elapsed() < drain_bound {
        if let Ok(store) = Store::open(&db) {
            if let Ok(queued) = store.call(|c| outbox::queued(c)).await {
                still_queued = queued.len();
                if queued.is_empty() {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let drained = still_queued == 0;
    println!(
        "outbox: {} after {:.0} s",
        if drained {
            "drained".to_string()
        } else {
            format!("{still_queued} still queued")
        },
        drain_started.elapsed().as_secs_f64()
    );
    // Clients do their final UID check once the bridge has caught up.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut own = Vec::new();
    for c in clients {
        own.extend(c.await?.own);
    }
    progress.abort();
    tokio::time::sleep(Duration::from_secs(5)).await;
    bridge.stop();

    // ---- The checks ----
    let mut failures = 0usize;
    let mut fail = |what: String| {
        failures += 1;
        eprintln!("FAIL: {what}");
    };
    if !drained {
        fail(format!(
            "the outbox did not drain ({still_queued} still queued)"
        ));
    }
    // The tokens were expired mid-run: Outlook signs in again.
    let graph = Graph::sign_in(emulator.addr).await?;
    let store = Store::open(&db)?;
    let mailbox = store
        .call(|c| accounts::mailbox_by_address(c, DEMO_MAILBOX))
        .await?
        .ok_or("no demo mailbox in the store")?;
    let store_folders = store
        .call(move |c| folders::list_folders(c, mailbox.id))
        .await?;
    let mut in_graph: HashMap<String, (String, Value)> = HashMap::new(); // id -> (folder path, message)
    let mut by_subject: HashMap<String, Vec<(String, Value)>> = HashMap::new();
    let mut store_equal = 0usize;
    for folder in &store_folders {
        let graph_messages = graph.messages(&folder.graph_id).await?;
        let folder_id = folder.id;
        let records = store
            .call(move |c| messages::list_messages(c, folder_id))
            .await?;
        let graph_ids: HashSet<&str> = graph_messages
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        let store_ids: HashSet<&str> = records.iter().map(|r| r.graph_id.as_str()).collect();
        if graph_ids != store_ids {
            fail(format!(
                "{}: the store has {} messages, Graph {} ({} only in the store, {} only in Graph)",
                folder.path,
                store_ids.len(),
                graph_ids.len(),
                store_ids.difference(&graph_ids).count(),
                graph_ids.difference(&store_ids).count()
            ));
        }
        for record in &records {
            let Some(m) = graph_messages
                .iter()
                .find(|m| m["id"].as_str() == Some(&record.graph_id))
            else {
                continue;
            };
            let flagged = m["flag"]["flagStatus"].as_str() == Some("flagged");
            if flagged != record.flags.has(Flags::FLAGGED) {
                fail(format!(
                    "{} UID {}: \\Flagged differs from Graph",
                    folder.path, record.uid
                ));
            } else {
                store_equal += 1;
            }
        }
        for m in graph_messages {
            let id = m["id"].as_str().unwrap_or_default().to_string();
            let subject = m["subject"].as_str().unwrap_or_default().to_string();
            by_subject
                .entry(subject)
                .or_default()
                .push((folder.path.clone(), m.clone()));
            in_graph.insert(id, (folder.path.clone(), m));
        }
    }

    let (mut appended_checked, mut flags_checked, mut ghosts) = (0, 0, 0);
    for message in &own {
        let copies = by_subject.get(&message.subject).map_or(0, Vec::len);
        if message.confirmed {
            appended_checked += 1;
            if copies != 1 {
                fail(format!(
                    "{}: {copies} copies in Graph (APPEND answered OK)",
                    message.subject
                ));
                continue;
            }
        } else {
            if copies > 1 {
                fail(format!(
                    "{}: {copies} copies in Graph (APPEND not answered OK)",
                    message.subject
                ));
            }
            ghosts += copies;
            continue;
        }
        let (folder, m) = &by_subject[&message.subject][0];
        let expected = match message.place {
            Place::Inbox => Some("INBOX"),
            Place::Archive => Some("Archive"),
            Place::Unknown => None,
        };
        if let Some(expected) = expected {
            if folder != expected {
                fail(format!(
                    "{}: in {folder}, expected in {expected}",
                    message.subject
                ));
            }
        }
        if message.flagged == Some(true) {
            flags_checked += 1;
            if m["flag"]["flagStatus"].as_str() != Some("flagged") {
                fail(format!(
                    "{}: \\Flagged (STORE answered OK) is not in Graph",
                    message.subject
                ));
            }
        }
    }
    let mut sent_checked = 0;
    for subject in &sent.confirmed {
        sent_checked += 1;
        let in_sent = by_subject.get(subject).map_or(0, |v| {
            v.iter().filter(|(f, _)| f.starts_with("Sent")).count()
        });
        if in_sent != 1 {
            fail(format!(
                "{subject}: {in_sent} copies in Sent Items (SMTP answered 250)"
            ));
        }
    }
    for subject in &sent.uncertain {
        let in_sent = by_subject.get(subject).map_or(0, |v| {
            v.iter().filter(|(f, _)| f.starts_with("Sent")).count()
        });
        if in_sent > 1 {
            fail(format!(
                "{subject}: {in_sent} copies in Sent Items (answer lost)"
            ));
        }
    }
    let uid_changes = stats.uid_changes.load(Ordering::Relaxed);
    let uidvalidity_changes = stats.uidvalidity_changes.load(Ordering::Relaxed);
    if uid_changes > 0 {
        fail(format!("{uid_changes} UID changes seen by clients"));
    }
    if uidvalidity_changes > 0 {
        fail(format!(
            "{uidvalidity_changes} UIDVALIDITY changes seen by clients"
        ));
    }

    // ---- The figures ----
    println!();
    println!(
        "load: {commands} commands in {load_secs:.0} s = {:.1} commands/s ({} NO/refusals, {} reconnects)",
        commands as f64 / load_secs,
        stats.errors.load(Ordering::Relaxed),
        stats.reconnects.load(Ordering::Relaxed)
    );
    println!(
        "{:<10} {:>8} {:>10} {:>10}",
        "command", "count", "p50 ms", "p99 ms"
    );
    let mut latencies: Vec<(&'static str, Vec<u32>)> = stats
        .latencies
        .lock()
        .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
        .unwrap_or_default();
    latencies.sort_by_key(|(k, _)| *k);
    for (command, mut values) in latencies {
        values.sort_unstable();
        println!(
            "{command:<10} {:>8} {:>10.1} {:>10.1}",
            values.len(),
            percentile(&values, 0.5),
            percentile(&values, 0.99)
        );
    }
    println!(
        "bridge peak RSS: {:.0} MiB",
        bridge.peak_rss_kib.load(Ordering::Relaxed) as f64 / 1024.0
    );
    println!(
        "checked: {appended_checked} appended messages exactly once ({} appends without an OK, \
         {ghosts} of them present once), {flags_checked} flags set, {sent_checked} SMTP messages \
         exactly once in Sent Items ({} answers lost, none duplicated), {} UID checks, {} folders \
         and {store_equal} messages equal between store and Graph",
        own.iter().filter(|o| !o.confirmed).count(),
        sent.uncertain.len(),
        stats.uid_checks.load(Ordering::Relaxed),
        store_folders.len(),
    );
    println!(
        "{}",
        if failures == 0 {
            "soak: all checks passed".to_string()
        } else {
            format!("soak: {failures} check(s) FAILED")
        }
    );
    emulator.stop().await;
    Ok(failures)
}
