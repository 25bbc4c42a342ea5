//! How long a listener waits before it connects again: doubling from a
//! second up to five minutes with the failures in a row, and jittered (a
//! random half of the step added to its other half), so a server that
//! restarts is not met by every client at the same instant and a server
//! that is gone costs one try every few minutes.

use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(300);

/// The wait after `failures` failed tries in a row (0: a connection that
/// worked and then broke), `fraction` a random number in [0, 1).
pub fn delay(failures: u32, fraction: f64) -> Duration {
    let step = FIRST.saturating_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX)).min(LONGEST);
    let half = step.checked_div(2).unwrap_or_default();
    half.saturating_add(half.mul_f64(fraction.clamp(0.0, 1.0)))
}

/// A random number in [0, 1) from the system's source (0.5 if it fails).
pub fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_a_bound() {
        assert_eq!(delay(0, 0.0), Duration::from_millis(500));
        assert_eq!(delay(0, 0.999), Duration::from_millis(500) + Duration::from_millis(500).mul_f64(0.999));
        assert_eq!(delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(delay(3, 0.5), Duration::from_secs(6));
        assert_eq!(delay(20, 0.0), Duration::from_secs(150));
        assert!(delay(u32::MAX, 1.0) <= LONGEST);
        for _ in 0..100 {
            let fraction = random_fraction();
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
        }
    }
}
