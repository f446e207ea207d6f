//! Training jobs in Redis (`more-server --state redis://…`): every replica on the same Redis sees every
//! job — its record, event log, place in the fair queue, upload and trained model — so a client may post,
//! follow, download or delete a job through any replica. Each replica's training threads take jobs from
//! the one shared queue under a **lease** (a key with a short time to live that the training replica
//! renews); a replica that dies while training lets its lease run out, and the sweep that every replica
//! runs puts the job back at the front of its client's line with a `resumed` event, for any replica to
//! take. Every write checks the lease, so a replica that lost its lease (stalled, cut off) can neither
//! report progress nor publish a model: one replica's result is ever seen. The layout and the scripts are
//! in [`lua`].
//!
//! The routes use the tokio connection shared with the other stores; the training and sweep threads use
//! blocking connections of their own ([`Blocking`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value as RedisValue;
use serde_json::{Value, json};

use more_enctrain::upload::JobRequest;

use super::lua::{self, script};
use super::runner::{Failure, Training};
use super::store::{Record, State as JobState};
use super::{Logged, TrainingLimits, tag};
use crate::ApiError;
use crate::state_store::Redis;

/// How long a training replica's lease lasts without renewal: a replica that dies leaves its job to the
/// others this long after its last renewal (plus one sweep).
pub const LEASE: Duration = Duration::from_secs(10);

/// How often a training replica renews its lease (and learns whether the job was deleted).
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// How often every replica sweeps: expired jobs deleted, jobs of dead replicas queued again.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How often an idle training thread looks at the queue, and an event stream at its job's log.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// Steps are reported at most this often (an epoch's events always go out).
pub const STEP_EVERY: Duration = Duration::from_millis(200);

/// Events one read of a stream returns at most.
const EVENTS_PER_READ: usize = 64;

/// Attempts a job gets before replica restarts fail it.
pub const MAX_ATTEMPTS: u32 = 3;

/// Redis keeps a job's keys this long after its time to live as a safety net; the sweep deletes them at
/// the time to live.
const KEEP_MARGIN: Duration = Duration::from_secs(600);

/// Jobs in Redis, as the routes see them.
#[derive(Debug, Clone)]
pub struct SharedJobs {
    redis: Redis,
}

/// What the job routes need to know of a job.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its record (its state, error and attempts as they are now).
    pub record: Record,
    /// Epochs trained so far.
    pub epochs_done: usize,
}

/// Why a model cannot be handed over.
#[derive(Debug)]
pub enum NoModel {
    /// No such job.
    Unknown,
    /// Still queued or training.
    NotReady,
    /// Failed: (code, message).
    Failed(String, String),
    /// Trained, but its model is gone (the job is now failed).
    Lost,
}

/// Why a new job was refused.
#[derive(Debug)]
pub enum Refused {
    /// The store holds this many jobs, the bound.
    Held(usize),
    /// The client holds all its jobs.
    Client,
    /// The queue holds this many bytes.
    QueueBytes(usize),
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(what, e)
}

impl SharedJobs {
    /// Jobs in this Redis.
    pub fn new(redis: Redis) -> Self {
        SharedJobs { redis }
    }

    /// The Redis.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Jobs held, the client's jobs that hold resources, jobs waiting and the bytes they hold.
    pub async fn counts(&self, client: &str) -> Result<(usize, usize, usize, usize), ApiError> {
        let client = client.to_string();
        let v: (i64, i64, i64, i64) =
            self.redis.run(|mut c| async move { script(lua::COUNTS).arg(client).invoke_async(&mut c).await }).await?;
        let n = |x: i64| x.max(0) as usize;
        Ok((n(v.0), n(v.1), n(v.2), n(v.3)))
    }

