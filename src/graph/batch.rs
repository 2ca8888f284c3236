//! JSON batching (`POST /$batch`): up to 20 requests in one HTTP round trip. Graph throttles
//! each inner request on its own, so each inner answer is looked at on its own: a 429 or 503
//! inside a batch is retried after its own `Retry-After`, the rest of the batch stands.

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{
    backoff, is_transient, parse_retry_after, retry_after, status_error, IMMUTABLE_IDS,
};
use super::{GraphClient, GraphError};

/// Graph refuses a batch of more than 20 requests.
pub const MAX_BATCH: usize = 20;
/// Rounds of retries for the inner requests that were throttled or failed for a while.
const MAX_ROUNDS: u32 = 6;

/// One request of a batch; `path` is below the user (`/messages/{id}/$value`).
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

impl BatchRequest {
    pub fn get(path: String) -> BatchRequest {
        BatchRequest {
            method: Method::GET,
            path,
            body: None,
        }
    }

    pub fn patch(path: String, body: Value) -> BatchRequest {
        BatchRequest {
            method: Method::PATCH,
            path,
            body: Some(body),
        }
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    responses: Vec<InnerAnswer>,
}

#[derive(Deserialize)]
struct InnerAnswer {
    id: String,
    status: u16,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    #[serde(default)]
    body: Option<Value>,
}

/// Each inner request's outcome, in the order the requests were given.
pub type BatchResults = Vec<Result<Vec<u8>, GraphError>>;

impl GraphClient {
    /// Runs up to [`MAX_BATCH`] requests as one `$batch`; the outer `Err` is for a batch that
    /// could not be sent at all.
    pub async fn batch(&self, requests: &[BatchRequest]) -> Result<BatchResults, GraphError> {
        let mut results: Vec<Option<Result<Vec<u8>, GraphError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..requests.len().min(MAX_BATCH)).collect();
        let mut refreshed = false;
        let mut round = 0;
        while !pending.is_empty() {
            round += 1;
            let token = self.access_token().await?;
            let answers = match self.send_batch(&token, requests, &pending, round).await? {
                Some(answers) => answers,
                None => continue,
            };
            let mut retry = Vec::new();
            let mut wait: Option<Duration> = None;
            let mut needs_refresh = false;
            for answer in answers {
                let Some(&index) = answer.id.parse::<usize>().ok().and_then(|i| pending.get(i))
                else {
                    continue;
                };
                let status = StatusCode::from_u16(answer.status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = inner_body(&answer);
                if status.is_success() {
                    results[index] = Some(Ok(body));
                } else if status == StatusCode::UNAUTHORIZED && !refreshed {
                    needs_refresh = true;
                    retry.push(index);
                } else if is_transient(status) && round < MAX_ROUNDS {
                    let after = header(&answer, "retry-after")
                        .and_then(parse_retry_after)
                        .unwrap_or_else(|| backoff(round));
                    wait = Some(wait.map_or(after, |w| w.max(after)));
                    retry.push(index);
                } else {
                    results[index] = Some(Err(status_error(status, &body)));
                }
            }
            // A request Graph did not answer is sent again.
            for &index in &pending {
                if results[index].is_none() && !retry.contains(&index) {
                    retry.push(index);
                }
            }
            if needs_refresh {
                refreshed = true;
                self.refresh_replacing(&token).await?;
            }
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            if round >= MAX_ROUNDS {
                for index in retry.drain(..) {
                    results[index] = Some(Err(GraphError::Decode(
                        "Graph did not answer this request of a batch".into(),
                    )));
                }
            }
            retry.sort_unstable();
            pending = retry;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(GraphError::Decode("not sent".into()))))
            .collect())
    }

    /// Sends the pending requests once. `Ok(None)`: the whole batch failed in a way worth
    /// another round (a lost connection, a 503 for the batch itself), already waited for.
    async fn send_batch(
        &self,
        token: &str,
        requests: &[BatchRequest],
        pending: &[usize],
        round: u32,
    ) -> Result<Option<Vec<InnerAnswer>>, GraphError> {
        let inner: Vec<Value> = pending
            .iter()
            .enumerate()
            .map(|(i, &index)| self.inner_json(i, &requests[index]))
            .collect();
        let payload = json!({ "requests": inner });
        // Graph runs up to four requests of an unordered batch at once: the batch takes as
        // many of the mailbox's slots, and each inner request spends from the budget.
        let slots = pending.len().min(self.max_in_flight()) as u32;
        let sent = {
            let _permits = self
                .in_flight
                .acquire_many(slots)
                .await
                .map_err(|_| GraphError::Closed)?;
            let _spent = self.budget.spend(pending.len()).await;
            self.post_batch(token, &payload).await
        };
        let (status, retry_after, bytes) = match sent {
            Ok(answer) => answer,
            Err(e) => return self.lost(e, pending, requests, round).await,
        };
        if status.is_success() {
            let answer: BatchAnswer =
                serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode(e.to_string()))?;
            return Ok(Some(answer.responses));
        }
        if (is_transient(status) || status == StatusCode::UNAUTHORIZED) && round < MAX_ROUNDS {
            if status == StatusCode::UNAUTHORIZED {
                self.refresh_replacing(token).await?;
            } else {
                tokio::time::sleep(retry_after.unwrap_or_else(|| backoff(round))).await;
            }
            return Ok(None);
        }
        Err(status_error(status, &bytes))
    }

    async fn post_batch(
        &self,
        token: &str,
        payload: &Value,
    ) -> Result<(StatusCode, Option<Duration>, bytes::Bytes), GraphError> {
        self.batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = self
            .http
            .post(format!("{}/$batch", self.base))
            .bearer_auth(token)
            .header("Prefer", IMMUTABLE_IDS)
            .json(payload)
            .send()
            .await?;
        let status = response.status();
        let retry_after = retry_after(&response);
        Ok((status, retry_after, response.bytes().await?))
    }

    /// A batch whose connection broke: sent again only when every request in it may run twice.
    async fn lost(
        &self,
        error: GraphError,
        pending: &[usize],
        requests: &[BatchRequest],
        round: u32,
    ) -> Result<Option<Vec<InnerAnswer>>, GraphError> {
        let idempotent = pending.iter().all(|&i| requests[i].method != Method::POST);
        if !idempotent || round >= MAX_ROUNDS {
            return Err(error);
        }
        tracing::debug!(error = %error, "Graph batch failed, retrying");
        tokio::time::sleep(backoff(round)).await;
        Ok(None)
    }

    fn inner_json(&self, id: usize, request: &BatchRequest) -> Value {
        let mut headers = json!({ "Prefer": IMMUTABLE_IDS });
        let mut entry = json!({
            "id": id.to_string(),
            "method": request.method.as_str(),
            "url": format!("{}{}", self.user_path(), request.path),
        });
        if let Some(body) = &request.body {
            headers["Content-Type"] = json!("application/json");
            entry["body"] = body.clone();
        }
        entry["headers"] = headers;
        entry
    }
}

