//! `more bench <task> [--json]`: plaintext vs encrypted inference time per image at batch 1 and 64 — the
//! encrypted figures for the default coefficient form (two planes) and, under `*_four_planes`, for the four
//! ciphertext planes — and the cost of encryption, decryption and the ciphertext size, measured in one run,
//! one thread.

use std::path::PathBuf;
use std::time::Instant;

use cpu_time::ThreadTime;

use anyhow::Result;
use clap::Args;
use ndarray::{ArrayD, Axis};

use more_core::{EncryptedTensor, KeyOptions, SecretKey};
use more_nn::EncryptedForm;

use crate::args::{DataArgs, Given, JsonArgs, Scheme};
use crate::data;
use crate::tasks::{self, TaskRef};
use clap::ValueEnum as _;

/// Arguments of `more bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: a classification task's MORE inference, or `bfv` (MNIST under BFV, end to end; the
    /// angiogram views with `--task angio`, the WBC surrogate with `--task wbc`).
    #[arg(value_enum)]
    pub task: BenchTarget,
    /// The model file (default: the task's bundled model, `models/mnist-cnn-relu.morenn`,
    /// `models/angio-cnn.morenn` for `angio`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Minimum seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    #[command(flatten)]
    pub json: JsonArgs,
    /// `bfv` only: the number of test images (default 200; angio: the first N val frames, default all 200).
    #[arg(long)]
    pub limit: Option<usize>,
    /// `bfv` only: classify this many test images at once and report the amortized cost per image (the
    /// slot-per-image packing from 170 images on, up to 8,192 images per set of ciphertexts).
    #[arg(long)]
    pub batch: Option<usize>,
    /// `bfv --batch` only: `slots` (one image per SIMD slot), `image` (the single-image packing, images in
    /// parallel) or `auto` (slots from 170 images on).
    #[arg(long, value_enum, default_value_t = super::bfv_batch::Packing::Auto)]
    pub packing: super::bfv_batch::Packing,
    /// `bfv --batch` only: store the figures in the model file's metrics (`batch_*`), which the server lists
    /// and the walkthrough's step 10 shows.
    #[arg(long)]
    pub record: bool,
    /// `bfv --batch` only: send the batches to this more-server (e.g. http://127.0.0.1:8080) instead of
    /// evaluating them in process; reports the server's compute time, peak resident set and memory bound.
    #[arg(long)]
    pub server: Option<String>,
    /// `more` (the default) or `bfv` (`more bench mnist --scheme bfv` is `more bench bfv`, `more bench wbc
    /// --scheme bfv` is `more bench bfv --task wbc`).
    #[arg(long, value_enum, default_value_t = Scheme::More)]
    pub scheme: Scheme,
    /// `bfv` only: the task measured under BFV, `mnist` (the default), `angio` (the views, one val frame at
    /// a time, end to end) or `wbc` (the whole-body circulation surrogate, one held-out patient at a time).
    #[arg(long = "task", id = "bfv_task", value_enum, value_name = "TASK")]
    pub bfv_task: Option<TaskRef>,
}

/// What `more bench` measures: a registered task, or `bfv`, short for MNIST under `--scheme bfv`.
#[derive(Debug, Clone, Copy)]
pub enum BenchTarget {
    /// A task's plaintext vs MORE-encrypted inference.
    Task(TaskRef),
    /// MNIST under BFV (`more-bfv`), one image at a time end to end.
    Bfv,
}

impl clap::ValueEnum for BenchTarget {
    fn value_variants<'a>() -> &'a [Self] {
        static TARGETS: std::sync::LazyLock<Vec<BenchTarget>> = std::sync::LazyLock::new(|| {
            tasks::ALL.iter().map(|t| BenchTarget::Task(*t)).chain([BenchTarget::Bfv]).collect()
        });
        &TARGETS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            BenchTarget::Task(t) => t.to_possible_value(),
            BenchTarget::Bfv => Some(
                clap::builder::PossibleValue::new("bfv")
                    .help("MNIST under BFV (lattice-based, 128-bit): accuracy, time and bytes per image"),
            ),
        }
    }
}

/// Microseconds per call of `f`: `(thread CPU time, wall time)`, each the mean over at least `seconds`
/// of calls (after one warm-up call). CPU time of the calling thread is what the figures use: on a shared
/// machine it does not count the time other processes hold the core.
fn time_us(seconds: f64, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    f()?;
    let wall = Instant::now();
    let cpu = ThreadTime::now();
    let mut calls = 0u64;
    while calls < 3 || wall.elapsed().as_secs_f64() < seconds {
        f()?;
        calls += 1;
    }
    let per = |s: f64| s * 1e6 / calls as f64;
    Ok((per(cpu.elapsed().as_secs_f64()), per(wall.elapsed().as_secs_f64())))
}

