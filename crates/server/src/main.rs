//! `more-server`: parses flags, loads the models and serves until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use more_nn::EncryptedForm;
use more_server::conn::{BoundedListener, ClientAddr};
use more_server::jobs::{Jobs, TrainingLimits};
use more_server::state_store::{Redis, StateUrl, redacted};
use more_server::{AppState, ChallengeLimits, EngineConfig, Limits, Registry, Samples, TeacherToken, app};

/// The MORE encrypted-inference server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Directory of `*.morenn` model files.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Directory holding `index.html` and `web/` (the static site).
    #[arg(long, default_value = ".")]
    web: PathBuf,
    /// Directory of sample images (PNG/JPEG, optional `labels.csv`) offered to the page.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Data directory holding `mnist/` (the MNIST IDX files): its first 10,000 training and test images
    /// are offered to the training page as sample data (15.7 MB in memory).
    #[arg(long)]
    training_data: Option<PathBuf>,
    /// Inference worker threads (default: number of CPUs).
    #[arg(long)]
    workers: Option<usize>,
    /// Inference jobs that may wait for a worker; more are answered 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Most samples merged into one forward pass.
    #[arg(long, default_value_t = 8)]
    max_batch_samples: usize,
    /// Largest batch dimension in one request.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Hard cap on request bodies, bytes.
    #[arg(long, default_value_t = 32 << 20)]
    max_body: usize,
    /// Inference requests admitted at once; more are answered 503.
    #[arg(long, default_value_t = 256)]
    max_inflight: usize,
    /// Memory admitted inference requests may hold together, MiB (4x each body plus the forward pass's
    /// memory for its samples); more are answered 503. The resident set stays below the bound printed at
    /// start: models + runtime + threads + connections + this budget.
    #[arg(long, default_value_t = 256)]
    memory_budget_mb: usize,
    /// Request timeout, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Open connections at most; more clients wait until one closes.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Close a connection after this many seconds in which no byte was received or sent (event streams
    /// send a heartbeat every third of this, at most every 15 s, so they stay open).
    #[arg(long, default_value_t = 60)]
    idle_timeout_s: u64,
    /// The teacher's token for creating class challenges and reading their answers (at least 16
    /// characters). Without it the server draws one from the OS CSPRNG and prints it at start.
    #[arg(long, env = "MORE_TEACHER_TOKEN", hide_env_values = true)]
    teacher_token: Option<String>,
    /// Memory the stored BFV evaluation keys may take together, MiB (part of the memory bound when a BFV
    /// model is loaded); a full key store answers 503.
    #[arg(long, default_value_t = 256)]
    bfv_key_memory_mb: usize,
    /// BFV batches (`POST /api/v1/bfv/models/{id}/batches`, up to 8,192 images each) accepted and not
    /// finished at once, one running; 0 turns batches off. Each adds its message (at most 123 MiB) to the
    /// memory bound, and the running one its decoded ciphertexts (three times that).
    #[arg(long, default_value_t = 1)]
    bfv_batches: usize,
    /// Threads that evaluate the running BFV batch (default: one per core).
    #[arg(long)]
    bfv_batch_threads: Option<usize>,
    /// Finished BFV batches kept for their results at once.
    #[arg(long, default_value_t = 8)]
    bfv_batch_results: usize,
    /// A finished BFV batch's result is dropped this many seconds after it finished.
    #[arg(long, default_value_t = 600)]
    bfv_batch_result_ttl_s: u64,
    /// Uploaded models (`POST /api/v1/models`) held at once, a client holding a quarter of them (its
    /// oldest replaced beyond that); 0 turns uploads off. Each counts in the memory bound as
    /// --max-model-upload-mb plus 1 MiB (with --state redis://…, only the few this replica caches).
    #[arg(long, default_value_t = 16)]
    uploaded_models: usize,
    /// Largest uploaded model file, MiB.
    #[arg(long, default_value_t = 8)]
    max_model_upload_mb: usize,
    /// An uploaded model is dropped this many seconds after its last use.
    #[arg(long, default_value_t = 3600)]
    uploaded_model_ttl_s: u64,
    /// Class challenges held at once.
    #[arg(long, default_value_t = 100)]
    max_challenges: usize,
    /// Do not run training jobs (the job routes answer 404 `training_disabled`).
    #[arg(long)]
    no_training: bool,
    /// Directory where training jobs are kept (uploads, records, trained models); unused with
    /// --state redis://…, where jobs live in Redis.
    #[arg(long, default_value = "jobs")]
    jobs_dir: PathBuf,
    /// Largest training upload, MiB.
    #[arg(long, default_value_t = 64)]
    max_upload_mb: usize,
    /// Training jobs one client may hold (queued, training or not yet downloaded); see --trusted-proxy
    /// for how clients are told apart.
    #[arg(long, default_value_t = 8)]
    max_jobs_per_client: usize,
    /// Training jobs that train at once (each on its own thread with --training-threads threads); the
    /// others wait in a queue served round-robin by client.
    #[arg(long, default_value_t = 1)]
    max_jobs: usize,
    /// Uploads the waiting training jobs may hold together (on disk), MiB; beyond it new jobs are
    /// answered 503 training_queue_full.
    #[arg(long, default_value_t = 1024)]
    max_queue_mb: usize,
    /// Training jobs held at once in any state; beyond it new jobs are answered 503 training_queue_full.
    #[arg(long, default_value_t = 256)]
    max_held_jobs: usize,
    /// Most epochs a training job may ask for.
    #[arg(long, default_value_t = 200)]
    max_epochs: usize,
    /// Largest mini-batch of a training job.
    #[arg(long, default_value_t = 512)]
    max_batch_size: usize,
    /// Training time allowed per job, seconds.
    #[arg(long, default_value_t = 1800)]
    max_train_seconds: u64,
    /// A training job is deleted this many seconds after it was posted (downloaded or not).
    #[arg(long, default_value_t = 3600)]
    job_ttl_seconds: u64,
    /// Memory one training job may take (estimate: twice its upload plus a mini-batch's activations), MiB.
    #[arg(long, default_value_t = 512)]
    max_job_memory_mb: usize,
    /// Threads each training job uses; the inference workers keep the rest.
    #[arg(long, default_value_t = 1)]
    training_threads: usize,
    /// Run encrypted inference on the four ciphertext planes instead of the default coefficient form (two
    /// planes per value; its conversion reads each sample's shared eigenbasis, i.e. uses the 2x2 structure).
    #[arg(long)]
    four_planes: bool,
    /// Proxies (addresses or CIDR blocks, comma-separated) whose `X-Forwarded-For` names the client for
    /// per-client limits; requests from any other peer are counted by the peer's address. Set it to the
    /// balancer's address (e.g. `127.0.0.1` for a local nginx).
    #[arg(long, value_name = "CIDR[,CIDR...]")]
    trusted_proxy: Option<String>,
    /// Where class challenges, BFV keys, uploaded models and training jobs live: `memory` (this process, and --jobs-dir for
    /// jobs; the default) or a Redis URL (`redis://HOST:PORT/DB`) shared by every replica, so that any
    /// replica answers about any of them, trains any queued job, and a restart loses none. The server does not start if Redis cannot be reached then; later outages are
    /// answered 503 state_unavailable until it is back.
    #[arg(long, value_name = "URL", default_value = "memory", value_parser = StateUrl::parse)]
    state: StateUrl,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn main() -> std::process::ExitCode {
    // Before any thread starts: may re-execute the program with the allocator setting that keeps the
    // resident set within the memory bound.
    more_server::allocator::ensure_tuned();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("more-server: error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, no backtrace (even with RUST_BACKTRACE set): a bad flag or directory, not a bug.
            // Causes already quoted by the message before them (`…: No such file`) are not repeated.
            let mut line = e.to_string();
            for cause in e.chain().skip(1).map(|c| c.to_string()) {
                if !line.contains(&cause) {
                    line = format!("{line}: {cause}");
                }
            }
            eprintln!("more-server: error: {line}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("more_server=info,tower_http=warn"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_json {
        fmt.json().init()
    } else {
        fmt.init()
    }

    let registry = Registry::load_dir(&args.models).context("loading models")?;
    for m in registry.iter() {
        let cost = more_server::budget::ComputeCost::of(m);
        tracing::info!(
            id = %m.meta().id,
            input = ?m.input_shape(),
            ring_only = m.is_ring_only(),
            input_bytes_per_sample = cost.input_per_sample,
            compute_bytes_per_sample = cost.per_sample,
            "model loaded"
        );
    }
    let form = if args.four_planes { EncryptedForm::FourPlanes } else { EncryptedForm::Coefficients };
    let mut engine =
        EngineConfig { queue: args.queue, max_batch_samples: args.max_batch_samples, form, ..EngineConfig::default() };
    if let Some(w) = args.workers {
        engine.workers = w;
    }
    let limits = Limits {
        max_batch: args.max_batch,
        max_body: args.max_body,
        max_inflight: args.max_inflight,
        request_timeout: Duration::from_millis(args.timeout_ms),
        memory_budget: args.memory_budget_mb << 20,
        // Well inside the idle timeout, so streams stay open on their own heartbeats.
        stream_heartbeat: Duration::from_millis((args.idle_timeout_s * 1000 / 3).clamp(100, 15_000)),
    };
    let runtime_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut state = AppState::new(registry, engine, limits).with_bound_for(runtime_threads, args.max_connections);
    if let Some(list) = &args.trusted_proxy {
        let proxies =
            more_server::extract::TrustedProxies::parse(list).map_err(anyhow::Error::msg).context("--trusted-proxy")?;
        state = state.with_trusted_proxies(proxies);
    }
    match &args.state {
        StateUrl::Embedded => {}
        StateUrl::Redis(url) => {
            let redis = Redis::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect: {e}"))
                .with_context(|| format!("--state {}", redacted(url)))?;
            tracing::info!(at = %redacted(url), "challenges, BFV keys, uploaded models and training jobs live in Redis");
            state = state.with_shared_state(redis);
        }
    }
    if args.web.join("index.html").is_file() {
        state = state.with_web(&args.web);
    } else {
        tracing::warn!(dir = %args.web.display(), "no index.html there: serving the API only");
    }
    let bfv_limits = more_server::bfv::BfvLimits {
        key_memory: args.bfv_key_memory_mb << 20,
        client_share: (args.bfv_key_memory_mb << 20) / more_server::bfv::CLIENT_SHARES,
        batches: args.bfv_batches,
        batch_results: args.bfv_batch_results,
        batch_result_ttl: Duration::from_secs(args.bfv_batch_result_ttl_s),
        ..Default::default()
    };
    let bfv_limits = more_server::bfv::BfvLimits {
        batch_threads: args.bfv_batch_threads.unwrap_or(bfv_limits.batch_threads).max(1),
        ..bfv_limits
    };
    let bfv = more_server::bfv::BfvService::load_dir(&args.models, bfv_limits).context("loading BFV models")?;
    for m in bfv.models() {
        tracing::info!(id = %m.id, scheme = "bfv", "model loaded");
    }
    state = state.with_bfv(bfv);
    state = state.with_uploads(more_server::uploads::UploadLimits::new(
        args.uploaded_models,
        args.max_model_upload_mb << 20,
        Duration::from_secs(args.uploaded_model_ttl_s),
    ));
    if let Some(dir) = &args.samples {
        let samples = Samples::load(dir).with_context(|| format!("reading samples from {}", dir.display()))?;
        tracing::info!(count = samples.list().len(), dir = %dir.display(), "samples");
        state = state.with_samples(samples);
    }
    if let Some(dir) = &args.training_data {
        let data = more_server::training_data::TrainingData::load_mnist(dir)
            .with_context(|| format!("reading sample training data from {}", dir.display()))?;
        tracing::info!(bytes = data.bytes(), dir = %dir.display(), "sample training data (MNIST)");
        state = state.with_training_data(data);
    }
    let token = match &args.teacher_token {
        Some(t) => TeacherToken::new(t).map_err(anyhow::Error::msg).context("--teacher-token")?,
        None => TeacherToken::generate(),
    };
    state = state.with_challenges(
        token.clone(),
        ChallengeLimits { max_challenges: args.max_challenges, ..ChallengeLimits::default() },
    );
    if !args.no_training {
        let limits = TrainingLimits {
            max_upload_bytes: args.max_upload_mb << 20,
            max_jobs_per_client: args.max_jobs_per_client,
            max_jobs: args.max_jobs.max(1),
            max_queue_bytes: args.max_queue_mb << 20,
            max_held_jobs: args.max_held_jobs.max(1),
            max_epochs: args.max_epochs,
            max_batch_size: args.max_batch_size,
            max_wall: Duration::from_secs(args.max_train_seconds),
            ttl: Duration::from_secs(args.job_ttl_seconds),
            max_memory_bytes: args.max_job_memory_mb << 20,
            threads: args.training_threads.max(1),
        };
        let jobs = match state.shared_state() {
            Some(redis) => {
                let jobs = Jobs::open_shared(redis.clone(), limits).context("starting the training threads")?;
                tracing::info!(threads = limits.threads, "training jobs on, kept in Redis");
                jobs
            }
            None => {
                let jobs = Jobs::open(&args.jobs_dir, limits)
                    .with_context(|| format!("opening the jobs directory {}", args.jobs_dir.display()))?;
                tracing::info!(dir = %args.jobs_dir.display(), threads = limits.threads, "training jobs on");
                jobs
            }
        };
        state = state.with_jobs(jobs);
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, workers = engine.workers, form = form.name(), "listening");
    let bound = state.memory_bound();
    tracing::info!(bound_bytes = bound.total(), %bound, "memory bound (resident set)");
    if !more_server::allocator::is_tuned() {
        tracing::warn!("the allocator runs with one arena per thread: the resident set may exceed the bound");
    }
    // One write, so a reader of the first line gets the others with it; a closed stdout (a supervisor that
    // read the first line) is no error and must not stop the server.
    let mut banner = format!("more-server listening on http://{addr}/\nmore-server memory bound: {bound}\n");
    if args.teacher_token.is_none() {
        banner.push_str(&format!("teacher token (for `more challenge new --token`): {}\n", token.reveal()));
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), banner.as_bytes());
    let listener = BoundedListener::new(listener, args.max_connections, Duration::from_secs(args.idle_timeout_s));
    let handle = state.clone();
    let handle_jobs = state.jobs().cloned();
    axum::serve(listener, app(state).into_make_service_with_connect_info::<ClientAddr>())
        .with_graceful_shutdown(async move {
            shutdown().await;
            handle.begin_shutdown();
        })
        .await?;
    if let Some(jobs) = handle_jobs.as_ref() {
        jobs.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down: finishing open requests");
}
