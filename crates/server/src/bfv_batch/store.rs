//! The batches one process holds ([`Batches`]): each accepted batch with its message until it runs, its
//! phase and progress, and the budget and threads the limits allow ([`memory_bound`]). The routes that
//! fill it are in the parent module; the BFV service owns one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use more_bfv::wire::MAX_BATCH_BYTES;
use tokio::sync::Semaphore;

use crate::ApiError;
use crate::bfv_limits::BfvLimits;
use crate::budget::{Budget, Reservation};
use crate::state_store::batches::{Record, now_ms};

/// Memory a decoded batch takes per message byte (polynomials in NTT form, the seeded halves expanded).
pub const DECODED_PER_BYTE: usize = 3;

/// Memory one evaluation thread holds: ten three-polynomial accumulators (5.9 MiB), the convolution's sum
/// and one product before relinearisation, with room.
pub const WORK_PER_THREAD: usize = 12 << 20;

/// Largest result message kept: 10 ciphertexts at level 3 take 1.76 MB; a larger one fails the batch
/// rather than exceed the bound.
pub const MAX_RESULT_BYTES: usize = 2 << 20;

/// What the batch limits allow this process to hold: every accepted batch's message, the running one's
/// decoded ciphertexts and its threads' work, the kept results.
pub fn memory_bound(limits: &BfvLimits) -> usize {
    if limits.batches == 0 {
        return 0;
    }
    limits.batches * MAX_BATCH_BYTES
        + MAX_BATCH_BYTES * DECODED_PER_BYTE
        + limits.batch_threads * WORK_PER_THREAD
        + limits.batch_results * MAX_RESULT_BYTES
}

/// Where a batch is.
pub(crate) enum Phase {
    /// Accepted, waiting for the running place; holds its message.
    Queued(Bytes, Reservation),
    /// Being evaluated.
    Running,
    /// Finished: the result message.
    Done(Bytes),
    /// Failed: the error's code and message.
    Failed(ApiError),
    /// Stopped by a DELETE or by the server stopping.
    Stopped,
}

impl Phase {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Phase::Queued(..) => "queued",
            Phase::Running => "running",
            Phase::Done(_) => "done",
            Phase::Failed(_) => "failed",
            Phase::Stopped => "stopped",
        }
    }

    pub(crate) fn finished(&self) -> bool {
        matches!(self, Phase::Done(_) | Phase::Failed(_) | Phase::Stopped)
    }
}

/// One batch.
pub(crate) struct Batch {
    pub(crate) model: String,
    pub(crate) images: usize,
    pub(crate) accepted_ms: u64,
    pub(crate) started_ms: Mutex<Option<u64>>,
    pub(crate) finished_ms: Mutex<Option<u64>>,
    pub(crate) done: AtomicUsize,
    pub(crate) stop: AtomicBool,
    pub(crate) phase: Mutex<Phase>,
}

impl Batch {
    pub(crate) fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn finished(&self) -> Option<u64> {
        *self.finished_ms.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_time(slot: &Mutex<Option<u64>>) {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(now_ms());
    }

    /// Its status record.
    pub(crate) fn record(&self) -> Record {
        let phase = self.phase();
        Record {
            model: self.model.clone(),
            images: self.images,
            state: phase.name().into(),
            done: self.done.load(Ordering::Relaxed),
            accepted_ms: self.accepted_ms,
            started_ms: *self.started_ms.lock().unwrap_or_else(|e| e.into_inner()),
            finished_ms: self.finished(),
            error: match &*phase {
                Phase::Failed(e) => Some((e.status.as_u16(), e.code.to_string(), e.message.clone())),
                _ => None,
            },
            updated_ms: now_ms(),
        }
    }
}

/// The batches of one process.
pub struct Batches {
    pub(crate) map: Mutex<HashMap<String, Arc<Batch>>>,
    /// One batch runs at a time.
    pub(crate) running: Arc<Semaphore>,
    /// One permit per batch that may be accepted and unfinished at once: taken before a batch's message is
    /// read, held by its runner until the evaluation has ended (also after a DELETE, until it has stopped).
    pub(crate) places: Arc<Semaphore>,
    pub(crate) budget: Budget,
    pub(crate) pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches").field("held", &self.lock().len()).finish_non_exhaustive()
    }
}

impl Batches {
    /// Batches under `limits` (none when `limits.batches` is 0).
    pub fn new(limits: &BfvLimits) -> Result<Batches, String> {
        let pool = if limits.batches == 0 {
            None
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(limits.batch_threads.max(1))
                .thread_name(|i| format!("bfv-batch-{i}"))
                .build()
                .map_err(|e| format!("the BFV batch threads: {e}"))?;
            Some(Arc::new(pool))
        };
        Ok(Batches {
            map: Mutex::new(HashMap::new()),
            running: Arc::new(Semaphore::new(1)),
            places: Arc::new(Semaphore::new(limits.batches)),
            budget: Budget::new(memory_bound(limits)),
            pool,
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Batch>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops finished batches older than the results' time to live; returns how many finished ones are kept.
    pub(crate) fn sweep(&self, limits: &BfvLimits) -> usize {
        let mut map = self.lock();
        let now = now_ms();
        map.retain(|_, b| {
            b.finished().is_none_or(|f| now.saturating_sub(f) < limits.batch_result_ttl.as_millis() as u64)
        });
        map.values().filter(|b| b.phase().finished()).count()
    }

    /// Asks every running batch to stop (the server is stopping).
    pub fn stop_all(&self) {
        for b in self.lock().values() {
            b.stop.store(true, Ordering::Relaxed);
        }
    }
}
