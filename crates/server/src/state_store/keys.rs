//! The store of BFV evaluation keys (either kind: the single-image packing's or the batch packing's): in this process (parsed, as uploaded) or in Redis (the uploaded
//! message bytes), with the same limits either way ([`BfvLimits`]): a time to live that restarts with each
//! successful evaluation, a cap on all stored keys (counted as [`KEY_MEMORY_PER_BYTE`] times their size)
//! and a per-client share beyond which a client's least recently used key set is replaced — the rules of
//! [`super::capped`], which this store shares with the uploaded models'.
//!
//! Redis layout (every key under [`PREFIX`](super::PREFIX), see [`super::capped`]): `more:bfv:key:{id}` the
//! key message as uploaded (7.7 MB for the shipped model); `more:bfv:keys` the ids by expiry;
//! `more:bfv:sizes` and `more:bfv:owners` their sizes in bytes and uploaders. The whole-store cap allows 11
//! sets with the defaults.
//!
//! Each replica parses a key set on first use and keeps the parse in a small in-process cache
//! ([`CACHED_SETS`] sets at most, least recently used dropped first, counted in the memory bound). Before a
//! cached parse is used, the replica checks that the key still exists in Redis, so a set deleted (or
//! replaced, or expired) through another replica is never used.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use more_bfv::wire::Keys;

use super::Redis;
use super::capped::{CappedMap, Caps, Full, Namespace, ParsedCache};
use crate::ApiError;
use crate::bfv_limits::{BfvLimits, KEY_MEMORY_PER_BYTE};

/// Parsed key sets one replica keeps when keys live in Redis.
pub const CACHED_SETS: usize = 4;

/// The key store.
pub enum KeyStore {
    /// Parsed keys in this process's memory, each costing [`KEY_MEMORY_PER_BYTE`] times its size.
    Embedded(CappedMap<Keys>),
    /// Key messages in Redis, parses cached here up to `cache_bytes` (counted like the key store).
    Redis {
        /// The connection.
        redis: Redis,
        /// The parses.
        cache: Mutex<ParsedCache<Arc<Keys>>>,
        /// The cache's cap, bytes of memory.
        cache_bytes: usize,
    },
}

impl Default for KeyStore {
    fn default() -> Self {
        KeyStore::Embedded(CappedMap::default())
    }
}

/// What a key lookup found: a parsed key set, its message to parse, or nothing.
pub type Lookup = super::capped::Lookup<Keys>;

/// Where the key sets live in Redis.
fn namespace() -> Namespace {
    Namespace::under_prefix("bfv:keys", "bfv:sizes", "bfv:owners", "bfv:key:")
}

/// The key store's caps, in bytes of memory.
fn caps(limits: &BfvLimits) -> Caps {
    Caps { cap: limits.key_memory, share: limits.client_share, ttl: limits.key_ttl }
}

fn store_full(used: usize, limits: &BfvLimits) -> ApiError {
    ApiError::unavailable(
        "key_store_full",
        format!(
            "the BFV key store is full ({} of {} MiB in use, {} MiB per client); retry later",
            used >> 20,
            limits.key_memory >> 20,
            limits.client_share.min(limits.key_memory) >> 20
        ),
    )
}

fn log_replaced(replaced: usize) {
    if replaced > 0 {
        tracing::info!(replaced, "bfv keys replaced: the client's share of the key store was full");
    }
}

impl KeyStore {
    /// A store in Redis whose replica caches at most [`CACHED_SETS`] parses of key sets of up to
    /// `limits.max_key_bytes`, and never more than the key store's cap.
    pub fn redis(redis: Redis, limits: &BfvLimits) -> KeyStore {
        let cache_bytes = (CACHED_SETS * limits.max_key_bytes * KEY_MEMORY_PER_BYTE).min(limits.key_memory);
        KeyStore::Redis { redis, cache: Mutex::new(ParsedCache::new(CACHED_SETS, cache_bytes)), cache_bytes }
    }

    /// Memory the store may hold in this process: the key store's cap, or the cache's when keys live in
    /// Redis.
    pub fn memory_bound(&self, limits: &BfvLimits) -> usize {
        match self {
            KeyStore::Embedded(_) => limits.key_memory,
            KeyStore::Redis { cache_bytes, .. } => *cache_bytes,
        }
    }

