//! The Graph emulator: a stand-in for Microsoft 365 built from the Graph contract.
//!
//! One port serves both the Graph API (`/v1.0/...`) and the identity platform
//! (`/{tenant}/oauth2/v2.0/...`, `/devicelogin`). State lives in memory, loaded from a fixtures
//! folder (`fixtures/README.md`).

mod attachments;
mod batch;
mod changes;
mod compose;
mod control;
mod delta;
mod delta_tokens;
mod draft;
mod dump;
mod errors;
mod extprops;
mod faults;
mod filter;
mod fixtures;
mod folders;
mod form;
mod format;
pub mod generate;
mod graph;
mod ids;
mod items;
mod messages;
mod mime;
mod notify;
mod oauth;
mod rewrite;
mod send;
mod state;
mod subscriptions;
mod synth_mime;
mod throttle;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;

pub use dump::DumpSummary;
pub use errors::GraphError;

/// Graph refuses request bodies above 4 MB (`413`).
pub(crate) const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The HTTP layer accepts more than that so the emulator itself can answer 413 in Graph's shape.
const HTTP_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Command-line flags of `graphbridge emulator` (and, prefixed `--graph-`, of `demo`).
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct EmulatorArgs {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 8081)]
    pub port: u16,
    /// Fixtures folder to load (see fixtures/README.md).
    #[arg(long)]
    pub fixtures: Option<PathBuf>,
    /// Approve every device-code and authorize request at once as this account.
    #[arg(long)]
    pub auto_consent: Option<String>,
    /// Accept only this OAuth client id (default: any).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Lifetime of access tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime_secs: u64,
    /// Serve `$value` as regenerated MIME, as Exchange does.
    #[arg(long)]
    pub mime_rewrite: bool,
    /// Added latency per Graph request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Random extra latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Share (0–1) of Graph requests that fail with 503/504 or a dropped connection.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Request budget per app and mailbox, as REQUESTS/SECONDS.
    #[arg(long, default_value = "10000/600")]
    pub throttle: String,
    /// Concurrent requests per app and mailbox before 429.
    #[arg(long, default_value_t = 4)]
    pub max_concurrent: usize,
    /// Upload volume per app and mailbox per 5 minutes, in MB.
    #[arg(long, default_value_t = 150)]
    pub upload_mb_per_5min: u64,
    /// Messages a mailbox may send per minute.
    #[arg(long, default_value_t = 30)]
    pub send_per_minute: usize,
    /// Recipients a mailbox may send to per day.
    #[arg(long, default_value_t = 10_000)]
    pub recipients_per_day: usize,
    /// Recipients per message.
    #[arg(long, default_value_t = 500)]
    pub recipients_per_message: usize,
}

