//! A class of simulated students doing the lesson against a `more-server` — one replica, or replicas
//! behind a balancer — all from one address, as a class behind a school's NAT would.
//!
//! A teacher creates a challenge with the teacher token; then each student, in order:
//!
//! 1. loads the lesson page (`GET /web/learn.html`);
//! 2. reads the challenge and its ciphertext, and breaks it without the key — the shared-eigenbasis
//!    attack of `more_core::attack`, as the lesson teaches (`scripts/solve-challenge.mjs` is the same
//!    attack in JavaScript);
//! 3. answers once wrong (the negative of the recovered image) and once right;
//! 4. every `bfv_every`-th student generates BFV keys (more-bfv), uploads them, classifies one MNIST test
//!    digit under BFV, decrypts the logits and checks them against the integer network run here, then
//!    deletes the keys;
//! 5. submits a small training job (the whole-body-circulation MLP on simulated patients encrypted under
//!    the student's fresh MORE key), follows its Server-Sent Events (reconnecting with `Last-Event-ID`),
//!    downloads the encrypted model, decrypts it and checks it — and each epoch's decrypted loss —
//!    against the same job trained in this process on the plaintext.
//!
//! Every POST carries an `Idempotency-Key` (fresh per logical request, the same on the student's own
//! retries). At the end the teacher reads the answers back; the [`Report`] counts requests by route,
//! failures, jobs finished of those submitted, answers recorded of those submitted, and BFV keys lost.
//! [`run`] takes a hook called once, when half the students are done (the load test restarts a replica
//! there).

pub mod events;
pub mod http;
pub mod lesson;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use http::{Call, Client};
use lesson::{BfvPart, Class, Tally, TrainingJob};

/// How the class runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server or balancer, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Students.
    pub students: usize,
    /// Students at work at once.
    pub concurrency: usize,
    /// Every this-many-th student (from the first) classifies a digit under BFV; 0: none.
    pub bfv_every: usize,
    /// The servers' teacher token.
    pub token: String,
    /// The BFV model file (the bundled `models/mnist-bfv-square.bfv.json`).
    pub bfv_model: PathBuf,
    /// The data directory holding `mnist/` (the test digits).
    pub data: PathBuf,
    /// Simulated patients in each training job.
    pub patients: usize,
    /// Epochs of each training job.
    pub epochs: usize,
    /// Mini-batch of each training job.
    pub batch_size: usize,
    /// Times a student resends a request answered 429/502/503/504 or without an answer.
    pub retries: u32,
    /// Longest exchange (event streams excepted).
    pub timeout: Duration,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// The data directory: `explicit` (`--data`), else env `MORE_DATA`, else `../shared/data` beside the
/// repository this program was built from.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    std::env::var_os("MORE_DATA")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"), PathBuf::from)
}

impl Config {
    /// The defaults for a server at `url` with teacher token `token`: 20 students, 4 at once, every 5th
    /// with BFV, jobs of 60 patients and 6 epochs in batches of 16, 3 retries (1, 2 and 4 s later).
    pub fn new(url: &str, token: &str) -> Config {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        Config {
            url: url.to_string(),
            students: 20,
            concurrency: 4,
            bfv_every: 5,
            token: token.to_string(),
            bfv_model: root.join("models/mnist-bfv-square.bfv.json"),
            data: data_dir(None),
            patients: 60,
            epochs: 6,
            batch_size: 16,
            retries: 3,
            timeout: Duration::from_secs(120),
            progress: false,
        }
    }
}

/// One route's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSummary {
    /// Attempts.
    pub count: usize,
    /// Attempts without a 2xx answer.
    pub failures: usize,
    /// Median time, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
}

