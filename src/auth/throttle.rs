//! Slows down repeated failed logins, per email, in memory (per server process). After a few failures each further attempt waits longer; past a ceiling the
//! attempt is refused with RATE_LIMITED until the window has passed. A success clears
//! the key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures forgiven before attempts are slowed down.
const FREE_FAILURES: u32 = 3;
/// Failures after which attempts are refused until the window has passed.
const REFUSE_AFTER: u32 = 20;
/// How long failures are remembered.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Longest delay imposed on one attempt.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead after waiting this long.
    Proceed(Duration),
    /// Refuse; retry after this long.
    Refuse(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
}

/// Failure counts by key (`email/<address>`).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// The verdict for an attempt touching all `keys` (the worst one wins).
    pub fn check(&self, keys: &[String]) -> Verdict {
        let now = Instant::now();
        let Ok(mut failures) = self.failures.lock() else {
            return Verdict::Proceed(Duration::ZERO);
        };
        failures.retain(|_, f| now.duration_since(f.first) < WINDOW);
        let worst = keys
            .iter()
            .filter_map(|k| failures.get(k))
            .max_by_key(|f| f.count)
            .copied();
        match worst {
            Some(f) if f.count >= REFUSE_AFTER => {
                Verdict::Refuse(WINDOW.saturating_sub(now.duration_since(f.first)))
            }
            Some(f) if f.count >= FREE_FAILURES => {
                let exponent = (f.count - FREE_FAILURES).min(10);
                let delay = Duration::from_millis(250u64 << exponent);
                Verdict::Proceed(delay.min(MAX_DELAY))
            }
            _ => Verdict::Proceed(Duration::ZERO),
        }
    }

    pub fn record_failure(&self, keys: &[String]) {
        if let Ok(mut failures) = self.failures.lock() {
            let now = Instant::now();
            for key in keys {
                let entry = failures
                    .entry(key.clone())
                    .or_insert(Failures { count: 0, first: now });
                entry.count += 1;
            }
        }
    }

    pub fn record_success(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slows_down_then_refuses_and_forgets_on_success() {
        let throttle = LoginThrottle::default();
        let keys = vec!["t/alice@example.com".to_owned()];
        assert_eq!(throttle.check(&keys), Verdict::Proceed(Duration::ZERO));
        for _ in 0..FREE_FAILURES {
            throttle.record_failure(&keys);
        }
        assert_eq!(
            throttle.check(&keys),
            Verdict::Proceed(Duration::from_millis(250))
        );
        throttle.record_failure(&keys);
        assert_eq!(
            throttle.check(&keys),
            Verdict::Proceed(Duration::from_millis(500))
        );
        for _ in 0..REFUSE_AFTER {
            throttle.record_failure(&keys);
        }
        assert!(matches!(throttle.check(&keys), Verdict::Refuse(_)));
        throttle.record_success(&keys[0]);
        assert_eq!(throttle.check(&keys), Verdict::Proceed(Duration::ZERO));
    }
}
