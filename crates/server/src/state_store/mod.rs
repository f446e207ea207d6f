//! Where class challenges and BFV evaluation keys live: in this process ([`StateUrl::Embedded`], the
//! default) or in Redis ([`StateUrl::Redis`], `more-server --state redis://HOST:PORT/DB`), shared by every
//! replica behind a balancer and kept across restarts.
//!
//! Each resource has one small store with an embedded and a Redis variant ([`challenges::ChallengeStore`],
//! [`keys::KeyStore`]); the handlers in `challenge.rs` and `bfv.rs` call the store and never know which one
//! runs. Every Redis step that reads and then writes (a bound checked before an insert, a client's oldest
//! key set replaced) is one Lua script, so replicas racing each other cannot overshoot a bound.
//!
//! When Redis cannot be reached, a request that needs it is answered `503 state_unavailable` (with
//! `Retry-After: 1`); nothing is written half-way, since every write is a single command or script.
//!
//! Redis keys all start with [`PREFIX`]; see `docs/deploy.md` ("Shared state (Redis)") for the layout and
//! the bytes each entry takes.

pub mod batches;
pub mod capped;
pub mod challenges;
pub mod keys;
pub mod models;

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::ApiError;

/// The first bytes of every Redis key this server writes.
pub const PREFIX: &str = "more:";

/// How long one Redis command (or script) may take before the request is answered 503.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// The `--state` flag: where shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateUrl {
    /// In this process's memory (lost when it stops, not seen by other replicas).
    Embedded,
    /// In the Redis server at this URL (`redis://HOST:PORT/DB`).
    Redis(String),
}

impl StateUrl {
    /// Parses the flag: `memory` (or nothing) for [`StateUrl::Embedded`], a `redis://` URL for Redis.
    pub fn parse(s: &str) -> Result<StateUrl, String> {
        if s.is_empty() || s == "memory" {
            return Ok(StateUrl::Embedded);
        }
        if !(s.starts_with("redis://") || s.starts_with("redis+unix://") || s.starts_with("unix://")) {
            return Err(format!("{s:?} is not a redis:// URL (e.g. redis://127.0.0.1:6379/0)"));
        }
        redis::Client::open(s).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(StateUrl::Redis(s.to_string()))
    }
}

/// A reconnecting, multiplexed connection to the Redis server that holds the shared state. Cheap to clone;
/// every clone shares the one connection.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    url: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only where it points.
        f.debug_struct("Redis").field("at", &self.shown()).finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects to `url` (and checks the server answers `PING`). Fails if it cannot be reached now; later
    /// outages are survived: the connection is re-established in the background and requests meanwhile
    /// answer 503 `state_unavailable`.
    pub async fn connect(url: &str) -> Result<Redis, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| "no answer within 5 s".to_string())?
            .map_err(|e| e.to_string())?;
        let mut ping = conn.clone();
        let pong: String = tokio::time::timeout(COMMAND_TIMEOUT, redis::cmd("PING").query_async(&mut ping))
            .await
            .map_err(|_| format!("PING: no answer within {} s", COMMAND_TIMEOUT.as_secs()))?
            .map_err(|e| format!("PING: {e}"))?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        Ok(Redis { conn, url: url.to_string() })
    }

    /// The URL it was opened with (may hold a password: never log it; see [`redacted`]).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The server's address without any password, for messages.
    fn shown(&self) -> String {
        redacted(&self.url)
    }

    /// Runs one command (or script) on a clone of the connection within [`COMMAND_TIMEOUT`]; a Redis
    /// failure or timeout becomes 503 `state_unavailable`.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(COMMAND_TIMEOUT, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.unavailable(&e.to_string())),
            Err(_) => Err(self.unavailable(&format!("no answer within {} s", COMMAND_TIMEOUT.as_secs()))),
        }
    }

    fn unavailable(&self, cause: &str) -> ApiError {
        tracing::warn!(at = %self.shown(), cause, "shared state unavailable");
        state_unavailable()
    }
}

/// A Redis URL without its user and password (`redis://…@host:6379/0`), for messages and logs.
pub fn redacted(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((scheme_and_user, host)) => {
            let scheme = scheme_and_user.split("://").next().unwrap_or("redis");
            format!("{scheme}://…@{host}")
        }
        None => url.to_string(),
    }
}

/// 503 `state_unavailable`: the shared state (Redis) cannot be reached. The cause is logged, not sent.
pub fn state_unavailable() -> ApiError {
    ApiError::unavailable(
        "state_unavailable",
        "the server's shared state (Redis) cannot be reached; nothing was changed, retry shortly",
    )
}

/// Milliseconds since the Unix epoch of a time.
pub(crate) fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_unix_ms(ms: u64) -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}
