//! `more reproduce TASK --runs K`: the papers' claim with error bars. K plaintext runs under K seeds and K
//! encrypted runs (the same seeds, each under a fresh key), then per metric the mean, standard deviation
//! and range of each side, the paired difference with a 95% confidence interval, and a verdict against the
//! plaintext runs' own seed-to-seed spread. Each finished run is a JSON file in the study directory, so an
//! interrupted study resumes where it stopped (`--resume DIR`). Optional extra runs under keys of chosen
//! condition numbers (`--drift-kappas`) show how far the encrypted weights drift from the plaintext ones
//! epoch by epoch, and how that depends on `κ(S)`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

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
    /// Where the run writes its JSON report.
    pub report: PathBuf,
}

/// A paired metric of a task's reproduce report: where each side's value is (JSON pointers) and how to show
/// it.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Name in tables and JSON.
    pub name: &'static str,
    /// Pointer to the plaintext value.
    pub plain: &'static str,
    /// Pointer to the encrypted value.
    pub encrypted: &'static str,
    /// Display factor (100 for fractions shown in percent).
    pub scale: f64,
    /// Unit after scaling (`%`, ` s`).
    pub unit: &'static str,
    /// Unit of differences after scaling (` pp`, ` s`).
    pub diff_unit: &'static str,
    /// Whether higher is better (accuracy) or lower (error, time).
    pub higher_is_better: bool,
    /// A quality metric gets a verdict; a cost metric a ratio.
    pub quality: bool,
}

/// The paired metrics of each task's reproduce report.
pub fn metrics(task: &str) -> Vec<Metric> {
    let pct = |name, plain, encrypted, higher| Metric {
        name,
        plain,
        encrypted,
        scale: 100.0,
        unit: "%",
        diff_unit: " pp",
        higher_is_better: higher,
        quality: true,
    };
    let secs = |name, plain, encrypted| Metric {
        name,
        plain,
        encrypted,
        scale: 1.0,
        unit: " s",
        diff_unit: " s",
        higher_is_better: false,
        quality: false,
    };
    match task {
        "mnist" => vec![
            pct("test accuracy", "/plain_test_accuracy", "/encrypted_test_accuracy", true),
            secs("training time per epoch", "/plain_epoch_seconds", "/encrypted_epoch_seconds"),
        ],
        "angio" => vec![
            pct("val accuracy", "/val_accuracy/plain", "/val_accuracy/encrypted", true),
            pct("val balanced accuracy", "/val_balanced_accuracy/plain", "/val_balanced_accuracy/encrypted", true),
            secs("training time per epoch", "/epoch_wall_seconds/plain", "/epoch_wall_seconds/encrypted"),
        ],
        "wbc" => vec![
            pct("mean relative error (6 outputs)", "/plain_mean_mre", "/encrypted_mean_mre", false),
            secs("training time", "/plain_train_seconds", "/encrypted_train_seconds"),
        ],
        _ => vec![],
    }
}

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

