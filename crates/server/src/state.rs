//! [`AppState`]: what every handler shares (models, engine, limits, budget, the optional services), and
//! the [`Limits`] of inference requests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::budget::{self, Bound, Budget, ComputeCost};
use crate::engine::{Engine, EngineConfig, Registry};
use crate::extract::TrustedProxies;
use crate::metrics::Metrics;
use crate::samples::Samples;
use crate::state_store::Redis;
use crate::state_store::challenges::ChallengeStore;
use crate::teacher::TeacherToken;
use crate::{ChallengeLimits, bfv, challenge, jobs, training_data, uploads};

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest leading batch dimension accepted in one request.
    pub max_batch: usize,
    /// Hard cap on any request body (bytes); a model's own limit is `max_batch` inputs in `f32`.
    pub max_body: usize,
    /// Inference requests admitted at once (reading, queued or computing); one more is answered 503.
    pub max_inflight: usize,
    /// Time allowed for reading the body and for waiting for the answer.
    pub request_timeout: Duration,
    /// Memory (bytes) that admitted inference requests may hold together: each reserves
    /// [`MEMORY_PER_BODY_BYTE`] times its body size (or its model's body limit when the length is not
    /// announced) plus its samples' compute memory ([`budget::ComputeCost`]) until its job is done; a
    /// request that does not fit is answered 503.
    pub memory_budget: usize,
    /// Interval of the comment lines an event stream sends while nothing happens; it must be shorter than
    /// the connection's idle timeout (`more-server` uses a third of it, at most 15 s).
    pub stream_heartbeat: Duration,
}

