//! The table of live skip and delta tokens, with their retention.
//!
//! A token is an opaque key into this table. Tokens die when they get old (a skip token after
//! an hour, a delta token after the tombstone retention), when the table is full (oldest first),
//! or all at once through the control endpoint; a dead token answers `410 syncStateNotFound`.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use super::changes::RETENTION_DAYS;

/// How long a `$skiptoken` (a page inside a round) stays usable *(unverified: Graph does not
/// document it; an abandoned round should not hold its item list for long)*.
const SKIP_TOKEN_MINUTES: i64 = 60;
/// Live tokens at most; beyond it the oldest die first.
const MAX_TOKENS: usize = 100_000;
/// Inserts between two sweeps for expired tokens.
const SWEEP_EVERY: u64 = 1024;

struct Entry<T> {
    issued: DateTime<Utc>,
    skip: bool,
    value: T,
}

pub struct TokenStore<T> {
    tokens: HashMap<String, Entry<T>>,
    /// Tokens in the order they were issued (may name tokens already gone).
    order: VecDeque<String>,
    inserts: u64,
}

impl<T> Default for TokenStore<T> {
    fn default() -> Self {
        TokenStore {
            tokens: HashMap::new(),
            order: VecDeque::new(),
            inserts: 0,
        }
    }
}

impl<T> std::fmt::Debug for TokenStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenStore({} tokens)", self.tokens.len())
    }
}

fn expired(issued: DateTime<Utc>, skip: bool, now: DateTime<Utc>) -> bool {
    let life = if skip {
        Duration::minutes(SKIP_TOKEN_MINUTES)
    } else {
        Duration::days(RETENTION_DAYS)
    };
    issued + life < now
}

impl<T> TokenStore<T> {
    /// A live token's value.
    pub fn get(&self, token: &str) -> Option<&T> {
        self.tokens
            .get(token)
            .filter(|e| !expired(e.issued, e.skip, Utc::now()))
            .map(|e| &e.value)
    }

    pub fn insert(&mut self, token: String, skip: bool, value: T) {
        let now = Utc::now();
        self.order.push_back(token.clone());
        self.tokens.insert(
            token,
            Entry {
                issued: now,
                skip,
                value,
            },
        );
        while self.tokens.len() > MAX_TOKENS {
            match self.order.pop_front() {
                Some(old) => {
                    self.tokens.remove(&old);
                }
                None => break,
            }
        }
        self.inserts += 1;
        if self.inserts.is_multiple_of(SWEEP_EVERY) {
            self.sweep(now);
        }
    }

    /// Drops expired tokens, and the order entries of tokens already gone.
    fn sweep(&mut self, now: DateTime<Utc>) {
        self.tokens.retain(|_, e| !expired(e.issued, e.skip, now));
        let tokens = &self.tokens;
        self.order.retain(|t| tokens.contains_key(t));
    }

    /// Forgets every token: the next use of any of them answers `410 syncStateNotFound`.
    pub fn clear(&mut self) -> usize {
        let n = self.tokens.len();
        self.tokens.clear();
        self.order.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }
}
