//! The per-mailbox request budget: Microsoft allows 10,000 requests per 10 minutes per app and
//! mailbox; the client spends from a sliding window so that limit is never reached and a 429
//! stays the exception.
//!
//! Graph counts a request when it arrives. The client cannot see that moment, but it knows a
//! bound: Graph has counted a request (every inner request of a `$batch` too) by the time its
//! answer is back. So a request holds its place in the window from the moment it is sent
//! (while in flight it is counted as used) until one window after its answer arrived. That
//! window ends at most one request's duration later than Graph's, which is the whole price of
//! never being early: no fixed safety margin is needed, and a slow `$batch`, whose inner
//! requests Graph runs a few at a time and counts over several seconds, cannot outrun it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub struct RequestBudget {
    capacity: usize,
    window: Duration,
    state: Mutex<State>,
    /// Wakes the waiter when requests in flight are answered (their places start to age).
    answered: Notify,
    /// Waiters queue here in turn, so a `$batch` waiting for twenty places is not overtaken
    /// forever by single requests taking each place as it frees.
    queue: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Places taken by requests still in flight.
    in_flight: usize,
    /// When each answered request's answer arrived, oldest first.
    answered: VecDeque<Instant>,
}

/// Places in the window taken by requests on the wire. Dropping it records them as answered
/// now: call sites keep it until the answer (or the failure) is in.
pub struct Spent<'a> {
    budget: &'a RequestBudget,
    n: usize,
}

impl Drop for Spent<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        {
            let mut state = self.budget.lock();
            state.in_flight = state.in_flight.saturating_sub(self.n);
            state.answered.extend(std::iter::repeat_n(now, self.n));
        }
        self.budget.answered.notify_waiters();
    }
}

impl RequestBudget {
    pub fn new(capacity: usize, window: Duration) -> RequestBudget {
        RequestBudget {
            capacity: capacity.max(1),
            window,
            state: Mutex::new(State::default()),
            answered: Notify::new(),
            queue: tokio::sync::Mutex::new(()),
        }
    }

    /// Requests the window holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two counters; one left half-updated by a panic is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `n` more requests fit in the window, then takes their places (a `$batch`
    /// spends one per inner request: Graph counts each on its own). Keep the returned guard
    /// until the answer is in.
    pub async fn spend(&self, n: usize) -> Spent<'_> {
        let n = n.clamp(1, self.capacity);
        let _turn = self.queue.lock().await;
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            // Registered before the state is read, so an answer arriving in between still
            // wakes this waiter.
            answered.as_mut().enable();
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                while state
                    .answered
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    state.answered.pop_front();
                }
                let used = state.in_flight + state.answered.len();
                if used + n <= self.capacity {
                    state.in_flight += n;
                    return Spent { budget: self, n };
                }
                // The oldest answered places that must leave to make room; if too many
                // places are still in flight, an answer has to come first.
                let must_leave = used + n - self.capacity;
                state
                    .answered
                    .get(must_leave - 1)
                    .map(|oldest| (*oldest + self.window).saturating_duration_since(now))
            };
            match wait {
                Some(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = &mut answered => {}
                    }
                }
                None => answered.await,
            }
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
        drop(budget.spend(2).await);
        drop(budget.spend(1).await);
        assert_eq!(budget.lock().answered.len(), 3);
        // The fourth request waits for the first to leave the window (a lower bound only:
        // a sleep never ends early, so this cannot flake).
        drop(budget.spend(1).await);
        assert!(Instant::now() >= start + window);
    }

    #[tokio::test]
    async fn a_place_ages_from_the_answer_not_from_the_send() {
        let window = Duration::from_millis(200);
        let budget = RequestBudget::new(1, window);
        let in_flight = budget.spend(1).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let answered_at = Instant::now();
        drop(in_flight);
        drop(budget.spend(1).await);
        assert!(Instant::now() >= answered_at + window);
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_a_request_in_flight_is_answered() {
        let budget = std::sync::Arc::new(RequestBudget::new(2, Duration::from_millis(50)));
        let first = budget.spend(2).await;
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                drop(budget.spend(2).await);
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter got its places")
            .expect("no panic");
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