    /// Checks that a set of `bytes` from `client` would fit (after replacing the client's oldest sets) and
    /// changes nothing; 503 `key_store_full` if it would not.
    pub async fn check_room(&self, limits: &BfvLimits, client: &str, bytes: usize) -> Result<(), ApiError> {
        let stored = match self {
            KeyStore::Embedded(map) => map.store(&caps(limits), client, None, bytes * KEY_MEMORY_PER_BYTE),
            KeyStore::Redis { redis, .. } => {
                namespace().store(redis, &caps(limits), client, (KEY_MEMORY_PER_BYTE, bytes), None).await?
            }
        };
        stored.map(|_| ()).map_err(|Full { used }| store_full(used, limits))
    }

    /// Stores a parsed key set (and, for Redis, its message `raw`) under `id`, replacing the client's oldest
    /// sets beyond its share; 503 `key_store_full` if the store is full.
    pub async fn insert(
        &self,
        limits: &BfvLimits,
        client: &str,
        id: &str,
        keys: Keys,
        raw: &[u8],
    ) -> Result<(), ApiError> {
        let bytes = raw.len();
        let replaced = match self {
            KeyStore::Embedded(map) => {
                map.store(&caps(limits), client, Some((id.to_string(), keys)), bytes * KEY_MEMORY_PER_BYTE)
            }
            KeyStore::Redis { redis, .. } => {
                let stored = namespace()
                    .store(redis, &caps(limits), client, (KEY_MEMORY_PER_BYTE, bytes), Some((id, raw)))
                    .await?;
                if stored.is_ok() {
                    self.cache(id, Arc::new(keys), bytes);
                }
                stored
            }
        }
        .map_err(|Full { used }| store_full(used, limits))?;
        log_replaced(replaced);
        Ok(())
    }

    /// The key set under `id`: parsed, or its message to parse, or unknown.
    pub async fn lookup(&self, limits: &BfvLimits, id: &str) -> Result<Lookup, ApiError> {
        match self {
            KeyStore::Embedded(map) => Ok(map.get(limits.key_ttl, id, false).map_or(Lookup::Unknown, Lookup::Ready)),
            KeyStore::Redis { redis, cache, .. } => {
                let ns = namespace();
                let cached = cache.lock().unwrap_or_else(|e| e.into_inner()).get(id);
                if let Some(keys) = cached {
                    // The parse is used only while the key exists in Redis: another replica may have
                    // deleted or replaced it, or it may have expired.
                    if ns.exists(redis, id).await? {
                        return Ok(Lookup::Ready(keys));
                    }
                    cache.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                    return Ok(Lookup::Unknown);
                }
                Ok(ns.fetch(redis, id).await?.map_or(Lookup::Unknown, Lookup::Fetched))
            }
        }
    }

    /// Keeps a parse of the key set `id` (of `bytes` uploaded bytes) in the replica's cache (Redis only).
    pub fn cache(&self, id: &str, keys: Arc<Keys>, bytes: usize) {
        if let KeyStore::Redis { cache, .. } = self {
            cache.lock().unwrap_or_else(|e| e.into_inner()).put(id, keys, bytes * KEY_MEMORY_PER_BYTE);
        }
    }

    /// Restarts the time to live of `id` after a successful evaluation (if it still exists).
    pub async fn touch(&self, limits: &BfvLimits, id: &str) -> Result<(), ApiError> {
        match self {
            KeyStore::Embedded(map) => {
                map.touch(id);
                Ok(())
            }
            KeyStore::Redis { redis, .. } => namespace().touch(redis, limits.key_ttl, id).await.map(|_| ()),
        }
    }

    /// Deletes the key set `id`; `false` if there was none.
    pub async fn remove(&self, id: &str) -> Result<bool, ApiError> {
        match self {
            KeyStore::Embedded(map) => Ok(map.remove(id)),
            KeyStore::Redis { redis, cache, .. } => {
                cache.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                namespace().delete(redis, id).await
            }
        }
    }
}

/// 404 `unknown_key`.
pub fn unknown_key() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_key", "no such key id (expired?): upload the keys again")
}