fn header<'a>(answer: &'a InnerAnswer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// An inner body as bytes: JSON stays JSON; anything else travels base64-encoded.
fn inner_body(answer: &InnerAnswer) -> Vec<u8> {
    let is_json = header(answer, "content-type").is_none_or(|ct| ct.contains("json"));
    match &answer.body {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if !is_json => base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_else(|_| text.as_bytes().to_vec()),
        Some(Value::String(text)) => text.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_bodies_decode_by_content_type() {
        let mime: InnerAnswer = serde_json::from_value(json!({
            "id": "0", "status": 200,
            "headers": {"Content-Type": "text/plain"},
            "body": base64::engine::general_purpose::STANDARD.encode(b"Subject: x\r\n\r\nhi"),
        }))
        .expect("answer");
        assert_eq!(inner_body(&mime), b"Subject: x\r\n\r\nhi");
        let json_body: InnerAnswer = serde_json::from_value(json!({
            "id": "1", "status": 429, "headers": {"retry-after": "3"},
            "body": {"error": {"code": "ApplicationThrottled"}},
        }))
        .expect("answer");
        assert_eq!(header(&json_body, "Retry-After"), Some("3"));
        assert!(String::from_utf8_lossy(&inner_body(&json_body)).contains("ApplicationThrottled"));
    }
}
