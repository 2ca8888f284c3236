//! The administration commands: `graphbridge user …`, `graphbridge mailbox …` and
//! `graphbridge admin …`, over the same core as the web admin. Passwords come from a prompt
//! (not echoed) or from standard input, never from the command line, where other local users
//! could read them.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Subcommand;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::core::{self as admin, Role};
use super::html::SHARED_WARNING;
use crate::bridge::Bridge;
use crate::config::Config;
use crate::graph::Pkce;
use crate::mailstore::Store;
use crate::secrets::SecretBox;

pub type CliError = Box<dyn std::error::Error>;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from a prompt or, with --password-stdin, from stdin.
    Add {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with the mailboxes they are assigned to (👑 marks the main user).
    List,
    /// Change a user's password (from a prompt or --password-stdin).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user and their assignments.
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum MailboxCommand {
    /// Import a Microsoft 365 mailbox by address, or an alias mailbox of an imported one.
    Import {
        address: String,
        #[arg(long, value_name = "ADDRESS")]
        alias_of: Option<String>,
    },
    /// List imported mailboxes with their sign-in state, sync progress and users.
    List,
    /// Show one mailbox: state, sync progress, users and settings.
    Show { address: String },
    /// Assign a user to a mailbox; --main makes them its main user (the first user is anyway).
    Assign {
        address: String,
        user: String,
        #[arg(long)]
        main: bool,
        /// Make USER the main user even though the mailbox has one (who stays assigned).
        #[arg(long)]
        replace_main: bool,
    },
    /// Take a user off a mailbox.
    Unassign { address: String, user: String },
    /// Change a setting: sent_copy, book_external_sends, attachment_policy, recipient_limit,
    /// poll_interval_secs, delete_behaviour, agreement_text.
    Set {
        address: String,
        key: String,
        value: String,
    },
    /// Sign a mailbox in with Microsoft: prints a URL and a code and waits (device code flow).
    Signin {
        address: String,
        /// Sign in in a browser instead (authorization code with PKCE, redirect to this machine).
        #[arg(long)]
        browser: bool,
    },
    /// Remove a mailbox with its Microsoft sign-in and all mail the bridge cached for it.
    Remove { address: String },
    /// Sync a signed-in mailbox now, in the foreground, with a progress bar.
    Sync { address: String },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Set the web admin password (from a prompt or --password-stdin).
    Password {
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a new JSON API bearer token (the previous one stops working) and print it.
    Token,
}

pub fn open_store(config: &Config) -> Result<Store, CliError> {
    std::fs::create_dir_all(&config.data_dir)?;
    Ok(Store::open(&config.database_path())?)
}

pub fn user(config: &Config, command: UserCommand) -> Result<(), CliError> {
    let store = open_store(config)?;
    match command {
        UserCommand::Add {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin, true)?;
            admin::add_user(&store, &name, &password)?;
            println!("user {name} added");
        }
        UserCommand::List => print_users(&store)?,
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            // Check the name first so a typo does not cost a password prompt.
            admin::list_users(&store)?
                .iter()
                .find(|u| u.name == name)
                .ok_or_else(|| admin::AdminError::UnknownUser(name.clone()))?;
            let password = read_password(password_stdin, true)?;
            admin::set_password(&store, &name, &password)?;
            println!("password of {name} changed");
        }
        UserCommand::Remove { name } => {
            admin::remove_user(&store, &name)?;
            println!("user {name} removed");
        }
    }
    Ok(())
}

fn print_users(store: &Store) -> Result<(), CliError> {
    let users = admin::list_users(store)?;
    println!("{:<24} MAILBOXES", "USER");
    for u in users {
        let mailboxes: Vec<String> = u
            .mailboxes
            .iter()
            .map(|(a, main)| {
                if *main {
                    format!("{a} (main)")
                } else {
                    a.clone()
                }
            })
            .collect();
        println!("{:<24} {}", u.name, mailboxes.join(", "));
    }
    Ok(())
}

