//! Idempotency keys: a request that creates something (a training job, a BFV key set, an uploaded model, a
//! class challenge, a challenge answer) and carries an `Idempotency-Key` header is carried out at most once per key. A retry
//! with the same key — the client's own, or the balancer's when the first replica failed (nginx's
//! `proxy_next_upstream … non_idempotent`) — gets the first answer again, marked `Idempotent-Replayed:
//! true`, and creates nothing. A retry that arrives while the first is still being carried out waits for
//! its answer (up to [`WAIT`]), then answers `409 request_in_progress`.
//!
//! The key is scoped by client (as per-client limits name it), method and path, so two clients (or two
//! routes) cannot collide; its request body is not compared: one key is one logical request. Answers are
//! kept for [`KEEP`]; only final ones — 2xx and 4xx other than 408 and 429 — are kept, so a request that
//! failed for a passing reason (503, 429, a timeout) runs again when retried. Keys live where the shared
//! state lives: in this process (at most [`MAX_EMBEDDED`] answers) or in Redis (`more:idem:…`), so a retry
//! on another replica finds them.
//!
//! `deploy/nginx.conf` gives every request without a key the balancer's `$request_id`, which stays the
//! same when nginx retries on another replica: requests through it are covered even when the client sends
//! no key. The pages and the CLI send one of their own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use crate::state_store::Redis;
use crate::{ApiError, AppState};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The response header on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// How long an answer is kept for retries (as long as a training job lives by default).
pub const KEEP: Duration = Duration::from_secs(3600);

/// How long a request may hold its key before a retry may run it again: longer than any request's
/// deadline (a 64 MiB training upload is given the request timeout plus 64 s).
pub const HOLD: Duration = Duration::from_secs(300);

/// How long a retry waits for the first request's answer.
pub const WAIT: Duration = Duration::from_secs(30);

/// Largest answer kept (the routes covered answer with small JSON documents).
pub const MAX_ANSWER: usize = 64 << 10;

/// Answers kept at most in this process; beyond it the oldest go first.
pub const MAX_EMBEDDED: usize = 10_000;

/// Longest key accepted (a UUID is 36 characters).
pub const MAX_KEY: usize = 128;

/// Whether a request to `path` with `method` creates something and so honours an idempotency key.
pub fn covers(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    matches!(path, "/api/v1/jobs" | "/api/v1/bfv/keys" | "/api/v1/challenges" | "/api/v1/models")
        || path
            .strip_prefix("/api/v1/challenges/")
            .and_then(|rest| rest.strip_suffix("/answers"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        || path
            .strip_prefix("/api/v1/bfv/models/")
            .and_then(|rest| rest.strip_suffix("/batches"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// A kept answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Kept {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    body: String,
}

/// What a key holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Entry {
    /// A request is being carried out under it.
    Pending,
    /// Its answer.
    Done(Kept),
}

/// Where keys live.
#[derive(Debug)]
pub enum Keys {
    /// In this process.
    Embedded(Mutex<HashMap<String, (Instant, Entry)>>),
    /// In Redis.
    Redis(Redis),
}

impl Default for Keys {
    fn default() -> Self {
        Keys::Embedded(Mutex::new(HashMap::new()))
    }
}

fn redis_key(scope: &str) -> String {
    format!("{}idem:{scope}", crate::state_store::PREFIX)
}

impl Keys {
    /// Takes the key for a new request, or returns what it holds.
    async fn claim(&self, scope: &str) -> Result<Option<Entry>, ApiError> {
        let pending = serde_json::to_string(&Entry::Pending).expect("serialisable");
        match self {
            Keys::Embedded(map) => {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if let Some((until, entry)) = map.get(scope)
                    && *until > now
                {
                    return Ok(Some(entry.clone()));
                }
                if map.len() >= MAX_EMBEDDED {
                    map.retain(|_, (until, _)| *until > now);
                    while map.len() >= MAX_EMBEDDED {
                        let Some(oldest) = map.iter().min_by_key(|(_, (until, _))| *until).map(|(k, _)| k.clone())
                        else {
                            break;
                        };
                        map.remove(&oldest);
                    }
                }
                map.insert(scope.to_string(), (now + HOLD, Entry::Pending));
                Ok(None)
            }
            Keys::Redis(r) => {
                let k = redis_key(scope);
                let held: Option<String> = r
                    .run(|mut c| async move {
                        redis::cmd("SET")
                            .arg(&k)
                            .arg(pending)
                            .arg("NX")
                            .arg("GET")
                            .arg("PX")
                            .arg(HOLD.as_millis() as u64)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                Ok(held.and_then(|text| serde_json::from_str(&text).ok()))
            }
        }
    }

    /// What the key holds now.
    async fn get(&self, scope: &str) -> Result<Option<Entry>, ApiError> {
        match self {
            Keys::Embedded(map) => {
                let map = map.lock().unwrap_or_else(|e| e.into_inner());
                Ok(map.get(scope).filter(|(until, _)| *until > Instant::now()).map(|(_, e)| e.clone()))
            }
            Keys::Redis(r) => {
                let k = redis_key(scope);
                let text: Option<String> =
                    r.run(|mut c| async move { redis::cmd("GET").arg(k).query_async(&mut c).await }).await?;
                Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
            }
        }
    }

    /// Keeps the answer (`Some`) or frees the key for a retry (`None`).
    async fn settle(&self, scope: &str, kept: Option<Kept>) -> Result<(), ApiError> {
        match self {
            Keys::Embedded(map) => {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                match kept {
                    Some(k) => map.insert(scope.to_string(), (Instant::now() + KEEP, Entry::Done(k))),
                    None => map.remove(scope),
                };
                Ok(())
            }
            Keys::Redis(r) => {
                let k = redis_key(scope);
                match kept {
                    Some(kept) => {
                        let text = serde_json::to_string(&Entry::Done(kept)).expect("serialisable");
                        r.run(|mut c| async move {
                            redis::cmd("SET")
                                .arg(k)
                                .arg(text)
                                .arg("PX")
                                .arg(KEEP.as_millis() as u64)
                                .query_async(&mut c)
                                .await
                        })
                        .await
                    }
                    None => r.run(|mut c| async move { redis::cmd("DEL").arg(k).query_async(&mut c).await }).await,
                }
            }
        }
    }
}

fn replay(kept: &Kept) -> Response {
    let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    let mut res = (status, kept.body.clone()).into_response();
    let h = res.headers_mut();
    if let Some(ct) = kept.content_type.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    if let Some(loc) = kept.location.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        h.insert(header::LOCATION, loc);
    }
    h.insert(HeaderName::from_static(REPLAYED), HeaderValue::from_static("true"));
    res
}

/// Whether an answer is final (kept for retries): a retry of anything else should run again.
fn is_final(status: StatusCode) -> bool {
    (status.is_success() || status.is_client_error())
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
}

/// The middleware: honours `Idempotency-Key` on the routes [`covers`] names.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !covers(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(value) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match value.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_graphic()) => k.to_string(),
        _ => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_idempotency_key",
                format!("Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters (e.g. a UUID)"),
            )
            .into_response();
        }
    };
    let peer = req.extensions().get::<axum::extract::ConnectInfo<crate::conn::ClientAddr>>().map(|c| c.0.0.ip());
    let client = peer
        .map_or_else(|| "unknown".to_string(), |ip| state.trusted_proxies().client_of(ip, req.headers()).to_string());
    let scope = format!("{client} {} {} {key}", req.method(), req.uri().path());
    match run_once(&state, &scope, req, next).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

/// Frees a claimed key if the request is dropped (its client went away) before its answer was kept.
struct Claimed {
    state: AppState,
    scope: String,
    armed: bool,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if self.armed {
            let (state, scope) = (self.state.clone(), std::mem::take(&mut self.scope));
            tokio::spawn(async move {
                let _ = state.idempotency_keys().settle(&scope, None).await;
            });
        }
    }
}

