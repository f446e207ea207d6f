//! BFV batches seen from every replica: with `--state redis://…`, the replica that accepted a batch (and
//! evaluates it) mirrors its status record and, once done, its result into Redis, so that a status, result
//! or DELETE request that a balancer sends to another replica is answered too. The batch's message and its
//! evaluation stay in the accepting replica.
//!
//! Redis layout (under [`PREFIX`]): `more:bfv:batch:{id}` the status record (JSON, about
//! 300 bytes), `more:bfv:batch:{id}:result` the result message (1.76 MB), `more:bfv:batch:{id}:stop` set
//! by a DELETE through another replica (the running replica looks every second). All expire: the record
//! and the result [`RECORD_TTL_MARGIN`] after the result's time to live, the stop mark after an hour.
//!
//! A record whose replica stopped updating it (killed, or cut from Redis) reads as failed with
//! `batch_lost` once [`LOST_AFTER`] has passed: its batch cannot finish anywhere else — the client submits
//! it again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{PREFIX, Redis};
use crate::ApiError;

/// How long a queued or running batch's record may go without an update before it reads as lost.
pub const LOST_AFTER: Duration = Duration::from_secs(30);

/// Records outlive the result's time to live by this much (so a finished batch's status stays readable
/// as long as its result).
pub const RECORD_TTL_MARGIN: Duration = Duration::from_secs(60);

/// A batch's status, as the accepting replica knows it; the same record is kept locally and in Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The model it runs.
    pub model: String,
    /// Images in the batch.
    pub images: usize,
    /// `queued`, `running`, `done`, `failed` or `stopped`.
    pub state: String,
    /// Hidden values computed.
    pub done: usize,
    /// When it was accepted, started and finished (Unix milliseconds).
    pub accepted_ms: u64,
    /// See `accepted_ms`.
    pub started_ms: Option<u64>,
    /// See `accepted_ms`.
    pub finished_ms: Option<u64>,
    /// The failure: HTTP status, code and message.
    pub error: Option<(u16, String, String)>,
    /// When the accepting replica last wrote it (Unix milliseconds).
    pub updated_ms: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Record {
    /// Whether the batch has ended (done, failed or stopped).
    pub fn finished(&self) -> bool {
        matches!(self.state.as_str(), "done" | "failed" | "stopped")
    }

    /// The record as another replica should read it: an unfinished batch whose replica stopped updating
    /// it is failed with `batch_lost`.
    pub fn as_seen_at(mut self, now_ms: u64) -> Record {
        if !self.finished() && now_ms.saturating_sub(self.updated_ms) > LOST_AFTER.as_millis() as u64 {
            self.state = "failed".into();
            self.error = Some((
                503,
                "batch_lost".into(),
                "the replica that evaluated this batch stopped before it finished: submit it again".into(),
            ));
        }
        self
    }
}

fn record_key(id: &str) -> String {
    format!("{PREFIX}bfv:batch:{id}")
}

fn result_key(id: &str) -> String {
    format!("{PREFIX}bfv:batch:{id}:result")
}

fn stop_key(id: &str) -> String {
    format!("{PREFIX}bfv:batch:{id}:stop")
}

/// Writes (or rewrites) a record, expiring `ttl` from now.
pub async fn put(redis: &Redis, id: &str, record: &Record, ttl: Duration) -> Result<(), ApiError> {
    let (k, json) =
        (record_key(id), serde_json::to_string(record).map_err(|e| ApiError::internal("a batch record", e))?);
    let ms = (ttl + RECORD_TTL_MARGIN).as_millis() as u64;
    redis
        .run(|mut c| async move { redis::cmd("SET").arg(k).arg(json).arg("PX").arg(ms).query_async(&mut c).await })
        .await
}

/// Writes a finished batch's result and its record together.
pub async fn put_result(
    redis: &Redis,
    id: &str,
    record: &Record,
    result: &[u8],
    ttl: Duration,
) -> Result<(), ApiError> {
    let (rk, k) = (result_key(id), record_key(id));
    let json = serde_json::to_string(record).map_err(|e| ApiError::internal("a batch record", e))?;
    let (result_ms, record_ms) = (ttl.as_millis() as u64, (ttl + RECORD_TTL_MARGIN).as_millis() as u64);
    redis
        .run(|mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(rk)
                .arg(result)
                .arg("PX")
                .arg(result_ms)
                .ignore()
                .cmd("SET")
                .arg(k)
                .arg(json)
                .arg("PX")
                .arg(record_ms)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
}

/// The record of `id`, as seen now.
pub async fn get(redis: &Redis, id: &str) -> Result<Option<Record>, ApiError> {
    let k = record_key(id);
    let json: Option<String> =
        redis.run(|mut c| async move { redis::cmd("GET").arg(k).query_async(&mut c).await }).await?;
    Ok(json.and_then(|j| serde_json::from_str::<Record>(&j).ok()).map(|r| r.as_seen_at(now_ms())))
}

/// Whether the record of `id` still exists (a DELETE through any replica removes it).
pub async fn exists(redis: &Redis, id: &str) -> Result<bool, ApiError> {
    let k = record_key(id);
    redis.run(|mut c| async move { redis::cmd("EXISTS").arg(k).query_async(&mut c).await }).await
}

/// The result message of `id`, if it is done and kept.
pub async fn result(redis: &Redis, id: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let k = result_key(id);
    redis.run(|mut c| async move { redis::cmd("GET").arg(k).query_async(&mut c).await }).await
}

/// Deletes `id` everywhere and leaves a stop mark for the replica that runs it; `false` if there was no
/// record.
pub async fn remove(redis: &Redis, id: &str) -> Result<bool, ApiError> {
    let (k, rk, sk) = (record_key(id), result_key(id), stop_key(id));
    let (deleted,): (i64,) = redis
        .run(|mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&k)
                .cmd("DEL")
                .arg(rk)
                .ignore()
                .cmd("SET")
                .arg(sk)
                .arg(1)
                .arg("EX")
                .arg(3600)
                .ignore()
                .query_async(&mut c)
                .await
        })
        .await?;
    Ok(deleted > 0)
}

/// Whether a DELETE through another replica asked `id` to stop.
pub async fn stop_requested(redis: &Redis, id: &str) -> Result<bool, ApiError> {
    let k = stop_key(id);
    redis.run(|mut c| async move { redis::cmd("EXISTS").arg(k).query_async(&mut c).await }).await
}
