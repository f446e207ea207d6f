//! `more reproduce TASK --runs K`: the papers' claim with error bars. K plaintext runs under K seeds and K
//! encrypted runs (the same seeds, each under a fresh key), then per headline metric of the task's
//! comparison (`crate::comparison::Paired`) the mean, standard deviation and range of each side, the paired difference with a 95% confidence interval, and a verdict against the
//! plaintext runs' own seed-to-seed spread. Each finished run is a JSON file in the study directory, so an
//! interrupted study resumes where it stopped (`--resume DIR`). Optional extra runs under keys of chosen
//! condition numbers (`--drift-kappas`) show how far the encrypted weights drift from the plaintext ones
//! epoch by epoch, and how that depends on `κ(S)`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::comparison::{Better, Comparison, Paired, Unit};
use crate::stats::{PairedDifference, Summary, Verdict, plain, signed, verdict};

/// The study options of `more reproduce`.
#[derive(Debug, Clone, Args)]
pub struct StudyArgs {
    /// Repeat the comparison K times (seeds `--seed` … `--seed`+K−1, a fresh key for each encrypted run)
    /// and report means, standard deviations, paired differences and a verdict.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Keep (or continue) the study's runs in this directory: finished runs are skipped, and `--runs` or
    /// `--drift-kappas` may change (the other settings may not). Without it a new directory
    /// `study-TASK-<unix time>` is made.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Also run the comparison at the first seed under keys with these condition numbers (comma-separated,
    /// e.g. `1.05,4,10`) and report the weight drift per epoch for each.
    #[arg(long, value_delimiter = ',', value_name = "KAPPAS")]
    pub drift_kappas: Vec<f64>,
}

impl StudyArgs {
    /// Whether a study (rather than a single run) was asked for.
    pub fn is_study(&self) -> bool {
        self.runs > 1 || self.resume.is_some() || !self.drift_kappas.is_empty()
    }
}

/// One run the study asks the task for.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Seed of both sides.
    pub seed: u64,
    /// Condition number of the encrypted side's key (`None`: a fresh key as usual).
    pub key_condition: Option<f64>,
    /// Directory for per-epoch parameter snapshots (`plain/` and `encrypted/` below it).
    pub snapshots: PathBuf,
}

/// What a run file of the study keeps besides the comparison's details: the headline metrics and the key's
/// condition number, read back when a study is resumed.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Headline {
    /// Condition number of the encrypted run's key.
    key_condition: Option<f64>,
    /// The comparison's headline metrics, in order.
    metrics: Vec<Paired>,
}

/// The key of [`Headline`] in a run file.
const HEADLINE: &str = "study_headline";

/// Weight drift at one epoch: decrypted encrypted-run parameters minus the plaintext run's.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct Drift {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Largest absolute difference over all parameters.
    pub max_abs: f64,
    /// Mean absolute difference.
    pub mean_abs: f64,
    /// Largest absolute plaintext parameter (for scale).
    pub max_abs_weight: f64,
}

/// Compares the per-epoch snapshots under `dir/plain` and `dir/encrypted` (epochs both runs reached).
pub fn weight_drift(dir: &Path) -> Result<Vec<Drift>> {
    let mut out = Vec::new();
    for epoch in 1.. {
        let name = format!("epoch-{epoch:03}.f32");
        let (p, e) = (dir.join("plain").join(&name), dir.join("encrypted").join(&name));
        if !p.exists() || !e.exists() {
            break;
        }
        let read = |path: &Path| -> Result<Vec<f32>> {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let (a, b) = (read(&p)?, read(&e)?);
        if a.len() != b.len() || a.is_empty() {
            bail!("snapshots of epoch {epoch} differ in size ({} vs {} values)", a.len(), b.len());
        }
        let (mut max_abs, mut sum, mut max_w) = (0.0f64, 0.0f64, 0.0f64);
        for (x, y) in a.iter().zip(&b) {
            let d = f64::from((x - y).abs());
            max_abs = max_abs.max(d);
            sum += d;
            max_w = max_w.max(f64::from(x.abs()));
        }
        out.push(Drift { epoch, max_abs, mean_abs: sum / a.len() as f64, max_abs_weight: max_w });
    }
    Ok(out)
}

/// One metric over the study.
#[derive(Debug, Serialize)]
pub struct MetricReport {
    /// Metric name.
    pub name: String,
    /// Unit of the values after scaling.
    pub unit: String,
    /// The metric's kind of unit (how its differences are shown).
    #[serde(skip)]
    pub kind: Unit,
    /// Display factor: the summaries hold raw values (fractions, seconds), shown multiplied by this.
    pub scale: f64,
    /// Plaintext runs.
    pub plain: Summary,
    /// Encrypted runs.
    pub encrypted: Summary,
    /// Encrypted minus plaintext, run by run (needs two runs or more).
    pub paired_difference: Option<PairedDifference>,
    /// Encrypted over plaintext, run by run (cost metrics).
    pub ratio: Option<Summary>,
    /// For quality metrics with two runs or more.
    pub verdict: Option<Verdict>,
    /// The plaintext values, run by run.
    pub plain_values: Vec<f64>,
    /// The encrypted values, run by run.
    pub encrypted_values: Vec<f64>,
}

/// One run of the study as kept in the report.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// `run-01` …, or `kappa-4` for a drift run.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// The encrypted side's key condition number.
    pub key_condition: Option<f64>,
    /// The weight drift per epoch.
    pub weight_drift: Vec<Drift>,
}