impl Default for EmulatorArgs {
    fn default() -> Self {
        EmulatorArgs {
            port: 8081,
            fixtures: None,
            auto_consent: None,
            client_id: None,
            token_lifetime_secs: 3600,
            mime_rewrite: false,
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            throttle: "10000/600".to_string(),
            max_concurrent: 4,
            upload_mb_per_5min: 150,
            send_per_minute: 30,
            recipients_per_day: 10_000,
            recipients_per_message: 500,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("fixtures {path}: {reason}")]
    Fixtures { path: PathBuf, reason: String },
    #[error("--auto-consent names {0}, which is not a mailbox of the emulated tenant")]
    UnknownAccount(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Everything the emulator knows, behind one lock (never held across an await).
pub(crate) struct Inner {
    pub tenant: state::Tenant,
    pub oauth: oauth::OAuthState,
    pub delta: delta::DeltaStore,
    pub uploads: attachments::Uploads,
    pub subs: subscriptions::Subscriptions,
}

pub(crate) struct Shared {
    pub args: EmulatorArgs,
    inner: Mutex<Inner>,
    pub throttle: Arc<throttle::Throttle>,
    faults: Mutex<faults::Faults>,
    pub notify_stats: notify::Stats,
}

impl Shared {
    pub fn faults(&self) -> faults::Faults {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_faults(&self, f: faults::Faults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// A handler that panicked must not take the emulator down with it: ignore poisoning.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running emulated tenant; cheap to clone (shared state).
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl Emulator {
    /// Loads the fixtures (if any) and checks the flags.
    pub fn new(args: &EmulatorArgs) -> Result<Emulator, EmulatorError> {
        let (tenant, refresh) = match &args.fixtures {
            Some(dir) => {
                let loaded = fixtures::load(dir)?;
                (loaded.tenant, loaded.refresh)
            }
            None => (
                state::Tenant {
                    tenant_id: ids::guid(),
                    send_from_alias: false,
                    mailboxes: Vec::new(),
                },
                Vec::new(),
            ),
        };
        let mut oauth = oauth::OAuthState::default();
        oauth.restore_refresh(refresh);
        let (budget, window) = throttle::parse_budget(&args.throttle).ok_or_else(|| {
            EmulatorError::InvalidArgument(format!(
                "--throttle {}: expected REQUESTS/SECONDS such as 1000/60",
                args.throttle
            ))
        })?;
        if !(0.0..=1.0).contains(&args.error_rate) {
            return Err(EmulatorError::InvalidArgument(
                "--error-rate must be between 0 and 1".into(),
            ));
        }
        let limits = throttle::Limits {
            concurrent: args.max_concurrent.max(1),
            budget,
            window,
            upload_bytes: args.upload_mb_per_5min * 1024 * 1024,
            messages_per_minute: args.send_per_minute,
            recipients_per_day: args.recipients_per_day,
            recipients_per_message: args.recipients_per_message,
        };
        let faults = faults::Faults {
            latency_ms: args.latency_ms,
            jitter_ms: args.jitter_ms,
            error_rate: args.error_rate,
        };
        let mut args = args.clone();
        if let Some(upn) = &args.auto_consent {
            let idx = tenant
                .mailbox_index(upn)
                .ok_or_else(|| EmulatorError::UnknownAccount(upn.clone()))?;
            // Tokens are bound to the primary address even when an alias was named.
            args.auto_consent = tenant.mailboxes.get(idx).map(|m| m.upn.clone());
        }
        Ok(Emulator {
            shared: Arc::new(Shared {
                args,
                inner: Mutex::new(Inner {
                    tenant,
                    oauth,
                    delta: delta::DeltaStore::default(),
                    uploads: attachments::Uploads::default(),
                    subs: subscriptions::Subscriptions::default(),
                }),
                throttle: Arc::new(throttle::Throttle::new(limits)),
                faults: Mutex::new(faults),
                notify_stats: notify::Stats::default(),
            }),
        })
    }

    /// Writes the current state to `dir` in the fixtures format (`fixtures/README.md`, "Dumps");
    /// `--fixtures DIR` loads it back with the same ids and state.
    pub fn dump(&self, dir: &std::path::Path) -> Result<DumpSummary, EmulatorError> {
        let snap = {
            let inner = self.shared.lock();
            dump::snapshot(&inner.tenant, &inner.oauth)
        };
        dump::write(&snap, dir)
    }

    /// The HTTP routes: Graph, OAuth, and the sign-in pages.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/devicecode", post(oauth::devicecode))
            .route("/{tenant}/oauth2/v2.0/token", post(oauth::token))
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(oauth::authorize).post(oauth::authorize_post),
            )
            .route(
                "/devicelogin",
                get(oauth::devicelogin_page).post(oauth::devicelogin_submit),
            )
            .route("/v1.0", any(graph_entry))
            .route("/v1.0/{*rest}", any(graph_entry))
            .nest("/_emulator", control::routes())
            .route(
                "/_upload/{token}",
                axum::routing::put(attachments::put_chunk),
            )
            .fallback(not_found)
            .layer(axum::middleware::from_fn(errors::stamp_layer))
            .layer(DefaultBodyLimit::max(HTTP_BODY_LIMIT))
            .with_state(self.shared.clone())
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// `/v1.0/...`: hands the request to the Graph dispatcher.
async fn graph_entry(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let rest = pq.strip_prefix("/v1.0").unwrap_or(pq);
    let req = graph::Req::new(method, rest, headers, body);
    graph::dispatch(shared, req).await
}

async fn not_found(uri: Uri) -> Response {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "UnknownError",
        format!("No resource at {}.", uri.path()),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    #[test]
    fn default_matches_clap_defaults() {
        let parsed = Cli::try_parse_from(["emulator"]).map(|c| c.args);
        assert_eq!(parsed.ok(), Some(EmulatorArgs::default()));
    }
}
