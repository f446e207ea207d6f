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
    /// Batches (`crate::bfv_batch`) accepted and not finished at once, one running; 0 turns batches off.
    pub batches: usize,
    /// Threads that evaluate the running batch.
    pub batch_threads: usize,
    /// Finished batches kept for their results at once.
    pub batch_results: usize,
    /// A finished batch's result is dropped this long after it finished.
    pub batch_result_ttl: Duration,
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
            batches: 1,
            batch_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch_results: 8,
            batch_result_ttl: Duration::from_secs(600),
        }
    }
}

/// Bytes of memory a parsed key takes per uploaded byte (polynomials in NTT form, 8 bytes per coefficient
/// and modulus, and the seeded halves expanded).
pub const KEY_MEMORY_PER_BYTE: usize = 3;
