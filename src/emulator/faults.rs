//! Injected faults: latency with jitter, and at a given rate 503/504 answers (with and without
//! `Retry-After`) or a connection dropped mid-response. Set by flags, changed at run time through
//! `POST /_emulator/faults`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;

use super::errors::GraphError;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
    /// Probability (0–1) that a Graph request fails.
    #[serde(default)]
    pub error_rate: f64,
}

/// Waits the configured latency, then maybe answers with a fault instead of the real response.
pub async fn inject(f: Faults) -> Option<Response> {
    let (delay, roll, kind) = {
        let mut rng = rand::rng();
        let jitter = if f.jitter_ms > 0 {
            rng.random_range(0..=f.jitter_ms)
        } else {
            0
        };
        (
            f.latency_ms + jitter,
            rng.random::<f64>(),
            rng.random_range(0..4u8),
        )
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if roll >= f.error_rate {
        return None;
    }
    Some(match kind {
        0 => GraphError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry after the time in Retry-After.",
        )
        .with_retry_after(1)
        .into_response(),
        1 => GraphError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The service is temporarily unavailable.",
        )
        .into_response(),
        2 => GraphError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "UnknownError",
            "The request timed out at the gateway.",
        )
        .into_response(),
        _ => dropped(),
    })
}

/// A response whose body fails at once: the server aborts the connection mid-response, which a
/// client sees as a reset or an incomplete message.
fn dropped() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection drop",
        ))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp
}
