//! The Graph emulator: a stand-in for Microsoft 365 built from the Graph contract.
//!
//! One port serves both the Graph API (`/v1.0/...`) and the identity platform
//! (`/{tenant}/oauth2/v2.0/...`, `/devicelogin`). State lives in memory, loaded from a fixtures
//! folder (`fixtures/README.md`).

mod compose;
mod delta;
mod errors;
mod extprops;
mod filter;
mod fixtures;
mod folders;
mod form;
mod graph;
mod ids;
mod items;
mod messages;
mod mime;
mod oauth;
mod rewrite;
mod send;
mod state;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;

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
}

pub(crate) struct Shared {
    pub args: EmulatorArgs,
    inner: Mutex<Inner>,
}

impl Shared {
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
        let tenant = match &args.fixtures {
            Some(dir) => fixtures::load(dir)?,
            None => state::Tenant {
                tenant_id: ids::guid(),
                send_from_alias: false,
                mailboxes: Vec::new(),
            },
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
                    oauth: oauth::OAuthState::default(),
                    delta: delta::DeltaStore::default(),
                }),
            }),
        })
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