/// Bytes reserved per body byte: the body buffer, the decoded tensor, its copy in a merged batch and the
/// copy of the chunk the forward pass works on.
pub const MEMORY_PER_BODY_BYTE: usize = budget::BODY_COPIES;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 16,
            max_body: 32 << 20,
            max_inflight: 256,
            request_timeout: Duration::from_secs(10),
            memory_budget: 256 << 20,
            stream_heartbeat: Duration::from_secs(15),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) registry: Registry,
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    pub(crate) web: Option<PathBuf>,
    pub(crate) samples: Samples,
    pub(crate) challenges: challenge::Store,
    pub(crate) bfv: Option<Arc<bfv::BfvService>>,
    pub(crate) inflight: Arc<Semaphore>,
    pub(crate) budget: Budget,
    /// Compute memory of each model, by id.
    pub(crate) costs: BTreeMap<String, ComputeCost>,
    pub(crate) bound: Bound,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) started: Instant,
    pub(crate) jobs: Option<Arc<jobs::Jobs>>,
    /// Uploaded models, when the server takes them.
    pub(crate) uploads: Option<uploads::Uploads>,
    pub(crate) training_data: Option<training_data::TrainingData>,
    pub(crate) trusted_proxies: TrustedProxies,
    /// Where challenges and BFV keys live when not in this process.
    pub(crate) shared: Option<Redis>,
    /// The answers kept for idempotency keys.
    pub(crate) idempotency: crate::idempotency::Keys,
    /// Set when the server begins to stop: open event streams end so the graceful shutdown need not wait
    /// for the jobs they follow (clients reconnect, through a balancer to another replica).
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// State over loaded models, starting the engine's workers.
    /// The memory bound assumes [`budget::DEFAULT_MAX_CONNECTIONS`] connections and as many async
    /// runtime threads as CPUs; [`AppState::with_bound_for`] sets the real figures.
    pub fn new(registry: Registry, engine: EngineConfig, limits: Limits) -> Self {
        let metrics = Arc::new(Metrics::new());
        let observer = Arc::clone(&metrics);
        let engine = Engine::start_observed(
            engine,
            // Uploaded models' ids are capabilities, and clients make new ones: they share one label.
            Some(Arc::new(move |model: &str, samples, took| {
                observer.observe_pass(uploads::logged(model), samples, took)
            })),
        );
        let costs = registry.iter().map(|m| (m.meta().id.clone(), ComputeCost::of(m))).collect();
        let budget = Budget::new(limits.memory_budget);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let bound = Bound::new(
            registry.iter().map(|m| &**m),
            engine.config().workers + cpus,
            budget::DEFAULT_MAX_CONNECTIONS,
            budget.total(),
        );
        AppState {
            inner: Arc::new(Inner {
                registry,
                engine,
                limits,
                web: None,
                samples: Samples::default(),
                challenges: challenge::Store::default(),
                bfv: None,
                inflight: Arc::new(Semaphore::new(limits.max_inflight.max(1))),
                budget,
                costs,
                bound,
                metrics,
                started: Instant::now(),
                jobs: None,
                uploads: None,
                training_data: None,
                trusted_proxies: TrustedProxies::default(),
                shared: None,
                idempotency: crate::idempotency::Keys::default(),
                stopping: tokio::sync::watch::channel(false).0,
            }),
        }
    }

    /// Recomputes the memory bound for `runtime_threads` async runtime threads and at most
    /// `max_connections` open connections.
    pub fn with_bound_for(mut self, runtime_threads: usize, max_connections: usize) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        inner.bound = Bound::new(
            inner.registry.iter().map(|m| &**m),
            inner.engine.config().workers + runtime_threads,
            max_connections,
            inner.budget.total(),
        )
        .with_extras_of(&inner.bound);
        self
    }

    /// The bound on the process's resident memory.
    pub fn memory_bound(&self) -> Bound {
        self.inner.bound
    }

    /// The memory budget.
    pub fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Bytes an inference request on `model` with a body of `body_bytes` reserves from the budget.
    pub fn reservation(&self, model: &more_nn::Model, body_bytes: usize) -> usize {
        let cost = self.inner.costs.get(&model.meta().id).copied().unwrap_or_else(|| ComputeCost::of(model));
        cost.reservation(body_bytes, cost.samples_in(body_bytes))
    }

    /// Also serve `index.html` and `web/` from this directory.
    pub fn with_web(mut self, dir: impl Into<PathBuf>) -> Self {
        Arc::get_mut(&mut self.inner).expect("configure before use").web = Some(dir.into());
        self
    }

    /// Also list and serve these sample images.
    pub fn with_samples(mut self, samples: Samples) -> Self {
        Arc::get_mut(&mut self.inner).expect("configure before use").samples = samples;
        self
    }

    /// Also host class challenges, created by the holder of this token, within these limits.
    pub fn with_challenges(mut self, token: TeacherToken, limits: ChallengeLimits) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        let store = challenge::Store::new(Some(token), limits);
        inner.challenges = match &inner.shared {
            Some(redis) => store.with_backend(ChallengeStore::redis(redis.clone())),
            None => store,
        };
        self
    }

    /// Keeps class challenges, BFV keys and idempotency keys in this Redis instead of this process
    /// (`--state redis://…`; training jobs follow with [`Jobs::open_shared`](crate::jobs::Jobs::open_shared)),
    /// whether they are configured before or after this call: every state on the same Redis sees the same
    /// challenges and keys.
    pub fn with_shared_state(mut self, redis: Redis) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        inner.challenges = std::mem::take(&mut inner.challenges).with_backend(ChallengeStore::redis(redis.clone()));
        if let Some(bfv) = inner.bfv.as_mut() {
            let svc = Arc::get_mut(bfv).expect("configure before use");
            svc.use_shared_keys(redis.clone());
            inner.bound.bfv = svc.memory_bound();
        }
        if let Some(up) = inner.uploads.as_mut() {
            up.use_shared(redis.clone());
            inner.bound.uploads = up.memory_bound();
        }
        inner.idempotency = crate::idempotency::Keys::Redis(redis.clone());
        inner.shared = Some(redis);
        self
    }

    /// The server begins to stop: long-lived responses (job event streams) end now.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Resolves once [`AppState::begin_shutdown`] was called.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    /// Where the answers kept for idempotency keys live.
    pub(crate) fn idempotency_keys(&self) -> &crate::idempotency::Keys {
        &self.inner.idempotency
    }

    /// The Redis holding the shared state, if any.
    pub fn shared_state(&self) -> Option<&Redis> {
        self.inner.shared.as_ref()
    }

    /// The class challenges.
    pub fn challenges(&self) -> &challenge::Store {
        &self.inner.challenges
    }

    /// Also serve BFV models (keys upload and BFV inference).
    pub fn with_bfv(mut self, mut service: bfv::BfvService) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        if let Some(redis) = &inner.shared {
            service.use_shared_keys(redis.clone());
        }
        inner.bound.bfv = service.memory_bound();
        inner.bfv = Some(Arc::new(service));
        self
    }

    /// Also take uploaded models (`POST /api/v1/models`) within these limits; they live where the shared
    /// state lives ([`AppState::with_shared_state`], before or after this call). Their memory joins the
    /// bound.
    pub fn with_uploads(mut self, limits: uploads::UploadLimits) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        let mut up = uploads::Uploads::new(limits);
        if let Some(redis) = &inner.shared {
            up.use_shared(redis.clone());
        }
        inner.bound.uploads = up.memory_bound();
        inner.uploads = Some(up);
        self
    }

    /// The uploaded models, if the server takes them.
    pub fn uploads(&self) -> Option<&uploads::Uploads> {
        self.inner.uploads.as_ref()
    }

    /// The BFV service, if any.
    pub fn bfv(&self) -> Option<&Arc<bfv::BfvService>> {
        self.inner.bfv.as_ref()
    }

    /// Also run training jobs (without this, the job routes answer 404 `training_disabled`).
    pub fn with_jobs(mut self, jobs: Arc<jobs::Jobs>) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        inner.bound.training = jobs.memory_bound();
        inner.jobs = Some(jobs);
        self
    }

    /// Also offer this sample training data to the page (its bytes join the memory bound).
    pub fn with_training_data(mut self, data: training_data::TrainingData) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        inner.bound.data = data.bytes();
        inner.training_data = Some(data);
        self
    }

    /// The sample training data, if offered.
    pub fn training_data(&self) -> Option<&training_data::TrainingData> {
        self.inner.training_data.as_ref()
    }

    /// The training jobs, if the server trains.
    pub fn jobs(&self) -> Option<&Arc<jobs::Jobs>> {
        self.inner.jobs.as_ref()
    }

    /// Name clients by `X-Forwarded-For` when the peer is one of these proxies.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        Arc::get_mut(&mut self.inner).expect("configure before use").trusted_proxies = proxies;
        self
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.inner.trusted_proxies
    }

    /// The loaded models.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Body limit for one model: `max_batch` inputs of `f32` planes plus the header, capped by `max_body`.
    pub fn body_limit(&self, model: &more_nn::Model) -> usize {
        let per_sample = 4 * 4 * model.input_shape().iter().product::<usize>();
        let header = 8 + 4 * (model.input_shape().len() + 1);
        (header + per_sample * self.inner.limits.max_batch).min(self.inner.limits.max_body)
    }
}
