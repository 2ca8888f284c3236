//! The bridge against Dovecot on the same large folder, in one run.
//!
//! `cargo bench --bench imap_vs_dovecot` (release build). Environment: `BENCH_MESSAGES`
//! (default 10000), `BENCH_CONNECTIONS` (default 1000).
//!
//! 1. Generates a mailbox of N messages (default 10,000), all in Inbox, with the emulator's
//!    generator, and starts the demo (emulator + bridge) on it in a child process.
//! 2. Fetches every message once through the bridge, so every body is stored.
//! 3. Opens C idle connections (default 1,000) to the bridge, logged in, and reads the child's
//!    resident memory before and after; the same again, each connection idling on INBOX.
//! 4. APPENDs the same bytes, flags and INTERNALDATEs to a throwaway Dovecot (Debian's
//!    `dovecot-imapd`) on loopback, Maildir storage.
//! 5. Times, against each server, after one warm-up run, the median of five runs of
//!    `FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)`,
//!    `UID SEARCH TEXT "renewal"` and `FETCH <500 messages> BODY.PEEK[]`, and prints each time
//!    with the ratio bridge/Dovecot; then Dovecot's memory with C idle connections.
//!
//! The client is the same for both servers: one blocking connection that reads every byte of
//! the answer. Dovecot must be started as root (it is in CI) or as the user owning the files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/dovecot_support/mod.rs"]
mod dovecot_support;

use dovecot_support::{Dovecot, DOVECOT};
use graphbridge::demo::{self, DemoOptions, DEMO_MAILBOX, DEMO_PASSWORD, DEMO_USER};
use graphbridge::emulator::generate::{write_fixtures, GenerateOptions};

/// Dovecot tuned for the load: no fsync per message (the bridge's store does not sync either
/// while bodies are cached) and room for the idle connections.
const BENCH_LIMITS: &str = "mail_fsync = never
default_process_limit = 5000
default_client_limit = 10000
protocol imap {
  mail_max_userip_connections = 10000
}
";
const SEARCH_WORD: &str = "renewal";
const BODY_FETCHES: usize = 500;
const RUNS: usize = 5;

struct Args {
    messages: usize,
    connections: usize,
}

fn args() -> Args {
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Args {
        messages: number("BENCH_MESSAGES", 10_000),
        connections: number("BENCH_CONNECTIONS", 1_000),
    }
}

