//! Exchange Online's per app + mailbox limits, sending limits, and the counters the benchmarks
//! read at `/_emulator/stats`.
//!
//! Limits: 4 concurrent requests, a request budget per window (`--throttle N/secs`, default
//! 10,000 per 600 s), 150 MB of uploads per 5 minutes. Throttled requests still count.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::errors::GraphError;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub concurrent: usize,
    pub budget: usize,
    pub window: Duration,
    pub upload_bytes: u64,
    pub messages_per_minute: usize,
    pub recipients_per_day: usize,
    pub recipients_per_message: usize,
}

const UPLOAD_WINDOW: Duration = Duration::from_secs(300);

/// Usage of one app id + mailbox pair.
#[derive(Default, Debug)]
struct Bucket {
    active: usize,
    requests: VecDeque<Instant>,
    uploads: VecDeque<(Instant, u64)>,
}

/// Per-mailbox counters for `/_emulator/stats`.
#[derive(Default, Debug)]
struct Counters {
    by_route: BTreeMap<String, u64>,
    throttled: u64,
    bytes_in: u64,
    bytes_out: u64,
    active: usize,
    peak: usize,
}

/// Per-mailbox sending history.
#[derive(Default, Debug)]
struct Sending {
    messages: VecDeque<Instant>,
    recipients: VecDeque<(Instant, usize)>,
}

#[derive(Default, Debug)]
struct Inner {
    buckets: HashMap<(String, String), Bucket>,
    counters: HashMap<String, Counters>,
    sending: HashMap<String, Sending>,
    storm_until: Option<Instant>,
}

pub struct Throttle {
    limits: Limits,
    inner: Mutex<Inner>,
}

/// Holds one of the 4 concurrent slots until dropped.
pub struct Permit {
    throttle: Arc<Throttle>,
    key: (String, String),
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = self.throttle.lock();
        if let Some(b) = inner.buckets.get_mut(&self.key) {
            b.active = b.active.saturating_sub(1);
        }
        if let Some(c) = inner.counters.get_mut(&self.key.1) {
            c.active = c.active.saturating_sub(1);
        }
    }
}

fn prune(q: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
}

/// Seconds until `t + window`, at least 1.
fn secs_left(t: Instant, window: Duration, now: Instant) -> u64 {
    (t + window).saturating_duration_since(now).as_secs().max(1)
}

impl Throttle {
    pub fn new(limits: Limits) -> Throttle {
        Throttle {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request and admits it, or answers 429 with `Retry-After`.
    pub fn admit(
        self: &Arc<Self>,
        app: &str,
        mailbox: &str,
        route: &str,
        bytes_in: u64,
    ) -> Result<Permit, GraphError> {
        let now = Instant::now();
        let key = (app.to_string(), mailbox.to_string());
        let mut inner = self.lock();
        let storm = inner.storm_until.filter(|u| *u > now);
        let c = inner.counters.entry(mailbox.to_string()).or_default();
        *c.by_route.entry(route.to_string()).or_default() += 1;
        c.bytes_in += bytes_in;
        let b = inner.buckets.entry(key.clone()).or_default();
        prune(&mut b.requests, self.limits.window, now);
        b.requests.push_back(now);
        let verdict = if let Some(until) = storm {
            Err(until.saturating_duration_since(now).as_secs().max(1))
        } else if b.active >= self.limits.concurrent {
            Err(1)
        } else if b.requests.len() > self.limits.budget {
            Err(b
                .requests
                .front()
                .map(|t| secs_left(*t, self.limits.window, now))
                .unwrap_or(1))
        } else {
            b.active += 1;
            Ok(())
        };
        let c = inner.counters.entry(mailbox.to_string()).or_default();
        match verdict {
            Ok(()) => {
                c.active += 1;
                c.peak = c.peak.max(c.active);
                Ok(Permit {
                    throttle: self.clone(),
                    key,
                })
            }
            Err(retry) => {
                c.throttled += 1;
                Err(GraphError::throttled(retry))
            }
        }
    }

    /// Upload volume per app + mailbox (150 MB per 5 minutes by default).
    pub fn upload(&self, app: &str, mailbox: &str, bytes: u64) -> Result<(), GraphError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let b = inner
            .buckets
            .entry((app.to_string(), mailbox.to_string()))
            .or_default();
        while b
            .uploads
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= UPLOAD_WINDOW)
        {
            b.uploads.pop_front();
        }
        let used: u64 = b.uploads.iter().map(|(_, n)| n).sum();
        if used + bytes > self.limits.upload_bytes {
            let retry = b
                .uploads
                .front()
                .map(|(t, _)| secs_left(*t, UPLOAD_WINDOW, now))
                .unwrap_or(1);
            return Err(GraphError::throttled(retry));
        }
        b.uploads.push_back((now, bytes));
        Ok(())
    }

