//! Jobs kept by this process (the default, without `--state`): in memory, with their files in the jobs
//! directory ([`store`]), queued in this process's fair queue for its training threads, each
//! with its event log and a watch channel that wakes its followers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use more_enctrain::upload::JobRequest;

use super::queue::Waiting;
use super::store::{self, Files, Record, State as JobState};
use super::{Logged, TrainingLimits, is_final, is_job_id, queue, runner, status_json, tag, unknown_job};
use crate::ApiError;

/// One job in memory: its record, its events so far, a cancellation flag.
#[derive(Debug)]
pub struct Job {
    /// Its files.
    pub files: Files,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) changed: watch::Sender<usize>,
    pub(super) cancelled: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The job's record as it is now (state, error, attempts).
    pub(super) record: Record,
    events: EventLog,
    epochs_done: usize,
    /// Jobs that will start before this one, while it waits.
    ahead: Option<usize>,
}

/// A job's events, bounded: a `step` (or `queued`) event replaces the event of its kind before it when
/// nothing came between them, so the log holds about two events per epoch however small the batches are
/// (at most [`TrainingLimits::max_epochs`] × 2 + a few) and one `queued` event however often the job's
/// place in the queue changed; a stream that resumes replays only what it missed.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Vec<Logged>,
    next: u64,
}

impl EventLog {
    /// An empty log whose first id is `first`: a job taken up again after a restart numbers its new events
    /// above every id its earlier run gave, so a client that reconnects with the `Last-Event-ID` it had
    /// gets them all (the `resumed` event first).
    pub fn starting_at(first: u64) -> Self {
        EventLog { events: Vec::new(), next: first }
    }

    /// Appends an event (coalescing consecutive steps); returns its id.
    pub fn push(&mut self, kind: &'static str, data: String) -> u64 {
        let id = self.next;
        self.next += 1;
        if matches!(kind, "step" | "queued") && self.events.last().is_some_and(|e| e.kind == kind) {
            self.events.pop();
        }
        self.events.push(Logged { id, kind, data });
        id
    }