fn main() {
    let all: Vec<String> = std::env::args().collect();
    if let Some(at) = all.iter().position(|a| a == "--serve-bridge") {
        let (Some(fixtures), Some(data)) = (all.get(at + 1), all.get(at + 2)) else {
            eprintln!("--serve-bridge FIXTURES DATA_DIR");
            std::process::exit(2);
        };
        serve_bridge(Path::new(fixtures), Path::new(data));
        return;
    }
    if !Path::new(DOVECOT).exists() {
        eprintln!("SKIPPED: dovecot not installed (apt-get install dovecot-imapd)");
        return;
    }
    let args = args();
    let work = tempfile::tempdir().expect("temp dir");
    let fixtures = work.path().join("fixtures");
    let started = Instant::now();
    let summary = write_fixtures(
        &fixtures,
        &GenerateOptions {
            messages: args.messages,
            mailbox: DEMO_MAILBOX.to_string(),
            folders: 0,
            median_bytes: 10_000,
            large_share: 0.0,
            ..GenerateOptions::default()
        },
    )
    .expect("generate the mailbox");
    println!(
        "mailbox: {} messages in INBOX, {:.1} MB, largest {} bytes (generated in {:.1} s)",
        summary.messages,
        summary.bytes as f64 / 1e6,
        summary.largest,
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let bridge = BridgeProcess::start(&fixtures, &work.path().join("bridge"));
    let mut client = Client::login(bridge.imap, DEMO_USER, DEMO_PASSWORD);
    wait_for_messages(&mut client, args.messages);
    println!(
        "bridge: started and synced in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every body stored first (a chunk at a time, as a client would fetch them), so that
    // the background body fetch is over when the memory is read.
    let started = Instant::now();
    let messages = client.fetch_messages(args.messages);
    println!(
        "bridge: every body fetched and stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let dovecot = Dovecot::start("bench", BENCH_LIMITS);
    let started = Instant::now();
    let mut theirs = Client::login(dovecot.addr(), "tester", "secret");
    theirs.append_all(&messages);
    drop(messages);
    theirs.command("SELECT INBOX");
    println!(
        "dovecot: {} messages appended in {:.1} s",
        args.messages,
        started.elapsed().as_secs_f64()
    );

    let body_set = spread(args.messages, BODY_FETCHES);
    let commands = [
        (
            "FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)".to_string(),
            1.0,
        ),
        (format!("UID SEARCH TEXT \"{SEARCH_WORD}\""), 1.5),
        (format!("FETCH {body_set} BODY.PEEK[]"), 1.5),
    ];
    println!();
    println!(
        "{:<70} {:>10} {:>10} {:>7} {:>6}",
        "command (median of 5 after a warm-up)", "bridge ms", "dovecot ms", "ratio", "goal"
    );
    for (command, goal) in &commands {
        let ours = client.time(command);
        let dove = theirs.time(command);
        let ratio = ours.median.as_secs_f64() / dove.median.as_secs_f64().max(1e-9);
        let shown = if command.len() > 68 {
            format!("{}…", &command[..67])
        } else {
            command.clone()
        };
        println!(
            "{:<70} {:>10.1} {:>10.1} {:>7.2} {:>6}",
            shown,
            ours.median.as_secs_f64() * 1e3,
            dove.median.as_secs_f64() * 1e3,
            ratio,
            format!("≤ {goal}")
        );
        if ours.responses != dove.responses || ours.bytes.abs_diff(dove.bytes) > ours.bytes / 20 {
            println!(
                "  note: answers differ: bridge {} responses / {} bytes, dovecot {} / {}",
                ours.responses, ours.bytes, dove.responses, dove.bytes
            );
        }
        if command.contains("SEARCH") {
            println!(
                "  hits: bridge {}, dovecot {}",
                ours.search_hits, dove.search_hits
            );
        }
    }
    drop(client);
    drop(theirs);

    // A fresh bridge process for the memory figures: the one that stored the bodies keeps the
    // freed memory of that work in its allocator, which would hide what connections cost.
    drop(bridge);
    let bridge = BridgeProcess::start(&fixtures, &work.path().join("bridge"));
    wait_for_messages(
        &mut Client::login(bridge.imap, DEMO_USER, DEMO_PASSWORD),
        args.messages,
    );
    let bridge_memory = idle_memory(
        bridge.imap,
        (DEMO_USER, DEMO_PASSWORD),
        args.connections,
        || rss_kib(bridge.child.id()),
    );
    let dovecot_memory = idle_memory(
        dovecot.addr(),
        ("tester", "secret"),
        args.connections,
        || dovecot_memory_kib(&dovecot),
    );
    println!();
    println!(
        "memory per idle connection ({} connections), KiB    bridge RSS   dovecot PSS (RSS)   goal",
        args.connections
    );
    for (label, ours, theirs) in [
        (
            "logged in",
            bridge_memory.logged_in,
            dovecot_memory.logged_in,
        ),
        ("IDLE on INBOX", bridge_memory.idling, dovecot_memory.idling),
    ] {
        println!(
            "  {:<48} {:>10.1} {:>10.1} ({:.1})   < 64",
            label, ours.0, theirs.0, theirs.1
        );
    }
}

/// The child process's side: the demo on the generated fixtures until stdin closes.
fn serve_bridge(fixtures: &Path, data: &Path) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let mut options = DemoOptions {
            imap_port: 0,
            smtp_port: 0,
            http_port: 0,
            data_dir: Some(data.to_path_buf()),
            poll_interval_secs: 60,
            ..DemoOptions::default()
        };
        options.emulator.port = 0;
        options.emulator.fixtures = Some(fixtures.to_path_buf());
        // Every body is read once from Graph to be stored: more requests than Microsoft's
        // 10,000 per 10 minutes, which the bridge would wait for. Graph is not what is measured.
        options.emulator.throttle = "100000000/600".into();
        options.adjust_config = Some(|config| {
            config.graph.request_budget = "100000000/600".into();
        });
        let demo = demo::start(options).await.expect("demo starts");
        println!("READY {}", demo.running.imap);
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await;
        demo.stop().await;
    });
}

