//! The HTTP side: the web admin (server-rendered pages behind the admin password), the JSON
//! API (bearer token), the OAuth redirect of "Sign in with Microsoft", and a health check.
//! `core` holds the administration rules shared with the CLI (`cli`).

pub mod api;
pub mod cli;
pub mod core;
mod html;
pub mod session;
pub mod signin;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bridge::Bridge;
use crate::mailstore::Store;

use self::core::{AdminError, AdminResult};

/// What the HTTP handlers share.
pub struct AdminState {
    pub bridge: Arc<Bridge>,
    pub sessions: session::Sessions,
    pub signins: signin::PendingSignins,
    /// The address the HTTP side actually listens on (the configured port may be 0).
    pub local_addr: SocketAddr,
}

impl AdminState {
    pub fn new(bridge: Arc<Bridge>, local_addr: SocketAddr) -> Arc<AdminState> {
        Arc::new(AdminState {
            bridge,
            sessions: session::Sessions::default(),
            signins: signin::PendingSignins::default(),
            local_addr,
        })
    }

    /// How browsers reach the bridge: `http.public_url`, or this machine's loopback.
    pub fn public_url(&self) -> String {
        let configured = self.bridge.config.http.public_url.trim_end_matches('/');
        if !configured.is_empty() {
            return configured.to_string();
        }
        let addr = self.local_addr;
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            // Entra accepts plain-HTTP redirect URIs only for localhost.
            format!("http://localhost:{}", addr.port())
        } else {
            format!("http://{addr}")
        }
    }

    /// The one origin browsers should use, when there is one: the configured public URL, or
    /// `http://localhost:PORT` when the bridge listens on loopback only. The session cookie
    /// and Microsoft's redirect must meet on one site: `127.0.0.1` and `localhost` are two.
    /// None when the bridge listens on other addresses without a public URL.
    pub fn canonical_origin(&self) -> Option<String> {
        let configured = !self.bridge.config.http.public_url.is_empty();
        (configured || self.local_addr.ip().is_loopback()).then(|| self.public_url())
    }

    /// Where Microsoft sends the browser back after a web sign-in.
    pub fn redirect_uri(&self) -> String {
        let configured = &self.bridge.config.graph.redirect_uri;
        if configured.is_empty() {
            format!("{}/oauth/callback", self.public_url())
        } else {
            configured.clone()
        }
    }

    /// Cookies get `Secure` when browsers reach the bridge over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// Runs an admin-core call off the async workers (SQLite and argon2 block).
    pub async fn run<T, F>(&self, f: F) -> AdminResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> AdminResult<T> + Send + 'static,
    {
        let store = self.bridge.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| AdminError::Store(crate::mailstore::StoreError::WorkerGone))?
    }
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(web::routes())
        .nest("/api/v1", api::routes())
        // The unversioned path, for CRMs configured with `/api/activities`.
        .nest("/api", api::routes())
        .merge(crate::submission::links_http::router(state.bridge.clone()))
        .merge(crate::sync::push::routes(state.bridge.clone()))
        .with_state(state)
}

pub async fn serve(
    bridge: Arc<Bridge>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let local_addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, "HTTP listener has no address");
            return;
        }
    };
    let state = AdminState::new(bridge, local_addr);
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (a mailbox address or user name in a URL).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(encode_segment("a b/c@d.test"), "a%20b%2Fc@d.test");
    }
}