/// What the halfway hook did.
#[derive(Debug, Clone, PartialEq)]
pub struct Halfway {
    /// Students done when it was called.
    pub after_students: usize,
    /// Seconds from the start to the call.
    pub at_seconds: f64,
    /// Seconds it took.
    pub took_seconds: f64,
    /// What it said.
    pub note: String,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Students.
    pub students: usize,
    /// Students at once.
    pub concurrency: usize,
    /// Students who did every step without a failure.
    pub students_completed: usize,
    /// Requests by route (every attempt).
    pub routes: BTreeMap<String, RouteSummary>,
    /// Attempts that were the students' own retries.
    pub retried: usize,
    /// Logical requests that failed after the retries, or whose answer was wrong.
    pub failed_requests: usize,
    /// Jobs the server accepted (202).
    pub jobs_submitted: usize,
    /// Jobs whose decrypted model matched the reference.
    pub jobs_finished: usize,
    /// Largest output difference of a decrypted model from the reference.
    pub worst_model_diff: f64,
    /// Event streams reopened with `Last-Event-ID`.
    pub events_reconnects: usize,
    /// `resumed` events seen (a replica restarted while it had the job).
    pub jobs_resumed: usize,
    /// Answers the students got a verdict for.
    pub answers_submitted: usize,
    /// Answers in the teacher's list.
    pub answers_recorded: usize,
    /// Students whose answers in the teacher's list are not exactly their one wrong and one right.
    pub answers_mismatched: Vec<String>,
    /// Students who classified under BFV.
    pub bfv_students: usize,
    /// BFV key sets uploaded.
    pub keys_uploaded: usize,
    /// Key uploads whose classification answered 404.
    pub keys_lost: usize,
    /// BFV answers equal to the integer network's logits.
    pub bfv_exact: usize,
    /// Of those, the digit's label.
    pub bfv_correct_class: usize,
    /// The halfway hook, if one ran.
    pub halfway: Option<Halfway>,
    /// Failures by kind (the message without the student and the details).
    pub failure_kinds: BTreeMap<String, usize>,
    /// The first errors, in words.
    pub errors: Vec<String>,
    /// Seconds from the challenge's creation to the teacher's last read.
    pub seconds: f64,
}

