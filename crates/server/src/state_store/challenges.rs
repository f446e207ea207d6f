//! The store of class challenges: in this process or in Redis.
//!
//! Redis layout (every key under [`PREFIX`](super::PREFIX)):
//!
//! - `more:challenges`: a set of the challenge ids, whose size is the `--max-challenges` bound;
//! - `more:challenge:{id}`: a hash with `meta` (JSON: creation time, phrase, shape), `pixels` (the secret
//!   image, one byte per pixel) and `ciphertext` (the published wire-format tensor);
//! - `more:challenge:{id}:answers`: a list of answers, one JSON object each, in the order they came;
//! - `more:challenge:{id}:names`: a hash counting the answers of each name (the per-name bound).
//!
//! Creating a challenge and recording an answer are each one Lua script that checks the bounds and writes,
//! so two replicas cannot both take the last place. Nothing expires: as in memory, challenges stay until
//! the state is cleared.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::Redis;
use crate::ApiError;

/// A challenge as stored: the secret (to check answers) and the published ciphertext.
#[derive(Debug, Clone)]
pub struct ChallengeRecord {
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The secret phrase.
    pub phrase: String,
    /// The secret image, one byte per pixel, row-major.
    pub pixels: Vec<u8>,
    /// `[rows, cols]` of the image.
    pub shape: [usize; 2],
    /// The encrypted image in the wire format.
    pub ciphertext: Vec<u8>,
}

impl ChallengeRecord {
    /// Its creation time, phrase and shape.
    pub fn meta(&self) -> ChallengeMeta {
        ChallengeMeta { created_ms: self.created_ms, phrase: self.phrase.clone(), shape: self.shape }
    }
}

/// The small part of a challenge kept as JSON in Redis (`meta`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeMeta {
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The secret phrase.
    pub phrase: String,
    /// `[rows, cols]` of the image.
    pub shape: [usize; 2],
}

/// One recorded answer (a JSON element of the answers list in Redis).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// The sanitised name.
    pub name: String,
    /// `"image"` or `"phrase"`.
    pub kind: String,
    /// Whether it was right.
    pub correct: bool,
    /// When it came, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No challenge with this id.
    Unknown,
    /// The store holds this many challenges, its bound.
    ChallengesFull(usize),
    /// The challenge has taken all the answers it keeps.
    AnswersFull,
    /// This name has used all its answers.
    NameFull,
}

/// A challenge held in memory with its answers.
pub struct Held {
    record: ChallengeRecord,
    answers: Vec<AnswerRecord>,
}

/// The challenge store: in this process's memory, or in Redis shared by every replica.
pub enum ChallengeStore {
    /// Challenges in a map of this process.
    Embedded(Mutex<HashMap<String, Held>>),
    /// Challenges in Redis.
    Redis(Redis),
}

impl Default for ChallengeStore {
    fn default() -> Self {
        ChallengeStore::Embedded(Mutex::new(HashMap::new()))
    }
}

impl std::fmt::Debug for ChallengeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChallengeStore::Embedded(_) => f.write_str("ChallengeStore::Embedded"),
            ChallengeStore::Redis(r) => write!(f, "ChallengeStore::Redis({r:?})"),
        }
    }
}

fn key(id: &str) -> String {
    format!("{}challenge:{id}", super::PREFIX)
}

fn set_key() -> String {
    format!("{}challenges", super::PREFIX)
}

/// Creates a challenge if fewer than ARGV[1] are held. KEYS: the id set, the challenge's hash. ARGV: the
/// bound, the id, meta, pixels, ciphertext. Returns `{0, held}` when created, `{1, held}` when the store
/// is full, `{2, held}` if the id is taken.
const CREATE: &str = r"
local held = redis.call('SCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return {1, held} end
if redis.call('SADD', KEYS[1], ARGV[2]) == 0 then return {2, held} end
redis.call('HSET', KEYS[2], 'meta', ARGV[3], 'pixels', ARGV[4], 'ciphertext', ARGV[5])
return {0, held + 1}
";

/// Appends an answer within the bounds. KEYS: the challenge's hash, its answers list, its name counts.
/// ARGV: answers kept at most, answers per name at most, the name, the answer's JSON. Returns 0 when
/// recorded, 1 for an unknown challenge, 2 when the challenge is full, 3 when the name is.
const ANSWER: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[1]) then return 2 end
if tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0') >= tonumber(ARGV[2]) then return 3 end
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
return 0
";

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(what, e)
}

