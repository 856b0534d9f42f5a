//! Keyed pseudo-random functions: the user's HMAC key for `Hash`, and a key drawn once per
//! process for `Tokenize` and `Noise`.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use rand::rngs::{OsRng, SmallRng};
use rand::{SeedableRng, TryRngCore};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 with its key schedule (the inner and outer padded key blocks) computed once;
/// each use clones that state, which is a copy of two SHA-256 states, not a re-keying.
#[derive(Clone)]
pub(crate) struct Keyed {
    mac: HmacSha256,
}

impl Keyed {
    pub(crate) fn new(key: &[u8]) -> Option<Keyed> {
        // HMAC accepts keys of any length, so this cannot fail; it is still handled rather
        // than unwrapped because the input comes from a Secret.
        HmacSha256::new_from_slice(key)
            .ok()
            .map(|mac| Keyed { mac })
    }

    /// A keyed digest under a state that has already absorbed a domain prefix (see
    /// [`Keyed::with_domain`]), of the concatenation of `parts`.
    pub(crate) fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// A start state for incremental hashing (for values hashed in pieces, such as bytea's
    /// hex text form).
    pub(crate) fn start(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// The same key with `domain` absorbed first, so uses of one key for different purposes
    /// (tokens, noise) never produce related outputs.
    fn with_domain(&self, domain: &[u8]) -> Keyed {
        let mut mac = self.mac.clone();
        mac.update(domain);
        Keyed { mac }
    }
}

pub(crate) fn finish(mac: HmacSha256) -> [u8; 32] {
    mac.finalize().into_bytes().into()
}

/// Keys for the masks that must be deterministic for the life of the process but must not be
/// reproducible offline: drawn from the OS once, never stored or logged.
pub(crate) struct ProcessKeys {
    pub(crate) tokenize: Keyed,
    pub(crate) noise: Keyed,
}

/// `None` when the OS has no randomness to give; the masks that need these keys then mask to
/// NULL rather than fall back to a guessable key.
pub(crate) fn process_keys() -> Option<&'static ProcessKeys> {
    static KEYS: OnceLock<Option<ProcessKeys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut key = [0u8; 32];
        OsRng.try_fill_bytes(&mut key).ok()?;
        let base = Keyed::new(&key)?;
        Some(ProcessKeys {
            tokenize: base.with_domain(b"palisade/tokenize\0"),
            noise: base.with_domain(b"palisade/noise\0"),
        })
    })
    .as_ref()
}

/// A fast generator seeded by a digest: the same digest always yields the same stream, which
/// is what makes tokens deterministic (only for this process: the generator's algorithm is
/// not promised to stay the same across `rand` releases, and the key changes per process).
pub(crate) fn rng_from_digest(digest: &[u8; 32]) -> SmallRng {
    let mut seed = <SmallRng as SeedableRng>::Seed::default();
    let seed_bytes = seed.as_mut();
    let n = seed_bytes.len().min(digest.len());
    seed_bytes[..n].copy_from_slice(&digest[..n]);
    SmallRng::from_seed(seed)
}

/// A uniform value in [-1, 1) from a digest, for noise.
pub(crate) fn unit_from_digest(digest: &[u8; 32]) -> f64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    // 53 random bits make every representable double in [0, 1) with spacing 2^-53 equally
    // likely.
    let u = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    2.0 * u - 1.0
}
