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

impl RequestBudget {
    pub fn new(capacity: usize, window: Duration) -> RequestBudget {
        RequestBudget {
            capacity: capacity.max(1),
            window,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until one more request fits in the window, then counts it.
    pub async fn spend(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                    sent.pop_front();
                }
                if sent.len() < self.capacity {
                    sent.push_back(now);
                    return;
                }
                match sent.front() {
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
        for _ in 0..3 {
            budget.spend().await;
        }
        assert_eq!(budget.sent.lock().await.len(), 3);
        // The fourth request waits for the first to leave the window (a lower bound only:
        // a sleep never ends early, so this cannot flake).
        budget.spend().await;
        assert!(Instant::now() >= start + window);
    }

    #[test]
    fn budgets_parse() {
        assert_eq!(parse_budget("1000/60"), Some((1000, Duration::from_secs(60))));
        assert_eq!(parse_budget("0/60"), None);
        assert_eq!(parse_budget("x"), None);
    }
}