fn parse_meta(raw: &[u8]) -> Result<ChallengeMeta, ApiError> {
    serde_json::from_slice(raw).map_err(|e| internal("reading a challenge from Redis", e))
}

impl ChallengeStore {
    /// A store in Redis.
    pub fn redis(redis: Redis) -> Self {
        ChallengeStore::Redis(redis)
    }

    fn lock(map: &Mutex<HashMap<String, Held>>) -> Result<std::sync::MutexGuard<'_, HashMap<String, Held>>, ApiError> {
        map.lock().map_err(|e| internal("locking the challenge store", e))
    }

    /// Stores a new challenge under `id` unless `max` are held already.
    pub async fn create(&self, id: &str, c: ChallengeRecord, max: usize) -> Result<Result<(), Refused>, ApiError> {
        match self {
            ChallengeStore::Embedded(map) => {
                let mut map = Self::lock(map)?;
                if map.len() >= max {
                    return Ok(Err(Refused::ChallengesFull(map.len())));
                }
                map.insert(id.to_string(), Held { record: c, answers: Vec::new() });
                Ok(Ok(()))
            }
            ChallengeStore::Redis(r) => {
                let meta = c.meta();
                let meta = serde_json::to_vec(&meta).map_err(|e| internal("encoding a challenge", e))?;
                let (status, held): (i64, i64) = r
                    .run(|mut conn| async move {
                        redis::Script::new(CREATE)
                            .key(set_key())
                            .key(key(id))
                            .arg(max)
                            .arg(id)
                            .arg(meta)
                            .arg(c.pixels)
                            .arg(c.ciphertext)
                            .invoke_async(&mut conn)
                            .await
                    })
                    .await?;
                match status {
                    0 => Ok(Ok(())),
                    1 => Ok(Err(Refused::ChallengesFull(held.max(0) as usize))),
                    _ => Err(internal("creating a challenge", "the drawn id is taken")),
                }
            }
        }
    }

    /// Whether a challenge with this id exists.
    pub async fn exists(&self, id: &str) -> Result<bool, ApiError> {
        match self {
            ChallengeStore::Embedded(map) => Ok(Self::lock(map)?.contains_key(id)),
            ChallengeStore::Redis(r) => {
                let k = key(id);
                r.run(|mut conn| async move { redis::cmd("EXISTS").arg(k).query_async(&mut conn).await }).await
            }
        }
    }

    /// Creation time, phrase and shape of a challenge.
    pub async fn meta(&self, id: &str) -> Result<Option<ChallengeMeta>, ApiError> {
        match self {
            ChallengeStore::Embedded(map) => Ok(Self::lock(map)?.get(id).map(|h| h.record.meta())),
            ChallengeStore::Redis(r) => {
                let k = key(id);
                let raw: Option<Vec<u8>> = r
                    .run(|mut conn| async move { redis::cmd("HGET").arg(k).arg("meta").query_async(&mut conn).await })
                    .await?;
                raw.map(|m| parse_meta(&m)).transpose()
            }
        }
    }

    /// The published ciphertext of a challenge.
    pub async fn ciphertext(&self, id: &str) -> Result<Option<Vec<u8>>, ApiError> {
        match self {
            ChallengeStore::Embedded(map) => Ok(Self::lock(map)?.get(id).map(|h| h.record.ciphertext.clone())),
            ChallengeStore::Redis(r) => {
                let k = key(id);
                r.run(
                    |mut conn| async move { redis::cmd("HGET").arg(k).arg("ciphertext").query_async(&mut conn).await },
                )
                .await
            }
        }
    }

    /// What checking an answer needs: the meta and the secret pixels.
    pub async fn secret(&self, id: &str) -> Result<Option<(ChallengeMeta, Vec<u8>)>, ApiError> {
        match self {
            ChallengeStore::Embedded(map) => Ok(Self::lock(map)?.get(id).map(|h| {
                let meta = h.record.meta();
                (meta, h.record.pixels.clone())
            })),
            ChallengeStore::Redis(r) => {
                let k = key(id);
                let (meta, pixels): (Option<Vec<u8>>, Option<Vec<u8>>) = r
                    .run(|mut conn| async move {
                        redis::cmd("HMGET").arg(k).arg("meta").arg("pixels").query_async(&mut conn).await
                    })
                    .await?;
                match (meta, pixels) {
                    (Some(m), Some(p)) => Ok(Some((parse_meta(&m)?, p))),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Records an answer within the bounds (`max_answers` per challenge, `max_per_name` per name).
    pub async fn record(
        &self,
        id: &str,
        answer: AnswerRecord,
        max_answers: usize,
        max_per_name: usize,
    ) -> Result<Result<(), Refused>, ApiError> {
        match self {
            ChallengeStore::Embedded(map) => {
                let mut map = Self::lock(map)?;
                let Some(h) = map.get_mut(id) else { return Ok(Err(Refused::Unknown)) };
                if h.answers.len() >= max_answers {
                    return Ok(Err(Refused::AnswersFull));
                }
                if h.answers.iter().filter(|a| a.name == answer.name).count() >= max_per_name {
                    return Ok(Err(Refused::NameFull));
                }
                h.answers.push(answer);
                Ok(Ok(()))
            }
            ChallengeStore::Redis(r) => {
                let json = serde_json::to_vec(&answer).map_err(|e| internal("encoding an answer", e))?;
                let k = key(id);
                let status: i64 = r
                    .run(|mut conn| async move {
                        redis::Script::new(ANSWER)
                            .key(&k)
                            .key(format!("{k}:answers"))
                            .key(format!("{k}:names"))
                            .arg(max_answers)
                            .arg(max_per_name)
                            .arg(&answer.name)
                            .arg(json)
                            .invoke_async(&mut conn)
                            .await
                    })
                    .await?;
                Ok(match status {
                    0 => Ok(()),
                    1 => Err(Refused::Unknown),
                    2 => Err(Refused::AnswersFull),
                    _ => Err(Refused::NameFull),
                })
            }
        }
    }

    /// A challenge's meta and every answer, in the order they came.
    pub async fn answers(&self, id: &str) -> Result<Option<(ChallengeMeta, Vec<AnswerRecord>)>, ApiError> {
        match self {
            ChallengeStore::Embedded(map) => Ok(Self::lock(map)?.get(id).map(|h| {
                let meta = h.record.meta();
                (meta, h.answers.clone())
            })),
            ChallengeStore::Redis(r) => {
                let k = key(id);
                // One transaction, so the list read belongs to the meta read.
                let (meta, list): (Option<Vec<u8>>, Vec<Vec<u8>>) = r
                    .run(|mut conn| async move {
                        redis::pipe()
                            .atomic()
                            .cmd("HGET")
                            .arg(&k)
                            .arg("meta")
                            .cmd("LRANGE")
                            .arg(format!("{k}:answers"))
                            .arg(0)
                            .arg(-1)
                            .query_async(&mut conn)
                            .await
                    })
                    .await?;
                let Some(meta) = meta else { return Ok(None) };
                let answers = list
                    .iter()
                    .map(|a| serde_json::from_slice(a).map_err(|e| internal("reading an answer from Redis", e)))
                    .collect::<Result<Vec<AnswerRecord>, ApiError>>()?;
                Ok(Some((parse_meta(&meta)?, answers)))
            }
        }
    }
}