impl Report {
    /// What was lost: failed requests, jobs not finished, answers not recorded (or recorded twice), BFV
    /// keys lost. Empty when the class went through.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.failed_requests > 0 {
            p.push(format!("{} failed requests", self.failed_requests));
        }
        if self.jobs_submitted < self.students || self.jobs_finished < self.jobs_submitted {
            p.push(format!(
                "jobs finished {} / submitted {} / students {}",
                self.jobs_finished, self.jobs_submitted, self.students
            ));
        }
        if self.answers_submitted != 2 * self.students || self.answers_recorded != self.answers_submitted {
            p.push(format!(
                "answers recorded {} / submitted {} (2 per student)",
                self.answers_recorded, self.answers_submitted
            ));
        }
        if !self.answers_mismatched.is_empty() {
            p.push(format!("teacher's list wrong for {}", self.answers_mismatched.join(", ")));
        }
        if self.keys_lost > 0 {
            p.push(format!("{} BFV key sets lost", self.keys_lost));
        }
        if self.bfv_exact < self.bfv_students {
            p.push(format!("BFV answers exact {} / students {}", self.bfv_exact, self.bfv_students));
        }
        if self.students_completed < self.students {
            p.push(format!("{} of {} students completed", self.students_completed, self.students));
        }
        p
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let routes: serde_json::Map<String, serde_json::Value> = self
            .routes
            .iter()
            .map(|(k, r)| {
                (k.clone(), json!({"count": r.count, "failures": r.failures, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}))
            })
            .collect();
        json!({
            "students": self.students, "concurrency": self.concurrency,
            "students_completed": self.students_completed,
            "routes": routes,
            "requests": self.routes.values().map(|r| r.count).sum::<usize>(),
            "retried": self.retried,
            "failed_requests": self.failed_requests,
            "jobs_submitted": self.jobs_submitted, "jobs_finished": self.jobs_finished,
            "worst_model_diff": self.worst_model_diff,
            "events_reconnects": self.events_reconnects, "jobs_resumed": self.jobs_resumed,
            "answers_submitted": self.answers_submitted, "answers_recorded": self.answers_recorded,
            "answers_mismatched": self.answers_mismatched,
            "bfv_students": self.bfv_students, "keys_uploaded": self.keys_uploaded, "keys_lost": self.keys_lost,
            "bfv_exact": self.bfv_exact, "bfv_correct_class": self.bfv_correct_class,
            "halfway": self.halfway.as_ref().map(|h| json!({
                "after_students": h.after_students, "at_seconds": h.at_seconds, "took_seconds": h.took_seconds,
                "note": h.note,
            })),
            "problems": self.problems(),
            "failure_kinds": self.failure_kinds,
            "errors": self.errors,
            "seconds": self.seconds,
        })
    }

    /// A short table for people.
    pub fn table(&self) -> String {
        let mut out = format!("{:<48} {:>7} {:>8} {:>10} {:>10}\n", "route", "count", "failed", "p50 ms", "p99 ms");
        for (route, r) in &self.routes {
            out += &format!("{route:<48} {:>7} {:>8} {:>10.1} {:>10.1}\n", r.count, r.failures, r.p50_ms, r.p99_ms);
        }
        out += &format!(
            "students {} (completed {}), failed requests {} (retried attempts {})\n",
            self.students, self.students_completed, self.failed_requests, self.retried
        );
        out += &format!(
            "jobs finished {} / submitted {} (event streams reopened {}, resumed {}, worst model difference {:.2e})\n",
            self.jobs_finished, self.jobs_submitted, self.events_reconnects, self.jobs_resumed, self.worst_model_diff
        );
        out += &format!("answers recorded {} / submitted {}\n", self.answers_recorded, self.answers_submitted);
        out += &format!(
            "BFV: {} students, {} key sets uploaded, {} lost, {} answers exact, {} of the right class\n",
            self.bfv_students, self.keys_uploaded, self.keys_lost, self.bfv_exact, self.bfv_correct_class
        );
        if let Some(h) = &self.halfway {
            out += &format!(
                "halfway hook after {} students at {:.1} s, took {:.1} s: {}\n",
                h.after_students, h.at_seconds, h.took_seconds, h.note
            );
        }
        for (kind, n) in &self.failure_kinds {
            out += &format!("failed {n}x: {kind}\n");
        }
        for e in self.errors.iter().take(10) {
            out += &format!("error: {e}\n");
        }
        out += &format!("total {:.1} s\n", self.seconds);
        out
    }
}

/// A hook called once, in its own thread, when half the students are done; what it returns is reported.
pub type Hook = Box<dyn FnOnce() -> String + Send>;