/// Runs `more bench`; `--limit` (BFV only) and `--seconds` (MORE only) are refused where they do not
/// apply, if `given`.
pub fn run(args: BenchArgs, given: &Given) -> Result<()> {
    let (task, scheme) = match args.task {
        BenchTarget::Task(t) if given.has("bfv_task") => anyhow::bail!(
            "--task applies to bfv (more bench bfv --task {}), not {}",
            args.bfv_task.map_or("wbc", |b| b.name()),
            t.name()
        ),
        BenchTarget::Task(t) => (t, args.scheme),
        BenchTarget::Bfv if given.has("scheme") && args.scheme == Scheme::More => {
            anyhow::bail!("bfv is benchmarked under --scheme bfv, not more (drop --scheme)")
        }
        BenchTarget::Bfv => match args.bfv_task {
            Some(t) => (t, Scheme::Bfv),
            None => (TaskRef::from_str(super::bfv::TASK, false).map_err(anyhow::Error::msg)?, Scheme::Bfv),
        },
    };
    if scheme == Scheme::Bfv && task.name() == super::bfv::REGRESSION_TASK {
        for (id, why) in [
            ("seconds", "use --limit to time fewer patients"),
            ("batch", "wbc is always packed one patient per slot; more eval wbc --scheme bfv runs many at once"),
            ("packing", "wbc has one packing, one patient per slot"),
            ("record", "more bfv quantize-wbc records the model's metrics"),
            ("data", "wbc simulates its held-out patients"),
            ("server", "wbc is benchmarked in process"),
        ] {
            if given.has(id) {
                anyhow::bail!("{} does not apply to bfv --task wbc ({why})", crate::args::flag(id));
            }
        }
        return super::bfv_wbc::bench(args.model.as_deref(), args.limit, args.json.json);
    }
    match scheme {
        Scheme::More if given.has("limit") => anyhow::bail!(
            "--limit applies to bfv, not {} (use --seconds to change how long each measurement runs)",
            task.name()
        ),
        Scheme::Bfv if given.has("seconds") => anyhow::bail!(
            "--seconds applies to {}, not bfv (use --limit to time fewer test images)",
            tasks::and_list(tasks::ALL.iter().filter(|t| t.classifier().is_some()).map(|t| t.name()))
        ),
        Scheme::Bfv if given.has("limit") && given.has("batch") => {
            anyhow::bail!("--limit and --batch both say how many images: give one (--batch N classifies N at once)")
        }
        Scheme::Bfv if args.batch.is_some() => {
            super::bfv::classifier(task)?;
            if task.name() != super::bfv::TASK {
                anyhow::bail!(
                    "--batch applies to bfv on mnist (its 10,000 test images), not {} (more eval {} --scheme bfv \
                     classifies every {} frame)",
                    task.name(),
                    task.name(),
                    task.bfv().map_or("", |c| c.eval_split)
                );
            }
            return super::bfv_batch::bench(super::bfv_batch::BatchBench {
                model: args.model.as_deref(),
                data: Some(&args.data.dir()),
                images: args.batch.unwrap_or_default(),
                packing: args.packing,
                json: args.json.json,
                record: args.record,
                server: args.server.as_deref(),
            });
        }
        Scheme::More if given.has("batch") || given.has("packing") || given.has("record") || given.has("server") => {
            anyhow::bail!("--batch, --packing, --record and --server apply to bfv, not {}", task.name())
        }
        Scheme::Bfv if given.has("packing") || given.has("record") || given.has("server") => {
            anyhow::bail!("--packing, --record and --server apply with --batch N")
        }
        Scheme::Bfv => {
            let data = args.data.dir();
            return super::bfv::bench(task, args.model.as_deref(), Some(&data), args.limit, args.json.json);
        }
        Scheme::More => {}
    }
    let classifier = tasks::classifier(task, "bench")?;
    let path = args.model.clone().unwrap_or_else(|| crate::paths::bundled(classifier.default_model));
    let model = data::model_for_task(&path, task.name(), &classifier.input)?;
    let inputs = (classifier.load)(&args.data.dir(), classifier.eval_split, classifier.bench_rows)?.inputs;
    let inputs = data::inputs_for(&model, &inputs)?;
    let rows = inputs.shape()[0];
    let key = SecretKey::from_seed(7, KeyOptions::default())?;
    let batches = |b: usize| -> Vec<ArrayD<f32>> {
        (0..rows / b).map(|i| inputs.slice_axis(Axis(0), (i * b..(i + 1) * b).into()).to_owned()).collect()
    };
    let mut figures = serde_json::Map::new();
    let mut table = Vec::new();
    for b in [1usize, 64] {
        let xs = batches(b);
        let encs: Vec<EncryptedTensor<f32>> =
            xs.iter().map(|x| key.encrypt_tensor(&x.view())).collect::<Result<_, _>>()?;
        let mut i = 0;
        let (plain, plain_wall) = time_us(args.seconds, || {
            model.forward_plain(xs[i % xs.len()].view())?;
            i += 1;
            Ok(())
        })?;
        let encrypted = |form: EncryptedForm| {
            let mut j = 0;
            time_us(args.seconds, || {
                model.forward_encrypted_in(&encs[j % encs.len()], form)?;
                j += 1;
                Ok(())
            })
        };
        let (enc, enc_wall) = encrypted(EncryptedForm::Coefficients)?;
        let (four, four_wall) = encrypted(EncryptedForm::FourPlanes)?;
        let per = |t: f64| t / b as f64;
        let (plain, enc, four, plain_wall, enc_wall, four_wall) =
            (per(plain), per(enc), per(four), per(plain_wall), per(enc_wall), per(four_wall));
        figures.insert(format!("plain_wall_us_per_image_batch{b}"), serde_json::json!(plain_wall));
        figures.insert(format!("encrypted_wall_us_per_image_batch{b}"), serde_json::json!(enc_wall));
        figures.insert(format!("plain_us_per_image_batch{b}"), serde_json::json!(plain));
        figures.insert(format!("encrypted_us_per_image_batch{b}"), serde_json::json!(enc));
        figures.insert(format!("overhead_batch{b}"), serde_json::json!(enc / plain));
        figures.insert(format!("encrypted_wall_us_per_image_batch{b}_four_planes"), serde_json::json!(four_wall));
        figures.insert(format!("encrypted_us_per_image_batch{b}_four_planes"), serde_json::json!(four));
        figures.insert(format!("overhead_batch{b}_four_planes"), serde_json::json!(four / plain));
        table.push((b, plain, enc, four));
    }
    let one = inputs.slice_axis(Axis(0), (0..1).into()).to_owned();
    let (encrypt_us, _) = time_us(args.seconds / 4.0, || {
        key.encrypt_tensor(&one.view())?;
        Ok(())
    })?;
    let enc_one = key.encrypt_tensor(&one.view())?;
    let out = model.forward_encrypted(&enc_one)?;
    let (decrypt_us, _) = time_us(args.seconds / 4.0, || {
        std::hint::black_box(key.decrypt_tensor(&out));
        Ok(())
    })?;
    let ciphertext_bytes = more_core::encode(&enc_one).len();
    let result_bytes = more_core::encode(&out).len();
    let mut json = serde_json::Map::new();
    json.insert("model".into(), serde_json::json!(model.meta().id));
    json.insert("multiply_adds_per_image".into(), serde_json::json!(model.multiply_adds()));
    json.insert(
        "plain_us_per_image".into(),
        serde_json::json!({"batch1": figures["plain_us_per_image_batch1"], "batch64": figures["plain_us_per_image_batch64"]}),
    );
    json.insert(
        "encrypted_us_per_image".into(),
        serde_json::json!({"batch1": figures["encrypted_us_per_image_batch1"], "batch64": figures["encrypted_us_per_image_batch64"]}),
    );
    json.insert(
        "encrypted_us_per_image_four_planes".into(),
        serde_json::json!({"batch1": figures["encrypted_us_per_image_batch1_four_planes"], "batch64": figures["encrypted_us_per_image_batch64_four_planes"]}),
    );
    json.insert("encrypted_form".into(), serde_json::json!(EncryptedForm::default().name()));
    json.insert(
        "encrypted_form_note".into(),
        serde_json::json!(
            "encrypted_* and overhead_* run the default coefficient form (two planes; the conversion uses the 2x2 structure); *_four_planes run the four ciphertext planes"
        ),
    );
    json.extend(figures);
    json.insert("encrypt_us".into(), serde_json::json!(encrypt_us));
    json.insert("decrypt_us".into(), serde_json::json!(decrypt_us));
    json.insert("ciphertext_bytes".into(), serde_json::json!(ciphertext_bytes));
    json.insert("result_bytes".into(), serde_json::json!(result_bytes));
    json.insert("threads".into(), serde_json::json!(1));
    json.insert("timing".into(), serde_json::json!("thread CPU time (wall-clock figures under *_wall_*)"));
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::Value::Object(json))?);
    } else {
        println!(
            "model {} ({} multiply-adds per image), one thread, thread CPU time",
            model.meta().id,
            model.multiply_adds()
        );
        println!(
            "| batch | plaintext µs/image | encrypted, coefficient form µs/image | overhead | encrypted, four planes µs/image | overhead |"
        );
        println!("|---|---|---|---|---|---|");
        for (b, p, e, f) in table {
            println!("| {b} | {p:.1} | {e:.1} | {:.2}x | {f:.1} | {:.2}x |", e / p, f / p);
        }
        println!(
            "encrypt {encrypt_us:.1} µs, decrypt {decrypt_us:.2} µs per image; ciphertext {ciphertext_bytes} bytes, result {result_bytes} bytes"
        );
    }
    Ok(())
}
