//! The store of BFV evaluation keys: in this process (parsed, as uploaded) or in Redis (the uploaded
//! message bytes), with the same limits either way ([`BfvLimits`]): a time to live that restarts with each
//! successful evaluation, a cap on all stored keys (counted as [`KEY_MEMORY_PER_BYTE`] times their size)
//! and a per-client share beyond which a client's least recently used key set is replaced.
//!
//! Redis layout (every key under [`PREFIX`](super::PREFIX)):
//!
//! - `more:bfv:key:{id}`: the key message as uploaded (7.7 MB for the shipped model), with a Redis expiry of
//!   the key TTL (`SET … PX`), refreshed (`PEXPIRE`) only after a successful evaluation;
//! - `more:bfv:keys`: a sorted set of the key ids scored by their expiry (ms, Redis's clock), so its order is
//!   least recently used first;
//! - `more:bfv:sizes` and `more:bfv:owners`: hashes from key id to its size in bytes and to the client that
//!   uploaded it.
//!
//! An upload is one Lua script: it drops the bookkeeping of expired sets, replaces the client's least
//! recently used sets while its share would be exceeded, refuses if the whole store would exceed its cap,
//! and stores the bytes. The script walks every stored set; they number at most the cap divided by one set's
//! cost (11 with the defaults), so it stays short.
//!
//! Each replica parses a key set on first use and keeps the parse in a small in-process cache
//! ([`CACHED_SETS`] sets at most, least recently used dropped first, counted in the memory bound). Before a
//! cached parse is used, the replica checks that the key still exists in Redis, so a set deleted (or
//! replaced, or expired) through another replica is never used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use more_bfv::EvalKeys;

use super::Redis;
use crate::ApiError;
use crate::bfv_limits::{BfvLimits, KEY_MEMORY_PER_BYTE};

/// Parsed key sets one replica keeps when keys live in Redis.
pub const CACHED_SETS: usize = 4;

/// A parsed key set held in memory.
pub struct StoredKeys {
    keys: Arc<EvalKeys>,
    bytes: usize,
    last_used: Instant,
    /// The client that uploaded them ([`crate::extract::Client`]).
    client: String,
}

/// The parses a replica keeps of keys that live in Redis (id, parse, uploaded bytes), least recently used
/// first.
pub struct ParsedCache<T = Arc<EvalKeys>> {
    entries: Vec<(String, T, usize)>,
}

impl<T> Default for ParsedCache<T> {
    fn default() -> Self {
        ParsedCache { entries: Vec::new() }
    }
}

/// The key store.
pub enum KeyStore {
    /// Parsed keys in this process's memory.
    Embedded(Mutex<HashMap<String, StoredKeys>>),
    /// Key messages in Redis, parses cached here up to `cache_bytes` (counted like the key store).
    Redis {
        /// The connection.
        redis: Redis,
        /// The parses.
        cache: Mutex<ParsedCache>,
        /// The cache's cap, bytes of memory.
        cache_bytes: usize,
    },
}

impl Default for KeyStore {
    fn default() -> Self {
        KeyStore::Embedded(Mutex::new(HashMap::new()))
    }
}

/// What a lookup found.
pub enum Lookup {
    /// A parsed key set, ready to evaluate with.
    Ready(Arc<EvalKeys>),
    /// The key message, fetched from Redis, to parse (then [`KeyStore::cache`] it).
    Fetched(Vec<u8>),
    /// No such key id.
    Unknown,
}

fn key(id: &str) -> String {
    format!("{}bfv:key:{id}", super::PREFIX)
}

fn keys_index() -> [String; 3] {
    let p = super::PREFIX;
    [format!("{p}bfv:keys"), format!("{p}bfv:sizes"), format!("{p}bfv:owners")]
}

