//! Host call ids: ULIDs (26 characters of Crockford base32: 48 bits of Unix
//! milliseconds, then 80 random bits), unique across restarts and across
//! nodes, sortable by time. The generator is sans-IO: the time comes from
//! the caller (the core's injected [`crate::core::Now`]) and the random
//! bits from a seeded RNG given at construction, so a test with a fixed
//! seed and a fake clock gets the same ids every run.
//!
//! Within one millisecond (or when the clock steps back) the previous id's
//! random part is incremented instead of drawing a new one (ULID's
//! monotonic mode): ids of one switch always increase.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const RAND_BITS: u32 = 80;
const RAND_MASK: u128 = (1u128 << RAND_BITS) - 1;
const MAX_MS: u64 = (1u64 << 48) - 1;

/// Generator of call ids (see the module docs).
#[derive(Debug, Clone)]
pub struct CallIds {
    rng: StdRng,
    last_ms: u64,
    last_rand: u128,
}

impl CallIds {
    /// A generator whose random bits come from `seed` (the shell passes OS
    /// randomness; tests a constant).
    pub fn new(seed: u64) -> CallIds {
        CallIds {
            rng: StdRng::seed_from_u64(seed),
            last_ms: 0,
            last_rand: 0,
        }
    }

    /// The next id for a call starting at `unix_ms`.
    pub fn next(&mut self, unix_ms: i64) -> String {
        let ms = (unix_ms.max(0) as u64).min(MAX_MS);
        let (ms, rand) = if ms > self.last_ms || (self.last_ms == 0 && self.last_rand == 0) {
            (ms, self.rng.random::<u128>() & RAND_MASK)
        } else if self.last_rand < RAND_MASK {
            (self.last_ms, self.last_rand + 1)
        } else {
            // random part exhausted within one millisecond: borrow the next
            (
                (self.last_ms + 1).min(MAX_MS),
                self.rng.random::<u128>() & RAND_MASK,
            )
        };
        self.last_ms = ms;
        self.last_rand = rand;
        encode((u128::from(ms) << RAND_BITS) | rand)
    }
}

/// 128 bits as 26 Crockford base32 characters (the first carries 3 bits).
fn encode(v: u128) -> String {
    let mut s = String::with_capacity(26);
    for i in 0..26u32 {
        let shift = 125 - 5 * i;
        s.push(CROCKFORD[((v >> shift) & 31) as usize] as char);
    }
    s
}

/// Milliseconds encoded in a call id made by [`CallIds`] (`None` if it is
/// not one, e.g. an id from an older build).
pub fn unix_ms_of(id: &str) -> Option<i64> {
    if id.len() != 26 {
        return None;
    }
    let mut v: u128 = 0;
    for b in id.bytes() {
        let d = CROCKFORD
            .iter()
            .position(|c| *c == b.to_ascii_uppercase())?;
        v = (v << 5) | d as u128;
    }
    Some((v >> RAND_BITS) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids_and_time_is_encoded() {
        let mut a = CallIds::new(7);
        let mut b = CallIds::new(7);
        let t = 1_764_676_800_123;
        let ids: Vec<String> = (0..3).map(|i| a.next(t + i)).collect();
        assert_eq!(ids, (0..3).map(|i| b.next(t + i)).collect::<Vec<_>>());
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(id.len(), 26, "{id}");
            assert_eq!(unix_ms_of(id), Some(t + i as i64), "{id}");
        }
    }

    #[test]
    fn distinct_and_increasing_within_a_millisecond_and_across_seeds() {
        let t = 1_764_676_800_000;
        let mut a = CallIds::new(1);
        let mut b = CallIds::new(2);
        let mut seen = std::collections::HashSet::new();
        let mut prev = String::new();
        for _ in 0..1000 {
            let id = a.next(t);
            assert!(id > prev, "{id} after {prev}");
            prev = id.clone();
            assert!(seen.insert(id));
            assert!(seen.insert(b.next(t)));
        }
        // a clock stepping back never yields a smaller id
        let back = a.next(t - 5000);
        assert!(back > prev, "{back} after {prev}");
    }
}
