//! The per-mailbox request budget: Microsoft allows 10,000 requests per 10 minutes per app and
//! mailbox; the client spends from a sliding window so that limit is never reached and a 429
//! stays the exception.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RequestBudget {
    capacity: usize,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

/// Graph counts a request when it arrives, a little after the client counted it as sent; a
/// request sent just as an old one left the client's window could still find that old one in
/// Graph's. Holding requests this much longer keeps the two windows apart.
const WINDOW_MARGIN: Duration = Duration::from_millis(1000);

impl RequestBudget {
    pub fn new(capacity: usize, window: Duration) -> RequestBudget {
        RequestBudget {
            capacity: capacity.max(1),
            window: window + WINDOW_MARGIN,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Requests the window holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Waits until `n` more requests fit in the window, then counts them (a `$batch` spends one
    /// per inner request: Graph counts each on its own).
    pub async fn spend(&self, n: usize) {
        let n = n.clamp(1, self.capacity);
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    sent.pop_front();
                }
                if sent.len() + n <= self.capacity {
                    sent.extend(std::iter::repeat_n(now, n));
                    return;
                }
                // The request waits for the oldest entries that must leave to make room.
                let must_leave = sent.len() + n - self.capacity;
                match sent.get(must_leave - 1) {
                    Some(oldest) => (*oldest + self.window).saturating_duration_since(now),
                    None => Duration::ZERO,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parses `N/SECONDS` (as in the emulator's `--throttle 1000/60`).
pub fn parse_budget(text: &str) -> Option<(usize, Duration)> {
    let (count, secs) = text.split_once('/')?;
    let count: usize = count.trim().parse().ok()?;
    let secs: u64 = secs.trim().parse().ok()?;
    (count > 0 && secs > 0).then(|| (count, Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_window_holds_back_the_request_over_budget() {
        let window = Duration::from_millis(300);
        let budget = RequestBudget::new(3, window);
        let start = Instant::now();
        budget.spend(2).await;
        budget.spend(1).await;
        assert_eq!(budget.sent.lock().await.len(), 3);
        // The fourth request waits for the first to leave the window (a lower bound only:
        // a sleep never ends early, so this cannot flake).
        budget.spend(1).await;
        assert!(Instant::now() >= start + window);
    }

    #[test]
    fn budgets_parse() {
        assert_eq!(
            parse_budget("1000/60"),
            Some((1000, Duration::from_secs(60)))
        );
        assert_eq!(parse_budget("0/60"), None);
        assert_eq!(parse_budget("x"), None);
    }
}
