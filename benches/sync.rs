//! Sync benchmark: the bridge against the emulator (its own process) with 30 ms latency and a
//! 2000/60 request budget, on a generated mailbox. Prints requests per 1,000 messages for the
//! metadata sync, the time until a client can SELECT and list INBOX, the full sync's wall time
//! against the minimum the emulator's limits allow, 429s, and the bridge's peak RSS.
//!
//! `cargo bench --bench sync` (release build). Environment: `BENCH_MESSAGES` (default 20000),
//! `BENCH_FIXTURES` (a folder to keep generated fixtures in between runs), `BENCH_METADATA_ONLY`
//! (set: stop after the metadata sync and the INBOX listing).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use graphbridge::admin::core::{self as admin, Role};
use graphbridge::app::{self, Listeners};
use graphbridge::bridge::Bridge;
use graphbridge::config::Config;
use graphbridge::emulator::generate::{write_fixtures, GenerateOptions};
use graphbridge::mailstore::{accounts, Store};
use graphbridge::secrets::SecretBox;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const MAILBOX: &str = "bulk@contoso.test";
const LATENCY_MS: u64 = 30;
const BUDGET: usize = 2000;
const WINDOW_SECS: u64 = 60;
const IN_FLIGHT: usize = 4;

type AnyError = Box<dyn std::error::Error>;

fn main() -> Result<(), AnyError> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), AnyError> {
    graphbridge::tls::install_crypto_provider();
    let messages: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let scratch = tempfile::tempdir()?;
    let fixtures = match std::env::var_os("BENCH_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => scratch.path().join("fixtures"),
    };
    if !fixtures.join("tenant.json").exists() {
        println!("generating {messages} messages into {}", fixtures.display());
        let options = GenerateOptions {
            messages,
            mailbox: MAILBOX.into(),
            ..GenerateOptions::default()
        };
        write_fixtures(&fixtures, &options)?;
    }
    let port = free_port()?;
    let mut emulator = start_emulator(&fixtures, port)?;
    let graph = SocketAddr::from(([127, 0, 0, 1], port));
    let result = measure(graph, scratch.path(), messages).await;
    let _ = emulator.kill();
    let _ = emulator.wait();
    result
}