/// The upload script. KEYS: the sorted set, the sizes, the owners. ARGV: memory per byte, bytes, client,
/// share, cap, TTL (ms), dry run (`1`: only check), the new id, the message, the prefix of key messages.
/// Returns `{0, used, replaced}` when stored (or there is room), `{1, used}` when the store is full.
const STORE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function forget(id)
  redis.call('DEL', ARGV[10] .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do forget(id) end
local per = tonumber(ARGV[1])
local cost = tonumber(ARGV[2]) * per
local share = tonumber(ARGV[4])
local used, held, mine = 0, 0, {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local size = tonumber(redis.call('HGET', KEYS[2], id) or '0') * per
  used = used + size
  if redis.call('HGET', KEYS[3], id) == ARGV[3] then
    held = held + size
    table.insert(mine, {id, size})
  end
end
local evict = {}
for _, e in ipairs(mine) do
  if held + cost <= share then break end
  held = held - e[2]
  used = used - e[2]
  table.insert(evict, e[1])
end
if used + cost > tonumber(ARGV[5]) then return {1, used} end
if ARGV[7] == '1' then return {0, used, 0} end
for _, id in ipairs(evict) do forget(id) end
redis.call('SET', ARGV[10] .. ARGV[8], ARGV[9], 'PX', ARGV[6])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[8])
redis.call('HSET', KEYS[2], ARGV[8], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[8], ARGV[3])
return {0, used + cost, #evict}
";

/// Restarts a key's time to live if it still exists. KEYS: the sorted set, the key message. ARGV: TTL (ms),
/// the id.
const TOUCH: &str = r"
if redis.call('PEXPIRE', KEYS[2], ARGV[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
return 1
";

/// Deletes a key set. KEYS: the sorted set, the sizes, the owners, the key message. ARGV: the id. Returns
/// 1 if the message existed.
const DELETE: &str = r"
local n = redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return n
";

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

/// Drops expired keys; returns the memory the rest take.
fn sweep(store: &mut HashMap<String, StoredKeys>, ttl: Duration) -> usize {
    store.retain(|_, k| k.last_used.elapsed() < ttl);
    store.values().map(|k| k.bytes * KEY_MEMORY_PER_BYTE).sum()
}

/// The embedded store's upload step: first drops expired sets and, while the client's sets would take
/// more than its share ([`BfvLimits::client_share`]), its least recently used one; then refuses (503
/// `key_store_full`) if the whole store would exceed its cap. With `keys` `None`, only checks that there
/// would be room (and changes nothing).
fn store_embedded(
    map: &Mutex<HashMap<String, StoredKeys>>,
    limits: &BfvLimits,
    client: &str,
    keys: Option<(String, EvalKeys)>,
    bytes: usize,
) -> Result<(), ApiError> {
    let cost = bytes * KEY_MEMORY_PER_BYTE;
    let share = limits.client_share;
    let mut store = map.lock().unwrap_or_else(|e| e.into_inner());
    let used = sweep(&mut store, limits.key_ttl);
    // The client's sets, least recently used first, and those that must go to make room in its share.
    let mut mine: Vec<(&String, &StoredKeys)> = store.iter().filter(|(_, k)| k.client == client).collect();
    mine.sort_by_key(|(_, k)| k.last_used);
    let mut held: usize = mine.iter().map(|(_, k)| k.bytes * KEY_MEMORY_PER_BYTE).sum();
    let mut evict: Vec<String> = Vec::new();
    for (id, k) in &mine {
        if held + cost <= share {
            break;
        }
        held -= k.bytes * KEY_MEMORY_PER_BYTE;
        evict.push((*id).clone());
    }
    let freed: usize =
        store.iter().filter(|(id, _)| evict.contains(id)).map(|(_, k)| k.bytes * KEY_MEMORY_PER_BYTE).sum();
    let used = used - freed;
    if used + cost > limits.key_memory {
        return Err(store_full(used, limits));
    }
    let Some((id, keys)) = keys else { return Ok(()) };
    if !evict.is_empty() {
        tracing::info!(replaced = evict.len(), "bfv keys replaced: the client's share of the key store was full");
    }
    for id in &evict {
        store.remove(id);
    }
    let stored = StoredKeys { keys: Arc::new(keys), bytes, last_used: Instant::now(), client: client.to_string() };
    store.insert(id, stored);
    Ok(())
}

impl KeyStore {
    /// A store in Redis whose replica caches at most [`CACHED_SETS`] parses of key sets of up to
    /// `limits.max_key_bytes`, and never more than the key store's cap.
    pub fn redis(redis: Redis, limits: &BfvLimits) -> KeyStore {
        let cache_bytes = (CACHED_SETS * limits.max_key_bytes * KEY_MEMORY_PER_BYTE).min(limits.key_memory);
        KeyStore::Redis { redis, cache: Mutex::new(ParsedCache::default()), cache_bytes }
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
        match self {
            KeyStore::Embedded(map) => store_embedded(map, limits, client, None, bytes),
            KeyStore::Redis { redis, .. } => self.redis_store(redis, limits, client, bytes, None).await.map(|_| ()),
        }
    }

    /// Stores a parsed key set (and, for Redis, its message `raw`) under `id`, replacing the client's oldest
    /// sets beyond its share; 503 `key_store_full` if the store is full.
    pub async fn insert(
        &self,
        limits: &BfvLimits,
        client: &str,
        id: &str,
        keys: EvalKeys,
        raw: &[u8],
    ) -> Result<(), ApiError> {
        let bytes = raw.len();
        match self {
            KeyStore::Embedded(map) => store_embedded(map, limits, client, Some((id.to_string(), keys)), bytes),
            KeyStore::Redis { redis, .. } => {
                let replaced = self.redis_store(redis, limits, client, bytes, Some((id, raw))).await?;
                if replaced > 0 {
                    tracing::info!(replaced, "bfv keys replaced: the client's share of the key store was full");
                }
                self.cache(id, Arc::new(keys), bytes);
                Ok(())
            }
        }
    }

    /// Runs [`STORE`]; returns how many sets were replaced.
    async fn redis_store(
        &self,
        redis: &Redis,
        limits: &BfvLimits,
        client: &str,
        bytes: usize,
        new: Option<(&str, &[u8])>,
    ) -> Result<usize, ApiError> {
        let [index, sizes, owners] = keys_index();
        let dry = new.is_none();
        let (id, raw) = new.unwrap_or(("", &[]));
        let ttl_ms = limits.key_ttl.as_millis().max(1) as u64;
        let reply: Vec<i64> = redis
            .run(|mut conn| async move {
                redis::Script::new(STORE)
                    .key(index)
                    .key(sizes)
                    .key(owners)
                    .arg(KEY_MEMORY_PER_BYTE)
                    .arg(bytes)
                    .arg(client)
                    .arg(limits.client_share)
                    .arg(limits.key_memory)
                    .arg(ttl_ms)
                    .arg(if dry { "1" } else { "0" })
                    .arg(id)
                    .arg(raw)
                    .arg(key(""))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match reply.as_slice() {
            [0, _, replaced] => Ok((*replaced).max(0) as usize),
            [1, used] => Err(store_full((*used).max(0) as usize, limits)),
            other => Err(ApiError::internal("storing BFV keys in Redis", format!("unexpected reply {other:?}"))),
        }
    }

    /// The key set under `id`: parsed, or its message to parse, or unknown.
    pub async fn lookup(&self, limits: &BfvLimits, id: &str) -> Result<Lookup, ApiError> {
        match self {
            KeyStore::Embedded(map) => {
                let mut store = map.lock().unwrap_or_else(|e| e.into_inner());
                sweep(&mut store, limits.key_ttl);
                Ok(store.get(id).map_or(Lookup::Unknown, |k| Lookup::Ready(k.keys.clone())))
            }
            KeyStore::Redis { redis, cache, .. } => {
                let k = key(id);
                let cached = {
                    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                    cache.get(id)
                };
                if let Some(keys) = cached {
                    // The parse is used only while the key exists in Redis: another replica may have
                    // deleted or replaced it, or it may have expired.
                    let exists: bool =
                        redis.run(|mut c| async move { redis::cmd("EXISTS").arg(k).query_async(&mut c).await }).await?;
                    if exists {
                        return Ok(Lookup::Ready(keys));
                    }
                    cache.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                    return Ok(Lookup::Unknown);
                }
                let raw: Option<Vec<u8>> =
                    redis.run(|mut c| async move { redis::cmd("GET").arg(k).query_async(&mut c).await }).await?;
                Ok(raw.map_or(Lookup::Unknown, Lookup::Fetched))
            }
        }
    }

    /// Keeps a parse of the key set `id` (of `bytes` uploaded bytes) in the replica's cache (Redis only).
    pub fn cache(&self, id: &str, keys: Arc<EvalKeys>, bytes: usize) {
        if let KeyStore::Redis { cache, cache_bytes, .. } = self {
            cache.lock().unwrap_or_else(|e| e.into_inner()).put(id, keys, bytes, *cache_bytes);
        }
    }

    /// Restarts the time to live of `id` after a successful evaluation (if it still exists).
    pub async fn touch(&self, limits: &BfvLimits, id: &str) -> Result<(), ApiError> {
        match self {
            KeyStore::Embedded(map) => {
                if let Some(entry) = map.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
                    entry.last_used = Instant::now();
                }
                Ok(())
            }
            KeyStore::Redis { redis, .. } => {
                let [index, ..] = keys_index();
                let k = key(id);
                let ttl_ms = limits.key_ttl.as_millis().max(1) as u64;
                let _: i64 = redis
                    .run(|mut c| async move {
                        redis::Script::new(TOUCH).key(index).key(k).arg(ttl_ms).arg(id).invoke_async(&mut c).await
                    })
                    .await?;
                Ok(())
            }
        }
    }

    /// Deletes the key set `id`; `false` if there was none.
    pub async fn remove(&self, id: &str) -> Result<bool, ApiError> {
        match self {
            KeyStore::Embedded(map) => Ok(map.lock().unwrap_or_else(|e| e.into_inner()).remove(id).is_some()),
            KeyStore::Redis { redis, cache, .. } => {
                cache.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                let [index, sizes, owners] = keys_index();
                let k = key(id);
                let n: i64 = redis
                    .run(|mut c| async move {
                        redis::Script::new(DELETE)
                            .key(index)
                            .key(sizes)
                            .key(owners)
                            .key(k)
                            .arg(id)
                            .invoke_async(&mut c)
                            .await
                    })
                    .await?;
                Ok(n > 0)
            }
        }
    }
}

impl<T: Clone> ParsedCache<T> {
    fn get(&mut self, id: &str) -> Option<T> {
        let at = self.entries.iter().position(|(k, _, _)| k == id)?;
        let entry = self.entries.remove(at);
        let keys = entry.1.clone();
        self.entries.push(entry);
        Some(keys)
    }

    fn remove(&mut self, id: &str) {
        self.entries.retain(|(k, _, _)| k != id);
    }

    /// Adds a parse, dropping the least recently used ones until all fit in `cap` bytes of memory.
    fn put(&mut self, id: &str, keys: T, bytes: usize, cap: usize) {
        self.remove(id);
        self.entries.push((id.to_string(), keys, bytes));
        while self.entries.len() > CACHED_SETS
            || self.entries.iter().map(|(_, _, b)| b * KEY_MEMORY_PER_BYTE).sum::<usize>() > cap
        {
            self.entries.remove(0);
        }
    }
}

/// 404 `unknown_key`.
pub fn unknown_key() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_key", "no such key id (expired?): upload the keys again")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_drops_its_least_recently_used_parses_beyond_its_count_and_its_memory() {
        let mut cache: ParsedCache<u32> = ParsedCache::default();
        let cap = 3 * 100 * KEY_MEMORY_PER_BYTE;
        for i in 0..3 {
            cache.put(&i.to_string(), i, 100, cap);
        }
        assert_eq!(cache.get("0"), Some(0)); // now the most recently used
        cache.put("3", 3, 100, cap); // over the memory cap: "1" goes
        assert_eq!((cache.get("1"), cache.get("2"), cache.get("0")), (None, Some(2), Some(0)));
        cache.remove("2");
        cache.put("4", 4, 10, usize::MAX);
        cache.put("5", 5, 10, usize::MAX);
        cache.put("6", 6, 10, usize::MAX);
        assert_eq!(cache.entries.len(), CACHED_SETS);
        assert_eq!(cache.get("3"), None, "the oldest of five goes");
    }
}
