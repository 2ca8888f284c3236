//! The administration commands, run as the built `graphbridge` binary against a throwaway data
//! folder: every command, and a clear error for every mistake.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use graphbridge::demo::{self, RunningEmulator};
use graphbridge::emulator::EmulatorArgs;
use graphbridge::mailstore::Store;
use graphbridge::secrets::SecretBox;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_graphbridge");

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    /// A data folder and a configuration; `graph` points sign-in at an emulator.
    fn new(graph: Option<std::net::SocketAddr>) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut text = format!("data_dir = {:?}\n", data.display().to_string());
        if let Some(graph) = graph {
            text.push_str(&format!(
                "[graph]\nbase_url = \"http://{graph}/v1.0\"\nlogin_url = \"http://{graph}\"\nclient_id = \"cli-tests\"\n"
            ));
        }
        let config = dir.path().join("bridge.toml");
        std::fs::write(&config, text).expect("config");
        Env { dir, config }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(BIN);
        command.args(args).arg("--config").arg(&self.config);
        command.env("RUST_LOG", "warn");
        command
    }

    /// Runs a command with `stdin` as standard input (empty when None).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run graphbridge");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("write stdin");
        drop(input);
        child.wait_with_output().expect("graphbridge finishes")
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs a command that must fail with an error containing `expected`.
    fn fails(&self, args: &[&str], expected: &str) {
        self.fails_with(args, None, expected)
    }

    fn fails_with(&self, args: &[&str], stdin: Option<&str>, expected: &str) {
        let out = self.run(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains("error: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
    }

    fn store(&self) -> Store {
        Store::open(&self.data().join("graphbridge.sqlite3")).expect("store")
    }
}

fn count(store: &Store, sql: &str) -> i64 {
    store
        .call_blocking(|c| c.query_row(sql, [], |row| row.get(0)))
        .expect("count")
}

#[test]
fn user_commands_and_their_errors() {
    let env = Env::new(None);
    assert!(env
        .ok_with(
            &["user", "add", "anna", "--password-stdin"],
            Some("s3cret\n")
        )
        .contains("user anna added"));
    env.fails_with(
        &["user", "add", "anna", "--password-stdin"],
        Some("x"),
        "user anna already exists",
    );
    env.fails_with(
        &["user", "add", "a b", "--password-stdin"],
        Some("x"),
        "user names may not",
    );
    env.fails_with(
        &["user", "add", "bob", "--password-stdin"],
        Some("\n"),
        "passwords must not be empty",
    );
    // No password on the command line, and no prompt without a terminal.
    env.fails(&["user", "add", "bob"], "--password-stdin");
    let out = env.run(&["user", "add", "bob", "--password", "x"], None);
    assert!(!out.status.success(), "there is no --password flag");
    env.ok_with(&["user", "add", "bob", "--password-stdin"], Some("pw"));

    let list = env.ok(&["user", "list"]);
    assert!(list.contains("anna") && list.contains("bob"), "{list}");

    env.ok_with(
        &["user", "passwd", "anna", "--password-stdin"],
        Some("n3w\n"),
    );
    let hash = env
        .store()
        .call_blocking(|c| graphbridge::mailstore::accounts::user_by_name(c, "anna"))
        .expect("read")
        .expect("anna")
        .password_hash;
    assert!(
        graphbridge::auth::verify_password(&hash, "n3w"),
        "the new password, without its newline"
    );
    assert!(hash.starts_with("$argon2id$"));
    env.fails_with(
        &["user", "passwd", "nobody", "--password-stdin"],
        Some("x"),
        "no user named nobody",
    );

    env.ok(&["user", "remove", "bob"]);
    env.fails(&["user", "remove", "bob"], "no user named bob");
    assert!(!env.ok(&["user", "list"]).contains("bob"));
}

#[test]
fn mailbox_commands_and_their_errors() {
    let env = Env::new(None);
    for user in ["anna", "bob", "carl"] {
        env.ok_with(&["user", "add", user, "--password-stdin"], Some("pw"));
    }
    let out = env.ok(&["mailbox", "import", "sales@contoso.test"]);
    assert!(
        out.contains("even users who do not have access to the Microsoft account"),
        "{out}"
    );
    env.fails(
        &["mailbox", "import", "sales@contoso.test"],
        "already imported",
    );
    env.fails(
        &["mailbox", "import", "not-an-address"],
        "not-an-address is not an email address",
    );
    env.fails(
        &[
            "mailbox",
            "import",
            "x@contoso.test",
            "--alias-of",
            "nope@contoso.test",
        ],
        "no mailbox nope@contoso.test",
    );
    env.ok(&[
        "mailbox",
        "import",
        "info@contoso.test",
        "--alias-of",
        "sales@contoso.test",
    ]);
    env.fails(
        &[
            "mailbox",
            "import",
            "x@contoso.test",
            "--alias-of",
            "info@contoso.test",
        ],
        "is itself an alias",
    );

    env.fails(
        &["mailbox", "assign", "sales@contoso.test", "nobody"],
        "no user named nobody",
    );
    env.fails(
        &["mailbox", "assign", "nope@contoso.test", "anna"],
        "no mailbox nope@contoso.test",
    );
    assert!(env
        .ok(&["mailbox", "assign", "sales@contoso.test", "anna"])
        .contains("as main user"));
    env.ok(&["mailbox", "assign", "sales@contoso.test", "bob"]);
    env.fails(
        &["mailbox", "assign", "sales@contoso.test", "bob", "--main"],
        "already has a main user (anna)",
    );
    env.ok(&["mailbox", "assign", "info@contoso.test", "carl"]);

    let list = env.ok(&["mailbox", "list"]);
    let sales = list
        .lines()
        .find(|l| l.starts_with("sales@contoso.test"))
        .expect("sales row");
    assert!(sales.contains("never signed in"), "{sales}");
    assert!(sales.contains("not started"), "{sales}");
    assert!(sales.contains("anna (main), bob"), "{sales}");
    let info = list
        .lines()
        .find(|l| l.starts_with("info@contoso.test"))
        .expect("info row");
    assert!(
        info.contains("alias") && info.contains("carl (main)"),
        "{info}"
    );

    env.fails(
        &["mailbox", "unassign", "sales@contoso.test", "anna"],
        "anna is the main user of sales@contoso.test",
    );
    env.fails(&["user", "remove", "anna"], "anna is the main user");
    env.fails(
        &["mailbox", "unassign", "sales@contoso.test", "carl"],
        "carl is not assigned to sales@contoso.test",
    );
    env.ok(&[
        "mailbox",
        "assign",
        "sales@contoso.test",
        "bob",
        "--replace-main",
    ]);
    env.ok(&["mailbox", "unassign", "sales@contoso.test", "anna"]);
    let list = env.ok(&["mailbox", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("sales@contoso.test") && l.ends_with("bob (main)")),
        "{list}"
    );

    assert!(env
        .ok(&[
            "mailbox",
            "set",
            "sales@contoso.test",
            "recipient-limit",
            "25"
        ])
        .contains("recipient_limit = 25"));
    env.ok(&[
        "mailbox",
        "set",
        "sales@contoso.test",
        "sent_copy",
        "client",
    ]);
    env.ok(&[
        "mailbox",
        "set",
        "sales@contoso.test",
        "book_external_sends",
        "no",
    ]);
    env.ok(&[
        "mailbox",
        "set",
        "sales@contoso.test",
        "agreement_text",
        "Please accept the terms.",
    ]);
    env.fails(
        &[
            "mailbox",
            "set",
            "sales@contoso.test",
            "recipient_limit",
            "many",
        ],
        "expected a number from 1 to 500",
    );
    env.fails(
        &["mailbox", "set", "sales@contoso.test", "sent_copy", "both"],
        "one of graph, client",
    );
    env.fails(
        &["mailbox", "set", "sales@contoso.test", "colour", "red"],
        "unknown setting colour",
    );
    env.fails(
        &["mailbox", "set", "nope@contoso.test", "sent_copy", "graph"],
        "no mailbox nope@contoso.test",
    );
    let show = env.ok(&["mailbox", "show", "sales@contoso.test"]);
    for expected in [
        "recipient_limit      25",
        "sent_copy            client",
        "book_external_sends  no",
        "Please accept the terms.",
    ] {
        assert!(show.contains(expected), "{expected:?} in {show}");
    }

    env.fails(
        &["mailbox", "signin", "info@contoso.test"],
        "sign in sales@contoso.test instead",
    );
    env.fails(
        &["mailbox", "signin", "sales@contoso.test"],
        "graph.client_id is not set",
    );
    env.fails(
        &["mailbox", "remove", "sales@contoso.test"],
        "has alias mailboxes (info@contoso.test)",
    );
    env.ok(&["mailbox", "remove", "info@contoso.test"]);
    env.ok(&["mailbox", "remove", "sales@contoso.test"]);
    env.fails(
        &["mailbox", "remove", "sales@contoso.test"],
        "no mailbox sales@contoso.test",
    );
    assert_eq!(
        env.ok(&["mailbox", "list"]).lines().count(),
        1,
        "only the header is left"
    );
}

#[test]
fn admin_password_and_api_token() {
    let env = Env::new(None);
    env.fails(&["admin", "password"], "--password-stdin");
    env.ok_with(&["admin", "password", "--password-stdin"], Some("web-pw\n"));
    let store = env.store();
    assert!(graphbridge::admin::core::check_admin_password(&store, "web-pw").expect("check"));
    let token = env.ok(&["admin", "token"]).trim().to_string();
    assert!(token.len() >= 40, "{token}");
    assert!(graphbridge::admin::core::check_api_token(&store, &token).expect("check"));
    let second = env.ok(&["admin", "token"]).trim().to_string();
    assert!(
        !graphbridge::admin::core::check_api_token(&store, &token).expect("check"),
        "replaced"
    );
    assert!(graphbridge::admin::core::check_api_token(&store, &second).expect("check"));
    let bytes = std::fs::read(env.data().join("graphbridge.sqlite3")).expect("db");
    assert!(
        !bytes.windows(second.len()).any(|w| w == second.as_bytes()),
        "only a hash is stored"
    );
}

async fn emulator(auto_consent: Option<&str>) -> RunningEmulator {
    let args = EmulatorArgs {
        port: 0,
        fixtures: Some(demo::default_fixtures()),
        auto_consent: auto_consent.map(str::to_string),
        ..EmulatorArgs::default()
    };
    RunningEmulator::start(&args).await.expect("emulator")
}

async fn run_async(env: &Env, args: &[&str]) -> Output {
    tokio::process::Command::from(env.command(args))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run graphbridge")
}

fn stored_plaintext_absent(data: &Path, address: &str) {
    let store = Store::open(&data.join("graphbridge.sqlite3")).expect("store");
    let secrets = SecretBox::load_or_create(data).expect("key");
    let record = graphbridge::admin::core::mailbox(&store, address).expect("mailbox");
    let tokens = store
        .call_blocking(|c| graphbridge::mailstore::accounts::load_tokens(c, record.id))
        .expect("read")
        .expect("tokens stored");
    let refresh = secrets
        .open(&tokens.refresh_token)
        .expect("sealed with the data folder's key");
    assert!(refresh.len() > 20);
    let mut files = Vec::new();
    for name in ["graphbridge.sqlite3", "graphbridge.sqlite3-wal"] {
        files.extend(std::fs::read(data.join(name)).unwrap_or_default());
    }
    assert!(
        !files
            .windows(refresh.len())
            .any(|w| w == refresh.as_slice()),
        "refresh token in plaintext"
    );
}

#[tokio::test]
async fn signin_with_the_device_code_then_remove_deletes_tokens_and_mail() {
    let graph = emulator(Some("sales@contoso.test")).await;
    let env = Env::new(Some(graph.addr));
    env.ok_with(&["user", "add", "anna", "--password-stdin"], Some("pw"));
    env.ok(&["mailbox", "import", "sales@contoso.test"]);
    env.ok(&["mailbox", "assign", "sales@contoso.test", "anna"]);
    let out = run_async(&env, &["mailbox", "signin", "sales@contoso.test"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/devicelogin"), "the URL to open: {stdout}");
    assert!(
        stdout.contains("even users who do not have access to the Microsoft account"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sales@contoso.test is signed in"),
        "{stdout}"
    );
    assert!(env.ok(&["mailbox", "list"]).contains("signed in"));
    stored_plaintext_absent(&env.data(), "sales@contoso.test");

    // Fill the cache as a running bridge would, then remove the mailbox.
    {
        let config = graphbridge::config::Config::load(&env.config).expect("config");
        let store = env.store();
        let secrets = SecretBox::load_or_create(&env.data()).expect("key");
        let record =
            graphbridge::admin::core::mailbox(&store, "sales@contoso.test").expect("mailbox");
        let bridge = graphbridge::bridge::Bridge::new(config, store, secrets).expect("bridge");
        let sync = bridge.attach_account(record.id).await.expect("attach");
        sync.sync_once().await.expect("sync");
        sync.fetch_missing_bodies().await.expect("bodies");
    }
    let store = env.store();
    assert!(count(&store, "SELECT COUNT(*) FROM messages") > 0);
    assert!(count(&store, "SELECT COUNT(*) FROM bodies") > 0);
    let list = env.ok(&["mailbox", "list"]);
    assert!(list.contains("complete: folders"), "{list}");
    env.ok(&["mailbox", "remove", "sales@contoso.test"]);
    for table in [
        "tokens",
        "folders",
        "messages",
        "bodies",
        "assignments",
        "mailboxes",
    ] {
        assert_eq!(
            count(&store, &format!("SELECT COUNT(*) FROM {table}")),
            0,
            "{table} emptied"
        );
    }
    graph.stop().await;
}

#[tokio::test]
async fn signin_in_a_browser_with_a_loopback_redirect() {
    let graph = emulator(Some("sales@contoso.test")).await;
    let env = Env::new(Some(graph.addr));
    env.ok(&["mailbox", "import", "sales@contoso.test"]);
    let mut child = tokio::process::Command::from(env.command(&[
        "mailbox",
        "signin",
        "sales@contoso.test",
        "--browser",
    ]))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("the URL is printed");
        if line.starts_with("http://") {
            break line;
        }
    };
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(
        url.contains("redirect_uri=http%3A%2F%2Flocalhost%3A"),
        "{url}"
    );
    // The emulator approves at once and redirects to the command's loopback listener.
    graphbridge::tls::install_crypto_provider();
    let page = reqwest::get(&url)
        .await
        .expect("authorize")
        .text()
        .await
        .expect("page");
    assert!(page.contains("Signed in"), "{page}");
    let mut rest = String::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        rest.push_str(&line);
        rest.push('\n');
    }
    let status = child.wait().await.expect("exit");
    assert!(status.success(), "{rest}");
    assert!(rest.contains("sales@contoso.test is signed in"), "{rest}");
    stored_plaintext_absent(&env.data(), "sales@contoso.test");
    graph.stop().await;
}

#[tokio::test]
async fn a_declined_browser_signin_is_a_clear_error() {
    let graph = emulator(None).await;
    let env = Env::new(Some(graph.addr));
    env.ok(&["mailbox", "import", "sales@contoso.test"]);
    let mut child = tokio::process::Command::from(env.command(&[
        "mailbox",
        "signin",
        "sales@contoso.test",
        "--browser",
    ]))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("the URL is printed");
        if line.starts_with("http://") {
            break line;
        }
    };
    let parsed = reqwest::Url::parse(&url).expect("url");
    let redirect = parsed
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .expect("redirect_uri");
    let state = parsed
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    // What Microsoft sends when the person cancels.
    graphbridge::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let forged = client
        .get(format!(
            "{redirect}/?error=access_denied&state=someone-else"
        ))
        .send()
        .await
        .expect("loopback");
    assert_eq!(
        forged.status(),
        200,
        "answers for another state are ignored"
    );
    client
        .get(format!(
            "{redirect}/?error=access_denied&error_description=cancelled&state={state}"
        ))
        .send()
        .await
        .expect("loopback");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .await
        .expect("stderr");
    let status = child.wait().await.expect("exit");
    assert!(!status.success());
    assert!(stderr.contains("access_denied"), "{stderr}");
    assert!(env.ok(&["mailbox", "list"]).contains("never signed in"));
    graph.stop().await;
}
