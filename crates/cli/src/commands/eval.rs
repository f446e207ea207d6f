//! `more eval <task> --model F [--encrypted]`: plaintext accuracy on the task's evaluation split and, with
//! `--encrypted`, encrypted inference on every row with a fresh key per row.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{ArrayD, Axis};
use rayon::prelude::*;

use more_core::{KeyOptions, SecretKey};
use more_nn::{EncryptedForm, Model};

use crate::args::{DataArgs, Given, JsonArgs, QuietArgs, Scheme};
use crate::data;
use crate::metrics::{argmax, confusion, hits, scores};
use crate::tasks::{self, Classifier, TaskRef};

/// Arguments of `more eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The task (a classification task).
    #[arg(value_enum)]
    pub task: TaskRef,
    /// The model file (required with `--scheme more`; with `--scheme bfv` the task's bundled `.bfv.json`
    /// model by default).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Also run encrypted inference on every image (fresh key per image) and compare.
    #[arg(long)]
    pub encrypted: bool,
    /// Run encrypted inference on the four ciphertext planes instead of the default coefficient form
    /// (two planes; its conversion uses the 2x2 structure).
    #[arg(long, requires = "encrypted")]
    pub four_planes: bool,
    #[command(flatten)]
    pub data: DataArgs,
    /// Evaluate only the first N test images.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub json: JsonArgs,
    /// Store the measured metrics in the model file's metadata.
    #[arg(long)]
    pub record: bool,
    #[command(flatten)]
    pub quiet: QuietArgs,
    /// `more` (the default) or `bfv` (a `.bfv.json` model: MNIST and angio from `more bfv quantize`, WBC
    /// from `more bfv quantize-wbc`).
    #[arg(long, value_enum, default_value_t = Scheme::More)]
    pub scheme: Scheme,
}

