//! Helpers for the administration tests: an emulated tenant that asks who signs in (no
//! automatic consent), a bridge in front of it on free ports with users but no mailboxes, and
//! an HTTP client that keeps the web admin's cookies by hand.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use graphbridge::admin::core as admin;
use graphbridge::app::{self, Listeners, Running};
use graphbridge::bridge::Bridge;
use graphbridge::config::Config;
use graphbridge::demo::{self, RunningEmulator};
use graphbridge::emulator::EmulatorArgs;
use graphbridge::mailstore::Store;
use graphbridge::secrets::SecretBox;
use tokio::net::TcpListener;

pub const ADMIN_PASSWORD: &str = "admin-pw";
pub const USER_PASSWORD: &str = "user-pw";
/// Assigned in the tests: anna (main) and bob. carl is never assigned.
pub const USERS: &[&str] = &["anna", "bob", "carl"];
pub const MAILBOX: &str = "support@contoso.test";

pub struct Setup {
    pub emulator: RunningEmulator,
    pub running: Running,
    pub data_dir: tempfile::TempDir,
    pub base: String,
}

impl Setup {
    pub async fn stop(self) {
        self.running.stop().await;
        self.emulator.stop().await;
    }

    pub fn store(&self) -> &Store {
        &self.running.bridge.store
    }
}

/// The demo tenant without automatic consent, and a bridge with users, an admin password and
/// no mailbox. `public_url_loopback_ip`: make browsers come back to 127.0.0.1 rather than
/// localhost after sign-in.
pub async fn start(public_url_loopback_ip: bool) -> Setup {
    graphbridge::tls::install_crypto_provider();
    let args = EmulatorArgs {
        port: 0,
        fixtures: Some(demo::default_fixtures()),
        ..EmulatorArgs::default()
    };
    let emulator = RunningEmulator::start(&args)
        .await
        .expect("emulator starts");
    let data_dir = tempfile::tempdir().expect("tempdir");
    let listeners = Listeners {
        imap: bind().await,
        smtp: bind().await,
        smtps: None,
        imaps: None,
        http: bind().await,
    };
    let http = listeners.http.local_addr().expect("http addr");
    let mut config = Config {
        data_dir: data_dir.path().to_path_buf(),
        ..Config::default()
    };
    config.graph.base_url = format!("http://{}/v1.0", emulator.addr);
    config.graph.login_url = format!("http://{}", emulator.addr);
    config.graph.client_id = "graphbridge-tests".into();
    config.sync.poll_interval_secs = 1;
    if public_url_loopback_ip {
        config.http.public_url = format!("http://{http}");
    }
    let store = Store::open(&config.database_path()).expect("store");
    admin::set_admin_password(&store, ADMIN_PASSWORD).expect("admin password");
    for user in USERS {
        admin::add_user(&store, user, USER_PASSWORD).expect("user");
    }
    let secrets = SecretBox::load_or_create(data_dir.path()).expect("key");
    let bridge = Bridge::new(config, store, secrets).expect("bridge");
    let running = app::start(bridge, listeners).await.expect("bridge starts");
    // The origin the web admin asks browsers to use.
    let base = if public_url_loopback_ip {
        format!("http://{}", running.http)
    } else {
        format!("http://localhost:{}", running.http.port())
    };
    Setup {
        emulator,
        base,
        running,
        data_dir,
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind")
}

/// A client that follows no redirects, so each step can be checked.
pub fn http() -> reqwest::Client {
    graphbridge::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` from a response's `Set-Cookie` headers, with the whole header.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| {
            let value = h
                .split(';')
                .next()?
                .trim()
                .strip_prefix(&format!("{name}="))?;
            Some((value.to_string(), h.to_string()))
        })
}

/// The value of the first hidden `csrf` input of a page.
pub fn csrf_of(page: &str) -> String {
    let marker = "name=csrf value=\"";
    let start = page.find(marker).expect("page has a CSRF token") + marker.len();
    let end = page[start..].find('"').expect("token ends") + start;
    page[start..end].to_string()
}

/// A logged-in web admin session.
pub struct WebAdmin {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
}

impl WebAdmin {
    pub async fn login(base: &str) -> WebAdmin {
        let http = http();
        let page = http
            .get(format!("{base}/login"))
            .send()
            .await
            .expect("login page");
        let (login_cookie, _) = set_cookie(&page, "gb_login").expect("login cookie");
        let csrf = csrf_of(&page.text().await.expect("body"));
        let response = http
            .post(format!("{base}/login"))
            .header("Cookie", format!("gb_login={login_cookie}"))
            .form(&[("csrf", csrf.as_str()), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 303, "login succeeds");
        let (cookie, _) = set_cookie(&response, "gb_session").expect("session cookie");
        WebAdmin {
            http,
            base: base.to_string(),
            cookie,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("Cookie", format!("gb_session={}", self.cookie))
            .send()
            .await
            .expect("GET")
    }

    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("body")
    }

    /// Posts a form with the session's CSRF token (read from the front page).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let csrf = csrf_of(&self.page("/").await);
        let mut form: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post_raw(path, &form).await
    }

    pub async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("Cookie", format!("gb_session={}", self.cookie))
            .form(form)
            .send()
            .await
            .expect("POST")
    }
}

/// The raw bytes of the store's files (database and WAL), to look for secrets in.
pub fn store_bytes(data_dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["graphbridge.sqlite3", "graphbridge.sqlite3-wal"] {
        let path: PathBuf = data_dir.join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            all.extend(bytes);
        }
    }
    all
}

/// The refresh token stored for a mailbox, unsealed with the data folder's key.
pub fn stored_refresh_token(data_dir: &std::path::Path, address: &str) -> String {
    let store = Store::open(&data_dir.join("graphbridge.sqlite3")).expect("store");
    let secrets = SecretBox::load_or_create(data_dir).expect("key");
    let record = admin::mailbox(&store, address).expect("mailbox");
    let tokens = store
        .call_blocking(|c| graphbridge::mailstore::accounts::load_tokens(c, record.id))
        .expect("tokens")
        .expect("a token row");
    let plain = secrets
        .open(&tokens.refresh_token)
        .expect("sealed with the data folder's key");
    String::from_utf8(plain).expect("token text")
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
