//! `more-server`: parses flags, loads the models and serves until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use more_nn::EncryptedForm;
use more_server::conn::BoundedListener;
use more_server::{AppState, EngineConfig, Limits, Registry, Samples, app};

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
    /// Memory admitted inference requests may hold together, MiB (4x each body); more are answered 503.
    #[arg(long, default_value_t = 256)]
    memory_budget_mb: usize,
    /// Request timeout, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Open connections at most; more clients wait until one closes.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Close a connection after this many seconds without receiving a byte.
    #[arg(long, default_value_t = 60)]
    idle_timeout_s: u64,
    /// Run encrypted inference on the four ciphertext planes instead of the default coefficient form (two
    /// planes per value; its conversion reads each sample's shared eigenbasis, i.e. uses the 2x2 structure).
    #[arg(long)]
    four_planes: bool,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
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
        tracing::info!(id = %m.meta().id, input = ?m.input_shape(), ring_only = m.is_ring_only(), "model loaded");
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
    };
    let mut state = AppState::new(registry, engine, limits);
    if args.web.join("index.html").is_file() {
        state = state.with_web(&args.web);
    } else {
        tracing::warn!(dir = %args.web.display(), "no index.html there: serving the API only");
    }
    if let Some(dir) = &args.samples {
        let samples = Samples::load(dir).with_context(|| format!("reading samples from {}", dir.display()))?;
        tracing::info!(count = samples.list().len(), dir = %dir.display(), "samples");
        state = state.with_samples(samples);
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, workers = engine.workers, form = form.name(), "listening");
    println!("more-server listening on http://{addr}/");
    let listener = BoundedListener::new(listener, args.max_connections, Duration::from_secs(args.idle_timeout_s));
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown()).await?;
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
