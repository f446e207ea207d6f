//! The limits of the BFV endpoints ([`BfvLimits`]) and what a stored key is counted as in memory
//! ([`KEY_MEMORY_PER_BYTE`]).
//!
//! Both the endpoints ([`crate::bfv`], which names everything here under its own path too) and the key store
//! ([`crate::state_store::keys`]) read them, so they live apart from either: this module imports neither.

use std::time::Duration;

use more_bfv::wire::MAX_KEYS_BYTES;

/// Limits of the BFV endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfvLimits {
    /// Largest key upload (bytes).
    pub max_key_bytes: usize,
    /// Keys are dropped this long after their last use.
    pub key_ttl: Duration,
    /// Memory all stored keys may take together, counted as [`KEY_MEMORY_PER_BYTE`] times their size.
    pub key_memory: usize,
    /// Key parses and evaluations running at once (each uses one blocking thread).
    pub workers: usize,
    /// Memory one client's keys may take (counted as `key_memory`); beyond it, a new upload replaces the
    /// client's least recently used key set. A client may always hold one set.
    pub client_share: usize,
}

/// By default a client's key sets may take a quarter of the key store ([`BfvLimits::client_share`]).
pub const CLIENT_SHARES: usize = 4;

impl Default for BfvLimits {
    fn default() -> Self {
        BfvLimits {
            max_key_bytes: MAX_KEYS_BYTES,
            key_ttl: Duration::from_secs(15 * 60),
            key_memory: 256 << 20,
            workers: 2,
            client_share: (256 << 20) / CLIENT_SHARES,
        }
    }
}

/// Bytes of memory a parsed key takes per uploaded byte (polynomials in NTT form, 8 bytes per coefficient
/// and modulus, and the seeded halves expanded).
pub const KEY_MEMORY_PER_BYTE: usize = 3;
