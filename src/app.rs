//! Starting and stopping the bridge's servers and background work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bridge::Bridge;
use crate::config::Config;
use crate::mailstore::{accounts, SigninState};

/// The bridge's three listening sockets, bound before anything starts so a taken port fails
/// early and clearly.
pub struct Listeners {
    pub imap: TcpListener,
    pub smtp: TcpListener,
    /// SMTP with implicit TLS, when configured.
    pub smtps: Option<TcpListener>,
    pub http: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        Ok(Listeners {
            imap: bind(config.imap.listen, "IMAP").await?,
            smtp: bind(config.smtp.listen, "SMTP").await?,
            smtps: match config.smtp.tls_listen {
                Some(addr) => Some(bind(addr, "SMTP (implicit TLS)").await?),
                None => None,
            },
            http: bind(config.http.listen, "HTTP").await?,
        })
    }
}

async fn bind(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen for {what} on {addr}: {e}"))
    })
}

/// A running bridge.
pub struct Running {
    pub imap: SocketAddr,
    pub smtp: SocketAddr,
    pub smtps: Option<SocketAddr>,
    pub http: SocketAddr,
    pub bridge: Arc<Bridge>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Asks every task to stop and waits (a bounded time) for them.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
        }
    }
}

/// Attaches every signed-in account, runs a first sync of each, then starts the servers,
/// the sync loops and the outbox worker.
pub async fn start(bridge: Arc<Bridge>, listeners: Listeners) -> std::io::Result<Running> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    bridge.set_shutdown(shutdown_rx.clone());
    for sync in attach_signed_in(&bridge).await {
        if let Err(e) = sync.sync_once().await {
            tracing::warn!(account = sync.account_id, error = %e, "first sync failed; retrying in the background");
        }
        let schedule = bridge.poll_schedule(sync.account_id).await;
        let stop = bridge.loop_stop(sync.account_id);
        tasks.spawn(sync.run(schedule, stop));
    }
    let running = Running {
        imap: listeners.imap.local_addr()?,
        smtp: listeners.smtp.local_addr()?,
        smtps: match &listeners.smtps {
            Some(l) => Some(l.local_addr()?),
            None => None,
        },
        http: listeners.http.local_addr()?,
        bridge: bridge.clone(),
        shutdown,
        tasks,
    };
    let mut running = running;
    running.tasks.spawn(crate::imap::serve(
        bridge.clone(),
        listeners.imap,
        shutdown_rx.clone(),
    ));
    running.tasks.spawn(crate::smtp::serve(
        bridge.clone(),
        listeners.smtp,
        shutdown_rx.clone(),
    ));
    if let Some(smtps) = listeners.smtps {
        running.tasks.spawn(crate::smtp::serve_implicit_tls(
            bridge.clone(),
            smtps,
            shutdown_rx.clone(),
        ));
    }
    running.tasks.spawn(crate::admin::serve(
        bridge.clone(),
        listeners.http,
        shutdown_rx.clone(),
    ));
    running
        .tasks
        .spawn(crate::submission::outbox::run(bridge, shutdown_rx));
    Ok(running)
}

async fn attach_signed_in(bridge: &Arc<Bridge>) -> Vec<Arc<crate::sync::MailboxSync>> {
    let mailboxes = match bridge.store.call(|c| accounts::list_mailboxes(c)).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "cannot read mailboxes");
            return Vec::new();
        }
    };
    let mut attached = Vec::new();
    for mailbox in mailboxes {
        if mailbox.alias_of.is_some() {
            continue;
        }
        if mailbox.signin_state != SigninState::SignedIn {
            tracing::warn!(mailbox = %mailbox.address, "not signed in: run `graphbridge mailbox signin {}`", mailbox.address);
            continue;
        }
        match bridge.attach_account(mailbox.id).await {
            Ok(sync) => attached.push(sync),
            Err(e) => {
                tracing::error!(mailbox = %mailbox.address, error = %e, "cannot attach mailbox")
            }
        }
    }
    attached
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
