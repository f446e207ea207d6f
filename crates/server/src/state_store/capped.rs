//! The rules shared by the stores of uploaded things that expire — BFV key sets ([`super::keys`]) and
//! uploaded models ([`super::models`]): a time to live that restarts with use, a cap on what all entries
//! cost together, and a per-client share beyond which a client's least recently used entries are replaced
//! by its new upload. Each store says what an entry costs (the BFV keys: their memory; models: one each).
//!
//! In this process the entries live in a [`CappedMap`]; in Redis, under a [`Namespace`], written by the
//! Lua scripts below (one script per step that reads and then writes, so replicas racing each other cannot
//! overshoot a cap), and each replica keeps the parses it made in a small [`ParsedCache`].
//!
//! Redis layout of a namespace (every key under [`PREFIX`](super::PREFIX)):
//!
//! - `{item}{id}`: the entry's bytes as uploaded, with a Redis expiry of the time to live (`SET … PX`),
//!   refreshed (`PEXPIRE`) on use;
//! - `{index}`: a sorted set of the ids scored by their expiry (ms, Redis's clock), so its order is least
//!   recently used first;
//! - `{costs}` and `{owners}`: hashes from id to the entry's size (in the store's units) and to the client
//!   that uploaded it.
//!
//! An upload walks every stored entry; they number at most the cap divided by one entry's cost, so it
//! stays short.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Redis;
use crate::ApiError;

/// The upload script. KEYS: the sorted set, the sizes, the owners. ARGV: cost per unit, units, client,
/// share, cap, TTL (ms), dry run (`1`: only check), the new id, the bytes, the prefix of the entries' keys.
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

/// Restarts an entry's time to live if it still exists. KEYS: the sorted set, the entry. ARGV: TTL (ms),
/// the id. Returns 1 if it exists.
const TOUCH: &str = r"
if redis.call('PEXPIRE', KEYS[2], ARGV[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
return 1
";

/// Deletes an entry. KEYS: the sorted set, the sizes, the owners, the entry. ARGV: the id. Returns 1 if
/// the entry existed.
const DELETE: &str = r"
local n = redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return n
";

/// The bounds of a store: what all entries may cost together, what one client's may cost, and how long an
/// entry lives after its last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// The most all entries may cost together (in the store's units).
    pub cap: usize,
    /// The most one client's entries may cost; beyond it, its least recently used ones are replaced. A
    /// client may always hold one entry.
    pub share: usize,
    /// Time to live after the last use.
    pub ttl: Duration,
}

/// The store is full: `used` of the cap is taken by entries of other clients (or by this client's, within
/// its share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// What the entries cost together.
    pub used: usize,
}

/// One entry held in this process.
struct Entry<T> {
    value: Arc<T>,
    cost: usize,
    last_used: Instant,
    /// The client that uploaded it ([`crate::extract::Client`]).
    client: String,
}

/// Entries held in this process, by id.
pub struct CappedMap<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
}

impl<T> Default for CappedMap<T> {
    fn default() -> Self {
        CappedMap { entries: Mutex::new(HashMap::new()) }
    }
}

impl<T> CappedMap<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The upload step: drops expired entries and, while the client's entries would cost more than its
    /// share, its least recently used one; then refuses ([`Full`]) if the whole store would exceed its cap.
    /// With `new` `None`, only checks that there would be room (and changes nothing). Returns how many of
    /// the client's entries were replaced.
    pub fn store(&self, caps: &Caps, client: &str, new: Option<(String, T)>, cost: usize) -> Result<usize, Full> {
        let mut map = self.lock();
        map.retain(|_, e| e.last_used.elapsed() < caps.ttl);
        let used: usize = map.values().map(|e| e.cost).sum();
        // The client's entries, least recently used first, and those that must go to make room in its share.
        let mut mine: Vec<(&String, &Entry<T>)> = map.iter().filter(|(_, e)| e.client == client).collect();
        mine.sort_by_key(|(_, e)| e.last_used);
        let mut held: usize = mine.iter().map(|(_, e)| e.cost).sum();
        let mut evict: Vec<(String, usize)> = Vec::new();
        for (id, e) in &mine {
            if held + cost <= caps.share {
                break;
            }
            held -= e.cost;
            evict.push(((*id).clone(), e.cost));
        }
        let used = used - evict.iter().map(|(_, c)| c).sum::<usize>();
        if used + cost > caps.cap {
            return Err(Full { used });
        }
        let Some((id, value)) = new else { return Ok(0) };
        for (id, _) in &evict {
            map.remove(id);
        }
        map.insert(id, Entry { value: Arc::new(value), cost, last_used: Instant::now(), client: client.to_string() });
        Ok(evict.len())
    }

    /// The entry `id` if it has not expired; `touch` restarts its time to live.
    pub fn get(&self, ttl: Duration, id: &str, touch: bool) -> Option<Arc<T>> {
        let mut map = self.lock();
        map.retain(|_, e| e.last_used.elapsed() < ttl);
        let entry = map.get_mut(id)?;
        if touch {
            entry.last_used = Instant::now();
        }
        Some(entry.value.clone())
    }

    /// Restarts the time to live of `id` (if it is still held).
    pub fn touch(&self, id: &str) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.last_used = Instant::now();
        }
    }

    /// Deletes `id`; `false` if there was none.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }
}

