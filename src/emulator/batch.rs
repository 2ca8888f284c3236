//! JSON batching: `POST /v1.0/$batch`.
//!
//! At most 20 requests, unique ids; each runs through the ordinary dispatcher (so each is counted
//! and throttled on its own). Without `dependsOn` up to 4 run at a time, as Graph does for
//! Outlook; with `dependsOn` the batch runs serially and a request whose dependency failed gets 424.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::errors::{self, GraphError, GraphResult};
use super::graph::{self, Req};
use super::Shared;

const MAX_REQUESTS: usize = 20;
const PARALLEL: usize = 4;

#[derive(Clone, Debug)]
struct Step {
    id: String,
    depends_on: Vec<String>,
    req: Req,
}

fn invalid(msg: &str) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

/// `POST /v1.0/$batch`
pub async fn run(shared: Arc<Shared>, outer: &Req) -> GraphResult<Response> {
    let body = outer.json_body()?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Invalid batch payload format."))?;
    if requests.len() > MAX_REQUESTS {
        return Err(invalid(
            "The number of batch request steps exceeds the maximum of 20.",
        ));
    }
    let steps = requests
        .iter()
        .map(|r| parse_step(r, outer))
        .collect::<GraphResult<Vec<_>>>()?;
    let mut seen = HashSet::new();
    for s in &steps {
        if !seen.insert(s.id.clone()) {
            return Err(invalid("Batch request contains duplicate ids."));
        }
    }
    for s in &steps {
        if s.depends_on.iter().any(|d| !seen.contains(d) || d == &s.id) {
            return Err(invalid(
                "A dependsOn value names no other request of the batch.",
            ));
        }
    }
    let responses = if steps.iter().any(|s| !s.depends_on.is_empty()) {
        run_serial(&shared, steps).await
    } else {
        futures::stream::iter(steps)
            .map(|s| {
                let shared = shared.clone();
                async move { one(shared, s).await }
            })
            .buffer_unordered(PARALLEL)
            .collect::<Vec<Value>>()
            .await
    };
    Ok(graph::json(
        StatusCode::OK,
        &json!({"responses": responses}),
    ))
}

async fn run_serial(shared: &Arc<Shared>, steps: Vec<Step>) -> Vec<Value> {
    let mut status: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    for s in steps {
        let failed = s
            .depends_on
            .iter()
            .any(|d| status.get(d).is_none_or(|code| *code >= 400));
        let v = if failed {
            failed_dependency(&s.id)
        } else {
            one(shared.clone(), s.clone()).await
        };
        status.insert(s.id.clone(), v["status"].as_u64().unwrap_or(500));
        out.push(v);
    }
    out
}

fn inner_failure(id: &str) -> Value {
    json!({"id": id, "status": 503, "headers": {"Content-Type": "application/json"},
        "body": {"error": {
        "code": "serviceNotAvailable",
        "message": "The service is temporarily unavailable.",
    }}})
}

fn failed_dependency(id: &str) -> Value {
    json!({"id": id, "status": 424, "body": {"error": {
        "code": "FailedDependency",
        "message": "The request depends on a request of the batch that failed.",
    }}})
}

fn parse_step(r: &Value, outer: &Req) -> GraphResult<Step> {
    let id = match r.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(invalid("Every batch request needs an id.")),
    };
    let method: Method = r
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| m.to_ascii_uppercase().parse().ok())
        .ok_or_else(|| invalid("Every batch request needs a method."))?;
    let url = r
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("Every batch request needs a url."))?;
    if url.contains("://") {
        return Err(invalid("Batch request urls must be relative."));
    }
    let path = format!("/{}", url.trim_start_matches('/'));
    if path.to_ascii_lowercase().starts_with("/$batch") {
        return Err(invalid("A batch cannot contain a batch."));
    }
    let depends_on = match r.get("dependsOn") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(_) => return Err(invalid("dependsOn must be an array of ids.")),
    };
    let mut headers = HeaderMap::new();
    // The inner request runs with the outer request's identity and host.
    for h in [header::AUTHORIZATION, header::HOST] {
        if let Some(v) = outer.headers.get(&h) {
            headers.insert(h, v.clone());
        }
    }
    if let Some(Value::Object(hs)) = r.get("headers") {
        for (k, v) in hs {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) else {
                return Err(invalid("Invalid header in a batch request."));
            };
            headers.insert(name, value);
        }
    }
    let body = step_body(r.get("body"), &headers)?;
    Ok(Step {
        id,
        depends_on,
        req: Req::new(method, &path, headers, body),
    })
}

/// A JSON body is sent as JSON; for another content type the body is a base64 string
/// *(unverified: how Graph decodes non-JSON request bodies inside a batch)*.
fn step_body(body: Option<&Value>, headers: &HeaderMap) -> GraphResult<Bytes> {
    let Some(body) = body.filter(|b| !b.is_null()) else {
        return Ok(Bytes::new());
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid("Content-Type header is required when a batch request has a body."))?
        .to_ascii_lowercase();
    if ct.starts_with("application/json") {
        return Ok(Bytes::from(body.to_string()));
    }
    let s = body
        .as_str()
        .ok_or_else(|| invalid("A non-JSON body must be a base64 string."))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Bytes::from)
        .map_err(|_| invalid("A non-JSON body must be a base64 string."))
}

/// Runs one inner request and renders it as a batch response entry.
async fn one(shared: Arc<Shared>, s: Step) -> Value {
    let ids = errors::RequestIds::from_headers(&s.req.headers);
    let resp = errors::stamp(graph::dispatch(shared, s.req).await, &ids);
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for (k, v) in resp.headers() {
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_string(), json!(v));
        }
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let bytes = match axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024).await {
        Ok(bytes) => bytes,
        // The inner response failed while its body was produced (an injected connection
        // drop). Graph has no connection per inner request to drop: it reports the failure
        // as the request's own 5xx, never as a 200 with an empty body.
        Err(_) => return inner_failure(&s.id),
    };
    let mut v = json!({"id": s.id, "status": status, "headers": headers});
    if !bytes.is_empty() {
        v["body"] = if is_json {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        } else {
            json!(base64::engine::general_purpose::STANDARD.encode(&bytes))
        };
    }
    v
}
