//! The web admin in a real browser: headless Chromium driven through chromedriver's WebDriver
//! HTTP API. An administrator logs in, imports a mailbox of the emulated tenant, assigns two
//! users (one main), signs in with Microsoft on the emulator's sign-in page and watches the
//! mailbox reach "signed in" with its sync complete; then the assigned user reads it over IMAP
//! and a user who is not assigned is refused.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test says SKIPPED,
//! except under CI (`CI` set), where it fails.

mod admin_support;
mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use admin_support::{ADMIN_PASSWORD, MAILBOX, USER_PASSWORD};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session in a chromedriver started for this test.
struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let ready = common::eventually(Duration::from_secs(30), || {
            let http = http.clone();
            let url = format!("{base}/status");
            async move {
                match http.get(url).send().await {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["value"]["ready"] == true),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(ready, "chromedriver answers");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"));
        Browser {
            http,
            session: format!("{base}/session/{id}"),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err(error) => panic!("WebDriver {path}: {error}"),
        }
    }

    /// A WebDriver command; Err carries WebDriver's error object.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("WebDriver")
            .json()
            .await
            .expect("WebDriver JSON");
        if answer["value"]["error"].is_string() {
            return Err(answer["value"].clone());
        }
        Ok(answer["value"].clone())
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn refresh(&self) {
        self.call(reqwest::Method::POST, "/refresh", Some(json!({})))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// Clicks an element. A page that was still being replaced when the element was found
    /// answers "stale element reference": find it again in the new page.
    async fn click(&self, css: &str) {
        for _ in 0..20 {
            let id = self.find(css).await;
            let clicked = self
                .try_call(
                    reqwest::Method::POST,
                    &format!("/element/{id}/click"),
                    Some(json!({})),
                )
                .await;
            match clicked {
                Ok(_) => return,
                Err(e) if e["error"] == "stale element reference" => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
        panic!("{css} stayed stale");
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Clicks something that submits a form or follows a link, and waits until the next page
    /// has replaced this one (the old document carries a mark the new one lacks).
    async fn click_and_wait(&self, css: &str) {
        self.script("window.__before_click = true;").await;
        self.click(css).await;
        for _ in 0..600 {
            let replaced = self
                .try_call(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({"script": "return !window.__before_click && document.readyState === 'complete';", "args": []})),
                )
                .await;
            if replaced == Ok(Value::Bool(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("clicking {css} led to no new page");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        let v = self
            .call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn attribute(&self, css: &str, name: &str) -> String {
        let id = self.find(css).await;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{id}/attribute/{name}"),
                None,
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// True when the browser can run; otherwise says SKIPPED loudly (past the test harness's
/// output capture) or, under CI, fails.
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install Debian's chromium and chromium-driver: missing {missing:?}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: chromium not installed (missing {missing:?}); install Debian's chromium and chromium-driver ***\n"
    );
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_imports_assigns_and_signs_in_a_mailbox_in_chromium() {
    if !browser_available() {
        return;
    }
    let setup = admin_support::start(false).await;
    let base = setup.base.clone();
    let browser = Browser::start().await;

    // Log in, coming through 127.0.0.1: the bridge moves the browser to its one origin.
    browser
        .goto(&format!("http://{}/", setup.running.http))
        .await;
    assert_eq!(
        browser.url().await,
        format!("{base}/login"),
        "sent to the login page"
    );
    browser.type_into("#password", ADMIN_PASSWORD).await;
    browser.click_and_wait("#login").await;
    assert_eq!(browser.url().await, format!("{base}/"));
    assert!(browser
        .text("main")
        .await
        .contains("No mailbox has been imported yet"));

    // Import a mailbox of the emulated tenant.
    browser.type_into("#address", MAILBOX).await;
    browser.click_and_wait("#import").await;
    let mailbox_page = format!("{base}/mailboxes/{MAILBOX}");
    assert_eq!(browser.url().await, mailbox_page);
    assert!(browser.text("#notice").await.contains("imported"));
    assert_eq!(
        browser.attribute("#signin-state", "data-state").await,
        "never"
    );

    // Assign anna as main user, then bob.
    browser.click("#assign-user option[value=\"anna\"]").await;
    browser.click("#assign-main").await;
    browser.click_and_wait("#assign").await;
    browser.click("#assign-user option[value=\"bob\"]").await;
    browser.click_and_wait("#assign").await;
    let assigned = browser.text("#assigned").await;
    let anna = assigned
        .lines()
        .find(|l| l.contains("anna"))
        .expect("anna listed");
    assert!(anna.contains("👑"), "anna wears the crown: {assigned}");
    let bob = assigned
        .lines()
        .find(|l| l.starts_with("bob"))
        .expect("bob listed");
    assert!(!bob.contains("👑"), "{assigned}");

    // Sign in with Microsoft, on the emulator's page.
    assert!(browser
        .text("main")
        .await
        .contains("even users who do not have access to the Microsoft account"));
    browser.click_and_wait("#signin").await;
    let authorize = browser.url().await;
    assert!(
        authorize.contains("/oauth2/v2.0/authorize"),
        "at Microsoft's sign-in: {authorize}"
    );
    browser
        .click_and_wait(&format!("button[value=\"{MAILBOX}\"]"))
        .await;

    // Back at the bridge: signed in, and sync runs to the end.
    let done = common::eventually(Duration::from_secs(90), || async {
        if browser.url().await != mailbox_page {
            return false;
        }
        browser.refresh().await;
        browser.attribute("#signin-state", "data-state").await == "signed_in"
            && browser.attribute("#sync-progress", "data-complete").await == "true"
    })
    .await;
    assert!(
        done,
        "signed in and synced; the browser is at {}",
        browser.url().await
    );
    assert!(browser.text("#sync-progress").await.starts_with("complete"));
    browser.quit().await;

    // anna reads the mailbox over IMAP; carl, not assigned, is refused.
    let mut imap = common::Imap::login(setup.running.imap, "anna", USER_PASSWORD).await;
    let select = imap.cmd("SELECT INBOX").await;
    select.assert_ok();
    assert!(select.find("3 EXISTS").is_some(), "{:?}", select.untagged);
    let fetch = imap.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]").await;
    fetch.assert_ok();
    for login in ["carl".to_string(), format!("{MAILBOX}*carl")] {
        let mut carl = common::Imap::connect(setup.running.imap).await;
        let reply = carl.cmd(&format!("LOGIN {login} {USER_PASSWORD}")).await;
        assert!(!reply.ok(), "{login} is refused: {}", reply.status);
    }
    setup.stop().await;
}