/// Runs (or resumes) the study of `task`: `one` trains both sides for a [`RunRequest`] and writes the
/// report there. `settings` are the command-line arguments that must not change between resumptions.
pub fn run(
    task: &str,
    base_seed: u64,
    args: &StudyArgs,
    settings: Vec<String>,
    mut one: impl FnMut(&RunRequest) -> Result<()>,
) -> Result<StudyReport> {
    let metrics = metrics(task);
    if metrics.is_empty() {
        bail!("no study metrics for task {task:?}");
    }
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
    for (i, (name, seed, kappa)) in jobs.iter().enumerate() {
        let path = dir.join(format!("{name}.json"));
        let label = format!("[{}/{total}] {name}, seed {seed}", i + 1);
        if let Some(done) = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
            eprintln!("{label}: finished earlier, kept");
            reports.push(done);
            continue;
        }
        let t = Instant::now();
        let snapshots = dir.join(format!("{name}.snapshots"));
        let req = RunRequest {
            seed: *seed,
            key_condition: *kappa,
            snapshots: snapshots.clone(),
            report: dir.join(format!("{name}.partial.json")),
        };
        eprintln!("{label}: training both sides …");
        one(&req).with_context(|| format!("{name} (seed {seed})"))?;
        let text = std::fs::read_to_string(&req.report).with_context(|| format!("reading {}", req.report.display()))?;
        let mut report: Value = serde_json::from_str(&text)?;
        let drift = weight_drift(&snapshots)?;
        report["study_seed"] = (*seed).into();
        report["study_wall_seconds"] = t.elapsed().as_secs_f64().into();
        report["weight_drift"] = serde_json::to_value(&drift)?;
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        std::fs::remove_file(&req.report).ok();
        std::fs::remove_dir_all(&snapshots).ok();
        let shown: Vec<String> = metrics
            .iter()
            .filter(|m| m.quality)
            .filter_map(|m| {
                let (p, e) = (report.pointer(m.plain)?.as_f64()?, report.pointer(m.encrypted)?.as_f64()?);
                Some(format!("{} {:.2}{u} vs {:.2}{u}", m.name, p * m.scale, e * m.scale, u = m.unit))
            })
            .collect();
        let kappa_seen = report.pointer("/key_condition").and_then(Value::as_f64).unwrap_or(f64::NAN);
        eprintln!(
            "{label}: κ {kappa_seen:.2}, plaintext vs encrypted: {} ({:.0} s)",
            shown.join(", "),
            t.elapsed().as_secs_f64()
        );
        reports.push(report);
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let main_runs = &reports[..args.runs];
    let value = |r: &Value, p: &str| -> Result<f64> {
        r.pointer(p).and_then(Value::as_f64).with_context(|| format!("a run report lacks {p}"))
    };
    let mut metric_reports = Vec::new();
    for m in &metrics {
        let plain: Vec<f64> = main_runs.iter().map(|r| value(r, m.plain)).collect::<Result<_>>()?;
        let enc: Vec<f64> = main_runs.iter().map(|r| value(r, m.encrypted)).collect::<Result<_>>()?;
        let ps = Summary::of(&plain).context("no runs")?;
        let paired = PairedDifference::of(&plain, &enc);
        let ratios: Vec<f64> = plain.iter().zip(&enc).map(|(p, e)| e / p).collect();
        metric_reports.push(MetricReport {
            name: m.name.into(),
            unit: m.unit.into(),
            scale: m.scale,
            plain: ps,
            encrypted: Summary::of(&enc).context("no runs")?,
            verdict: paired.filter(|_| m.quality).map(|d| verdict(&ps, &d, m.scale, m.diff_unit, m.higher_is_better)),
            paired_difference: paired,
            ratio: if m.quality { None } else { Summary::of(&ratios) },
            plain_values: plain,
            encrypted_values: enc,
        });
    }
    let run_details = jobs
        .iter()
        .zip(&reports)
        .map(|((name, seed, _), r)| RunSummary {
            name: name.clone(),
            seed: *seed,
            key_condition: r.pointer("/key_condition").and_then(Value::as_f64),
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
                if m.unit == "%" { " pp" } else { m.unit.as_str() }
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

/// Both sides' distributions per metric (dots per run, mean and ± sd) and the weight drift per epoch,
/// as one self-contained SVG.
pub fn svg(r: &StudyReport) -> String {
    let panels: Vec<&MetricReport> = r.metrics.iter().collect();
    let has_drift = r.run_details.iter().any(|d| !d.weight_drift.is_empty());
    let (pw, ph, gap) = (260.0, 260.0, 70.0);
    let n_panels = panels.len() + usize::from(has_drift);
    let width = 40.0 + n_panels as f64 * (pw + gap);
    let height = ph + 140.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="20" y="24" font-size="15" font-weight="bold">{}: {} plaintext vs {} encrypted training runs (seeds {}–{})</text>"#,
        r.task,
        r.runs,
        r.runs,
        r.seeds.first().unwrap_or(&0),
        r.seeds.last().unwrap_or(&0)
    );
    let top = 70.0;
    for (i, m) in panels.iter().enumerate() {
        let left = 60.0 + i as f64 * (pw + gap);
        let all: Vec<f64> = m.plain_values.iter().chain(&m.encrypted_values).map(|v| v * m.scale).collect();
        let (mut lo, mut hi) =
            (all.iter().copied().fold(f64::INFINITY, f64::min), all.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        let pad = ((hi - lo) * 0.15).max(1e-6 * hi.abs().max(1.0));
        lo -= pad;
        hi += pad;
        let y = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;
        let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#555"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{} ({})</text>"#,
            left + pw / 2.0,
            top - 10.0,
            m.name,
            m.unit.trim()
        );
        for k in 0..=4 {
            let v = lo + (hi - lo) * k as f64 / 4.0;
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.3}</text>"##,
                left + pw,
                left - 5.0,
                y(v) + 4.0,
                yy = y(v)
            );
        }
        for (col, (label, color, values, summary)) in [
            ("plaintext", "#1f5fbf", &m.plain_values, &m.plain),
            ("encrypted", "#d9480f", &m.encrypted_values, &m.encrypted),
        ]
        .into_iter()
        .enumerate()
        {
            let cx = left + pw * (0.3 + 0.4 * col as f64);
            let n = values.len().max(1) as f64;
            for (j, v) in values.iter().enumerate() {
                let jitter = (j as f64 - (n - 1.0) / 2.0) * (40.0 / n);
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}" fill-opacity="0.7"/>"#,
                    cx + jitter,
                    y(v * m.scale)
                );
            }
            let (mean, sd) = (summary.mean * m.scale, summary.sd * m.scale);
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="60" height="{:.1}" fill="{color}" fill-opacity="0.12" stroke="{color}"/>"#,
                cx - 30.0,
                y(mean + sd),
                (y(mean - sd) - y(mean + sd)).max(0.5)
            );
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{ym:.1}" y2="{ym:.1}" stroke="{color}" stroke-width="3"/>"#,
                cx - 34.0,
                cx + 34.0,
                ym = y(mean)
            );
            let _ = writeln!(s, r#"<text x="{cx:.1}" y="{}" text-anchor="middle">{label}</text>"#, top + ph + 18.0);
            let _ = writeln!(
                s,
                r#"<text x="{cx:.1}" y="{}" text-anchor="middle">{mean:.3} ± {sd:.3}</text>"#,
                top + ph + 34.0
            );
        }
        if let Some(v) = &m.verdict {
            let short =
                if v.within_seed_spread { "within the seed-to-seed spread" } else { "outside the seed-to-seed spread" };
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{short}</text>"#,
                left + pw / 2.0,
                top + ph + 52.0
            );
        }
    }
    if has_drift {
        let left = 60.0 + panels.len() as f64 * (pw + gap);
        let runs: Vec<&RunSummary> = r.run_details.iter().filter(|d| !d.weight_drift.is_empty()).collect();
        let epochs = runs.iter().map(|d| d.weight_drift.len()).max().unwrap_or(1).max(2);
        let vals: Vec<f64> =
            runs.iter().flat_map(|d| d.weight_drift.iter().map(|x| x.max_abs)).filter(|v| *v > 0.0).collect();
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min).log10().floor();
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max).log10().ceil().max(lo + 1.0);
        let y = |v: f64| top + ph - (v.max(1e-30).log10() - lo) / (hi - lo) * ph;
        let x = |e: usize| left + (e - 1) as f64 / (epochs - 1) as f64 * pw;
        let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#555"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">largest weight drift per epoch</text>"#,
            left + pw / 2.0,
            top - 10.0
        );
        let mut p = lo;
        while p <= hi {
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">1e{p}</text>"##,
                left + pw,
                left - 5.0,
                y(10f64.powf(p)) + 4.0,
                yy = y(10f64.powf(p))
            );
            p += 1.0;
        }
        let _ =
            writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">epoch</text>"#, left + pw / 2.0, top + ph + 18.0);
        for (i, d) in runs.iter().enumerate() {
            let kappa = d.key_condition.unwrap_or(1.0);
            // Colour by κ: blue (1) to red (10 and above).
            let t = ((kappa - 1.0) / 9.0).clamp(0.0, 1.0);
            let color = format!("rgb({},{},{})", (40.0 + 200.0 * t) as u8, 70, (200.0 - 160.0 * t) as u8);
            let pts: Vec<String> =
                d.weight_drift.iter().map(|w| format!("{:.1},{:.1}", x(w.epoch), y(w.max_abs))).collect();
            let dash = if d.name.starts_with("kappa") { "" } else { r#" stroke-dasharray="4 3""# };
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                pts.join(" ")
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" fill="{color}">{} κ={kappa:.2}</text>"#,
                left + pw + 6.0,
                top + 14.0 + 14.0 * i as f64,
                d.name
            );
        }
    }
    s.push_str("</svg>\n");
    s
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

    fn fake_run(req: &RunRequest, plain: f64, enc: f64) -> Result<()> {
        for (side, v) in [("plain", 0.5f32), ("encrypted", 0.5f32 + 1e-4)] {
            let d = req.snapshots.join(side);
            std::fs::create_dir_all(&d)?;
            for e in 1..=3 {
                let bytes: Vec<u8> = [v, -v * e as f32].iter().flat_map(|x| x.to_le_bytes()).collect();
                std::fs::write(d.join(format!("epoch-{e:03}.f32")), bytes)?;
            }
        }
        let r = serde_json::json!({
            "plain_test_accuracy": plain, "encrypted_test_accuracy": enc,
            "plain_epoch_seconds": 1.0, "encrypted_epoch_seconds": 3.0,
            "key_condition": req.key_condition.unwrap_or(2.0),
        });
        std::fs::write(&req.report, r.to_string())?;
        Ok(())
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
        assert!(svg(&report).contains("<circle"));
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
