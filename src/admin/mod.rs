//! The HTTP side: a status page and a health check for now. The web admin, JSON API,
//! download links and the OAuth redirect will live here.

pub mod core;

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bridge::Bridge;
use crate::mailstore::accounts;

pub fn router(bridge: Arc<Bridge>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::submission::links_http::router(bridge.clone()))
        .with_state(bridge)
}

pub async fn serve(bridge: Arc<Bridge>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let result = axum::serve(listener, router(bridge))
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// Read-only overview of the imported mailboxes and their sign-in state.
async fn status_page(State(bridge): State<Arc<Bridge>>) -> Html<String> {
    let mailboxes = bridge.store.call(|c| accounts::list_mailboxes(c)).await;
    let rows = match mailboxes {
        Ok(list) => list
            .iter()
            .map(|m| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&m.address),
                    if m.alias_of.is_some() { "alias" } else { "Microsoft 365" },
                    escape(m.signin_state.as_str()),
                )
            })
            .collect::<String>(),
        Err(e) => format!("<tr><td colspan=3>cannot read the store: {}</td></tr>", escape(&e.to_string())),
    };
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>graphbridge</title></head>\
         <body><h1>graphbridge</h1><table><thead><tr><th>Mailbox</th><th>Kind</th><th>Sign-in</th></tr></thead>\
         <tbody>{rows}</tbody></table></body></html>"
    ))
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
