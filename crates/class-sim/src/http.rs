//! The students' HTTP client: one connection pool for the class, every attempt timed and counted by route,
//! a fresh `Idempotency-Key` per logical POST (the same on the student's own retries), and bounded retries
//! of answers that say "try again" (429, 502, 503, 504) or of a connection that failed, 1, 2, 4, … s apart
//! (or `Retry-After`, if longer; with jitter, so that a class does not come back all at once).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use ureq::http::Request;

/// A request the students send.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The route pattern it is counted under, e.g. `POST /api/v1/challenges/{id}/answers`.
    pub route: &'static str,
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path and query below the base URL.
    pub path: String,
    /// `Content-Type` and body (POST only).
    pub body: Option<(&'static str, &'a [u8])>,
    /// A bearer token (the teacher's routes).
    pub bearer: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// A `GET` of `path`.
    pub fn get(route: &'static str, path: impl Into<String>) -> Self {
        Call { route, method: "GET", path: path.into(), body: None, bearer: None }
    }

    /// A `POST` of `body` (`content_type`) to `path`.
    pub fn post(route: &'static str, path: impl Into<String>, content_type: &'static str, body: &'a [u8]) -> Self {
        Call { route, method: "POST", path: path.into(), body: Some((content_type, body)), bearer: None }
    }

    /// The same with the bearer token `token`.
    pub fn bearer(self, token: &'a str) -> Self {
        Call { bearer: Some(token), ..self }
    }
}

/// An answer: status and body (bodies of 2xx answers and of errors alike).
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The status and, for an error answer, the server's `error` code, e.g. `404 unknown_job`.
    pub fn describe(&self) -> String {
        match self.json()["error"].as_str() {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// One route's attempts.
#[derive(Debug, Default, Clone)]
pub struct RouteStats {
    /// Milliseconds of each attempt (request to the last byte of the answer).
    pub millis: Vec<f64>,
    /// Attempts without a 2xx answer (error status or no answer).
    pub failures: usize,
}

impl RouteStats {
    /// The `q`-quantile of the attempts' times (nearest rank), 0 without attempts.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut v = self.millis.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n => v[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
        }
    }
}

/// The class's HTTP client.
#[derive(Debug)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    stream_agent: ureq::Agent,
    retries: u32,
    stats: Mutex<BTreeMap<&'static str, RouteStats>>,
    retried: Mutex<usize>,
}

/// A UUID-like random string (version-4 layout) for `Idempotency-Key`.
pub fn idempotency_key() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

impl Client {
    /// A client of the server (or balancer) at `base`; a logical request is sent at most `1 + retries`
    /// times; each exchange may take `timeout`.
    pub fn new(base: &str, retries: u32, timeout: Duration) -> Client {
        let config = |per_read: Option<Duration>, global: Option<Duration>| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(5)))
                .timeout_global(global)
                .timeout_per_read(per_read)
                .max_idle_connections(256)
                .max_idle_connections_per_host(256)
                .build()
                .into()
        };
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent: config(None, Some(timeout)),
            // Event streams last as long as a job: no overall limit, but 60 s without a byte (heartbeats
            // come every 15 s at most) is a dead connection.
            stream_agent: config(Some(Duration::from_secs(60)), None),
            retries,
            stats: Mutex::new(BTreeMap::new()),
            retried: Mutex::new(0),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Records one attempt of `route`.
    pub fn record(&self, route: &'static str, started: Instant, ok: bool) {
        let mut stats = self.stats.lock().unwrap();
        let s = stats.entry(route).or_default();
        s.millis.push(started.elapsed().as_secs_f64() * 1e3);
        if !ok {
            s.failures += 1;
        }
    }

    /// Every route's attempts so far.
    pub fn stats(&self) -> BTreeMap<&'static str, RouteStats> {
        self.stats.lock().unwrap().clone()
    }

    /// Attempts that were retries of an earlier one.
    pub fn retried(&self) -> usize {
        *self.retried.lock().unwrap()
    }

    /// Sends `call` until it gets an answer that is not "try again", at most `1 + retries` times (a
    /// POST with the same `Idempotency-Key` each time). The last answer, or the last transport error.
    pub fn send(&self, call: &Call<'_>) -> Result<Answer, String> {
        let key = (call.method == "POST").then(idempotency_key);
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = self.once(call, key.as_deref());
            let (retry, after) = match &result {
                Ok(a) => (matches!(a.status, 429 | 502 | 503 | 504), a.retry_after.unwrap_or(0)),
                Err(_) => (true, 0),
            };
            self.record(call.route, started, result.as_ref().is_ok_and(|a| (200..300).contains(&a.status)));
            if !retry || attempt >= self.retries {
                return result;
            }
            let backoff = Duration::from_secs(after.max(1 << attempt.min(6)));
            attempt += 1;
            *self.retried.lock().unwrap() += 1;
            std::thread::sleep(backoff.mul_f64(rand::rng().random_range(0.75..1.25)));
        }
    }

    fn once(&self, call: &Call<'_>, key: Option<&str>) -> Result<Answer, String> {
        let url = format!("{}{}", self.base, call.path);
        let mut b = Request::builder().method(call.method).uri(&url);
        if let Some(token) = call.bearer {
            b = b.header("authorization", format!("Bearer {token}"));
        }
        if let Some(key) = key {
            b = b.header("idempotency-key", key);
        }
        let sent = match call.body {
            Some((ct, body)) => {
                let req = b.header("content-type", ct).body(body).map_err(|e| e.to_string())?;
                self.agent.run(req)
            }
            None => self.agent.run(b.body(()).map_err(|e| e.to_string())?),
        };
        let mut resp = sent.map_err(|e| format!("{} {}: {e}", call.method, call.route))?;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse().ok());
        let body = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .map_err(|e| format!("{} {}: reading the answer: {e}", call.method, call.route))?;
        Ok(Answer { status, retry_after, body })
    }

    /// Opens an event stream at `path` (`Last-Event-ID: last` if given): the answer's status and, for a
    /// 2xx, a reader of its body. Not counted: the caller records the stream when it ends.
    pub fn stream(&self, path: &str, last: Option<u64>) -> Result<(u16, Option<ureq::BodyReader<'static>>), String> {
        let url = format!("{}{}", self.base, path);
        let mut b = Request::get(&url).header("accept", "text/event-stream");
        if let Some(id) = last {
            b = b.header("last-event-id", id.to_string());
        }
        let resp = self.stream_agent.run(b.body(()).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok((status, Some(resp.into_body().into_reader())))
        } else {
            Ok((status, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_uuids_and_differ() {
        let (a, b) = (idempotency_key(), idempotency_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_eq!(a.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let s = RouteStats { millis: (1..=100).map(f64::from).collect(), failures: 0 };
        assert_eq!((s.quantile(0.5), s.quantile(0.99), s.quantile(1.0)), (50.0, 99.0, 100.0));
        assert_eq!(RouteStats::default().quantile(0.5), 0.0);
    }
}