struct BridgeProcess {
    child: Child,
    imap: SocketAddr,
}

impl BridgeProcess {
    fn start(fixtures: &Path, data: &Path) -> BridgeProcess {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .arg("--serve-bridge")
            .arg(fixtures)
            .arg(data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the bridge");
        let stdout = child.stdout.take().expect("child stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).expect("bridge says READY");
        // The demo logs to stdout: keep the pipe drained so that it never blocks.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let imap = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bridge did not start: {line:?}"));
        BridgeProcess { child, imap }
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        // Closing stdin stops the demo.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn wait_for_messages(client: &mut Client, wanted: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let reply = client.command("EXAMINE INBOX");
        let exists = reply
            .untagged
            .iter()
            .find_map(|l| {
                let l = String::from_utf8_lossy(l);
                l.strip_suffix(" EXISTS")
                    .and_then(|n| n.trim_start_matches("* ").parse::<usize>().ok())
            })
            .unwrap_or(0);
        if exists >= wanted {
            client.command("SELECT INBOX");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge has {exists} of {wanted} messages after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `n` sequence numbers spread evenly over `1..=total`, as a sequence set.
fn spread(total: usize, n: usize) -> String {
    let n = n.min(total).max(1);
    (0..n)
        .map(|i| (1 + i * total / n).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------------------
// Memory

/// KiB per connection: (RSS or PSS, RSS).
struct IdleMemory {
    logged_in: (f64, f64),
    idling: (f64, f64),
}

/// Opens `n` connections that log in, then makes each idle on INBOX; `measure` gives the
/// server's (main figure, RSS) in KiB.
fn idle_memory(
    addr: SocketAddr,
    (user, password): (&str, &str),
    n: usize,
    measure: impl Fn() -> (u64, u64),
) -> IdleMemory {
    // Logins first, so that what the password check keeps (argon2's buffers stay in the
    // allocator's arenas) is counted before, not as the connections' share.
    for _ in 0..20 {
        let mut client = Client::login(addr, user, password);
        client.command("LOGOUT");
    }
    settle();
    let before = measure();
    let started = Instant::now();
    let mut clients: Vec<Client> = (0..n)
        .map(|_| Client::login(addr, user, password))
        .collect();
    settle();
    let logged_in = measure();
    for client in &mut clients {
        client.command("SELECT INBOX");
        let tag = client.next_tag();
        client.send_raw(format!("{tag} IDLE\r\n").as_bytes());
        client.read_continuation();
    }
    settle();
    let idling = measure();
    eprintln!(
        "{n} connections to {addr} opened in {:.1} s; server memory (KiB, main figure/RSS): \
         {before:?} before, {logged_in:?} logged in, {idling:?} idling",
        started.elapsed().as_secs_f64()
    );
    let per = |after: (u64, u64)| {
        (
            after.0.saturating_sub(before.0) as f64 / n as f64,
            after.1.saturating_sub(before.1) as f64 / n as f64,
        )
    };
    IdleMemory {
        logged_in: per(logged_in),
        idling: per(idling),
    }
}

/// (PSS, RSS) in KiB, summed over Dovecot's processes.
fn dovecot_memory_kib(dovecot: &Dovecot) -> (u64, u64) {
    let Some(master) = dovecot.master_pid() else {
        return (0, 0);
    };
    let mut pss = pss_kib(master);
    let mut rss = status_kib(master, "VmRSS:");
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if status_kib(pid, "PPid:") == u64::from(master) {
            pss += pss_kib(pid);
            rss += status_kib(pid, "VmRSS:");
        }
    }
    (pss, rss)
}

fn settle() {
    std::thread::sleep(Duration::from_secs(2));
}

/// (RSS, RSS) of one process in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let rss = status_kib(pid, "VmRSS:");
    (rss, rss)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Client

struct Timing {
    median: Duration,
    responses: usize,
    bytes: usize,
    search_hits: usize,
}

struct Reply {
    untagged: Vec<Vec<u8>>,
}

struct Client {
    reader: BufReader<TcpStream>,
    tag: u32,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(600)))
            .expect("timeout");
        let mut client = Client {
            reader: BufReader::with_capacity(64 * 1024, stream),
            tag: 0,
        };
        let mut greeting = Vec::new();
        client.read_response(&mut greeting, true);
        assert!(greeting.starts_with(b"* OK"), "greeting {greeting:?}");
        client
    }

    fn login(addr: SocketAddr, user: &str, password: &str) -> Client {
        let mut client = Client::connect(addr);
        client.command(&format!("LOGIN \"{user}\" \"{password}\""));
        client
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("B{:05}", self.tag)
    }

    /// Sends a command and keeps every response; panics unless it ends in OK.
    fn command(&mut self, command: &str) -> Reply {
        let tag = self.next_tag();
        self.send_raw(format!("{tag} {command}\r\n").as_bytes());
        let mut untagged = Vec::new();
        loop {
            let mut line = Vec::new();
            self.read_response(&mut line, true);
            if line.starts_with(tag.as_bytes()) {
                let tagged = String::from_utf8_lossy(&line);
                assert!(
                    tagged[tag.len()..].trim_start().starts_with("OK"),
                    "{command}: {tagged}"
                );
                return Reply { untagged };
            }
            untagged.push(line);
        }
    }

    fn read_continuation(&mut self) {
        loop {
            let mut line = Vec::new();
            self.read_response(&mut line, true);
            if line.starts_with(b"+") {
                return;
            }
        }
    }

    /// Reads one response, literals included; keeps its bytes in `out` when `keep`.
    /// Returns its length on the wire.
    fn read_response(&mut self, out: &mut Vec<u8>, keep: bool) -> usize {
        let mut total = 0;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = self.reader.read_until(b'\n', &mut line).expect("read");
            assert!(n > 0, "server closed the connection");
            total += n;
            let literal = literal_length(&line);
            if keep {
                out.extend_from_slice(&line);
            }
            let Some(len) = literal else {
                break;
            };
            total += len;
            if keep {
                let start = out.len();
                out.resize(start + len, 0);
                self.reader.read_exact(&mut out[start..]).expect("literal");
            } else {
                let mut left = len;
                while left > 0 {
                    let buf = self.reader.fill_buf().expect("literal");
                    assert!(!buf.is_empty(), "server closed the connection");
                    let take = buf.len().min(left);
                    self.reader.consume(take);
                    left -= take;
                }
            }
        }
        if keep {
            while out.ends_with(b"\n") || out.ends_with(b"\r") {
                out.pop();
            }
        }
        total
    }

    /// Runs `command` once to warm up, then RUNS times; the median time and what came back.
    fn time(&mut self, command: &str) -> Timing {
        let mut times = Vec::new();
        let mut last = (0, 0, 0);
        for run in 0..=RUNS {
            let tag = self.next_tag();
            let started = Instant::now();
            self.send_raw(format!("{tag} {command}\r\n").as_bytes());
            let (mut responses, mut bytes, mut hits) = (0, 0, 0);
            let mut first = Vec::new();
            loop {
                first.clear();
                // Only the first line is kept; literals are read and dropped.
                let n = self.read_response_first_line(&mut first);
                if first.starts_with(tag.as_bytes()) {
                    assert!(
                        String::from_utf8_lossy(&first).contains(" OK"),
                        "{command}: {}",
                        String::from_utf8_lossy(&first)
                    );
                    break;
                }
                responses += 1;
                bytes += n;
                if first.starts_with(b"* SEARCH") {
                    hits += first.split(|&b| b == b' ').count().saturating_sub(2);
                }
            }
            let elapsed = started.elapsed();
            if run > 0 {
                times.push(elapsed);
            }
            last = (responses, bytes, hits);
        }
        times.sort();
        Timing {
            median: times[times.len() / 2],
            responses: last.0,
            bytes: last.1,
            search_hits: last.2,
        }
    }

    /// One response, keeping only its first line (without CRLF) in `first`.
    fn read_response_first_line(&mut self, first: &mut Vec<u8>) -> usize {
        let mut sink = Vec::new();
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line).expect("read");
        assert!(n > 0, "server closed the connection");
        first.extend_from_slice(line.strip_suffix(b"\r\n").unwrap_or(&line));
        match literal_length(&line) {
            None => n,
            Some(len) => {
                let mut total = n;
                let mut left = len;
                while left > 0 {
                    let buf = self.reader.fill_buf().expect("literal");
                    assert!(!buf.is_empty(), "server closed the connection");
                    let take = buf.len().min(left);
                    self.reader.consume(take);
                    left -= take;
                }
                total += len;
                total += self.read_response(&mut sink, false);
                total
            }
        }
    }

    /// Every message of the selected folder: (flags, INTERNALDATE, bytes).
    fn fetch_messages(&mut self, expected: usize) -> Vec<(String, String, Vec<u8>)> {
        let mut messages = Vec::with_capacity(expected);
        for first in (1..=expected).step_by(500) {
            let last = (first + 499).min(expected);
            let reply = self.command(&format!(
                "FETCH {first}:{last} (FLAGS INTERNALDATE BODY.PEEK[])"
            ));
            messages.extend(reply.untagged.iter().filter_map(|r| parse_fetch(r)));
            eprint!("\r{} of {expected} bodies", messages.len());
        }
        eprintln!();
        assert_eq!(messages.len(), expected, "every message fetched");
        messages
    }

    /// APPENDs every message with LITERAL+, a batch at a time.
    fn append_all(&mut self, messages: &[(String, String, Vec<u8>)]) {
        for batch in messages.chunks(200) {
            let mut tags = Vec::new();
            for (flags, date, raw) in batch {
                let tag = self.next_tag();
                let mut command = format!(
                    "{tag} APPEND INBOX ({flags}) \"{date}\" {{{}+}}\r\n",
                    raw.len()
                )
                .into_bytes();
                command.extend_from_slice(raw);
                command.extend_from_slice(b"\r\n");
                self.send_raw(&command);
                tags.push(tag);
            }
            for tag in tags {
                loop {
                    let mut line = Vec::new();
                    self.read_response(&mut line, true);
                    if line.starts_with(tag.as_bytes()) {
                        assert!(
                            String::from_utf8_lossy(&line).contains(" OK"),
                            "APPEND: {}",
                            String::from_utf8_lossy(&line)
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// `{n}` or `{n+}` at the end of a line.
fn literal_length(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let inner = text.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}

/// `* n FETCH (FLAGS (...) INTERNALDATE "..." BODY[] {len}\r\n<bytes>)`: flags without
/// \Recent, the date, the bytes.
fn parse_fetch(response: &[u8]) -> Option<(String, String, Vec<u8>)> {
    let text_end = response.windows(3).position(|w| w == b"}\r\n")?;
    let head = std::str::from_utf8(&response[..text_end]).ok()?;
    let flags_start = head.find("FLAGS (")? + "FLAGS (".len();
    let flags_len = head[flags_start..].find(')')?;
    let flags: Vec<&str> = head[flags_start..flags_start + flags_len]
        .split_whitespace()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    let date_start = head.find("INTERNALDATE \"")? + "INTERNALDATE \"".len();
    let date_len = head[date_start..].find('"')?;
    let open = head.rfind('{')?;
    let len: usize = head[open + 1..].parse().ok()?;
    let body_start = text_end + 3;
    let raw = response.get(body_start..body_start + len)?.to_vec();
    Some((
        flags.join(" "),
        head[date_start..date_start + date_len].to_string(),
        raw,
    ))
}

// ---------------------------------------------------------------------------------------
// Dovecot