pub async fn mailbox(config: Config, command: MailboxCommand) -> Result<(), CliError> {
    let store = open_store(&config)?;
    match command {
        MailboxCommand::Import { address, alias_of } => {
            let record = admin::import_mailbox(&store, &address, alias_of.as_deref())?;
            println!("mailbox {} imported", record.address);
            match alias_of {
                Some(primary) => println!("it uses the sign-in of {primary}; assign users next"),
                None => println!(
                    "next: assign users, then run `graphbridge mailbox signin {}`",
                    record.address
                ),
            }
            println!("note: {SHARED_WARNING}");
        }
        MailboxCommand::List => print_mailboxes(&store)?,
        MailboxCommand::Show { address } => print_mailbox(&store, &address)?,
        MailboxCommand::Assign {
            address,
            user,
            main,
            replace_main,
        } => {
            let role = match (main, replace_main) {
                (_, true) => Role::ReplaceMain,
                (true, false) => Role::Main,
                (false, false) => Role::Member,
            };
            admin::assign(&store, &address, &user, role)?;
            let overview = admin::mailbox_overview(&store, &address)?;
            let crown = if overview.main_user() == Some(user.as_str()) {
                " as main user"
            } else {
                ""
            };
            println!("{user} assigned to {}{crown}", overview.record.address);
        }
        MailboxCommand::Unassign { address, user } => {
            admin::unassign(&store, &address, &user)?;
            println!("{user} unassigned from {address}");
        }
        MailboxCommand::Set {
            address,
            key,
            value,
        } => {
            let settings = admin::set_setting(&store, &address, &key, &value)?;
            let key = key.replace('-', "_");
            let shown = admin::settings_pairs(&settings)
                .into_iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
                .unwrap_or_default();
            println!("{address}: {key} = {shown}");
        }
        MailboxCommand::Signin { address, browser } => {
            signin(config, store, &address, browser).await?
        }
        MailboxCommand::Sync { address } => {
            let record = admin::mailbox(&store, &address)?;
            let secrets = SecretBox::load_or_create(&config.data_dir)?;
            let bridge = Bridge::new(config, store, secrets)?;
            let sync = bridge.attach_account(record.account_id()).await?;
            let done = sync.sync_foreground().await?;
            println!(
                "{} synced in {:.1} s: {} folders, {} messages, {} bodies ({})",
                record.address,
                done.elapsed.as_secs_f64(),
                done.progress.folders,
                done.progress.messages,
                done.progress.bodies,
                crate::sync::foreground::human_bytes(done.bytes)
            );
        }
        MailboxCommand::Remove { address } => {
            let record = admin::remove_mailbox(&store, &address)?;
            println!(
                "mailbox {} removed with its sign-in and cached mail (a running bridge stops syncing it at its next restart)",
                record.address
            );
        }
    }
    Ok(())
}

fn print_mailboxes(store: &Store) -> Result<(), CliError> {
    let list = admin::list_mailboxes(store)?;
    println!(
        "{:<32} {:<14} {:<16} {:<40} USERS",
        "MAILBOX", "KIND", "SIGN-IN", "SYNC"
    );
    for o in list {
        let users: Vec<String> = o
            .users
            .iter()
            .map(|u| {
                if u.is_main {
                    format!("{} (main)", u.name)
                } else {
                    u.name.clone()
                }
            })
            .collect();
        let state = match &o.alias_of {
            Some(_) => format!("{} (primary)", admin::state_text(o.signin_state)),
            None => admin::state_text(o.signin_state).to_string(),
        };
        println!(
            "{:<32} {:<14} {:<16} {:<40} {}",
            o.record.address,
            o.kind(),
            state,
            o.progress_text(),
            users.join(", ")
        );
    }
    Ok(())
}

fn print_mailbox(store: &Store, address: &str) -> Result<(), CliError> {
    let o = admin::mailbox_overview(store, address)?;
    let settings = admin::settings(store, address)?;
    println!("mailbox      {}", o.record.address);
    println!("kind         {}", o.kind());
    if let Some(primary) = &o.alias_of {
        println!("alias of     {primary}");
    }
    println!("sign-in      {}", admin::state_text(o.signin_state));
    if let Some(error) = &o.last_error {
        println!("last error   {error}");
    }
    println!("sync         {}", o.progress_text());
    let users: Vec<String> = o
        .users
        .iter()
        .map(|u| {
            if u.is_main {
                format!("{} (main)", u.name)
            } else {
                u.name.clone()
            }
        })
        .collect();
    println!("users        {}", users.join(", "));
    println!("settings");
    for (key, value) in admin::settings_pairs(&settings) {
        println!("  {key:<20} {value}");
    }
    Ok(())
}

async fn signin(
    config: Config,
    store: Store,
    address: &str,
    browser: bool,
) -> Result<(), CliError> {
    let record = admin::signin_target(&store, address)?;
    if config.graph.client_id.is_empty() {
        return Err("graph.client_id is not set in the configuration: register an app in Microsoft Entra (see README)".into());
    }
    let secrets = SecretBox::load_or_create(&config.data_dir)?;
    let bridge = Bridge::new(config, store, secrets)?;
    println!("warning: {SHARED_WARNING}");
    if browser {
        signin_browser(&bridge, record.id, &record.address).await?;
    } else {
        bridge
            .signin_device_code(record.id, |code| {
                match &code.message {
                    Some(message) => println!("{message}"),
                    None => println!(
                        "Open {} and enter the code {}",
                        code.verification_uri, code.user_code
                    ),
                }
                println!("Sign in as {}. Waiting…", record.address);
                let _ = std::io::stdout().flush();
            })
            .await?;
    }
    println!("{} is signed in", record.address);
    println!("a running bridge picks the new sign-in up at its next start (or sign in from the web admin instead)");
    Ok(())
}