/// The emulator in its own process, so the RSS measured here is the bridge's alone.
fn start_emulator(fixtures: &Path, port: u16) -> Result<Child, AnyError> {
    let child = Command::new(env!("CARGO_BIN_EXE_graphbridge"))
        .args(["emulator", "--port", &port.to_string(), "--fixtures"])
        .arg(fixtures)
        .args(["--auto-consent", MAILBOX])
        .args(["--latency-ms", &LATENCY_MS.to_string()])
        .args(["--throttle", &format!("{BUDGET}/{WINDOW_SECS}")])
        .stdout(Stdio::null())
        .env("RUST_LOG", "warn")
        .spawn()?;
    Ok(child)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn measure(graph: SocketAddr, dir: &Path, messages: usize) -> Result<(), AnyError> {
    wait_for(graph).await?;
    let config = bench_config(graph, &dir.join("bridge"));
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Store::open(&config.database_path())?;
    admin::add_user(&store, "bench", "bench")?;
    let mailbox = admin::import_mailbox(&store, MAILBOX, None)?;
    admin::assign(&store, MAILBOX, "bench", Role::Main)?;
    let secrets = SecretBox::load_or_create(&config.data_dir)?;
    let listeners = Listeners::bind(&config).await?;
    let imap = listeners.imap.local_addr()?;
    let bridge = Bridge::new(config, store.clone(), secrets)?;
    bridge.signin_device_code(mailbox.id, |_| {}).await?;
    let before = requests(graph).await?;
    let routes_before = requests_by_route(graph).await?;

    let started = Instant::now();
    let client = tokio::spawn(async move { list_inbox(imap).await });
    let running = app::start(bridge, listeners).await?;
    let metadata_done = started.elapsed();
    // The sync loop starts fetching bodies as soon as the first sync is done, so bodies
    // fetched by the time the counters are read are left out.
    let routes_after = requests_by_route(graph).await?;
    let metadata_requests = metadata_requests(&routes_before, &routes_after);
    println!("metadata sync requests by route:");
    print_routes(&routes_before, &routes_after);
    let (inbox_time, listed) = client.await??;
    if std::env::var_os("BENCH_METADATA_ONLY").is_some() {
        println!(
            "metadata sync: {metadata_requests} requests = {:.2} per 1,000 messages, {:.1} s",
            metadata_requests as f64 * 1000.0 / messages as f64,
            metadata_done.as_secs_f64()
        );
        running.stop().await;
        return Ok(());
    }
    let account = mailbox.id;
    loop {
        let p = store
            .call(move |c| accounts::sync_progress(c, account))
            .await?;
        if p.messages > 0 && p.bodies == p.messages {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let full = started.elapsed();
    let (total, throttled) = requests(graph).await?;
    let total = total - before.0;
    running.stop().await;
    report(Report {
        messages,
        metadata_requests,
        metadata_done,
        inbox_time,
        listed,
        total,
        throttled: throttled - before.1,
        full,
    });
    Ok(())
}

struct Report {
    messages: usize,
    metadata_requests: u64,
    metadata_done: Duration,
    inbox_time: Duration,
    listed: usize,
    total: u64,
    throttled: u64,
    full: Duration,
}

fn report(r: Report) {
    let per_thousand = r.metadata_requests as f64 * 1000.0 / r.messages as f64;
    // The anchor: the least time the emulator's limits allow for the requests this run made.
    let by_budget = r.total as f64 * WINDOW_SECS as f64 / BUDGET as f64;
    let by_latency = r.total as f64 * LATENCY_MS as f64 / 1000.0 / IN_FLIGHT as f64;
    let minimum = by_budget.max(by_latency);
    println!(
        "sync benchmark: {} messages, latency {LATENCY_MS} ms, throttle {BUDGET}/{WINDOW_SECS}",
        r.messages
    );
    println!(
        "  metadata sync: {} requests = {per_thousand:.2} per 1,000 messages (goal <= 3), {:.1} s",
        r.metadata_requests,
        r.metadata_done.as_secs_f64()
    );
    println!(
        "  INBOX selected and listed ({} messages) after {:.1} s",
        r.listed,
        r.inbox_time.as_secs_f64()
    );
    println!(
        "  full sync with bodies: {:.1} s for {} requests; minimum {minimum:.1} s \
         (budget {by_budget:.1} s, latency {by_latency:.1} s); ratio {:.3} (goal <= 1.15)",
        r.full.as_secs_f64(),
        r.total,
        r.full.as_secs_f64() / minimum
    );
    println!("  429s: {} (goal 0)", r.throttled);
    println!("  bridge peak RSS: {} MB", peak_rss_kb() / 1024);
}

fn bench_config(graph: SocketAddr, data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    for listen in [
        &mut config.imap.listen,
        &mut config.smtp.listen,
        &mut config.http.listen,
    ] {
        *listen = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    config.graph.base_url = format!("http://{graph}/v1.0");
    config.graph.login_url = format!("http://{graph}");
    config.graph.client_id = "graphbridge-bench".into();
    config.graph.request_budget = format!("{BUDGET}/{WINDOW_SECS}");
    config
}

async fn wait_for(graph: SocketAddr) -> Result<(), AnyError> {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(graph).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the emulator did not start".into())
}

/// Graph requests the emulator counted for the mailbox, and its 429s.
async fn requests(graph: SocketAddr) -> Result<(u64, u64), AnyError> {
    let mailbox = mailbox_stats(graph).await?;
    Ok((
        mailbox["requests"].as_u64().unwrap_or(0),
        mailbox["throttled"].as_u64().unwrap_or(0),
    ))
}

/// Requests by route (`GET me/mailfolders/{id}/messages/delta`, say), as the emulator counts.
async fn requests_by_route(graph: SocketAddr) -> Result<BTreeMap<String, u64>, AnyError> {
    let mailbox = mailbox_stats(graph).await?;
    Ok(mailbox["requestsByRoute"]
        .as_object()
        .map(|routes| {
            routes
                .iter()
                .map(|(route, n)| (route.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default())
}

async fn mailbox_stats(graph: SocketAddr) -> Result<Value, AnyError> {
    let stats: Value = reqwest::get(format!("http://{graph}/_emulator/stats"))
        .await?
        .json()
        .await?;
    Ok(stats["mailboxes"][MAILBOX].clone())
}

/// Requests between two readings of the counters, body downloads (`$value`) left out.
fn metadata_requests(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> u64 {
    after
        .iter()
        .filter(|(route, _)| !route.contains("$value"))
        .map(|(route, n)| n - before.get(route).copied().unwrap_or(0))
        .sum()
}

/// What the metadata sync asked Graph for, route by route.
fn print_routes(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
    for (route, n) in after {
        let added = n - before.get(route).copied().unwrap_or(0);
        if added > 0 {
            println!("    {added:>5}  {route}");
        }
    }
}

/// A client that logs in as soon as the bridge answers, SELECTs INBOX and lists it; returns
/// when that worked and how many messages it listed.
async fn list_inbox(imap: SocketAddr) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(imap)
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = BufReader::new(stream);
    read_until(&mut conn, "* OK").await?;
    for (tag, command) in [
        ("a", "LOGIN bench bench"),
        ("b", "SELECT INBOX"),
        ("c", "UID FETCH 1:* (UID FLAGS INTERNALDATE)"),
    ] {
        conn.get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let lines = read_until(&mut conn, &format!("{tag} OK")).await?;
        if tag == "c" {
            let listed = lines.iter().filter(|l| l.contains(" FETCH ")).count();
            return Ok((started.elapsed(), listed));
        }
    }
    Err("unreachable".into())
}

async fn read_until(
    conn: &mut BufReader<tokio::net::TcpStream>,
    prefix: &str,
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed before {prefix}"));
        }
        if line.starts_with(prefix) {
            return Ok(lines);
        }
        if line
            .split_whitespace()
            .nth(1)
            .is_some_and(|w| w == "NO" || w == "BAD")
            && !line.starts_with('*')
        {
            return Err(line);
        }
        lines.push(line);
    }
}

/// VmHWM of this process: the bridge (the emulator runs in its own process).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
