//! When a failed job runs again: exponential backoff with jitter. Attempt `n` (1-based)
//! waits between half and all of `BASE × 2^(n-1)`, at most [`CAP`]; the jitter spreads
//! the retries of jobs that failed together (a database restart) over time.

use std::time::Duration;

/// Wait after the first failure (before jitter).
pub const BASE: Duration = Duration::from_secs(10);

/// Longest wait between two attempts.
pub const CAP: Duration = Duration::from_secs(3600);

/// The wait after failed attempt `attempt` (1-based); `unit` in `[0, 1)` picks the jitter.
pub fn delay(attempt: i32, unit: f64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(20);
    let full = BASE.saturating_mul(1 << exponent).min(CAP);
    full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A uniformly distributed number in `[0, 1)` from the operating system's randomness.
pub fn jitter() -> f64 {
    // The last 53 bits of a v4 uuid are random (its version and variant bits are higher).
    let bits = uuid::Uuid::new_v4().as_u128() & ((1u128 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_between_half_and_all() {
        assert_eq!(delay(1, 0.99).as_millis(), 9_950);
        assert_eq!(delay(1, 0.0), Duration::from_secs(5));
        assert_eq!(delay(2, 0.0), Duration::from_secs(10));
        assert_eq!(delay(3, 0.0), Duration::from_secs(20));
        assert_eq!(delay(30, 0.0), CAP / 2);
        for _ in 0..100 {
            let unit = jitter();
            assert!((0.0..1.0).contains(&unit));
        }
    }
}