/// Authorization code flow with PKCE: a one-shot HTTP listener on this machine's loopback
/// receives Microsoft's redirect (RFC 8252, loopback redirect for native apps).
async fn signin_browser(
    bridge: &Arc<Bridge>,
    mailbox_id: i64,
    address: &str,
) -> Result<(), CliError> {
    let v4 = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let port = v4.local_addr()?.port();
    // `localhost` may resolve to ::1 in the browser: listen there too when the system can.
    let v6 = TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))
        .await
        .ok();
    let redirect_uri = format!("http://localhost:{port}");
    let state = admin::random_token(24);
    let pkce = Pkce::new();
    let url = bridge
        .oauth()
        .authorize_url(&redirect_uri, &state, &pkce, Some(address))?;
    println!("Open this address in a browser and sign in as {address}:");
    println!("{url}");
    let _ = std::io::stdout().flush();
    open_browser(&url);
    let (tx, mut rx) = mpsc::channel::<std::collections::HashMap<String, String>>(1);
    let app = loopback_router(tx);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for listener in std::iter::once(v4).chain(v6) {
        let mut stopped = stopped.clone();
        let app = app.clone();
        servers.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await;
        }));
    }
    let params = loop {
        let params = rx.recv().await.ok_or("the loopback listener stopped")?;
        // Answers for another sign-in (an old browser tab) are ignored.
        if params
            .get("state")
            .is_some_and(|s| admin::constant_time_eq(s.as_bytes(), state.as_bytes()))
        {
            break params;
        }
    };
    let _ = stop.send(true);
    for server in servers {
        let _ = server.await;
    }
    if let Some(error) = params.get("error") {
        let description = params.get("error_description").cloned().unwrap_or_default();
        return Err(format!("Microsoft did not sign in: {error}: {description}").into());
    }
    let code = params.get("code").ok_or("Microsoft's answer has no code")?;
    bridge
        .signin_with_code(mailbox_id, code, &redirect_uri, &pkce)
        .await?;
    Ok(())
}

fn loopback_router(tx: mpsc::Sender<std::collections::HashMap<String, String>>) -> axum::Router {
    use axum::extract::Query;
    use axum::response::Html;
    axum::Router::new().route(
        "/",
        axum::routing::get(
            move |Query(params): Query<std::collections::HashMap<String, String>>| {
                let tx = tx.clone();
                async move {
                    let failed = params.contains_key("error");
                    let _ = tx.send(params).await;
                    let text = if failed {
                        "Sign-in did not succeed; see the terminal."
                    } else {
                        "Signed in. You may close this window and return to the terminal."
                    };
                    Html(format!(
                        "<!doctype html><title>graphbridge</title><p>{text}</p>"
                    ))
                }
            },
        ),
    )
}

/// Tries the desktop's browser; the URL is printed anyway for a machine without one.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
        && opener == "xdg-open"
    {
        return;
    }
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

pub fn admin_command(config: &Config, command: AdminCommand) -> Result<(), CliError> {
    let store = open_store(config)?;
    match command {
        AdminCommand::Password { password_stdin } => {
            let password = read_password(password_stdin, true)?;
            admin::set_admin_password(&store, &password)?;
            println!(
                "web admin password set; the web admin listens on http://{}/",
                config.http.listen
            );
        }
        AdminCommand::Token => {
            let token = admin::new_api_token(&store)?;
            println!("{token}");
            eprintln!("this is the JSON API bearer token; it is shown only now, and the previous one no longer works");
        }
    }
    Ok(())
}

/// Reads a password: all of stdin with `--password-stdin` (one trailing newline dropped),
/// otherwise from a prompt on the terminal with echo off, asked twice when `confirm`.
fn read_password(from_stdin: bool, confirm: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut password = String::new();
        std::io::stdin().read_to_string(&mut password)?;
        let password = password.strip_suffix('\n').unwrap_or(&password);
        let password = password.strip_suffix('\r').unwrap_or(password);
        return Ok(password.to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to ask for the password: pass --password-stdin and write it to standard input".into());
    }
    let first = prompt("Password: ")?;
    if confirm {
        let second = prompt("Repeat the password: ")?;
        if first != second {
            return Err("the passwords do not match".into());
        }
    }
    Ok(first)
}

fn prompt(label: &str) -> Result<String, CliError> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let echo_off = set_echo(false);
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if echo_off {
        set_echo(true);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Switches terminal echo with `stty`, which works on the terminal it inherits as stdin.
fn set_echo(on: bool) -> bool {
    std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}