/// Runs the class: prepares the shared data, lets the teacher create a challenge, runs the students
/// `concurrency` at a time (calling `halfway` when half are done), then reads the teacher's list of
/// answers. An error only when the class could not start (no challenge, no data).
pub fn run(config: &Config, halfway: Option<Hook>) -> anyhow::Result<Report> {
    let job = TrainingJob::new(config.patients, config.epochs, config.batch_size)?;
    let bfv = if config.bfv_every > 0 { Some(BfvPart::load(&config.bfv_model, &config.data, 100)?) } else { None };
    let client = Client::new(&config.url, config.retries, config.timeout);
    let token = config.token.as_str();
    let started = Instant::now();
    let r = client
        .send(&Call::post("POST /api/v1/challenges", "/api/v1/challenges", "application/json", b"").bearer(token))
        .map_err(anyhow::Error::msg)
        .context("the teacher creating the challenge")?;
    if r.status != 201 {
        bail!("the teacher creating the challenge: {}", r.describe());
    }
    let challenge = r.json()["id"].as_str().context("the challenge's answer has no id")?.to_string();
    let class = Class { client, challenge, job, bfv, bfv_every: config.bfv_every, tally: Tally::default() };

    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let hook = Mutex::new(halfway);
    let outcome: Mutex<Option<Halfway>> = Mutex::new(None);
    let half = config.students.div_ceil(2).max(1);
    let step = (config.students / 10).max(1);
    std::thread::scope(|s| {
        for _ in 0..config.concurrency.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= config.students {
                        break;
                    }
                    class.student(i);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if config.progress && (n % step == 0 || n == config.students) {
                        eprintln!(
                            "progress: {n}/{} students done at {:.1} s, {} failed requests",
                            config.students,
                            started.elapsed().as_secs_f64(),
                            class.tally.failed.load(Ordering::Relaxed)
                        );
                    }
                    let hook = if n == half { hook.lock().unwrap().take() } else { None };
                    if let Some(f) = hook {
                        let outcome = &outcome;
                        s.spawn(move || {
                            let at = started.elapsed();
                            let note = f();
                            let took = started.elapsed() - at;
                            *outcome.lock().unwrap() = Some(Halfway {
                                after_students: n,
                                at_seconds: at.as_secs_f64(),
                                took_seconds: took.as_secs_f64(),
                                note,
                            });
                        });
                    }
                }
            });
        }
    });

    // The teacher's view of the answers: each student's one wrong and one right answer, once each.
    let path = format!("/api/v1/challenges/{}/answers", class.challenge);
    let r = class
        .client
        .send(&Call::get("GET /api/v1/challenges/{id}/answers (teacher)", path).bearer(token))
        .map_err(anyhow::Error::msg)
        .context("the teacher reading the answers")?;
    if r.status != 200 {
        bail!("the teacher reading the answers: {}", r.describe());
    }
    let list = r.json();
    let answers = list["answers"].as_array().cloned().unwrap_or_default();
    let mut by_name: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for a in &answers {
        let e = by_name.entry(a["name"].as_str().unwrap_or("?").to_string()).or_default();
        if a["correct"].as_bool() == Some(true) { e.1 += 1 } else { e.0 += 1 }
    }
    let answers_mismatched =
        (0..config.students).map(lesson::student_name).filter(|name| by_name.get(name) != Some(&(1, 1))).collect();
    let seconds = started.elapsed().as_secs_f64();

    let t = &class.tally;
    let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let routes = class
        .client
        .stats()
        .into_iter()
        .map(|(route, s)| {
            let summary = RouteSummary {
                count: s.millis.len(),
                failures: s.failures,
                p50_ms: s.quantile(0.5),
                p99_ms: s.quantile(0.99),
            };
            (route.to_string(), summary)
        })
        .collect();
    let halfway = outcome.lock().unwrap().take();
    Ok(Report {
        students: config.students,
        concurrency: config.concurrency,
        students_completed: get(&t.completed),
        routes,
        retried: class.client.retried(),
        failed_requests: get(&t.failed),
        jobs_submitted: get(&t.jobs_submitted),
        jobs_finished: get(&t.jobs_finished),
        worst_model_diff: f64::from(f32::from_bits(get(&t.worst_model_diff) as u32)),
        events_reconnects: get(&t.reconnects),
        jobs_resumed: get(&t.resumed),
        answers_submitted: get(&t.answers_submitted),
        answers_recorded: answers.len(),
        answers_mismatched,
        bfv_students: if config.bfv_every > 0 { config.students.div_ceil(config.bfv_every) } else { 0 },
        keys_uploaded: get(&t.keys_uploaded),
        keys_lost: get(&t.keys_lost),
        bfv_exact: get(&t.bfv_exact),
        bfv_correct_class: get(&t.bfv_correct),
        halfway,
        failure_kinds: t.kinds.lock().unwrap().clone(),
        errors: t.errors.lock().unwrap().clone(),
        seconds,
    })
}
