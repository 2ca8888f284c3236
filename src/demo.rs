//! `graphbridge demo`: the Graph emulator with the demo tenant, and the bridge in front of it,
//! in one process. Used by people trying the bridge and by the integration tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::admin::core::{self as admin, AdminError};
use crate::app::{self, Listeners, Running};
use crate::bridge::{Bridge, BridgeError};
use crate::config::Config;
use crate::emulator::{Emulator, EmulatorArgs, EmulatorError};
use crate::mailstore::{accounts, SigninState, Store, StoreError};
use crate::secrets::{SecretBox, SecretError};

pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo";
pub const DEMO_MAILBOX: &str = "sales@contoso.test";
pub const DEMO_ALIAS: &str = "info@contoso.test";
/// Any client id works against the emulator; this one names the demo in its logs.
const DEMO_CLIENT_ID: &str = "graphbridge-demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Bridge(#[from] BridgeError),
}

/// Where the demo listens; port 0 picks a free port (the tests use that).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub imap_port: u16,
    pub smtp_port: u16,
    pub http_port: u16,
    /// The emulator's flags; its `port` is the Graph port.
    pub emulator: EmulatorArgs,
    /// None: a fresh temporary folder, removed when the demo stops.
    pub data_dir: Option<PathBuf>,
    pub poll_interval_secs: u64,
    /// Last changes to the bridge's configuration (tests use it to try other settings).
    pub adjust_config: Option<fn(&mut Config)>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            imap_port: 1143,
            smtp_port: 1587,
            http_port: 8080,
            emulator: demo_emulator_args(EmulatorArgs::default()),
            data_dir: None,
            poll_interval_secs: 10,
            adjust_config: None,
        }
    }
}

/// The emulator flags the demo needs unless the caller set them: the demo fixtures and
/// automatic consent as the demo mailbox.
pub fn demo_emulator_args(mut args: EmulatorArgs) -> EmulatorArgs {
    if args.fixtures.is_none() {
        args.fixtures = Some(default_fixtures());
    }
    if args.auto_consent.is_none() {
        args.auto_consent = Some(DEMO_MAILBOX.to_string());
    }
    args
}

/// `fixtures/demo` of this source tree.
pub fn default_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("demo")
}

