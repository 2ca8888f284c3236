//! Graph-shaped errors.
//!
//! Every Graph failure goes out in the documented envelope
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
//! Handlers return [`GraphError`]; the request and client ids are only known at the edge, so the
//! error travels inside the response as an extension and [`stamp`] writes the final body.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A Graph error: HTTP status, Graph error code and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, and some 503/504).
    pub retry_after: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn item_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    pub fn id_malformed() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidIdMalformed",
            "Id is malformed.",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ErrorInvalidRequest", message)
    }

    pub fn access_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    pub fn unauthenticated(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!("The emulator does not implement {what}."),
        )
    }

    /// Unknown segment or route, as Graph's URI parser answers it.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{path}'."),
        )
    }

    pub fn sync_state_not_found() -> Self {
        Self::new(
            StatusCode::GONE,
            "syncStateNotFound",
            "The sync state generation is not found or has expired. Please resync.",
        )
    }

    pub fn throttled(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        )
        .with_retry_after(retry_after)
    }
}

/// Marker carried in a response's extensions until [`stamp`] renders the envelope.
#[derive(Clone, Debug)]
struct PendingError {
    code: String,
    message: String,
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = self.status;
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
        }
        resp.extensions_mut().insert(PendingError {
            code: self.code,
            message: self.message,
        });
        resp
    }
}

/// The ids Graph puts on every response (`request-id`, `client-request-id`, `Date`).
#[derive(Clone, Debug)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
    pub date: String,
}

impl RequestIds {
    /// Graph echoes the caller's `client-request-id`, or makes one up when there is none.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let request_id = super::ids::guid();
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| request_id.clone());
        RequestIds {
            request_id,
            client_request_id,
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
        }
    }
}

/// Adds the id headers and, for an error, writes the JSON envelope.
pub fn stamp(mut resp: Response, ids: &RequestIds) -> Response {
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ids.request_id) {
        headers.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.client_request_id) {
        headers.insert("client-request-id", v);
    }
    let Some(pending) = resp.extensions_mut().remove::<PendingError>() else {
        return resp;
    };
    let body = json!({"error": {
        "code": pending.code,
        "message": pending.message,
        "innerError": {
            "date": ids.date,
            "request-id": ids.request_id,
            "client-request-id": ids.client_request_id,
        }
    }});
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *resp.body_mut() = Body::from(body.to_string());
    resp
}

/// Axum middleware form of [`stamp`] for every route of the emulator.
pub async fn stamp_layer(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let ids = RequestIds::from_headers(req.headers());
    let resp = next.run(req).await;
    stamp(resp, &ids)
}

pub type GraphResult<T> = Result<T, GraphError>;