    /// The first event after id `after` (`None`: from the start).
    pub fn after(&self, after: Option<u64>) -> Option<&Logged> {
        let i = after.map_or(0, |a| self.events.partition_point(|e| e.id <= a));
        self.events.get(i)
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Whether the last event ends the stream (`done`, `failed`, `cancelled`).
    pub fn is_over(&self) -> bool {
        self.events.last().is_some_and(|e| is_final(e.kind))
    }
}

impl Job {
    pub(super) fn new(files: Files, record: Record) -> Arc<Self> {
        Arc::new(Job {
            files,
            inner: Mutex::new(Inner { record, events: EventLog::default(), epochs_done: 0, ahead: None }),
            changed: watch::channel(0).0,
            cancelled: AtomicBool::new(false),
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job's id.
    pub fn id(&self) -> String {
        self.lock().record.id.clone()
    }

    /// The header it was posted with.
    pub fn request(&self) -> JobRequest {
        self.lock().record.request.clone()
    }

    /// Whether the client cancelled it.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Appends an event for the stream.
    pub fn event(&self, kind: &'static str, data: Value) {
        let id = self.lock().events.push(kind, data.to_string());
        self.changed.send_replace(id as usize + 1);
    }

    /// The first event after id `after`, and whether the stream is over with none left.
    pub fn next_event(&self, after: Option<u64>) -> (Option<Logged>, bool) {
        let inner = self.lock();
        let next = inner.events.after(after).cloned();
        let over = next.is_none() && inner.events.is_over();
        (next, over)
    }

    /// Tells the job its place in the queue: a `queued` event `{"rows", "ahead"}` when it changed.
    pub fn set_ahead(&self, ahead: usize) {
        let rows = {
            let mut inner = self.lock();
            // A place told late (the job was taken meanwhile) is no longer true.
            if inner.ahead == Some(ahead) || inner.record.state != JobState::Queued {
                return;
            }
            inner.ahead = Some(ahead);
            inner.record.rows
        };
        self.event("queued", json!({"rows": rows, "ahead": ahead}));
    }

    /// Events the job's log holds now.
    pub fn logged_events(&self) -> usize {
        self.lock().events.len()
    }

    fn set_state(&self, state: JobState, error: Option<(String, String)>) {
        let mut inner = self.lock();
        inner.record.state = state;
        inner.record.error = error;
        if state == JobState::Running {
            inner.record.attempts += 1;
        }
        if let Err(e) = self.files.save(&inner.record) {
            tracing::warn!(job = tag(&inner.record.id), error = %e, "cannot save a job's record");
        }
    }

    /// Training starts.
    pub fn start(&self) {
        self.lock().ahead = None;
        self.set_state(JobState::Running, None);
    }

    /// Trained: the model is on disk.
    pub fn finish(&self, model_bytes: usize, seconds: f64) {
        self.set_state(JobState::Done, None);
        let url = format!("/api/v1/jobs/{}/model", self.id());
        self.event("done", json!({"model_url": url, "model_bytes": model_bytes, "seconds": seconds}));
    }

    /// Failed: the stream and the status say why. The upload is deleted at once (the record stays, so the
    /// client can read why, until the job's time to live ends).
    pub fn fail(&self, code: &str, message: String) {
        self.set_state(JobState::Failed, Some((code.to_string(), message.clone())));
        for file in [self.files.data(), self.files.model()] {
            if let Err(e) = std::fs::remove_file(&file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(job = tag(&self.id()), error = %e, "cannot delete a failed job's file");
            }
        }
        self.event("failed", json!({"error": code, "message": message}));
    }

    pub(crate) fn status(&self) -> Value {
        let inner = self.lock();
        status_json(&inner.record, inner.epochs_done)
    }
}

impl runner::Training for Job {
    fn id(&self) -> String {
        Job::id(self)
    }

    fn request(&self) -> JobRequest {
        Job::request(self)
    }

    fn event(&self, kind: &'static str, data: Value) {
        Job::event(self, kind, data)
    }

    fn epoch_event(&self, epoch: usize, data: Value) {
        self.lock().epochs_done = epoch;
        Job::event(self, "epoch", data)
    }

    fn should_stop(&self) -> bool {
        self.is_cancelled()
    }

    fn data(&self) -> Result<Vec<u8>, runner::Failure> {
        std::fs::read(self.files.data()).map_err(|e| ("lost", format!("the job's data cannot be read: {e}")))
    }
}

/// Jobs kept by this process: their directory, the jobs in memory and the queue of the training threads.
#[derive(Debug)]
pub(super) struct Local {
    pub(super) dir: PathBuf,
    pub(super) limits: TrainingLimits,
    pub(super) map: Mutex<HashMap<String, Arc<Job>>>,
    /// Jobs waiting to train, served round-robin by client.
    pub(super) waiting: Arc<queue::Waiting<Arc<Job>>>,
}

impl Local {
    pub(super) fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn find(&self, id: &str) -> Result<Arc<Job>, ApiError> {
        self.map().get(id).cloned().ok_or_else(unknown_job)
    }

    /// Queues a job if the waiting uploads stay within [`TrainingLimits::max_queue_bytes`]; `Err` with the
    /// bytes they hold now. Every waiting job learns its (new) place.
    pub(super) fn enqueue(&self, job: Arc<Job>, max_bytes: usize) -> Result<(), usize> {
        self.waiting.push(job, max_bytes, tell_places)
    }
    /// Reads the jobs left by a previous run: queued or training ones train again, trained ones keep
    /// their model, unreadable ones are reported failed.
    pub(super) fn recover(&self) -> std::io::Result<()> {
        let mut found: Vec<Arc<Job>> = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let id = entry.file_name().to_string_lossy().to_string();
            if !is_job_id(&id) {
                // Not a job's directory (job ids are 32 hex digits): left alone, never served or deleted.
                tracing::warn!(dir = %entry.path().display(), "not a job's directory: ignored");
                continue;
            }
            let files = Files::new(&self.dir, &id);
            let record = match files.load() {
                Ok(r) if r.id == id => r,
                other => {
                    tracing::warn!(job = tag(&id), error = ?other.err(), "unreadable job record: reported failed");
                    let record = Record {
                        id: id.clone(),
                        client: String::new(),
                        request: JobRequest {
                            network: String::new(),
                            epochs: 0,
                            batch_size: 0,
                            lr: 0.0,
                            lr_decay: 1.0,
                            optimizer: more_enctrain::upload::OptimizerKind::Adam,
                            seed: 0,
                        },
                        rows: 0,
                        upload_bytes: 0,
                        memory_bytes: 0,
                        created: store::now(),
                        state: JobState::Failed,
                        error: None,
                        attempts: 0,
                    };
                    let job = Job::new(files, record);
                    job.fail("lost", "the server restarted and could not read this job back".into());
                    self.map().insert(id, job);
                    continue;
                }
            };
            let state = record.state;
            let job = Job::new(files, record);
            // The earlier run's ids counted from 0, one per event: milliseconds since the epoch are above
            // any of them.
            job.lock().events = EventLog::starting_at(store::now().saturating_mul(1000));
            match state {
                JobState::Done if !job.files.model().is_file() => {
                    job.fail("lost", "the server restarted and the trained model is missing".into())
                }
                JobState::Done => {
                    let url = format!("/api/v1/jobs/{id}/model");
                    job.event("done", json!({"model_url": url, "model_bytes": null, "seconds": null}));
                }
                JobState::Failed => {
                    let (code, message) = job.lock().record.error.clone().unwrap_or_default();
                    job.event("failed", json!({"error": code, "message": message}));
                }
                JobState::Queued | JobState::Running if job.lock().record.attempts >= 3 => {
                    job.fail("lost", "training was interrupted by server restarts three times".into())
                }
                JobState::Queued | JobState::Running => {
                    job.set_state(JobState::Queued, None);
                    job.event(
                        "resumed",
                        json!({"message": "the server restarted; training starts again from epoch 1"}),
                    );
                    found.push(job.clone());
                }
            }
            self.map().insert(id, job);
        }
        found.sort_by_key(|j| j.lock().record.created);
        for job in found {
            // Jobs taken up after a restart wait whatever the queue holds: they were accepted before.
            let _ = self.enqueue(job, usize::MAX);
        }
        Ok(())
    }

    /// Deletes jobs older than the time to live.
    pub(super) fn expire(&self) {
        let cutoff = store::now().saturating_sub(self.limits.ttl.as_secs());
        let expired: Vec<Arc<Job>> = {
            let mut map = self.map();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, j)| j.lock().record.created < cutoff || self.limits.ttl.is_zero())
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for job in expired {
            tracing::info!(job = tag(&job.id()), "time to live over: deleted");
            self.cancel(&job);
        }
    }
}

/// Tells each waiting job its place: the jobs before it in `order`.
pub(crate) fn tell_places(order: &[Arc<Job>]) {
    for (ahead, job) in order.iter().enumerate() {
        job.set_ahead(ahead);
    }
}

impl queue::Queued for Arc<Job> {
    fn client(&self) -> String {
        self.lock().record.client.clone()
    }