/// The emulated Microsoft 365 tenant, serving on loopback.
pub struct RunningEmulator {
    pub addr: SocketAddr,
    pub emulator: Emulator,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningEmulator {
    pub async fn start(args: &EmulatorArgs) -> Result<RunningEmulator, DemoError> {
        let emulator = Emulator::new(args)?;
        let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(emulator.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(RunningEmulator {
            addr,
            emulator,
            stop,
            task,
        })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The demo: the emulator and the bridge in front of it.
pub struct Demo {
    pub running: Running,
    pub graph: RunningEmulator,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Demo {
    /// Stops the bridge and the emulator. With a data folder of its own (`--data-dir`), the
    /// emulated mailboxes are saved there first, so the next demo continues where this one
    /// stopped: Microsoft 365 keeps its mail too.
    pub async fn stop(self) {
        self.running.stop().await;
        if self._temp.is_none() {
            let dir = emulator_state_dir(&self.data_dir);
            match self.graph.emulator.dump(&dir) {
                Ok(_) => tracing::info!(dir = %dir.display(), "emulated mailboxes saved"),
                Err(e) => tracing::warn!(error = %e, "cannot save the emulated mailboxes"),
            }
        }
        self.graph.stop().await;
    }
}

/// Where a demo with its own data folder keeps the emulated tenant between runs.
fn emulator_state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("emulator")
}

pub async fn start(options: DemoOptions) -> Result<Demo, DemoError> {
    let mut emulator_args = options.emulator.clone();
    if let Some(dir) = &options.data_dir {
        let saved = emulator_state_dir(dir);
        if saved.join("tenant.json").exists() {
            emulator_args.fixtures = Some(saved);
        }
    }
    let graph = RunningEmulator::start(&emulator_args).await?;
    let (data_dir, temp) = match &options.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("graphbridge-demo-")
                .tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let running = start_bridge(&options, graph.addr, &data_dir).await?;
    Ok(Demo {
        running,
        graph,
        data_dir,
        _temp: temp,
    })
}

/// Starts the bridge alone against an emulator at `graph`, provisioning the demo user and
/// mailboxes and signing in on first use of `data_dir`.
pub async fn start_bridge(
    options: &DemoOptions,
    graph: SocketAddr,
    data_dir: &Path,
) -> Result<Running, DemoError> {
    std::fs::create_dir_all(data_dir)?;
    let config = demo_config(options, graph, data_dir);
    let listeners = Listeners::bind(&config).await?;
    let store = Store::open(&config.database_path())?;
    let secrets = SecretBox::load_or_create(data_dir)?;
    provision(&store)?;
    let bridge = Bridge::new(config, store, secrets)?;
    sign_in_demo_mailbox(&bridge).await?;
    Ok(app::start(bridge, listeners).await?)
}

fn demo_config(options: &DemoOptions, graph: SocketAddr, data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.imap.listen = SocketAddr::from(([127, 0, 0, 1], options.imap_port));
    config.smtp.listen = SocketAddr::from(([127, 0, 0, 1], options.smtp_port));
    // Implicit TLS on 1465 beside 1587; on a free port when SMTP asked for one (tests).
    let smtps_port = if options.smtp_port == 0 { 0 } else { 1465 };
    let imaps_port = if options.imap_port == 0 { 0 } else { 1993 };
    config.imap.tls_listen = Some(SocketAddr::from(([127, 0, 0, 1], imaps_port)));
    config.smtp.tls_listen = Some(SocketAddr::from(([127, 0, 0, 1], smtps_port)));
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], options.http_port));
    config.graph.base_url = format!("http://{graph}/v1.0");
    config.graph.login_url = format!("http://{graph}");
    config.graph.client_id = DEMO_CLIENT_ID.to_string();
    config.sync.poll_interval_secs = options.poll_interval_secs;
    config.sync.full_poll_interval_secs = options.poll_interval_secs.saturating_mul(6);
    if let Some(adjust) = options.adjust_config {
        adjust(&mut config);
    }
    config
}

/// The demo user, the demo mailbox and its alias, and the web admin password (the demo
/// password too); skipped for what an earlier run created.
fn provision(store: &Store) -> Result<(), DemoError> {
    if !admin::admin_password_set(store)? {
        admin::set_admin_password(store, DEMO_PASSWORD)?;
    }
    if store
        .call_blocking(|c| accounts::user_by_name(c, DEMO_USER))?
        .is_none()
    {
        admin::add_user(store, DEMO_USER, DEMO_PASSWORD)?;
    }
    for (address, alias_of) in [(DEMO_MAILBOX, None), (DEMO_ALIAS, Some(DEMO_MAILBOX))] {
        if store
            .call_blocking(|c| accounts::mailbox_by_address(c, address))?
            .is_none()
        {
            admin::import_mailbox(store, address, alias_of)?;
        }
        admin::assign(store, address, DEMO_USER, admin::Role::Main)?;
    }
    Ok(())
}

/// Signs the demo mailbox in with the device code flow; the emulator approves at once. A
/// sign-in kept in the data folder is used when the emulator still knows it; it does not
/// when the last demo was killed before it saved the emulated tenant (or after the tokens
/// rotated past the saved state), and then the demo signs in again.
async fn sign_in_demo_mailbox(bridge: &Arc<Bridge>) -> Result<(), DemoError> {
    let mailbox = admin::mailbox(&bridge.store, DEMO_MAILBOX)?;
    if mailbox.signin_state == SigninState::SignedIn
        && bridge.stored_signin_works(mailbox.id).await?
    {
        return Ok(());
    }
    bridge
        .signin_device_code(mailbox.id, |code| {
            tracing::info!(
                "demo sign-in: {} code {} (approved automatically by the emulator)",
                code.verification_uri,
                code.user_code
            );
        })
        .await?;
    Ok(())
}
