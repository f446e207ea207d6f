//! `more reproduce mnist` — the papers' table: the same network, seed and hyper-parameters trained on
//! plaintext and on encrypted data in one run (final test accuracy, training time per epoch, inference
//! time, ratios); and `more train mnist --encrypted`. The encrypted side is `more-enctrain`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::ArrayD;
use serde::Serialize;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::owner::KeyOwner;
use more_enctrain::task::{
    Task, TimedRun, lane_maxima, mean_epoch_seconds, predict_encrypted, predict_plain, train_plain, train_task,
};
use more_enctrain::train::{EncryptionSetup, PlainData, TargetNoise};
use more_nn::ModelMeta;
use more_nn::train::{Loss, OptimizerConfig, TrainConfig, correct, split_rows, take_rows};

use crate::data;
use crate::train::{Arch, TrainArgs, mnist_meta, mnist_specs};

/// Arguments of `more reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The task: `mnist`, `angio` or `wbc`.
    pub task: String,
    /// Architecture (both runs use it).
    #[arg(long, value_enum, default_value = "relu")]
    pub arch: Arch,
    /// Epochs (both runs; early stopping may end either sooner).
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Seed for initialisation, shuffling, augmentation and the validation split (both runs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Optimizer (both runs): `sgd` (momentum 0.9; ring-only on ciphertexts) or `adam` (its square root
    /// and reciprocal use the 2x2 structure).
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// Learning rate (default: 0.05 for SGD, the `more train` default for Adam).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Multiply the learning rate by this after every epoch.
    #[arg(long, default_value_t = 0.85)]
    pub lr_decay: f32,
    /// Random shifts of up to ± this many pixels (0 = none).
    #[arg(long, default_value_t = 2)]
    pub augment: usize,
    /// Early stopping: epochs without validation improvement.
    #[arg(long, default_value_t = 4)]
    pub patience: usize,
    /// Images held out of training for validation.
    #[arg(long, default_value_t = 5000)]
    pub validation: usize,
    /// Train on only the first N training images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Evaluate on only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Data directory (default `../shared/data`, or env `MORE_DATA`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The random lane of encrypted inputs is uniform in `[0, input_noise)`.
    #[arg(long, default_value_t = 0.25)]
    pub input_noise: f64,
    /// The random lane of encrypted one-hot labels: `(1 + spread·u)/Σ`, `u` uniform in `[−1, 1)`.
    #[arg(long, default_value_t = 0.5)]
    pub label_spread: f64,
    /// Also write the three models (plaintext, decrypted, still encrypted) into this directory.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON object to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also draw both runs' training curves (training loss, validation accuracy per epoch) as an SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The training settings both runs share (the same as `more train mnist`).
#[allow(clippy::too_many_arguments)]
pub fn mnist_config(
    arch: Arch,
    epochs: usize,
    batch_size: usize,
    seed: u64,
    lr: Option<f32>,
    lr_decay: f32,
    patience: usize,
    augment: usize,
    progress: bool,
) -> TrainConfig {
    let lr = lr.unwrap_or(match arch {
        Arch::Relu => 2e-3,
        Arch::Square | Arch::Bfv => 1e-3,
    });
    TrainConfig {
        epochs,
        batch_size,
        seed,
        loss: Loss::CrossEntropy,
        optimizer: OptimizerConfig::adam(lr),
        lr_decay,
        patience: Some(patience),
        augment_shift: augment,
        classification: true,
        progress,
        eval_batch: 500,
        checkpoint: None,
    }
}

/// The MNIST splits of a run: training and validation (seeded split) and test, as plaintext data.
struct Splits {
    train: PlainData,
    val: PlainData,
    test: PlainData,
}

fn load(
    dir: Option<&std::path::Path>,
    limit: Option<usize>,
    test_limit: Option<usize>,
    validation: usize,
    seed: u64,
) -> Result<Splits> {
    let dir = data::data_dir(dir);
    let all = data::mnist(&dir, "train", limit)?;
    let test = data::mnist(&dir, "test", test_limit)?;
    let n = all.labels.len();
    let val_fraction = validation.min(n / 2) as f64 / n as f64;
    let (tr, va) = split_rows(n, val_fraction, seed);
    let part =
        |rows: &[usize]| PlainData { inputs: take_rows(&all.inputs, rows), targets: take_rows(&all.targets, rows) };
    Ok(Splits { train: part(&tr), val: part(&va), test: PlainData { inputs: test.inputs, targets: test.targets } })
}

/// The reproduction's figures (also the `--json` object).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Task.
    pub task: String,
    /// Architecture (layer list).
    pub architecture: String,
    /// Training images / validation images / test images.
    pub train_images: usize,
    /// Validation images.
    pub val_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Seed.
    pub seed: u64,
    /// Optimizer settings.
    pub optimizer: String,
    /// Condition number of the (fresh) key.
    pub key_condition: f64,
    /// Plaintext model's test accuracy.
    pub plain_test_accuracy: f64,
    /// Decrypted model's test accuracy (plaintext inference with the decrypted weights).
    pub encrypted_test_accuracy: f64,
    /// `encrypted − plain`, percentage points.
    pub accuracy_gap_pp: f64,
    /// Test accuracy of the still-encrypted model on the encrypted test set (decrypted outputs).
    pub encrypted_model_encrypted_test_accuracy: f64,
    /// Images on which the encrypted model's decrypted argmax equals the decrypted model's.
    pub encrypted_model_agreement: f64,
    /// Largest |logit difference| between encrypted inference and the decrypted model.
    pub encrypted_model_max_logit_diff: f64,
    /// Epochs run (plaintext, encrypted) and the best epochs.
    pub plain_epochs: usize,
    /// Epochs run by the encrypted training.
    pub encrypted_epochs: usize,
    /// Best (selected) epoch of the plaintext run.
    pub plain_best_epoch: usize,
    /// Best (selected) epoch of the encrypted run.
    pub encrypted_best_epoch: usize,
    /// Mean training time per epoch (training batches), seconds.
    pub plain_epoch_seconds: f64,
    /// Mean encrypted training time per epoch, seconds.
    pub encrypted_epoch_seconds: f64,
    /// `encrypted_epoch_seconds / plain_epoch_seconds`.
    pub training_overhead: f64,
    /// Process CPU time per epoch of the plaintext run (all threads; training and validation), seconds —
    /// less sensitive than wall time to other load on the machine.
    pub plain_cpu_seconds_per_epoch: f64,
    /// The same for the encrypted run (minus the wall time of encrypting the data once).
    pub encrypted_cpu_seconds_per_epoch: f64,
    /// `encrypted_cpu_seconds_per_epoch / plain_cpu_seconds_per_epoch`.
    pub training_cpu_overhead: f64,
    /// Key owner's time to encrypt the training and validation data (and the trainer's conversion), s.
    pub encrypt_data_seconds: f64,
    /// Largest |weight| of the decrypted (message-lane) model.
    pub max_abs_weight: f64,
    /// Largest |weight| of the shadow model on the noise lane.
    pub shadow_max_abs_weight: f64,
    /// Noise range of the inputs' random lane: `[0, input_noise)`.
    pub input_noise: f64,
    /// Spread of the labels' random lane around the uniform distribution.
    pub label_spread: f64,
    /// Plaintext inference, µs per test image (batches of 500, `Net::predict` — the engine the encrypted
    /// model runs on; `more bench mnist` measures the separate inference engine).
    pub plain_inference_us_per_image: f64,
    /// Encrypted inference with the still-encrypted model, µs per image (forward only, batches of 500).
    pub encrypted_inference_us_per_image: f64,
    /// Their ratio.
    pub inference_overhead: f64,
    /// Validation accuracy per epoch, plaintext run.
    pub plain_val_accuracy: Vec<f64>,
    /// Validation accuracy per epoch, encrypted run (revealed to the key owner).
    pub encrypted_val_accuracy: Vec<f64>,
}

fn accuracy(out: &ArrayD<f32>, targets: &ArrayD<f32>) -> f64 {
    correct(out, targets) as f64 / out.shape()[0] as f64
}

/// Runs `more reproduce`.
pub fn run(args: ReproduceArgs) -> Result<()> {
    if args.task == "wbc" {
        // The WBC surrogate's table: crates/cli/src/wbc.rs (`more wbc reproduce --help` for its options).
        return crate::wbc::reproduce_from(&args);
    }
    if args.task == "angio" {
        return crate::angio::reproduce(&args);
    }
    if args.task != "mnist" {
        bail!("unknown task {:?} (available: mnist, angio, wbc)", args.task);
    }
    let progress = !args.quiet && !args.json;
    let mut cfg = mnist_config(
        args.arch,
        args.epochs,
        args.batch_size,
        args.seed,
        args.lr,
        args.lr_decay,
        args.patience,
        args.augment,
        progress,
    );
    match args.optimizer.as_str() {
        "adam" => {}
        "sgd" => cfg.optimizer = OptimizerConfig::Sgd { lr: args.lr.unwrap_or(0.05), momentum: 0.9 },
        other => bail!("unknown optimizer {other:?} (sgd or adam)"),
    }
    let splits = load(args.data.as_deref(), args.limit, args.test_limit, args.validation, args.seed)?;
    let specs = mnist_specs(args.arch);
    let shape = [1usize, 28, 28];
    let id = format!("mnist-cnn-{}", if args.arch == Arch::Relu { "relu" } else { "square" });
    let say = |s: String| {
        if !args.quiet {
            eprintln!("{s}");
        }
    };

    // Plaintext.
    say(format!(
        "plaintext training: {} images, {} validation, seed {}",
        splits.train.inputs.shape()[0],
        splits.val.inputs.shape()[0],
        args.seed
    ));
    let task = Task {
        input_shape: shape.to_vec(),
        specs: specs.clone(),
        train: splits.train.clone(),
        val: Some(splits.val.clone()),
        init_seed: args.seed,
        cfg: cfg.clone(),
        setup: EncryptionSetup {
            input_noise: (0.0, args.input_noise),
            targets: TargetNoise::Distribution { spread: args.label_spread },
            ..EncryptionSetup::default()
        },
    };
    let plain = train_plain(&task, mnist_meta(&format!("{id}-plain"), args.arch))?;
    let (plain_out, plain_secs) = predict_plain(&plain.model, &splits.test.inputs, 500)?;
    let plain_acc = accuracy(&plain_out, &splits.test.targets);
    say(format!("plaintext: test accuracy {:.2}%", 100.0 * plain_acc));

    // Encrypted: a fresh key from the OS CSPRNG.
    let key = SecretKey::generate(KeyOptions::default())?;
    say(format!("encrypted training under a fresh key (κ = {:.2})", key.condition_number()));
    let enc = train_task(&task, &key, mnist_meta(&format!("{id}-encrypted"), args.arch))?;
    let run = &enc.run;
    let (dec_out, _) = predict_plain(&run.model, &splits.test.inputs, 500)?;
    let enc_acc = accuracy(&dec_out, &splits.test.targets);
    say(format!("encrypted: decrypted model's test accuracy {:.2}%", 100.0 * enc_acc));
    let mut owner = KeyOwner::new(key.clone());
    // How bounded the shadow model on the noise lane stayed.
    let (weight_max, shadow_max) = lane_maxima(&owner, &run.encrypted);
    let (encinf_out, enc_secs) = predict_encrypted(&mut owner, &run.encrypted, &splits.test.inputs, 500)?;
    let enc_model_acc = accuracy(&encinf_out, &splits.test.targets);
    let agree = correct(&encinf_out, &dec_out) as f64 / dec_out.shape()[0] as f64;
    let max_diff = encinf_out.iter().zip(&dec_out).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
    let plain_hist = &plain.history;
    let plain_model = &plain.model;
    let plain_cpu = plain.cpu_seconds_per_epoch;

    let n_test = splits.test.inputs.shape()[0] as f64;
    let plain_epoch = mean_epoch_seconds(plain_hist);
    let enc_epoch = mean_epoch_seconds(&run.history);
    let enc_cpu = enc.cpu_seconds_per_epoch;
    let report = Report {
        task: "mnist".into(),
        architecture: plain_model.meta().architecture.clone(),
        train_images: splits.train.inputs.shape()[0],
        val_images: splits.val.inputs.shape()[0],
        test_images: n_test as usize,
        seed: args.seed,
        optimizer: format!(
            "{:?}, lr decay {} per epoch, batch {}, shifts ±{} px",
            cfg.optimizer, cfg.lr_decay, cfg.batch_size, cfg.augment_shift
        ),
        key_condition: key.condition_number(),
        plain_test_accuracy: plain_acc,
        encrypted_test_accuracy: enc_acc,
        accuracy_gap_pp: 100.0 * (enc_acc - plain_acc),
        encrypted_model_encrypted_test_accuracy: enc_model_acc,
        encrypted_model_agreement: agree,
        encrypted_model_max_logit_diff: max_diff,
        plain_epochs: plain_hist.epochs.len(),
        encrypted_epochs: run.history.epochs.len(),
        plain_best_epoch: plain_hist.best_epoch,
        encrypted_best_epoch: run.history.best_epoch,
        plain_epoch_seconds: plain_epoch,
        encrypted_epoch_seconds: enc_epoch,
        training_overhead: enc_epoch / plain_epoch,
        plain_cpu_seconds_per_epoch: plain_cpu,
        encrypted_cpu_seconds_per_epoch: enc_cpu,
        training_cpu_overhead: enc_cpu / plain_cpu,
        encrypt_data_seconds: run.encrypt_seconds,
        max_abs_weight: weight_max,
        shadow_max_abs_weight: shadow_max,
        input_noise: args.input_noise,
        label_spread: args.label_spread,
        plain_inference_us_per_image: plain_secs / n_test * 1e6,
        encrypted_inference_us_per_image: enc_secs / n_test * 1e6,
        inference_overhead: enc_secs / plain_secs,
        plain_val_accuracy: plain_hist.epochs.iter().filter_map(|e| e.val_accuracy).collect(),
        encrypted_val_accuracy: run.history.epochs.iter().filter_map(|e| e.val_accuracy).collect(),
    };
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        plain_model.save(dir.join(format!("{id}-plain.{}", more_nn::model::FILE_EXTENSION)))?;
        run.model.save(dir.join(format!("{id}-encrypted.{}", more_nn::model::FILE_EXTENSION)))?;
        run.encrypted.save(dir.join(format!("{id}-encrypted.moreenc")))?;
    }
    if let Some(path) = &args.svg {
        let arch = if args.arch == Arch::Relu { "ReLU CNN" } else { "square CNN" };
        let title = format!("MNIST ({arch}): plaintext vs encrypted training, seed {}", args.seed);
        write_svg(path, &crate::plot::training_curves_svg(&title, plain_hist, &run.history))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.report {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "MNIST, plaintext vs encrypted training — one run, same architecture, seed {} and hyper-parameters",
        r.seed
    );
    println!("architecture: {}", r.architecture);
    println!("optimizer: {}", r.optimizer);
    println!(
        "data: {} training, {} validation, {} test images; key κ = {:.2}",
        r.train_images, r.val_images, r.test_images, r.key_condition
    );
    println!();
    println!("| | plaintext | encrypted | ratio / difference |");
    println!("|---|---|---|---|");
    println!(
        "| test accuracy | {:.2}% | {:.2}% (decrypted model) | {:+.2} pp |",
        100.0 * r.plain_test_accuracy,
        100.0 * r.encrypted_test_accuracy,
        r.accuracy_gap_pp
    );
    println!(
        "| training time per epoch | {:.1} s | {:.1} s | {:.2}x |",
        r.plain_epoch_seconds, r.encrypted_epoch_seconds, r.training_overhead
    );
    println!(
        "| CPU time per epoch (all threads, incl. validation) | {:.1} s | {:.1} s | {:.2}x |",
        r.plain_cpu_seconds_per_epoch, r.encrypted_cpu_seconds_per_epoch, r.training_cpu_overhead
    );
    println!(
        "| inference time per image (batch 500) | {:.1} µs | {:.1} µs (encrypted weights) | {:.2}x |",
        r.plain_inference_us_per_image, r.encrypted_inference_us_per_image, r.inference_overhead
    );
    println!(
        "| epochs run (best) | {} ({}) | {} ({}) | |",
        r.plain_epochs, r.plain_best_epoch, r.encrypted_epochs, r.encrypted_best_epoch
    );
    println!();
    println!(
        "encrypted model on the encrypted test set: {:.2}% accuracy, argmax agrees with the decrypted model on {:.2}% of images, max |logit diff| {:.2e}",
        100.0 * r.encrypted_model_encrypted_test_accuracy,
        100.0 * r.encrypted_model_agreement,
        r.encrypted_model_max_logit_diff
    );
    println!("encrypting the training and validation data: {:.1} s", r.encrypt_data_seconds);
    println!(
        "random lanes: inputs U[0, {}), labels (1 + {}·U[-1,1))/Σ; largest |weight|: {:.3} (model), {:.3} (shadow model on the noise lane)",
        r.input_noise, r.label_spread, r.max_abs_weight, r.shadow_max_abs_weight
    );
}

/// Writes a `more reproduce --svg` figure, creating its directory.
pub fn write_svg(path: &std::path::Path, svg: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("training curves: {}", path.display());
    Ok(())
}

/// What a task hands to [`train_encrypted_task`] besides its [`Task`].
#[derive(Debug, Clone)]
pub struct EncryptedTaskOutput {
    /// Model id (printed).
    pub id: String,
    /// The decrypted model's path; the still-encrypted model (`.moreenc`) and the key (`.key.json`, owner
    /// read-only) are written next to it.
    pub out: PathBuf,
    /// No progress lines.
    pub quiet: bool,
}

/// What [`train_encrypted_task`] returns.
#[derive(Debug)]
#[allow(dead_code)] // the fields are for other tasks' callers (angio); MNIST only needs the files
pub struct EncryptedTaskResult {
    /// The run (decrypted model — its metrics already written —, encrypted model, history).
    pub timed: TimedRun,
    /// The fresh key (the CLI plays the key owner).
    pub key: SecretKey,
    /// Where the encrypted model went.
    pub encrypted_path: PathBuf,
    /// Where the key went.
    pub key_path: PathBuf,
}

/// `more train <task> --encrypted`, task-generic: a fresh key encrypts `task`'s inputs and labels, the
/// trainer trains on ciphertexts, the owner decrypts. `meta` is the decrypted model's metadata (this adds
/// `training.encrypted_training`); `test`, if given, is evaluated with the decrypted model (metrics
/// `test_accuracy`; the caller may add more before the file is rewritten). Writes the decrypted model,
/// the `.moreenc` model and the `.key.json` key.
pub fn train_encrypted_task(
    task: &Task,
    mut meta: ModelMeta,
    test: Option<&PlainData>,
    output: &EncryptedTaskOutput,
) -> Result<EncryptedTaskResult> {
    meta.training.insert(
        "encrypted_training".into(),
        "inputs and labels MORE-encrypted; weights trained as ciphertexts and decrypted by the key owner".into(),
    );
    let key = SecretKey::generate(KeyOptions::default())?;
    if !output.quiet {
        eprintln!("training {} on encrypted data under a fresh key (κ = {:.2})", output.id, key.condition_number());
    }
    let mut timed = train_task(task, &key, meta)?;
    let run = &mut timed.run;
    let mut test_acc = None;
    if let Some(test) = test {
        let (out_test, _) = predict_plain(&run.model, &test.inputs, 500)?;
        let acc = accuracy(&out_test, &test.targets);
        run.model.meta_mut().metrics.insert("test_accuracy".into(), acc);
        test_acc = Some(acc);
    }
    run.model.meta_mut().metrics.insert("train_seconds_per_epoch".into(), mean_epoch_seconds(&run.history));
    let out = &output.out;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    run.model.save(out)?;
    let encrypted_path = out.with_extension("moreenc");
    run.encrypted.save(&encrypted_path)?;
    let key_path = out.with_extension("key.json");
    write_private(&key_path, key.to_json().as_bytes()).with_context(|| format!("writing {}", key_path.display()))?;
    println!(
        "{}: trained on encrypted data;{} {:.1} s per epoch; saved {} (decrypted), {} (encrypted), {} (key: keep private)",
        output.id,
        test_acc.map(|a| format!(" decrypted model's test accuracy {:.2}%,", 100.0 * a)).unwrap_or_default(),
        mean_epoch_seconds(&run.history),
        out.display(),
        encrypted_path.display(),
        key_path.display()
    );
    Ok(EncryptedTaskResult { timed, key, encrypted_path, key_path })
}

/// `more train mnist --encrypted`: the same settings as plaintext training, on encrypted inputs and
/// labels under a fresh key; writes the decrypted model, the still-encrypted model (`.moreenc`) and the
/// key (`.key.json` — keep it private).
pub fn train_encrypted_mnist(args: &TrainArgs) -> Result<()> {
    let arch_name = if args.arch == Arch::Relu { "relu" } else { "square" };
    let id = args.model_id.clone().unwrap_or_else(|| format!("mnist-cnn-{arch_name}-enctrain"));
    let out =
        args.out.clone().unwrap_or_else(|| PathBuf::from(format!("models/{id}.{}", more_nn::model::FILE_EXTENSION)));
    let splits = load(args.data.as_deref(), args.limit, None, args.validation, args.seed)?;
    let cfg = mnist_config(
        args.arch,
        args.epochs,
        args.batch_size,
        args.seed,
        args.lr,
        args.lr_decay,
        args.patience,
        args.augment,
        !args.quiet,
    );
    let mut meta: ModelMeta = mnist_meta(&id, args.arch);
    meta.training.insert(
        "dataset".into(),
        format!(
            "MNIST train, encrypted ({} images, {} validation)",
            splits.train.inputs.shape()[0],
            splits.val.inputs.shape()[0]
        ),
    );
    meta.training.insert("seed".into(), args.seed.to_string());
    meta.training.insert("command".into(), crate::data::command_line());
    let task = Task {
        input_shape: vec![1, 28, 28],
        specs: mnist_specs(args.arch),
        train: splits.train,
        val: Some(splits.val),
        init_seed: args.seed,
        cfg,
        setup: EncryptionSetup::default(),
    };
    train_encrypted_task(&task, meta, Some(&splits.test), &EncryptedTaskOutput { id, out, quiet: args.quiet })?;
    Ok(())
}

/// Writes a file only its owner can read (the secret key).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use more_enctrain::train::decrypt_model;
    use more_nn::{Activation, LayerSpec, Model};
    use ndarray::{ArrayD, IxDyn};

    /// 10x10 one-channel "frames", class = which half is brighter (deterministic).
    fn frames(n: usize, offset: usize) -> PlainData {
        let label = |i: usize| (i * 7 + offset) % 3 == 0;
        let x = ArrayD::from_shape_fn(IxDyn(&[n, 1, 10, 10]), |i| {
            let bright = label(i[0]) == (i[3] < 5);
            (if bright { 0.7 } else { 0.3 }) + 0.01 * ((i[0] * 13 + i[2] * 5 + i[3]) % 11) as f32
        });
        let y = ArrayD::from_shape_fn(IxDyn(&[n, 2]), |i| f32::from(u8::from(usize::from(label(i[0])) == i[1])));
        PlainData { inputs: x, targets: y }
    }

    #[test]
    fn train_encrypted_task_writes_decryptable_files() {
        let dir = std::env::temp_dir().join(format!("more-enctask-{}", std::process::id()));
        let out = dir.join("toy.morenn");
        let train = frames(40, 0);
        let val = frames(12, 1);
        let task = Task {
            input_shape: vec![1, 10, 10],
            specs: vec![
                LayerSpec::Conv2d { in_channels: 1, out_channels: 2, kernel: [3, 3], stride: 2, padding: 1 },
                LayerSpec::Activation { function: Activation::Square },
                LayerSpec::AvgPool { size: 2, stride: 1 },
                LayerSpec::Flatten,
                LayerSpec::Dense { inputs: 32, outputs: 2 },
            ],
            train: train.reweighted(&more_enctrain::task::balanced_class_weights(&train.targets).unwrap(), 1).unwrap(),
            val: Some(val.clone()),
            init_seed: 2,
            cfg: TrainConfig { epochs: 2, batch_size: 8, progress: false, ..TrainConfig::default() },
            setup: EncryptionSetup::default(),
        };
        let res = train_encrypted_task(
            &task,
            ModelMeta::new("toy", "test"),
            Some(&val),
            &EncryptedTaskOutput { id: "toy".into(), out: out.clone(), quiet: true },
        )
        .unwrap();
        assert_eq!(res.timed.run.history.epochs.len(), 2);
        let saved = Model::load(&out).unwrap();
        assert!(saved.meta().metrics.contains_key("test_accuracy"));
        assert!(saved.meta().training.contains_key("encrypted_training"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&res.key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
        }
        // The key file decrypts the .moreenc file to the saved model; another key is refused.
        let key = SecretKey::from_json(&std::fs::read_to_string(&res.key_path).unwrap()).unwrap();
        let enc = more_enctrain::model_file::EncryptedModel::load(&res.encrypted_path).unwrap();
        let back = decrypt_model(&KeyOwner::new(key), &enc).unwrap();
        let (a, b) = (back.forward_plain(val.inputs.view()).unwrap(), saved.forward_plain(val.inputs.view()).unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4));
        let other = KeyOwner::new(SecretKey::generate(KeyOptions::default()).unwrap());
        assert!(decrypt_model(&other, &enc).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
