//! HTTP to Graph for one mailbox: bearer tokens refreshed ahead of expiry, at most N requests
//! in flight, `Retry-After` honoured, exponential backoff with jitter, and
//! `Prefer: IdType="ImmutableId"` on every request so ids survive moves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, Semaphore};

use super::budget::RequestBudget;
use super::oauth::{OAuthClient, TokenSet};
use super::types::ErrorEnvelope;
use super::GraphError;
use crate::mailstore::now_unix;

/// Called with every new token set so rotated refresh tokens are stored at once.
pub type TokenPersist = Arc<dyn Fn(&TokenSet) -> Result<(), String> + Send + Sync>;

pub(super) const IMMUTABLE_IDS: &str = "IdType=\"ImmutableId\"";
const MAX_ATTEMPTS: u32 = 6;
/// Refresh this long before the access token expires, so no request races its expiry.
const REFRESH_MARGIN_SECS: i64 = 300;
/// Graph takes 150 MB of uploads per app and mailbox in 5 minutes. Upload sessions go up in
/// chunks of at most [`UPLOAD_CHUNK`](super::mail::UPLOAD_CHUNK) bytes, each counted as a
/// whole one: 47 of them (148 MB) stay under the quota whether its MB is 10^6 or 2^20 bytes.
const UPLOAD_QUOTA_CHUNKS: usize = 150_000_000 / super::mail::UPLOAD_CHUNK;
const UPLOAD_QUOTA_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A request body.
pub enum Body {
    None,
    Json(serde_json::Value),
    /// Base64 MIME, sent as `text/plain` as Graph wants it.
    Mime(String),
}

pub struct GraphClient {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    /// `/me` for a delegated token.
    user_path: String,
    oauth: OAuthClient,
    tokens: Mutex<TokenSet>,
    persist: TokenPersist,
    pub(super) in_flight: Semaphore,
    max_in_flight: usize,
    pub(super) budget: RequestBudget,
    /// Upload-session chunks in Graph's upload quota window (see [`UPLOAD_QUOTA_CHUNKS`]).
    pub(super) uploads: RequestBudget,
    /// `$batch` round trips sent, for the admin's figures and the tests.
    pub(super) batches: AtomicU64,
}