/// The study's figures (`--json`).
#[derive(Debug, Serialize)]
pub struct StudyReport {
    /// Task.
    pub task: String,
    /// Runs per side.
    pub runs: usize,
    /// Seeds, in run order.
    pub seeds: Vec<u64>,
    /// Where the runs are kept.
    pub directory: String,
    /// The command that made the study.
    pub command: String,
    /// Wall time of the runs made by this invocation, seconds (resumed runs not included).
    pub wall_seconds: f64,
    /// Wall time of every run as recorded when it finished, seconds.
    pub run_wall_seconds: Vec<f64>,
    /// Per metric.
    pub metrics: Vec<MetricReport>,
    /// Per run (including drift runs).
    pub run_details: Vec<RunSummary>,
}

/// The command-line arguments a study must keep when it is resumed: all but where and how it reports and
/// how many runs it makes (`--runs` and `--drift-kappas` may grow or shrink a study; every run keeps its
/// own seed and key condition, so the runs already finished stay valid).
pub fn settings_of(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut args = args.into_iter();
    let mut out = Vec::new();
    while let Some(a) = args.next() {
        match a.split('=').next().unwrap_or("") {
            "--resume" | "--svg" | "--report" | "--runs" | "--drift-kappas" => {
                if !a.contains('=') {
                    args.next();
                }
            }
            "--json" | "--quiet" => {}
            _ => out.push(a),
        }
    }
    out
}

/// The study's bookkeeping file, checked when resuming.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
struct Plan {
    task: String,
    base_seed: u64,
    settings: Vec<String>,
}