/// Runs `more eval`; the options `given` that the scheme does not read are refused.
pub fn run(args: EvalArgs, given: &Given) -> Result<()> {
    if args.scheme == Scheme::Bfv {
        for (id, why) in [
            ("record", "a .bfv.json model gets its metrics when `more bfv quantize` writes it"),
            ("four_planes", "BFV ciphertexts have no planes"),
        ] {
            if given.has(id) {
                bail!("{} applies to --scheme more, not bfv ({why})", crate::args::flag(id));
            }
        }
    }
    if args.record && args.limit.is_some() {
        bail!("--record stores metrics of the whole evaluation set: drop --limit");
    }
    match (args.scheme, args.task.name()) {
        (Scheme::More, _) => {}
        (Scheme::Bfv, super::bfv::REGRESSION_TASK) => {
            if given.has("data") {
                bail!("--data does not apply to wbc: its held-out patients are simulated (use --limit for fewer)");
            }
            return super::bfv_wbc::eval(args.model.as_deref(), args.limit, args.json.json);
        }
        (Scheme::Bfv, _) => {
            let data = args.data.dir();
            return super::bfv::eval(args.task, args.model.as_deref(), Some(&data), args.limit, args.json.json);
        }
    }
    let Some(model_path) = args.model.clone() else {
        bail!("--model is required with --scheme more (the model file to evaluate)")
    };
    let c = tasks::classifier(args.task, "eval")?;
    let json = args.json.json;
    let mut model = data::model_for_task(&model_path, args.task.name(), &c.input)?;
    let mut set = (c.load)(&args.data.dir(), c.eval_split, args.limit)?;
    set.inputs = data::inputs_for(&model, &set.inputs)?;
    let (n, labels, split) = (set.labels.len(), &set.labels, c.eval_split);
    let plain = forward_plain(&model, &set.inputs, c.batch)?;
    let pred: Vec<usize> = plain.axis_iter(Axis(0)).map(argmax).collect();
    let (acc, balanced) = scores(&pred, labels, c.labels.len());
    let mut report = serde_json::json!({ "model": model.meta().id, "images": n, "plain_accuracy": acc });
    if !json {
        println!("model {} ({}), {n} {split} {}s", model.meta().id, model_path.display(), c.row);
    }
    let metrics = &mut model.meta_mut().metrics;
    metrics.insert(format!("{split}_accuracy"), acc);
    if c.per_class {
        metrics.insert(format!("{split}_balanced_accuracy"), balanced);
        let counts = confusion(&pred, labels, c.labels.len());
        report["plain_balanced_accuracy"] = serde_json::json!(balanced);
        report["plain_confusion"] = serde_json::json!({
            "rows": "true label", "columns": "predicted", "labels": c.labels, "counts": counts,
        });
        if !json {
            println!("plaintext accuracy: {:.2}%, balanced accuracy {:.2}%", 100.0 * acc, 100.0 * balanced);
            print_confusion(&c, &counts);
        }
    } else if !json {
        println!("plaintext accuracy: {:.2}% ({}/{n})", 100.0 * acc, hits(&pred, labels));
    }
    if args.encrypted {
        let bar = if args.quiet.quiet || json { ProgressBar::hidden() } else { ProgressBar::new(n as u64) };
        bar.set_style(
            ProgressStyle::with_template("encrypted [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")?
                .progress_chars("=> "),
        );
        let form = if args.four_planes { EncryptedForm::FourPlanes } else { EncryptedForm::Coefficients };
        let done = AtomicUsize::new(0);
        let t = Instant::now();
        let results: Vec<Result<(usize, f32)>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let key = SecretKey::generate(KeyOptions::default())?;
                let x = set.inputs.slice_axis(Axis(0), (i..i + 1).into());
                let out = key.decrypt_tensor(&model.forward_encrypted_in(&key.encrypt_tensor(&x)?, form)?);
                let diff =
                    out.iter().zip(plain.index_axis(Axis(0), i).iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                if done.fetch_add(1, Ordering::Relaxed) % 100 == 0 {
                    bar.set_position(done.load(Ordering::Relaxed) as u64);
                }
                Ok((argmax(out.index_axis(Axis(0), 0)), diff))
            })
            .collect();
        let secs = t.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let results = results.into_iter().collect::<Result<Vec<_>>>()?;
        let enc_pred: Vec<usize> = results.iter().map(|r| r.0).collect();
        let (enc_acc, enc_balanced) = scores(&enc_pred, labels, c.labels.len());
        let agree = enc_pred.iter().zip(&pred).filter(|(a, b)| a == b).count();
        let max_diff = results.iter().map(|r| r.1).fold(0.0, f32::max);
        report["encrypted_accuracy"] = serde_json::json!(enc_acc);
        if c.per_class {
            report["encrypted_balanced_accuracy"] = serde_json::json!(enc_balanced);
        }
        report["argmax_agreement"] = serde_json::json!(agree);
        report["encrypted_form"] = serde_json::json!(form.name());
        report["max_logit_diff"] = serde_json::json!(max_diff);
        report["encrypted_wall_seconds"] = serde_json::json!(secs);
        if !json {
            if c.per_class {
                println!(
                    "encrypted accuracy: {:.2}%, balanced accuracy {:.2}% (fresh key per {})",
                    100.0 * enc_acc,
                    100.0 * enc_balanced,
                    c.row
                );
            } else {
                println!(
                    "encrypted accuracy: {:.2}% ({}/{n}), fresh key per {}",
                    100.0 * enc_acc,
                    hits(&enc_pred, labels),
                    c.row
                );
            }
            println!("encrypted form:     {}", form.name());
            println!("argmax agreement:   {agree}/{n}");
            println!("max |logit diff|:   {max_diff:.3e}");
        }
        let m = &mut model.meta_mut().metrics;
        m.insert(format!("encrypted_{split}_accuracy"), enc_acc);
        m.insert("argmax_agreement".into(), agree as f64);
        m.insert("max_logit_diff".into(), f64::from(max_diff));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if args.record {
        model.save(&model_path)?;
    }
    Ok(())
}

/// Plaintext outputs of `model` on `inputs`, `batch` rows at a time.
fn forward_plain(model: &Model, inputs: &ArrayD<f32>, batch: usize) -> Result<ArrayD<f32>> {
    let outs = inputs
        .axis_chunks_iter(Axis(0), batch.max(1))
        .map(|x| model.forward_plain(x))
        .collect::<Result<Vec<_>, _>>()?;
    let views: Vec<_> = outs.iter().map(|o| o.view()).collect();
    Ok(ndarray::concatenate(Axis(0), &views)?)
}

/// The confusion matrix with each class's recall.
fn print_confusion(c: &Classifier, counts: &[Vec<usize>]) {
    println!("confusion (rows true, columns predicted):");
    println!("         {}", c.labels.iter().map(|l| format!("{l:>5}")).collect::<Vec<_>>().join(" "));
    for (class, (label, row)) in c.labels.iter().zip(counts).enumerate() {
        let recall = 100.0 * row[class] as f64 / row.iter().sum::<usize>().max(1) as f64;
        let cells: String = row.iter().map(|v| format!(" {v:>5}")).collect();
        println!("  {label:<5}{cells}   recall {recall:.2}%");
    }
}