/// What a lookup in a capped store found.
pub enum Lookup<T> {
    /// The entry, parsed and ready to use.
    Ready(Arc<T>),
    /// The entry's bytes, fetched from Redis, to parse (then cache in the replica).
    Fetched(Vec<u8>),
    /// No such entry.
    Unknown,
}

/// Where a store's entries live in Redis (the key names, each under [`PREFIX`](super::PREFIX)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The sorted set of ids by expiry.
    pub index: String,
    /// The hash of sizes.
    pub costs: String,
    /// The hash of owners.
    pub owners: String,
    /// The prefix of the entries' own keys (`{item}{id}`).
    pub item: String,
}

impl Namespace {
    /// The key names `index`, `costs`, `owners` and the entries' `item` prefix, each under
    /// [`PREFIX`](super::PREFIX).
    pub fn under_prefix(index: &str, costs: &str, owners: &str, item: &str) -> Namespace {
        let p = super::PREFIX;
        Namespace {
            index: format!("{p}{index}"),
            costs: format!("{p}{costs}"),
            owners: format!("{p}{owners}"),
            item: format!("{p}{item}"),
        }
    }

    /// The key of entry `id`.
    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.item)
    }

    /// Runs `STORE`: `units` of `per` each for `client`, with the entry's `(id, bytes)` or as a dry run
    /// (`None`). Returns how many of the client's entries were replaced, or [`Full`].
    pub async fn store(
        &self,
        redis: &Redis,
        caps: &Caps,
        client: &str,
        (per, units): (usize, usize),
        new: Option<(&str, &[u8])>,
    ) -> Result<Result<usize, Full>, ApiError> {
        let dry = new.is_none();
        let (id, raw) = new.unwrap_or(("", &[]));
        let ttl_ms = caps.ttl.as_millis().max(1) as u64;
        let reply: Vec<i64> = redis
            .run(|mut conn| async move {
                redis::Script::new(STORE)
                    .key(&self.index)
                    .key(&self.costs)
                    .key(&self.owners)
                    .arg(per)
                    .arg(units)
                    .arg(client)
                    .arg(caps.share)
                    .arg(caps.cap)
                    .arg(ttl_ms)
                    .arg(if dry { "1" } else { "0" })
                    .arg(id)
                    .arg(raw)
                    .arg(&self.item)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match reply.as_slice() {
            [0, _, replaced] => Ok(Ok((*replaced).max(0) as usize)),
            [1, used] => Ok(Err(Full { used: (*used).max(0) as usize })),
            other => Err(ApiError::internal("storing in Redis", format!("unexpected reply {other:?}"))),
        }
    }

    /// Restarts the time to live of `id`; `false` if it no longer exists (expired, deleted or replaced).
    pub async fn touch(&self, redis: &Redis, ttl: Duration, id: &str) -> Result<bool, ApiError> {
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let n: i64 = redis
            .run(|mut c| async move {
                redis::Script::new(TOUCH)
                    .key(&self.index)
                    .key(self.key(id))
                    .arg(ttl_ms)
                    .arg(id)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n > 0)
    }

    /// Whether `id` exists.
    pub async fn exists(&self, redis: &Redis, id: &str) -> Result<bool, ApiError> {
        let k = self.key(id);
        redis.run(|mut c| async move { redis::cmd("EXISTS").arg(k).query_async(&mut c).await }).await
    }

    /// The bytes of `id`, if it exists.
    pub async fn fetch(&self, redis: &Redis, id: &str) -> Result<Option<Vec<u8>>, ApiError> {
        let k = self.key(id);
        redis.run(|mut c| async move { redis::cmd("GET").arg(k).query_async(&mut c).await }).await
    }

    /// Deletes `id`; `false` if there was none.
    pub async fn delete(&self, redis: &Redis, id: &str) -> Result<bool, ApiError> {
        let n: i64 = redis
            .run(|mut c| async move {
                redis::Script::new(DELETE)
                    .key(&self.index)
                    .key(&self.costs)
                    .key(&self.owners)
                    .key(self.key(id))
                    .arg(id)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n > 0)
    }
}

/// The parses a replica keeps of entries that live in Redis (id, parse, memory), least recently used
/// first, within a count and a memory cap.
pub struct ParsedCache<T> {
    entries: Vec<(String, T, usize)>,
    most: usize,
    cap: usize,
}

impl<T: Clone> ParsedCache<T> {
    /// A cache of at most `most` parses taking at most `cap` bytes of memory together.
    pub fn new(most: usize, cap: usize) -> Self {
        ParsedCache { entries: Vec::new(), most, cap }
    }

    /// The parse of `id`, now the most recently used.
    pub fn get(&mut self, id: &str) -> Option<T> {
        let at = self.entries.iter().position(|(k, _, _)| k == id)?;
        let entry = self.entries.remove(at);
        let value = entry.1.clone();
        self.entries.push(entry);
        Some(value)
    }

    /// Forgets the parse of `id`.
    pub fn remove(&mut self, id: &str) {
        self.entries.retain(|(k, _, _)| k != id);
    }

    /// Adds a parse taking `memory` bytes, dropping the least recently used ones until the rest fit.
    pub fn put(&mut self, id: &str, value: T, memory: usize) {
        self.remove(id);
        self.entries.push((id.to_string(), value, memory));
        while self.entries.len() > self.most || self.entries.iter().map(|(_, _, m)| m).sum::<usize>() > self.cap {
            self.entries.remove(0);
        }
    }

    /// Parses held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no parse is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_drops_its_least_recently_used_parses_beyond_its_count_and_its_memory() {
        let mut cache: ParsedCache<u32> = ParsedCache::new(4, 300);
        for i in 0..3 {
            cache.put(&i.to_string(), i, 100);
        }
        assert_eq!(cache.get("0"), Some(0)); // now the most recently used
        cache.put("3", 3, 100); // over the memory cap: "1" goes
        assert_eq!((cache.get("1"), cache.get("2"), cache.get("0")), (None, Some(2), Some(0)));
        cache.remove("2");
        cache.put("4", 4, 10);
        cache.put("5", 5, 10);
        cache.put("6", 6, 10);
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.get("3"), None, "the oldest of five goes");
    }

    #[test]
    fn the_map_replaces_a_clients_oldest_entries_beyond_its_share_and_refuses_beyond_the_cap() {
        let caps = Caps { cap: 4, share: 2, ttl: Duration::from_secs(60) };
        let map: CappedMap<u32> = CappedMap::default();
        assert_eq!(map.store(&caps, "a", Some(("a1".into(), 1)), 1), Ok(0));
        assert_eq!(map.store(&caps, "a", Some(("a2".into(), 2)), 1), Ok(0));
        map.touch("a1"); // a2 is now a's least recently used
        assert_eq!(map.store(&caps, "a", Some(("a3".into(), 3)), 1), Ok(1));
        assert!(map.get(caps.ttl, "a2", false).is_none() && map.get(caps.ttl, "a1", false).is_some());
        assert_eq!(map.store(&caps, "b", Some(("b1".into(), 4)), 1), Ok(0));
        assert_eq!(map.store(&caps, "c", Some(("c1".into(), 5)), 1), Ok(0));
        assert_eq!(map.store(&caps, "d", None, 1), Err(Full { used: 4 }), "full: d may not replace others'");
        assert!(map.remove("b1") && !map.remove("b1"));
        assert_eq!(map.store(&caps, "d", None, 1), Ok(0), "a dry run changes nothing");
        assert!(map.get(caps.ttl, "d", false).is_none());
        let short = Caps { ttl: Duration::ZERO, ..caps };
        assert!(map.get(short.ttl, "a1", true).is_none(), "expired");
    }
}