/// Runs (or resumes) the study of `task`: `one` trains both sides for a [`RunRequest`]; its comparison's
/// details and headline are kept as the run's file. `settings` are the command-line arguments that must
/// not change between resumptions.
pub fn run(
    task: &str,
    base_seed: u64,
    args: &StudyArgs,
    settings: Vec<String>,
    mut one: impl FnMut(&RunRequest) -> Result<Comparison>,
) -> Result<StudyReport> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(k) = args.drift_kappas.iter().find(|k| !(k.is_finite() && **k >= 1.0 && **k <= 1000.0)) {
        bail!("--drift-kappas: {k} is not a condition number in [1, 1000]");
    }
    let dir = match &args.resume {
        Some(d) => d.clone(),
        None => {
            let t =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            PathBuf::from(format!("study-{task}-{t}"))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let plan = Plan { task: task.into(), base_seed, settings };
    let plan_path = dir.join("study.json");
    if plan_path.exists() {
        let text = std::fs::read_to_string(&plan_path).with_context(|| format!("reading {}", plan_path.display()))?;
        let mut old: Plan = serde_json::from_str(&text).with_context(|| format!("parsing {}", plan_path.display()))?;
        // Studies written before run counts could change kept them among the settings.
        old.settings = settings_of(old.settings);
        if old != plan {
            bail!(
                "{} holds a study with other settings ({} seed {} {:?}); resume it with the same arguments or \
                 choose another directory",
                dir.display(),
                old.task,
                old.base_seed,
                old.settings
            );
        }
    } else {
        std::fs::write(&plan_path, serde_json::to_string_pretty(&plan)?)?;
    }
    eprintln!("study directory: {} (continue an interrupted study with --resume {0})", dir.display());

    let mut jobs: Vec<(String, u64, Option<f64>)> =
        (0..args.runs).map(|i| (format!("run-{:02}", i + 1), base_seed + i as u64, None)).collect();
    for k in &args.drift_kappas {
        jobs.push((format!("kappa-{k}"), base_seed, Some(*k)));
    }
    let total = jobs.len();
    let started = Instant::now();
    let mut reports = Vec::with_capacity(total);
    let mut headlines: Vec<Headline> = Vec::with_capacity(total);
    for (i, (name, seed, kappa)) in jobs.iter().enumerate() {
        let path = dir.join(format!("{name}.json"));
        let label = format!("[{}/{total}] {name}, seed {seed}", i + 1);
        if let Some((done, headline)) = finished(&path) {
            eprintln!("{label}: finished earlier, kept");
            reports.push(done);
            headlines.push(headline);
            continue;
        }
        let t = Instant::now();
        let snapshots = dir.join(format!("{name}.snapshots"));
        let req = RunRequest { seed: *seed, key_condition: *kappa, snapshots: snapshots.clone() };
        eprintln!("{label}: training both sides …");
        let comparison = one(&req).with_context(|| format!("{name} (seed {seed})"))?;
        let headline = Headline { key_condition: comparison.key_condition, metrics: comparison.headline };
        let mut report = comparison.details.to_value()?;
        let drift = weight_drift(&snapshots)?;
        report["study_seed"] = (*seed).into();
        report["study_wall_seconds"] = t.elapsed().as_secs_f64().into();
        report["weight_drift"] = serde_json::to_value(&drift)?;
        report[HEADLINE] = serde_json::to_value(&headline)?;
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        std::fs::remove_dir_all(&snapshots).ok();
        let shown: Vec<String> = headline
            .metrics
            .iter()
            .filter(|m| m.unit.is_quality())
            .map(|m| {
                let (scale, u) = (m.unit.scale(), m.unit.suffix());
                format!("{} {:.2}{u} vs {:.2}{u}", m.name, m.plain * scale, m.encrypted * scale)
            })
            .collect();
        eprintln!(
            "{label}: κ {:.2}, plaintext vs encrypted: {} ({:.0} s)",
            headline.key_condition.unwrap_or(f64::NAN),
            shown.join(", "),
            t.elapsed().as_secs_f64()
        );
        reports.push(report);
        headlines.push(headline);
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let main_runs = &headlines[..args.runs];
    let names: Vec<&str> = main_runs[0].metrics.iter().map(|m| m.name.as_str()).collect();
    if names.is_empty() {
        bail!("the {task} comparison has no headline metrics to summarise");
    }
    if let Some(other) = main_runs.iter().find(|h| !h.metrics.iter().map(|m| m.name.as_str()).eq(names.iter().copied()))
    {
        bail!(
            "the runs report different metrics ({} vs {}): resume with the `more` that started the study, or start a new one",
            names.join(", "),
            other.metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let mut metric_reports = Vec::new();
    for (k, first) in main_runs[0].metrics.iter().enumerate() {
        let plain: Vec<f64> = main_runs.iter().map(|h| h.metrics[k].plain).collect();
        let enc: Vec<f64> = main_runs.iter().map(|h| h.metrics[k].encrypted).collect();
        let (unit, scale, quality) = (first.unit, first.unit.scale(), first.unit.is_quality());
        let ps = Summary::of(&plain).context("no runs")?;
        let paired = PairedDifference::of(&plain, &enc);
        let ratios: Vec<f64> = plain.iter().zip(&enc).map(|(p, e)| e / p).collect();
        let higher_is_better = first.better == Better::Higher;
        metric_reports.push(MetricReport {
            name: first.name.clone(),
            unit: unit.suffix().into(),
            kind: unit,
            scale,
            plain: ps,
            encrypted: Summary::of(&enc).context("no runs")?,
            verdict: paired
                .filter(|_| quality)
                .map(|d| verdict(&ps, &d, scale, unit.difference_suffix(), higher_is_better)),
            paired_difference: paired,
            ratio: if quality { None } else { Summary::of(&ratios) },
            plain_values: plain,
            encrypted_values: enc,
        });
    }
    let run_details = jobs
        .iter()
        .zip(reports.iter().zip(&headlines))
        .map(|((name, seed, _), (r, h))| RunSummary {
            name: name.clone(),
            seed: *seed,
            key_condition: h.key_condition,
            weight_drift: r
                .get("weight_drift")
                .and_then(|d| serde_json::from_value(d.clone()).ok())
                .unwrap_or_default(),
        })
        .collect();
    Ok(StudyReport {
        task: task.into(),
        runs: args.runs,
        seeds: (0..args.runs).map(|i| base_seed + i as u64).collect(),
        directory: dir.display().to_string(),
        command: crate::files::command_line(),
        wall_seconds,
        run_wall_seconds: reports
            .iter()
            .filter_map(|r| r.pointer("/study_wall_seconds").and_then(Value::as_f64))
            .collect(),
        metrics: metric_reports,
        run_details,
    })
}

/// A run finished by an earlier invocation: its file's content and headline. A file that does not parse
/// or lacks the headline is not a finished run (the run is trained again).
fn finished(path: &Path) -> Option<(Value, Headline)> {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let headline = serde_json::from_value(report.get(HEADLINE)?.clone()).ok()?;
    Some((report, headline))
}

/// The study as Markdown tables and verdicts.
pub fn print_table(r: &StudyReport) {
    println!(
        "{} — {} plaintext and {} encrypted runs (seeds {}–{}, a fresh key per encrypted run)",
        r.task,
        r.runs,
        r.runs,
        r.seeds.first().unwrap_or(&0),
        r.seeds.last().unwrap_or(&0)
    );
    println!();
    println!(
        "| metric | plaintext mean ± sd [min, max] | encrypted mean ± sd [min, max] | encrypted − plaintext (95% CI) |"
    );
    println!("|---|---|---|---|");
    for m in &r.metrics {
        let s = |x: &Summary| {
            format!(
                "{} ± {}{u} [{}, {}]",
                plain(x.mean * m.scale),
                plain(x.sd * m.scale),
                plain(x.min * m.scale),
                plain(x.max * m.scale),
                u = m.unit
            )
        };
        let d = match (&m.paired_difference, &m.ratio) {
            (_, Some(ratio)) => {
                format!("ratio {:.2}x ± {:.2} [{:.2}, {:.2}]", ratio.mean, ratio.sd, ratio.min, ratio.max)
            }
            (Some(p), None) => format!(
                "{} ({} to {}){}",
                signed(p.difference.mean * m.scale),
                signed(p.ci95_low * m.scale),
                signed(p.ci95_high * m.scale),
                m.kind.difference_suffix()
            ),
            (None, None) => "—".into(),
        };
        println!("| {} | {} | {} | {d} |", m.name, s(&m.plain), s(&m.encrypted));
    }
    println!();
    for m in &r.metrics {
        if let Some(v) = &m.verdict {
            println!("{}: {}.", m.name, v.text);
        }
    }
    if r.run_details.iter().any(|d| !d.weight_drift.is_empty()) {
        println!();
        println!("Weight drift (decrypted encrypted-run weights − plaintext-run weights, same seed):");
        println!();
        println!("| run | seed | κ(S) | epoch 1 max / mean | last common epoch | max / mean | largest weight |");
        println!("|---|---|---|---|---|---|---|");
        for d in &r.run_details {
            if let (Some(first), Some(last)) = (d.weight_drift.first(), d.weight_drift.last()) {
                println!(
                    "| {} | {} | {:.2} | {:.1e} / {:.1e} | {} | {:.1e} / {:.1e} | {:.2} |",
                    d.name,
                    d.seed,
                    d.key_condition.unwrap_or(f64::NAN),
                    first.max_abs,
                    first.mean_abs,
                    last.epoch,
                    last.max_abs,
                    last.mean_abs,
                    last.max_abs_weight
                );
            }
        }
    }
    println!();
    println!("runs kept in {}; wall time of this invocation {:.0} s", r.directory, r.wall_seconds);
}

#[cfg(test)]
mod tests {
    #[test]
    fn reporting_and_run_counts_may_change_on_resume() {
        let args = |s: &str| super::settings_of(s.split_whitespace().map(String::from));
        let base = args("wbc --epochs 20 --seed 3");
        assert_eq!(base, ["wbc", "--epochs", "20", "--seed", "3"]);
        assert_eq!(args("wbc --runs 2 --epochs 20 --resume d --json --seed 3 --svg x.svg"), base);
        assert_eq!(args("wbc --runs=5 --epochs 20 --drift-kappas 1.05,4 --seed 3 --quiet"), base);
        assert_ne!(args("wbc --epochs 21 --seed 3"), base);
    }

    use super::*;

    fn fake_run(req: &RunRequest, plain: f64, enc: f64) -> Result<Comparison> {
        for (side, v) in [("plain", 0.5f32), ("encrypted", 0.5f32 + 1e-4)] {
            let d = req.snapshots.join(side);
            std::fs::create_dir_all(&d)?;
            for e in 1..=3 {
                let bytes: Vec<u8> = [v, -v * e as f32].iter().flat_map(|x| x.to_le_bytes()).collect();
                std::fs::write(d.join(format!("epoch-{e:03}.f32")), bytes)?;
            }
        }
        let history = more_nn::train::History { epochs: vec![], best_epoch: 0, stopped_early: false };
        Ok(Comparison {
            headline: vec![
                Paired::new("test accuracy", plain, enc, Unit::Fraction, Better::Higher),
                Paired::new("training time per epoch", 1.0, 3.0, Unit::Seconds, Better::Lower),
            ],
            key_condition: Some(req.key_condition.unwrap_or(2.0)),
            plain_history: history.clone(),
            encrypted_history: history,
            title: "fake".into(),
            details: Box::new(serde_json::json!({ "plain_test_accuracy": plain, "encrypted_test_accuracy": enc })),
            table: String::new(),
            written: vec![],
        })
    }

    #[test]
    fn resume_skips_finished_runs_and_reports_statistics() {
        let dir = std::env::temp_dir().join(format!("more-study-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let args = StudyArgs { runs: 3, resume: Some(dir.clone()), drift_kappas: vec![] };
        // The first attempt fails at the third run, after two finished.
        let mut calls = 0;
        let err = run("mnist", 7, &args, vec!["--epochs".into(), "2".into()], |req| {
            calls += 1;
            if calls == 3 {
                bail!("interrupted");
            }
            fake_run(req, 0.99, 0.98 + 0.001 * req.seed as f64)
        });
        assert!(err.is_err());
        assert!(dir.join("run-01.json").exists() && dir.join("run-02.json").exists());
        assert!(!dir.join("run-03.json").exists());
        // Resuming runs only the third.
        let mut seeds = vec![];
        let report = run("mnist", 7, &args, vec!["--epochs".into(), "2".into()], |req| {
            seeds.push(req.seed);
            fake_run(req, 0.99, 0.98 + 0.001 * req.seed as f64)
        })
        .unwrap();
        assert_eq!(seeds, vec![9]);
        let acc = &report.metrics[0];
        assert_eq!(acc.encrypted_values.len(), 3);
        // Encrypted 0.987, 0.988, 0.989 vs plaintext 0.99: mean difference −0.002.
        let d = acc.paired_difference.unwrap();
        assert!((d.difference.mean + 0.002).abs() < 1e-9);
        assert!(acc.verdict.is_some());
        let time = &report.metrics[1];
        assert!((time.ratio.unwrap().mean - 3.0).abs() < 1e-12);
        // Drift per epoch from the snapshots (which were removed afterwards).
        let drift = &report.run_details[0].weight_drift;
        assert_eq!(drift.len(), 3);
        // Epoch e: plaintext (0.5, −0.5e), encrypted (0.5001, −0.5001e).
        assert!((drift[0].max_abs - 1e-4).abs() < 1e-6, "{drift:?}");
        assert!((drift[2].max_abs - 3e-4).abs() < 1e-6 && (drift[2].mean_abs - 2e-4).abs() < 1e-6, "{drift:?}");
        assert_eq!(drift[2].max_abs_weight, 1.5);
        assert!(!dir.join("run-01.snapshots").exists());
        assert!(crate::plot::study_svg(&report).contains("<circle"));
        // Other settings in the same directory are refused.
        let e = run("mnist", 7, &args, vec!["--epochs".into(), "3".into()], |req| fake_run(req, 0.9, 0.9));
        assert!(e.unwrap_err().to_string().contains("other settings"));
        // More runs are not other settings: only the new run trains.
        let more = StudyArgs { runs: 4, ..args.clone() };
        let mut trained = Vec::new();
        let report = run("mnist", 7, &more, vec!["--epochs".into(), "2".into()], |req| {
            trained.push(req.seed);
            fake_run(req, 0.99, 0.985)
        })
        .unwrap();
        assert_eq!(trained, vec![10]);
        assert_eq!(report.metrics[0].encrypted_values.len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
