//! `more eval <task> --model F [--encrypted]`: plaintext accuracy on the test set and, with `--encrypted`,
//! encrypted inference on every test image with a fresh key per image.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{ArrayD, Axis};
use rayon::prelude::*;

use more_core::{KeyOptions, SecretKey};
use more_nn::Model;

use crate::data;

/// Arguments of `more eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The task: `mnist` or `angio`.
    pub task: String,
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Also run encrypted inference on every image (fresh key per image) and compare.
    #[arg(long)]
    pub encrypted: bool,
    /// Data directory (default `../shared/data`, or env `MORE_DATA`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Evaluate only the first N test images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Store the measured metrics in the model file's metadata.
    #[arg(long)]
    pub record: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// `more` (the default) or `bfv` (a `.bfv.json` model from `more bfv quantize`).
    #[arg(long, default_value = "more")]
    pub scheme: String,
}

/// Runs `more eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    if args.record && args.limit.is_some() {
        bail!("--record stores metrics of the whole evaluation set: drop --limit");
    }
    match (args.scheme.as_str(), args.task.as_str()) {
        ("more", _) => {}
        ("bfv", "mnist") => return crate::bfv::eval(&args.model, args.data.as_deref(), args.limit, args.json),
        ("bfv", task) => bail!("--scheme bfv has a model for mnist only, not {task:?}"),
        (scheme, _) => bail!("unknown scheme {scheme:?} (available: more, bfv)"),
    }
    if args.task == "angio" {
        return crate::angio::eval(&args);
    }
    if args.task != "mnist" {
        bail!("unknown task {:?} (available: mnist, angio)", args.task);
    }
    let mut model = data::model_for_task(&args.model, "mnist", &[1, 28, 28])?;
    let dir = data::data_dir(args.data.as_deref());
    let test = data::mnist(&dir, "test", args.limit)?;
    let n = test.labels.len();
    let mut plain = Vec::with_capacity(n);
    for start in (0..n).step_by(500) {
        let x = test.inputs.slice_axis(Axis(0), (start..(start + 500).min(n)).into());
        plain.push(model.forward_plain(x)?);
    }
    let views: Vec<_> = plain.iter().map(|p| p.view()).collect();
    let plain: ArrayD<f32> = ndarray::concatenate(Axis(0), &views)?;
    let plain_pred: Vec<usize> = plain.axis_iter(Axis(0)).map(data::argmax).collect();
    let plain_right = plain_pred.iter().zip(&test.labels).filter(|(p, l)| **p == **l as usize).count();
    let mut report = serde_json::json!({
        "model": model.meta().id,
        "images": n,
        "plain_accuracy": plain_right as f64 / n as f64,
    });
    if !args.json {
        println!("model {} ({}), {n} test images", model.meta().id, args.model.display());
        println!("plaintext accuracy: {:.2}% ({plain_right}/{n})", 100.0 * plain_right as f64 / n as f64);
    }
    model.meta_mut().metrics.insert("test_accuracy".into(), plain_right as f64 / n as f64);
    if args.encrypted {
        let bar = if args.quiet || args.json { ProgressBar::hidden() } else { ProgressBar::new(n as u64) };
        bar.set_style(
            ProgressStyle::with_template("encrypted [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")?
                .progress_chars("=> "),
        );
        let done = AtomicUsize::new(0);
        let results: Vec<Result<(usize, f32)>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let key = SecretKey::generate(KeyOptions::default())?;
                let x = test.inputs.slice_axis(Axis(0), (i..i + 1).into());
                let enc = key.encrypt_tensor(&x)?;
                let out = key.decrypt_tensor(&model.forward_encrypted(&enc)?);
                let diff =
                    out.iter().zip(plain.index_axis(Axis(0), i).iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                if done.fetch_add(1, Ordering::Relaxed) % 100 == 0 {
                    bar.set_position(done.load(Ordering::Relaxed) as u64);
                }
                Ok((data::argmax(out.index_axis(Axis(0), 0)), diff))
            })
            .collect();
        bar.finish_and_clear();
        let results = results.into_iter().collect::<Result<Vec<_>>>()?;
        let enc_right = results.iter().zip(&test.labels).filter(|((p, _), l)| *p == **l as usize).count();
        let agree = results.iter().zip(&plain_pred).filter(|((p, _), q)| p == *q).count();
        let max_diff = results.iter().map(|r| r.1).fold(0.0, f32::max);
        report["encrypted_accuracy"] = serde_json::json!(enc_right as f64 / n as f64);
        report["argmax_agreement"] = serde_json::json!(agree);
        report["max_logit_diff"] = serde_json::json!(max_diff);
        if !args.json {
            println!(
                "encrypted accuracy: {:.2}% ({enc_right}/{n}), fresh key per image",
                100.0 * enc_right as f64 / n as f64
            );
            println!("argmax agreement:   {agree}/{n}");
            println!("max |logit diff|:   {max_diff:.3e}");
        }
        let m = &mut model.meta_mut().metrics;
        m.insert("encrypted_test_accuracy".into(), enc_right as f64 / n as f64);
        m.insert("argmax_agreement".into(), agree as f64);
        m.insert("max_logit_diff".into(), f64::from(max_diff));
    }
    finish(&args, &model, &report)
}

/// The end of every `more eval`: the JSON report (with `--json`), and with `--record` the model file saved
/// again with the metrics just measured ([`run`] has refused `--record` with `--limit` before any work).
pub fn finish(args: &EvalArgs, model: &Model, report: &serde_json::Value) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    if args.record {
        model.save(&args.model)?;
    }
    Ok(())
}