    pub fn bytes_out(&self, mailbox: &str, n: u64) {
        self.lock()
            .counters
            .entry(mailbox.to_string())
            .or_default()
            .bytes_out += n;
    }

    /// Exchange Online's sending limits *(unverified: the codes Graph returns when they are hit)*.
    pub fn check_send(&self, mailbox: &str, recipients: usize) -> Result<(), GraphError> {
        use axum::http::StatusCode;
        if recipients > self.limits.recipients_per_message {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidRecipients",
                format!(
                    "The message has {recipients} recipients; the limit is {}.",
                    self.limits.recipients_per_message
                ),
            ));
        }
        let now = Instant::now();
        let mut inner = self.lock();
        let s = inner.sending.entry(mailbox.to_string()).or_default();
        prune(&mut s.messages, Duration::from_secs(60), now);
        let day = Duration::from_secs(86_400);
        while s
            .recipients
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= day)
        {
            s.recipients.pop_front();
        }
        if s.messages.len() >= self.limits.messages_per_minute {
            let retry = s
                .messages
                .front()
                .map(|t| secs_left(*t, Duration::from_secs(60), now))
                .unwrap_or(1);
            return Err(GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "The mailbox is over its message submission rate limit.",
            )
            .with_retry_after(retry));
        }
        let today: usize = s.recipients.iter().map(|(_, n)| n).sum();
        if today + recipients > self.limits.recipients_per_day {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "ErrorSubmissionQuotaExceeded",
                "The mailbox has reached its daily recipient limit.",
            ));
        }
        s.messages.push_back(now);
        s.recipients.push_back((now, recipients));
        Ok(())
    }

    /// Every request answers 429 for the next `secs` seconds.
    pub fn storm(&self, secs: u64) {
        self.lock().storm_until = Some(Instant::now() + Duration::from_secs(secs));
    }

    pub fn stats(&self) -> Value {
        let inner = self.lock();
        let mailboxes: serde_json::Map<String, Value> = inner
            .counters
            .iter()
            .map(|(mb, c)| {
                (
                    mb.clone(),
                    json!({
                        "requests": c.by_route.values().sum::<u64>(),
                        "requestsByRoute": c.by_route,
                        "throttled": c.throttled,
                        "bytesIn": c.bytes_in,
                        "bytesOut": c.bytes_out,
                        "concurrentPeak": c.peak,
                    }),
                )
            })
            .collect();
        json!({ "mailboxes": mailboxes })
    }
}

/// `--throttle 1000/60` → (1000, 60 s).
pub fn parse_budget(s: &str) -> Option<(usize, Duration)> {
    let (n, secs) = s.split_once('/')?;
    let n: usize = n.trim().parse().ok()?;
    let secs: u64 = secs.trim().parse().ok()?;
    (n > 0 && secs > 0).then(|| (n, Duration::from_secs(secs)))
}

/// A route label for the counters: fixed segments kept, ids replaced by `{id}`.
pub fn route_label(method: &str, segs: &[String]) -> String {
    const WORDS: &[&str] = &[
        "me",
        "users",
        "mailfolders",
        "childfolders",
        "messages",
        "delta",
        "$value",
        "move",
        "copy",
        "send",
        "sendmail",
        "permanentdelete",
        "attachments",
        "createuploadsession",
        "$batch",
        "subscriptions",
    ];
    let mut out = String::from(method);
    let mut after_users = false;
    for s in segs {
        let l = s.to_ascii_lowercase();
        out.push('/');
        if WORDS.contains(&l.as_str()) && !after_users {
            out.push_str(s);
        } else {
            out.push_str("{id}");
        }
        after_users = l == "users";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_parses() {
        assert_eq!(
            parse_budget("1000/60"),
            Some((1000, Duration::from_secs(60)))
        );
        assert_eq!(parse_budget("0/60"), None);
        assert_eq!(parse_budget("x"), None);
        let segs: Vec<String> = ["me", "messages", "AAMk=", "$value"]
            .map(String::from)
            .to_vec();
        assert_eq!(route_label("GET", &segs), "GET/me/messages/{id}/$value");
    }
}
