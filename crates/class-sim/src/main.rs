//! `more-class-sim`: a class of simulated students doing the lesson against a `more-server` or a
//! balancer in front of replicas (see the library's documentation for what each student does).
//!
//! ```text
//! more-class-sim --url http://127.0.0.1:18380 --token TEACHER_TOKEN [--students 200] [--concurrency 16]
//!                [--bfv-every 5] [--patients 60] [--epochs 6] [--batch-size 16] [--retries 3]
//!                [--timeout-s 120] [--halfway-cmd 'CMD'] [--models models] [--data DIR] [--json] [--quiet]
//! ```
//!
//! | flag | default | meaning |
//! |---|---|---|
//! | `--url` | `http://127.0.0.1:8080` | the server or balancer (every student comes from this one address) |
//! | `--token` | `MORE_TEACHER_TOKEN` | the servers' teacher token: creates the challenge, reads its answers back |
//! | `--students` | 200 | students, each doing the whole lesson once |
//! | `--concurrency` | 16 | students at work at once |
//! | `--bfv-every` | 5 | every N-th student (from the first) also classifies a digit under BFV; 0: none |
//! | `--patients`, `--epochs`, `--batch-size` | 60, 6, 16 | each student's training job (simulated patients) |
//! | `--retries` | 3 | times a student resends a request answered 429/502/503/504 or without answer (same `Idempotency-Key`), 1, 2, 4 s later (or after `Retry-After`) |
//! | `--timeout-s` | 120 | longest exchange (event streams: 60 s without a byte) |
//! | `--halfway-cmd` | none | a shell command (`sh -c`) run once when half the students are done, e.g. a replica restart; its first output line is reported |
//! | `--models` | `models` | directory holding `mnist-bfv-square.bfv.json` (the local integer network the BFV answers must equal) |
//! | `--data` | `MORE_DATA`, else `../shared/data` | directory holding `mnist/` (the test digits) |
//! | `--json` | off | print one JSON object instead of the table |
//! | `--quiet` | off | no progress lines on stderr |
//!
//! The report: requests by route (count, failures, p50/p99 ms), failed requests in all, jobs finished /
//! submitted, answers recorded (the teacher's list) / submitted, BFV key sets lost (an upload whose
//! classification answered 404), the halfway hook's outcome and the total time. Exit status 1 when
//! anything was lost (the report's `problems`), 2 when the class could not start.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clap::Parser;

use more_class_sim::{Config, Hook, data_dir, run};

/// A class of simulated students doing the lesson against a more-server (or a balancer).
#[derive(Debug, Parser)]
#[command(name = "more-class-sim")]
struct Args {
    /// The server or balancer.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The servers' teacher token.
    #[arg(long, env = "MORE_TEACHER_TOKEN", hide_env_values = true)]
    token: String,
    /// Students.
    #[arg(long, default_value_t = 200)]
    students: usize,
    /// Students at work at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Every N-th student also classifies a digit under BFV (0: none).
    #[arg(long, default_value_t = 5)]
    bfv_every: usize,
    /// Simulated patients in each training job.
    #[arg(long, default_value_t = 60)]
    patients: usize,
    /// Epochs of each training job.
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Mini-batch of each training job.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Resends of a request answered 429/502/503/504 or without an answer.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Longest exchange, seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Shell command run once when half the students are done.
    #[arg(long)]
    halfway_cmd: Option<String>,
    /// Directory holding mnist-bfv-square.bfv.json.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Directory holding mnist/ (default: MORE_DATA, else ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    let a = Args::parse();
    let config = Config {
        students: a.students,
        concurrency: a.concurrency,
        bfv_every: a.bfv_every,
        bfv_model: a.models.join("mnist-bfv-square.bfv.json"),
        data: data_dir(a.data.as_deref()),
        patients: a.patients,
        epochs: a.epochs,
        batch_size: a.batch_size,
        retries: a.retries,
        timeout: Duration::from_secs(a.timeout_s),
        progress: !a.quiet,
        ..Config::new(&a.url, &a.token)
    };
    let hook: Option<Hook> = a.halfway_cmd.map(|cmd| -> Hook {
        Box::new(move || match Command::new("sh").arg("-c").arg(&cmd).output() {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let first = text.lines().next().unwrap_or("").to_string();
                format!("{first} ({})", out.status)
            }
            Err(e) => format!("could not run {cmd:?}: {e}"),
        })
    });
    let report = match run(&config, hook) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("more-class-sim: error: {e:#}");
            std::process::exit(2);
        }
    };
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    let problems = report.problems();
    if !problems.is_empty() {
        eprintln!("more-class-sim: LOST: {}", problems.join("; "));
        std::process::exit(1);
    }
}