    /// Stores and queues a job.
    pub async fn create(
        &self,
        record: &Record,
        data: Vec<u8>,
        l: &TrainingLimits,
    ) -> Result<Result<(), Refused>, ApiError> {
        let json = serde_json::to_string(record).map_err(|e| internal("encoding a job", e))?;
        let keep = (l.ttl + KEEP_MARGIN).as_millis() as u64;
        let r = record.clone();
        let (status, n): (i64, i64) = self
            .redis
            .run(|mut c| async move {
                script(lua::CREATE)
                    .arg(&r.id)
                    .arg(&r.client)
                    .arg(json)
                    .arg(r.rows)
                    .arg(r.upload_bytes)
                    .arg(r.created)
                    .arg(keep)
                    .arg(l.max_held_jobs)
                    .arg(l.max_jobs_per_client)
                    .arg(l.max_queue_bytes)
                    .arg(data)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let n = n.max(0) as usize;
        Ok(match status {
            0 => Ok(()),
            1 => Err(Refused::Held(n)),
            2 => Err(Refused::Client),
            _ => Err(Refused::QueueBytes(n)),
        })
    }

    /// The job, unless it does not exist (or was deleted).
    pub async fn find(&self, id: &str) -> Result<Option<Found>, ApiError> {
        let k = job_key(id);
        let fields: std::collections::HashMap<String, String> =
            self.redis.run(|mut c| async move { redis::cmd("HGETALL").arg(k).query_async(&mut c).await }).await?;
        if fields.is_empty() || fields.get("deleted").is_some_and(|d| d == "1") {
            return Ok(None);
        }
        found(&fields).map(Some)
    }

    /// Deletes the leases `replica` holds (it is stopping); how many.
    pub async fn release(&self, replica: &str) -> Result<usize, ApiError> {
        let replica = replica.to_string();
        let n: i64 =
            self.redis.run(|mut c| async move { script(lua::RELEASE).arg(replica).invoke_async(&mut c).await }).await?;
        Ok(n.max(0) as usize)
    }

    /// Deletes a job; `false` if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, ApiError> {
        let id = id.to_string();
        let n: i64 =
            self.redis.run(|mut c| async move { script(lua::DELETE).arg(id).invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }

    /// The trained model, once: the job is deleted as it is handed over.
    pub async fn take_model(&self, id: &str) -> Result<Result<Vec<u8>, NoModel>, ApiError> {
        let id = id.to_string();
        let v: Vec<RedisValue> =
            self.redis.run(|mut c| async move { script(lua::MODEL).arg(id).invoke_async(&mut c).await }).await?;
        let status = v.first().and_then(int).unwrap_or(0);
        Ok(match status {
            1 => Err(NoModel::NotReady),
            2 => {
                let text = v.get(1).and_then(bytes).unwrap_or_default();
                let (code, message): (String, String) =
                    serde_json::from_slice(&text).unwrap_or(("failed".into(), String::new()));
                Err(NoModel::Failed(code, message))
            }
            3 => Ok(v.get(1).and_then(bytes).unwrap_or_default()),
            4 => Err(NoModel::Lost),
            _ => Err(NoModel::Unknown),
        })
    }

    /// The events after id `after` (`None`: from the start), at most a few dozen; `None` when the job is
    /// gone; the flag tells that the stream is over with none left.
    pub async fn events_after(&self, id: &str, after: Option<u64>) -> Result<Option<(Vec<Logged>, bool)>, ApiError> {
        let id = id.to_string();
        let after = after.map_or(-1, |a| a as i64);
        let v: Vec<RedisValue> = self
            .redis
            .run(|mut c| async move {
                script(lua::EVENTS).arg(id).arg(after).arg(EVENTS_PER_READ).invoke_async(&mut c).await
            })
            .await?;
        if v.first().and_then(int) != Some(1) {
            return Ok(None);
        }
        let over = v.get(1).and_then(int) == Some(1);
        let events = v[2..].iter().filter_map(bytes).filter_map(|b| parse_event(&b)).collect();
        Ok(Some((events, over)))
    }
}

fn int(v: &RedisValue) -> Option<i64> {
    match v {
        RedisValue::Int(i) => Some(*i),
        _ => None,
    }
}

fn bytes(v: &RedisValue) -> Option<Vec<u8>> {
    match v {
        RedisValue::BulkString(b) => Some(b.clone()),
        RedisValue::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

/// `"<id> <kind> <json>"` → the event. Kinds are the ones the server writes; anything else is skipped.
fn parse_event(b: &[u8]) -> Option<Logged> {
    let text = std::str::from_utf8(b).ok()?;
    let (id, rest) = text.split_once(' ')?;
    let (kind, data) = rest.split_once(' ')?;
    let kind = super::EVENT_KINDS.iter().copied().find(|k| *k == kind)?;
    Some(Logged { id: id.parse().ok()?, kind, data: data.to_string() })
}

fn job_key(id: &str) -> String {
    format!("{}job:{id}", crate::state_store::PREFIX)
}

fn found(fields: &std::collections::HashMap<String, String>) -> Result<Found, ApiError> {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let mut record: Record =
        serde_json::from_str(get("record")).map_err(|e| internal("reading a job from the shared state", e))?;
    record.state = match get("state") {
        "running" => JobState::Running,
        "done" => JobState::Done,
        "failed" => JobState::Failed,
        _ => JobState::Queued,
    };
    record.error = serde_json::from_str(get("error")).ok();
    record.attempts = get("attempts").parse().unwrap_or(0);
    Ok(Found { record, epochs_done: get("epochs_done").parse().unwrap_or(0) })
}

/// A blocking connection for the training and sweep threads, re-opened after a failure.
pub struct Blocking {
    client: redis::Client,
    conn: Option<redis::Connection>,
}

impl Blocking {
    /// A connection to the same Redis as `redis` (opened on first use).
    pub fn new(redis: &Redis) -> redis::RedisResult<Self> {
        Ok(Blocking { client: redis::Client::open(redis.url())?, conn: None })
    }

    /// Runs a script; a failure drops the connection so the next call opens a new one.
    pub fn invoke<T: redis::FromRedisValue>(&mut self, inv: &redis::ScriptInvocation<'_>) -> redis::RedisResult<T> {
        self.with(|conn| inv.invoke(conn))
    }

    /// Runs `f` on the connection (opened if needed); a failure drops it so the next call opens a new one.
    pub fn with<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        if self.conn.is_none() {
            let conn = self.client.get_connection_with_timeout(Duration::from_secs(2))?;
            conn.set_read_timeout(Some(crate::state_store::COMMAND_TIMEOUT))?;
            conn.set_write_timeout(Some(crate::state_store::COMMAND_TIMEOUT))?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("opened above");
        let out = f(conn);
        if out.is_err() {
            self.conn = None;
        }
        out
    }
}

/// A name for this replica's leases: the host and 64 random bits.
pub fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{:016x}", host.trim(), rand::random::<u64>())
}

/// A job this replica took from the shared queue and trains under its lease.
pub struct SharedTraining {
    id: String,
    request: JobRequest,
    replica: String,
    conn: Mutex<Blocking>,
    /// Set when the lease is lost or the job deleted: training stops and nothing is published.
    stop: Arc<AtomicBool>,
    last_step: Mutex<Option<Instant>>,
}

impl SharedTraining {
    fn run<T: redis::FromRedisValue>(&self, inv: &redis::ScriptInvocation<'_>) -> redis::RedisResult<T> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).invoke(inv)
    }

    /// Publishes the model; `false` if the job is no longer this replica's.
    pub fn finish(&self, model: Vec<u8>, seconds: f64) -> bool {
        let url = format!("/api/v1/jobs/{}/model", self.id);
        let done = json!({"model_url": url, "model_bytes": model.len(), "seconds": seconds}).to_string();
        let s = script(lua::FINISH);
        let mut inv = s.prepare_invoke();
        inv.arg(&self.id).arg(&self.replica).arg(model).arg(done);
        match self.run::<i64>(&inv) {
            Ok(1) => true,
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(job = tag(&self.id), error = %e, "cannot publish a trained model: the lease will run out and another replica trains the job again");
                false
            }
        }
    }

    /// Fails the job (if it is still this replica's).
    pub fn fail(&self, code: &str, message: &str) {
        let s = script(lua::FAIL);
        let mut inv = s.prepare_invoke();
        inv.arg(&self.id).arg(&self.replica).arg(code).arg(message);
        if let Err(e) = self.run::<i64>(&inv) {
            tracing::warn!(job = tag(&self.id), error = %e, "cannot record a failed job");
        }
    }
}

impl Training for SharedTraining {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn request(&self) -> JobRequest {
        self.request.clone()
    }

    fn event(&self, kind: &'static str, data: Value) {
        self.report(kind, data, None);
    }

    fn epoch_event(&self, epoch: usize, data: Value) {
        self.report("epoch", data, Some(epoch));
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn data(&self) -> Result<Vec<u8>, Failure> {
        let k = format!("{}:data", job_key(&self.id));
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let data: Option<Vec<u8>> = conn
            .with(|c| redis::cmd("GET").arg(k).query(c))
            .map_err(|e| ("lost", format!("the job's data cannot be read: {e}")))?;
        data.ok_or(("lost", "the job's data is missing from the shared state".to_string()))
    }
}

impl SharedTraining {
    fn report(&self, kind: &'static str, data: Value, epochs_done: Option<usize>) {
        if kind == "step" {
            let mut last = self.last_step.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < STEP_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let s = script(lua::EVENT);
        let mut inv = s.prepare_invoke();
        inv.arg(&self.id)
            .arg(&self.replica)
            .arg(kind)
            .arg(data.to_string())
            .arg(epochs_done.map_or(String::new(), |e| e.to_string()));
        match self.run::<i64>(&inv) {
            Ok(1) => {}
            Ok(_) => self.stop.store(true, Ordering::SeqCst),
            Err(e) => tracing::warn!(job = tag(&self.id), error = %e, "cannot record a job's event"),
        }
    }
}

/// Takes the next job from the shared queue under this replica's lease, if one waits.
fn take(conn: &mut Blocking, replica: &str) -> redis::RedisResult<Option<(String, Record, u32)>> {
    let s = script(lua::TAKE);
    let mut inv = s.prepare_invoke();
    inv.arg(replica).arg(LEASE.as_millis() as u64);
    let v: Vec<RedisValue> = conn.invoke(&inv)?;
    if v.len() < 3 {
        return Ok(None);
    }
    let id = String::from_utf8_lossy(&bytes(&v[0]).unwrap_or_default()).to_string();
    let record: Record = serde_json::from_slice(&bytes(&v[1]).unwrap_or_default()).map_err(|e| {
        redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "a job's record", e.to_string()))
    })?;
    Ok(Some((id, record, int(&v[2]).unwrap_or(1).max(0) as u32)))
}

/// A training thread of this replica: takes jobs from the shared queue until `closed`, trains each under
/// its lease (renewed by a keeper thread) and publishes the model, or fails the job.
pub fn run(redis: Redis, replica: String, threads: usize, max_wall: Duration, closed: Arc<AtomicBool>) {
    let Some(pool) = super::runner::pool(threads) else { return };
    let mut conn = match Blocking::new(&redis) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot open a connection to the shared state: this replica does not train");
            return;
        }
    };
    let mut warned = false;
    while !closed.load(Ordering::SeqCst) {
        let taken = match take(&mut conn, &replica) {
            Ok(t) => {
                warned = false;
                t
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "cannot reach the shared state for the training queue; retrying");
                    warned = true;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let Some((id, record, attempts)) = taken else {
            std::thread::sleep(POLL_EVERY);
            continue;
        };
        tracing::info!(job = tag(&id), attempts, "training a job from the shared queue");
        let Ok(conn2) = Blocking::new(&redis) else { continue };
        let job = Arc::new(SharedTraining {
            id: id.clone(),
            request: record.request.clone(),
            replica: replica.clone(),
            conn: Mutex::new(conn2),
            stop: Arc::new(AtomicBool::new(false)),
            last_step: Mutex::new(None),
        });
        let keeper = keep_lease(&redis, &id, &replica, job.stop.clone());
        let clock = Instant::now();
        let outcome = super::runner::train_caught(job.as_ref(), &pool, max_wall);
        let published = match outcome {
            Ok(model) if !job.should_stop() => job.finish(model, clock.elapsed().as_secs_f64()),
            Ok(_) => false,
            Err(_) if job.should_stop() => false,
            Err((code, message)) => {
                if code == "internal" {
                    tracing::error!(job = tag(&id), %message, "training failed");
                }
                job.fail(code, &message);
                false
            }
        };
        if let Some((done, handle)) = keeper {
            done.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
        if !published && job.should_stop() {
            tracing::info!(job = tag(&id), "training stopped: the job was deleted or is another replica's now");
        }
    }
}

/// Renews the lease every [`RENEW_EVERY`] until `done`; sets `stop` when the lease is lost.
fn keep_lease(
    redis: &Redis,
    id: &str,
    replica: &str,
    stop: Arc<AtomicBool>,
) -> Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let mut conn = Blocking::new(redis).ok()?;
    let done = Arc::new(AtomicBool::new(false));
    let (id, replica, flag) = (id.to_string(), replica.to_string(), done.clone());
    let handle = std::thread::Builder::new()
        .name("more-train-lease".into())
        .spawn(move || {
            let s = script(lua::RENEW);
            let mut last_ok = Instant::now();
            while !flag.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                let step = Duration::from_millis(100);
                let mut waited = Duration::ZERO;
                while waited < RENEW_EVERY && !flag.load(Ordering::SeqCst) {
                    std::thread::sleep(step);
                    waited += step;
                }
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let mut inv = s.prepare_invoke();
                inv.arg(&id).arg(&replica).arg(LEASE.as_millis() as u64);
                match conn.invoke::<i64>(&inv) {
                    Ok(1) => last_ok = Instant::now(),
                    Ok(_) => stop.store(true, Ordering::SeqCst),
                    // Unreachable for longer than the lease: another replica may have the job now.
                    Err(_) if last_ok.elapsed() >= LEASE => stop.store(true, Ordering::SeqCst),
                    Err(_) => {}
                }
            }
        })
        .ok()?;
    Some((done, handle))
}

/// Every replica's sweep: deletes expired jobs and queues again the jobs of replicas that died.
pub fn sweep(redis: Redis, ttl: Duration, closed: Arc<AtomicBool>) {
    let Ok(mut conn) = Blocking::new(&redis) else { return };
    let s = script(lua::SWEEP);
    let resumed =
        json!({"message": "the replica training this job stopped; training starts again from epoch 1"}).to_string();
    while !closed.load(Ordering::SeqCst) {
        std::thread::sleep(SWEEP_EVERY);
        let cutoff = super::store::now().saturating_sub(ttl.as_secs());
        let cutoff = if ttl.is_zero() { u64::MAX / 2 } else { cutoff };
        let mut inv = s.prepare_invoke();
        inv.arg(cutoff).arg(&resumed).arg(MAX_ATTEMPTS);
        match conn.invoke::<(i64, i64)>(&inv) {
            Ok((0, 0)) => {}
            Ok((expired, resumed)) => tracing::info!(expired, resumed, "jobs swept"),
            Err(e) => tracing::debug!(error = %e, "sweep: shared state unavailable"),
        }
    }
}
