//! The pause before a failed login is answered: it grows with each failure from the same
//! address (an IPv6 /64 counts as one address) and is bounded, so guessing passwords is slow
//! while a typo costs half a second. Only the failing connection waits; the table is locked
//! just long enough to count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The pause after the 1st, 2nd, … failure from one address; later failures wait the last.
pub const SCHEDULE: [Duration; 6] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(15),
];
/// An address with no failure for this long starts again from the first step.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most; beyond that the stalest are dropped.
const MAX_ADDRESSES: usize = 10_000;

/// Failures per address.
#[derive(Default)]
pub struct Throttle {
    failures: HashMap<IpAddr, (u32, Instant)>,
}

impl Throttle {
    /// Counts a failure from `peer` at `now` and returns how long its answer must wait.
    pub fn failed(&mut self, peer: IpAddr, now: Instant) -> Duration {
        let key = key(peer);
        if self.failures.len() >= MAX_ADDRESSES && !self.failures.contains_key(&key) {
            self.failures
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < FORGET_AFTER);
            if self.failures.len() >= MAX_ADDRESSES {
                if let Some(stalest) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(k, _)| *k)
                {
                    self.failures.remove(&stalest);
                }
            }
        }
        let entry = self.failures.entry(key).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        delay_for(entry.0)
    }

    /// A successful login from `peer` clears its failures.
    pub fn succeeded(&mut self, peer: IpAddr) {
        self.failures.remove(&key(peer));
    }
}

/// The pause after the `count`th failure in a row (counting from 1).
pub fn delay_for(count: u32) -> Duration {
    let step = (count.max(1) as usize - 1).min(SCHEDULE.len() - 1);
    SCHEDULE[step]
}

/// IPv4 addresses as they are; IPv6 by their /64, which one client usually holds whole.
fn key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

static THROTTLE: LazyLock<Mutex<Throttle>> = LazyLock::new(Mutex::default);

/// Counts a failed login from `peer` and returns the pause before answering it.
pub fn login_failed(peer: IpAddr) -> Duration {
    THROTTLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .failed(peer, Instant::now())
}

/// Clears `peer`'s failures after a successful login.
pub fn login_succeeded(peer: IpAddr) {
    THROTTLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .succeeded(peer);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_schedule_grows_and_is_bounded() {
        for pair in SCHEDULE.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        assert_eq!(delay_for(1), SCHEDULE[0]);
        assert_eq!(delay_for(1000), SCHEDULE[SCHEDULE.len() - 1]);
        assert!(delay_for(u32::MAX) <= Duration::from_secs(15));
    }

    #[test]
    fn failures_grow_per_address_and_reset() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        let a = ip("192.0.2.1");
        let delays: Vec<Duration> = (0..8).map(|_| throttle.failed(a, start)).collect();
        assert_eq!(&delays[..6], &SCHEDULE[..]);
        assert_eq!(delays[7], SCHEDULE[5]);
        // Another address is not slowed by a's failures.
        assert_eq!(throttle.failed(ip("192.0.2.2"), start), SCHEDULE[0]);
        // One /64 is one address; other /64s are not.
        let v6 = ip("2001:db8:1:2::5");
        throttle.failed(v6, start);
        assert_eq!(throttle.failed(ip("2001:db8:1:2::99"), start), SCHEDULE[1]);
        assert_eq!(throttle.failed(ip("2001:db8:1:3::5"), start), SCHEDULE[0]);
        // A success clears, and so does a long quiet spell.
        throttle.succeeded(a);
        assert_eq!(throttle.failed(a, start), SCHEDULE[0]);
        throttle.failed(a, start);
        assert_eq!(throttle.failed(a, start + FORGET_AFTER), SCHEDULE[0]);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 50) {
            throttle.failed(IpAddr::from(i.to_be_bytes()), start);
        }
        assert!(throttle.failures.len() <= MAX_ADDRESSES);
    }
}