impl GraphClient {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        oauth: OAuthClient,
        tokens: TokenSet,
        persist: TokenPersist,
        max_in_flight: usize,
        budget: RequestBudget,
    ) -> GraphClient {
        GraphClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            user_path: "/me".into(),
            oauth,
            tokens: Mutex::new(tokens),
            persist,
            in_flight: Semaphore::new(max_in_flight.max(1)),
            max_in_flight: max_in_flight.max(1),
            budget,
            uploads: RequestBudget::new(UPLOAD_QUOTA_CHUNKS, UPLOAD_QUOTA_WINDOW),
            batches: AtomicU64::new(0),
        }
    }

    /// How many `$batch` requests this client has sent (retries included).
    pub fn batches_sent(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// `/me` (or `/users/{id}`): the part of every path that names the mailbox.
    pub fn user_path(&self) -> &str {
        &self.user_path
    }

    /// Absolute URL of a path that is not under a user (`/subscriptions`).
    pub fn root_url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Whether `url` (a stored nextLink or deltaLink) points at this client's Graph endpoint.
    pub fn is_own_url(&self, url: &str) -> bool {
        url.strip_prefix(&self.base)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Absolute URL of a path under the signed-in user (`/mailFolders` → `…/v1.0/me/mailFolders`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base, self.user_path, path)
    }

    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, GraphError> {
        let bytes = self.request(Method::GET, url, Body::None, None).await?;
        decode(&bytes)
    }

    pub async fn get_json_prefer<T: DeserializeOwned>(
        &self,
        url: &str,
        prefer: &str,
    ) -> Result<T, GraphError> {
        let bytes = self
            .request(Method::GET, url, Body::None, Some(prefer))
            .await?;
        decode(&bytes)
    }

    pub async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, GraphError> {
        self.request(Method::GET, url, Body::None, None).await
    }

    pub async fn send_json(
        &self,
        method: Method,
        url: &str,
        body: serde_json::Value,
    ) -> Result<Vec<u8>, GraphError> {
        self.request(method, url, Body::Json(body), None).await
    }

    /// Sends one request and returns the response body of a 2xx answer.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        body: Body,
        prefer: Option<&str>,
    ) -> Result<Vec<u8>, GraphError> {
        // Only requests that cannot act twice are retried after a lost connection: a POST
        // such as sendMail may have been carried out before the connection broke.
        let idempotent = method != Method::POST;
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.access_token().await?;
            let outcome = self.attempt(&token, &method, url, &body, prefer).await;
            let retry_after = match outcome {
                Ok((status, _, bytes)) if status.is_success() => return Ok(bytes),
                Ok((StatusCode::UNAUTHORIZED, _, bytes)) if !refreshed => {
                    tracing::debug!(url, "401 from Graph, refreshing the access token");
                    refreshed = true;
                    self.refresh_replacing(&token).await?;
                    drop(bytes);
                    continue;
                }
                Ok((status, retry_after, bytes)) if is_transient(status) => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(status_error(status, &bytes));
                    }
                    retry_after
                }
                Ok((status, _, bytes)) => return Err(status_error(status, &bytes)),
                Err(e) if idempotent && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(url, error = %e, "Graph request failed, retrying");
                    None
                }
                Err(e) => return Err(e),
            };
            tokio::time::sleep(retry_after.unwrap_or_else(|| backoff(attempt))).await;
        }
    }

    async fn attempt(
        &self,
        token: &str,
        method: &Method,
        url: &str,
        body: &Body,
        prefer: Option<&str>,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), GraphError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| GraphError::Closed)?;
        // Throttled requests count against Microsoft's budget too, so every attempt spends;
        // the place is held until the answer is read (see budget.rs).
        let _spent = self.budget.spend(1).await;
        let prefer = match prefer {
            Some(extra) => format!("{IMMUTABLE_IDS}, {extra}"),
            None => IMMUTABLE_IDS.to_string(),
        };
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token)
            .header("Prefer", prefer);
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Mime(base64) => request
                .header("Content-Type", "text/plain")
                .body(base64.clone()),
        };
        let response = request.send().await?;
        let status = response.status();
        let retry_after = retry_after(&response);
        let bytes = response.bytes().await?.to_vec();
        Ok((status, retry_after, bytes))
    }

    pub(super) async fn access_token(&self) -> Result<String, GraphError> {
        {
            let tokens = self.tokens.lock().await;
            if tokens.expires_at - REFRESH_MARGIN_SECS > now_unix() {
                return Ok(tokens.access_token.clone());
            }
        }
        self.refresh().await
    }

    /// After a 401 for `rejected`: refreshes, unless another request already replaced that
    /// token (four requests failing together must not rotate the refresh token four times).
    pub(super) async fn refresh_replacing(&self, rejected: &str) -> Result<String, GraphError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.access_token != rejected && tokens.expires_at - REFRESH_MARGIN_SECS > now_unix() {
            return Ok(tokens.access_token.clone());
        }
        self.refresh_locked(&mut tokens).await
    }

    /// Refreshes the access token (one refresh at a time) and stores the rotated refresh token
    /// before anything uses the new access token.
    async fn refresh(&self) -> Result<String, GraphError> {
        let mut tokens = self.tokens.lock().await;
        // Another caller may have refreshed while this one waited for the lock.
        if tokens.expires_at - REFRESH_MARGIN_SECS > now_unix() {
            return Ok(tokens.access_token.clone());
        }
        self.refresh_locked(&mut tokens).await
    }

    async fn refresh_locked(&self, tokens: &mut TokenSet) -> Result<String, GraphError> {
        let fresh = self.oauth.refresh(&tokens.refresh_token).await?;
        (self.persist)(&fresh).map_err(GraphError::TokenStore)?;
        *tokens = fresh;
        Ok(tokens.access_token.clone())
    }
}

/// The wait an answer's `Retry-After` header asks for, if it has one.
pub(super) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// `Retry-After` in seconds (Graph's form); an HTTP date is not used by Graph.
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

pub(super) fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::BAD_GATEWAY
    )
}

/// Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, … capped at 30 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    let cap = 500u64.saturating_mul(1 << attempt.min(6)).min(30_000);
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}

pub(super) fn status_error(status: StatusCode, body: &[u8]) -> GraphError {
    let (code, message) = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => (envelope.error.code, envelope.error.message),
        Err(_) => (
            String::new(),
            String::from_utf8_lossy(body).chars().take(200).collect(),
        ),
    };
    GraphError::Status {
        status: status.as_u16(),
        code,
        message,
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GraphError> {
    serde_json::from_slice(bytes).map_err(|e| GraphError::Decode(e.to_string()))
}
