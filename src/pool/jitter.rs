//! Lifetime jitter: a cheap, lock-free pseudo-random source (SplitMix64 over a global counter),
//! enough to spread retirements, not for anything secret.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

static STATE: AtomicU64 = AtomicU64::new(0);

fn seed() -> u64 {
    // Process-specific start: the address of a local and the wall clock. Only spread matters.
    let local = 0u8;
    let addr = &local as *const u8 as usize as u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    addr ^ nanos.rotate_left(17) ^ 0x2545_f491_4f6c_dd1d
}

/// The next pseudo-random 64-bit number.
pub(crate) fn next_u64() -> u64 {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
    if STATE.load(Relaxed) == 0 {
        let _ = STATE.compare_exchange(0, seed() | 1, Relaxed, Relaxed);
    }
    let mut z = STATE.fetch_add(GAMMA, Relaxed).wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)`.
fn unit(r: u64) -> f64 {
    (r >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `lifetime` minus a uniformly random part of up to `fraction` of it (HikariCP's scheme).
pub(crate) fn jittered(lifetime: Duration, fraction: f64) -> Duration {
    jittered_with(lifetime, fraction, next_u64())
}

pub(crate) fn jittered_with(lifetime: Duration, fraction: f64, r: u64) -> Duration {
    if fraction <= 0.0 {
        return lifetime;
    }
    let cut = lifetime.mul_f64(fraction.min(1.0) * unit(r));
    lifetime.saturating_sub(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let life = Duration::from_secs(1800);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let d = jittered(life, 0.025);
            assert!(d <= life);
            assert!(d >= life.mul_f64(0.975), "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 900, "only {} distinct lifetimes", seen.len());
        let min = *seen.first().unwrap();
        let max = *seen.last().unwrap();
        // Uniform over a 45 s window: 1000 draws cover most of it.
        assert!(max - min > Duration::from_secs(40), "{min:?}..{max:?}");
    }

    #[test]
    fn edges() {
        let life = Duration::from_secs(10);
        assert_eq!(jittered(life, 0.0), life);
        assert_eq!(jittered_with(life, 0.5, 0), life);
        let low = jittered_with(life, 0.5, u64::MAX);
        assert!(low >= Duration::from_secs(5) && low < Duration::from_millis(5001));
        assert!(jittered(life, 7.0) <= life, "fraction is capped at 1");
    }
}
