//! `/_emulator/...`: outside activity and run-time switches for tests, the demo and benchmarks.
//! These routes are not part of Graph and need no token.
//!
//! - `POST /_emulator/mailboxes/{upn}/deliver[?folder=…]` raw RFC 822 body → 201 `{id, immutableId}`
//! - `POST /_emulator/storm?seconds=N` → every Graph request answers 429 for N seconds
//! - `POST /_emulator/accounts/{upn}/revoke` → that account's refresh tokens become `invalid_grant`
//! - `POST /_emulator/tokens/expire` → every access token expires now
//! - `POST /_emulator/delta/expire` → every skip/delta token answers `410 syncStateNotFound`
//! - `POST /_emulator/tenant` `{"sendFromAliasEnabled": bool}` → the organisation setting
//! - `POST /_emulator/faults` `{"latencyMs","jitterMs","errorRate"}` → injected faults
//! - `GET /_emulator/stats` → per-mailbox counters, live delta tokens, messages held

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::errors::GraphError;
use super::faults::Faults;
use super::{send, Shared};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/mailboxes/{upn}/deliver", post(deliver))
        .route("/storm", post(storm))
        .route("/accounts/{upn}/revoke", post(revoke))
        .route("/tokens/expire", post(expire_tokens))
        .route("/delta/expire", post(expire_delta))
        .route("/tenant", post(tenant))
        .route("/faults", get(get_faults).post(set_faults))
        .route("/stats", get(stats))
}

fn unknown_mailbox(upn: &str) -> Response {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ErrorInvalidUser",
        format!("The requested user '{upn}' is invalid."),
    )
    .into_response()
}

async fn deliver(
    State(shared): State<Arc<Shared>>,
    Path(upn): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let folder = q.get("folder").map(String::as_str).unwrap_or("inbox");
    let mut inner = shared.lock();
    let Some(idx) = inner.tenant.mailbox_index(&upn) else {
        return unknown_mailbox(&upn);
    };
    match send::deliver_external(&mut inner.tenant, idx, folder, body.to_vec()) {
        Ok(v) => {
            drop(inner);
            super::notify::flush(&shared);
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn storm(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let secs = q.get("seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    shared.throttle.storm(secs);
    Json(json!({"stormSeconds": secs})).into_response()
}

async fn revoke(State(shared): State<Arc<Shared>>, Path(upn): Path<String>) -> Response {
    let n = shared.lock().oauth.revoke_account(&upn);
    Json(json!({"revoked": n})).into_response()
}

async fn expire_tokens(State(shared): State<Arc<Shared>>) -> Response {
    let now = chrono::Utc::now();
    let mut inner = shared.lock();
    for t in inner.oauth.access.values_mut() {
        t.expires = now;
    }
    Json(json!({"expired": inner.oauth.access.len()})).into_response()
}

async fn expire_delta(State(shared): State<Arc<Shared>>) -> Response {
    let n = shared.lock().delta.expire_all();
    Json(json!({"expired": n})).into_response()
}

async fn tenant(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return GraphError::bad_request(e.to_string()).into_response(),
    };
    let mut inner = shared.lock();
    if let Some(b) = v.get("sendFromAliasEnabled").and_then(Value::as_bool) {
        inner.tenant.send_from_alias = b;
    }
    Json(json!({
        "tenantId": inner.tenant.tenant_id,
        "sendFromAliasEnabled": inner.tenant.send_from_alias,
    }))
    .into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    let f = shared.faults();
    Json(json!({"latencyMs": f.latency_ms, "jitterMs": f.jitter_ms, "errorRate": f.error_rate}))
        .into_response()
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) if (0.0..=1.0).contains(&f.error_rate) => {
            shared.set_faults(f);
            Json(json!({"latencyMs": f.latency_ms, "jitterMs": f.jitter_ms, "errorRate": f.error_rate}))
                .into_response()
        }
        Ok(_) => GraphError::bad_request("errorRate must be between 0 and 1.").into_response(),
        Err(e) => GraphError::bad_request(e.to_string()).into_response(),
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let mut v = shared.throttle.stats();
    let inner = shared.lock();
    let messages: usize = inner
        .tenant
        .mailboxes
        .iter()
        .map(|m| m.messages.len())
        .sum();
    if let Some(o) = v.as_object_mut() {
        o.insert("liveDeltaTokens".into(), json!(inner.delta.live()));
        o.insert("messages".into(), json!(messages));
        o.insert("notifications".into(), shared.notify_stats.json());
    }
    Json(v).into_response()
}