    fn bytes(&self) -> usize {
        self.lock().record.upload_bytes
    }
}

impl Local {
    /// Cancels a job and deletes its files (the training thread deletes them if it is training); the jobs
    /// behind it in the queue move up.
    pub(super) fn cancel(&self, job: &Arc<Job>) {
        remove(job);
        let order = self.waiting.remove(|j| Arc::ptr_eq(j, job));
        tell_places(&order);
    }
}

/// Cancels a job and deletes its files (the training thread deletes them if it is training).
fn remove(job: &Job) {
    job.cancelled.store(true, Ordering::SeqCst);
    let running = job.lock().record.state == JobState::Running;
    if !running {
        job.files.remove();
    }
    job.event("cancelled", json!({"message": "the job was deleted"}));
}

/// Runs queued jobs of this process until the queue is closed.
pub fn run(queue: Arc<Waiting<Arc<Job>>>, threads: usize, max_wall: Duration) {
    let Some(pool) = runner::pool(threads) else {
        while let Some((job, _)) = queue.pop() {
            job.fail("internal", "the server cannot train".into());
        }
        return;
    };
    while let Some((job, rest)) = queue.pop() {
        tell_places(&rest);
        if job.is_cancelled() {
            continue;
        }
        job.start();
        let clock = Instant::now();
        let outcome = runner::train_caught(job.as_ref(), &pool, max_wall).and_then(|model| {
            std::fs::write(job.files.model(), &model).map_err(|e| ("internal", format!("writing the model: {e}")))?;
            Ok(model.len())
        });
        match outcome {
            Ok(model_bytes) => job.finish(model_bytes, clock.elapsed().as_secs_f64()),
            Err(_) if job.is_cancelled() => job.files.remove(),
            Err((code, message)) => {
                if code == "internal" {
                    tracing::error!(job = tag(&job.id()), %message, "training failed");
                }
                job.fail(code, message)
            }
        }
    }
}