async fn run_once(state: &AppState, scope: &str, req: Request, next: Next) -> Result<Response, ApiError> {
    let keys = state.idempotency_keys();
    match keys.claim(scope).await? {
        Some(Entry::Done(kept)) => return Ok(replay(&kept)),
        Some(Entry::Pending) => {
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match keys.get(scope).await? {
                    Some(Entry::Done(kept)) => return Ok(replay(&kept)),
                    Some(Entry::Pending) => {}
                    // Freed (the first attempt failed for a passing reason): this one runs.
                    None => return Box::pin(run_once(state, scope, req, next)).await,
                }
            }
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is still being carried out; retry shortly with the same key",
            ));
        }
        None => {}
    }
    let mut claimed = Claimed { state: state.clone(), scope: scope.to_string(), armed: true };
    let res = next.run(req).await;
    claimed.armed = false;
    let status = res.status();
    if !is_final(status) {
        keys.settle(scope, None).await?;
        return Ok(res);
    }
    let (parts, body) = res.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_ANSWER).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            keys.settle(scope, None).await?;
            return Err(ApiError::internal("keeping an answer for its idempotency key", e));
        }
    };
    let text = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let kept = String::from_utf8(bytes.to_vec()).ok().map(|body| Kept {
        status: status.as_u16(),
        content_type: text(header::CONTENT_TYPE),
        location: text(header::LOCATION),
        body,
    });
    keys.settle(scope, kept).await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_creating_routes_are_covered_and_nothing_else() {
        for path in [
            "/api/v1/jobs",
            "/api/v1/bfv/keys",
            "/api/v1/challenges",
            "/api/v1/challenges/abc/answers",
            "/api/v1/models",
        ] {
            assert!(covers(&Method::POST, path), "{path}");
        }
        for (m, path) in [
            (Method::GET, "/api/v1/jobs"),
            (Method::POST, "/api/v1/models/mnist/infer"),
            (Method::POST, "/api/v1/challenges//answers"),
            (Method::POST, "/api/v1/challenges/a/b/answers"),
            (Method::DELETE, "/api/v1/jobs"),
        ] {
            assert!(!covers(&m, path), "{m} {path}");
        }
    }

    #[test]
    fn only_final_answers_are_kept() {
        assert!(is_final(StatusCode::CREATED) && is_final(StatusCode::UNPROCESSABLE_ENTITY));
        for s in [StatusCode::SERVICE_UNAVAILABLE, StatusCode::TOO_MANY_REQUESTS, StatusCode::REQUEST_TIMEOUT] {
            assert!(!is_final(s), "{s}");
        }
    }
}
