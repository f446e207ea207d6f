//! MNIST digits: the ReLU and square CNNs (`more_nn::networks`), trained on plaintext or encrypted data,
//! scored on the 10,000 test images. `more reproduce mnist` is the papers' table: the same network, seed
//! and hyper-parameters trained on plaintext and on encrypted data in one run (final test accuracy,
//! training time per epoch, inference time, ratios); the encrypted side is `more-enctrain`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use more_enctrain::owner::KeyOwner;
use more_enctrain::task::{Task as TrainingTask, lane_maxima, mean_epoch_seconds, predict_encrypted, predict_plain, train_plain, train_task};
use more_enctrain::train::{EncryptionSetup, PlainData, TargetNoise};
use more_nn::idx;
use more_nn::metrics::accuracy;
use more_nn::networks::{self, MNIST_INPUT};
use more_nn::train::{
    Checkpoint, Dataset, Loss, Net, OptimizerConfig, TrainConfig, correct, evaluate, fit, split_rows, take_rows,
};
use more_nn::{LayerSpec, ModelMeta, OutputKind, Plain};

use super::{BfvClassifier, BfvRows, Classifier, Defaults, Hyper, Task, Use};
use crate::args::{Arch, ImageArgs, ReproduceOptions, TrainOptions};
use crate::data::LabelledImages;
use crate::encrypted::{EncryptedTaskOutput, train_encrypted_task};
use crate::comparison::{Better, Comparison, Paired, Unit, Written};
use crate::files::{command_line, encrypted_outputs, model_path, refuse_existing, wrote};
use crate::server_job::{BothSides, Outcome, ServerData, ServerJob};

/// The MNIST task.
pub struct Mnist;

/// Class names: the digits.
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

impl Task for Mnist {
    fn name(&self) -> &'static str {
        "mnist"
    }

    fn about(&self) -> &'static str {
        "MNIST digits, CNN by --arch (train: 15 epochs, batch 64, Adam lr 2e-3 relu / 1e-3 square, decay 0.85; \
         reproduce: 12 epochs, SGD lr 0.05 or --optimizer adam)"
    }

    fn train_defaults(&self) -> Defaults {
        Defaults { epochs: 15, batch_size: 64, lr_decay: 0.85 }
    }

    fn reproduce_defaults(&self) -> Defaults {
        Defaults { epochs: 12, batch_size: 64, lr_decay: 0.85 }
    }

    fn train(&self, options: &TrainOptions, hyper: &Hyper) -> Result<()> {
        if options.common.encrypted {
            train_encrypted(options, hyper)
        } else {
            train(options, hyper)
        }
    }

    fn compare(&self, options: &ReproduceOptions, hyper: &Hyper) -> Result<Comparison> {
        compare(options, hyper)
    }

    fn options(&self, command: Use) -> &'static [&'static str] {
        match command {
            Use::Train => &["arch", "augment", "patience", "validation", "limit", "data"],
            // The server trains a fixed number of epochs on every digit it is sent.
            Use::TrainOnServer => &["arch", "limit", "data", "server"],
            Use::Reproduce => &[
                "arch",
                "augment",
                "patience",
                "validation",
                "limit",
                "data",
                "optimizer",
                "test_limit",
                "input_noise",
                "label_spread",
                "save",
                "force",
                "svg",
            ],
        }
    }

    fn instead(&self, option: &str, command: Use) -> Option<&'static str> {
        Some(match (option, command) {
            ("samples" | "n_train", _) => "use --limit to train on fewer digits",
            ("n_test", Use::Reproduce) => "use --test-limit to score fewer test digits",
            ("n_test", _) => "mnist scores all 10,000 test digits",
            ("hidden", _) => "the MNIST network is chosen with --arch",
            ("train_csv" | "test_csv", _) => "MNIST is read from --data",
            ("augment" | "patience" | "validation", Use::TrainOnServer) => {
                "the server trains the given --epochs on all the digits it is sent, without shifts or a validation split"
            }
            _ => return None,
        })
    }

    fn server_job(&self, options: &TrainOptions, hyper: &Hyper) -> Result<ServerJob> {
        server_job(options, hyper)
    }

    fn classifier(&self) -> Option<Classifier> {
        Some(Classifier {
            input: MNIST_INPUT,
            default_model: crate::paths::MNIST_MODEL,
            eval_split: "test",
            row: "image",
            batch: 500,
            per_class: false,
            labels: &DIGITS,
            bench_rows: Some(64 * 8),
            load,
        })
    }

    fn bfv(&self) -> Option<BfvClassifier> {
        Some(BfvClassifier {
            model_file: crate::paths::BFV_MODEL,
            model_id: "mnist-bfv-square",
            eval_split: "test",
            checked_splits: &["test"],
            quantize_runs_bfv: false,
            levels: [15, 31, 31],
            row: "image",
            labels: &DIGITS,
            description: "MNIST digits under BFV at 128-bit security: conv, square, dense on integers, evaluated \
                          exactly (ring operations only)",
            load: bfv_rows,
        })
    }
}

/// A split as the BFV network's inputs: rows of 784 values in `[0, 1]` and labels, optionally only the
/// first `limit` images.
pub fn bfv_rows(dir: &Path, split: &str, limit: Option<usize>) -> Result<BfvRows> {
    let set = load(dir, split, limit)?;
    let rows = set.inputs.as_slice().context("inputs not contiguous")?.chunks(784).map(<[f32]>::to_vec).collect();
    Ok((rows, set.labels))
}

/// Loads an MNIST split (`"train"` or `"test"`) as inputs `[N, 1, 28, 28]` in `[0, 1]`, optionally only the
/// first `limit` images.
pub fn load(dir: &Path, split: &str, limit: Option<usize>) -> Result<LabelledImages> {
    let set = idx::load_mnist(dir, split).with_context(|| format!("loading MNIST {split} from {}", dir.display()))?;
    Ok(LabelledImages::new(set, limit, 10))
}

/// The network of an architecture.
pub fn specs(arch: Arch) -> Vec<LayerSpec> {
    match arch {
        Arch::Relu => networks::mnist_cnn_relu(),
        Arch::Square => networks::mnist_cnn_square(),
        Arch::Bfv => networks::mnist_bfv(),
    }
}

/// Metadata of an MNIST model (preprocessing as in `more-imaging`'s `mnist-digit`).
pub fn meta(id: &str, arch: Arch) -> ModelMeta {
    let mut meta = ModelMeta::new(id, "mnist");
    meta.description = match arch {
        Arch::Relu => "MNIST CNN with ReLU activations; every layer runs on ciphertexts (ReLU by the spectral \
                       formula, which uses the 2x2 structure)"
            .into(),
        Arch::Square => "CryptoNets-style MNIST CNN with square activations: ring operations only".into(),
        Arch::Bfv => "MNIST CNN of depth one (convolution, square, dense) for BFV: ring operations only".into(),
    };
    meta.preprocessing.kind = "mnist-digit".into();
    meta.preprocessing.scale = 1.0 / 255.0;
    meta.output_kind = OutputKind::Logits;
    meta.labels = DIGITS.iter().map(|d| d.to_string()).collect();
    meta
}

/// The training settings of `more train mnist` (both ways) and of both runs of `more reproduce mnist`.
fn config(images: &ImageArgs, hyper: &Hyper, progress: bool) -> TrainConfig {
    let lr = hyper.lr.unwrap_or(match images.arch {
        Arch::Relu => 2e-3,
        Arch::Square | Arch::Bfv => 1e-3,
    });
    TrainConfig {
        epochs: hyper.epochs,
        batch_size: hyper.batch_size,
        seed: hyper.seed,
        loss: Loss::CrossEntropy,
        optimizer: OptimizerConfig::adam(lr),
        lr_decay: hyper.lr_decay,
        patience: Some(images.patience),
        augment_shift: images.augment,
        classification: true,
        progress,
        eval_batch: 500,
        checkpoint: None,
        snapshots: None,
    }
}

/// The splits of a run: training and validation (seeded split) and test, as plaintext data.
struct Splits {
    train: PlainData,
    val: PlainData,
    test: PlainData,
}

fn splits(images: &ImageArgs, test_limit: Option<usize>, seed: u64) -> Result<Splits> {
    let dir = images.data.dir();
    let all = load(&dir, "train", images.limit)?;
    let test = load(&dir, "test", test_limit)?;
    let n = all.labels.len();
    let val_fraction = images.validation.min(n / 2) as f64 / n as f64;
    let (tr, va) = split_rows(n, val_fraction, seed);
    let part =
        |rows: &[usize]| PlainData { inputs: take_rows(&all.inputs, rows), targets: take_rows(&all.targets, rows) };
    Ok(Splits { train: part(&tr), val: part(&va), test: PlainData { inputs: test.inputs, targets: test.targets } })
}

/// `more train mnist --encrypted --server URL` (`crate::server_training`): the server trains
/// `mnist-cnn-<arch>` on the first `--limit` training images and their one-hot labels, encrypted with the
/// noise lanes of `more train mnist --encrypted`; both models are scored on the 10,000 test images.
fn server_job(options: &TrainOptions, hyper: &Hyper) -> Result<ServerJob> {
    use more_enctrain::upload::{JobRequest, OptimizerKind};
    let images = options.images.clone();
    let arch = images.arch;
    let id = options.common.model_id.clone().unwrap_or_else(|| format!("mnist-cnn-{}-enctrain", arch.name()));
    let request = JobRequest {
        network: format!("mnist-cnn-{}", arch.name()),
        epochs: hyper.epochs,
        batch_size: hyper.batch_size,
        lr: config(&images, hyper, false).optimizer.lr(),
        lr_decay: hyper.lr_decay,
        optimizer: OptimizerKind::Adam,
        seed: hyper.seed,
    };
    let (network, job_id) = (request.network.clone(), id.clone());
    let data = move || -> Result<ServerData> {
        let dir = images.data.dir();
        let train_set = load(&dir, "train", images.limit)?;
        let test = load(&dir, "test", None)?;
        let train_images = train_set.labels.len();
        let finish = move |sides: &mut BothSides, server: &str| -> Result<Outcome> {
            let alg = Plain;
            let test_set = Dataset::new(&alg, test.inputs, test.targets)?;
            let accuracy = |model: &more_nn::Model| -> Result<f64> {
                Ok(evaluate(&alg, &alg, &Net::from_model(&alg, model)?, &test_set, Loss::CrossEntropy, 500)?.1)
            };
            let (plain_acc, enc_acc) = (accuracy(&sides.plain)?, accuracy(&sides.remote.model)?);
            let mut m = meta(&id, arch);
            m.training.insert("command".into(), command_line());
            m.training.insert("trainer".into(), format!("more-server at {server}, on encrypted images and labels"));
            m.metrics.insert("test_accuracy".into(), enc_acc);
            *sides.remote.model.meta_mut() = m;
            let (remote, test_images) = (&sides.remote, test_set.len(&alg));
            let json = serde_json::json!({
                "network": network, "train_images": train_images, "test_images": test_images,
                "plaintext_accuracy": plain_acc, "encrypted_accuracy": enc_acc,
                "plaintext_losses": sides.plain_history.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
                "encrypted_losses": remote.epoch_losses,
            });
            let mut text = String::new();
            let _ = writeln!(
                text,
                "{network} trained by {server} on {train_images} encrypted images ({} epochs): {:.1} s from encryption to the decrypted model, {} bytes uploaded",
                remote.epoch_losses.len(),
                remote.seconds,
                remote.upload_bytes
            );
            let _ = writeln!(
                text,
                "time per epoch: {:.2} s here on plaintext, {:.2} s on the server on ciphertexts",
                sides.plain_epoch_seconds(),
                sides.server_epoch_seconds()
            );
            let _ = writeln!(
                text,
                "test accuracy ({test_images} images): plaintext-trained {:.2}%, encrypted-trained {:.2}%",
                100.0 * plain_acc,
                100.0 * enc_acc,
            );
            Ok(Outcome { json, text })
        };
        Ok(ServerData {
            inputs: train_set.inputs,
            targets: train_set.targets,
            setup: EncryptionSetup::default(),
            noun: "digits",
            fewer: Box::new(|k| format!("pass --limit {k}")),
            finish: Box::new(finish),
        })
    };
    Ok(ServerJob {
        id: job_id,
        request,
        input_shape: MNIST_INPUT.to_vec(),
        specs: specs(arch),
        loss: Loss::CrossEntropy,
        classification: true,
        plain_meta: meta(&format!("mnist-cnn-{}", arch.name()), arch),
        data: Box::new(data),
    })
}

/// `more train mnist`: plaintext training with a checkpoint per epoch; the test accuracy goes in the file.
fn train(options: &TrainOptions, hyper: &Hyper) -> Result<()> {
    let (images, quiet) = (&options.images, options.common.quiet.quiet);
    let id = options.common.model_id.clone().unwrap_or_else(|| format!("mnist-cnn-{}", images.arch.name()));
    let out = model_path(options.common.out.as_deref(), &id, options.common.force)?;
    let s = splits(images, None, hyper.seed)?;
    let (train_rows, val_rows) = (s.train.inputs.shape()[0], s.val.inputs.shape()[0]);
    let alg = Plain;
    let train = Dataset::new(&alg, s.train.inputs, s.train.targets)?;
    let val = Dataset::new(&alg, s.val.inputs, s.val.targets)?;
    let test_set = Dataset::new(&alg, s.test.inputs, s.test.targets)?;

    let mut net =
        Net::new(&alg, &MNIST_INPUT, &specs(images.arch), &mut ChaCha8Rng::seed_from_u64(hyper.seed))?;
    let mut cfg = config(images, hyper, !quiet);
    let lr = cfg.optimizer.lr();
    let mut meta = meta(&id, images.arch);
    meta.training.insert(
        "dataset".into(),
        format!("MNIST train ({train_rows} images, {val_rows} held out for validation)"),
    );
    meta.training.insert("seed".into(), hyper.seed.to_string());
    meta.training.insert("command".into(), command_line());
    meta.training.insert(
        "optimizer".into(),
        format!("adam lr {lr} decay {} per epoch, batch {}", hyper.lr_decay, hyper.batch_size),
    );
    meta.training.insert("augmentation".into(), format!("random shifts up to ±{} px", images.augment));
    cfg.checkpoint = Some(Checkpoint { path: out.with_extension("checkpoint"), meta: meta.clone() });
    if !quiet {
        eprintln!(
            "training {id} on {train_rows} images ({val_rows} validation), {} epochs max, seed {}",
            hyper.epochs, hyper.seed
        );
    }
    let history = fit(&alg, &alg, &mut net, &train, Some(&val), &cfg)?;
    let _ = std::fs::remove_file(out.with_extension("checkpoint"));
    let (test_loss, test_acc) = evaluate(&alg, &alg, &net, &test_set, Loss::CrossEntropy, 500)?;
    let best = &history.epochs[history.best_epoch - 1];
    meta.training.insert("epochs".into(), history.best_epoch.to_string());
    meta.training.insert("epochs_run".into(), history.epochs.len().to_string());
    meta.metrics.insert("test_accuracy".into(), test_acc);
    meta.metrics.insert("test_loss".into(), test_loss);
    meta.metrics.insert("val_accuracy".into(), best.val_accuracy.unwrap_or(f64::NAN));
    let train_secs: f64 = history.epochs.iter().map(|e| e.train_seconds).sum();
    meta.metrics.insert("train_seconds_per_epoch".into(), train_secs / history.epochs.len() as f64);
    let model = net.to_model(&alg, meta)?;
    model.save(&out)?;
    println!(
        "{id}: test accuracy {:.2}% (loss {test_loss:.4}), best epoch {} of {}, {} multiply-adds/image",
        100.0 * test_acc,
        history.best_epoch,
        history.epochs.len(),
        model.multiply_adds(),
    );
    wrote(&out, None, false);
    Ok(())
}

/// `more train mnist --encrypted`: the same settings as plaintext training, on encrypted inputs and
/// labels under a fresh key; writes the decrypted model, the still-encrypted model (`.moreenc`) and the
/// key (`.key.json` — keep it private).
fn train_encrypted(options: &TrainOptions, hyper: &Hyper) -> Result<()> {
    let (images, quiet) = (&options.images, options.common.quiet.quiet);
    let id =
        options.common.model_id.clone().unwrap_or_else(|| format!("mnist-cnn-{}-enctrain", images.arch.name()));
    let out = encrypted_outputs(options.common.out.as_deref(), &id, options.common.force)?;
    let s = splits(images, None, hyper.seed)?;
    let mut meta = meta(&id, images.arch);
    meta.training.insert(
        "dataset".into(),
        format!(
            "MNIST train, encrypted ({} images, {} validation)",
            s.train.inputs.shape()[0],
            s.val.inputs.shape()[0]
        ),
    );
    meta.training.insert("seed".into(), hyper.seed.to_string());
    meta.training.insert("command".into(), command_line());
    let task = TrainingTask {
        input_shape: MNIST_INPUT.to_vec(),
        specs: specs(images.arch),
        train: s.train,
        val: Some(s.val),
        init_seed: hyper.seed,
        cfg: config(images, hyper, !quiet),
        setup: EncryptionSetup::default(),
    };
    train_encrypted_task(&task, meta, Some(&s.test), &EncryptedTaskOutput { id, out, quiet })?;
    Ok(())
}


/// `more reproduce mnist`: both runs, the test accuracy of each, their times, and the still-encrypted
/// model's inference on the encrypted test set; with `--save` the three models.
fn compare(options: &ReproduceOptions, hyper: &Hyper) -> Result<Comparison> {
    let (images, cmp) = (&options.images, &options.comparison);
    let (json, quiet) = (options.json.json, options.quiet.quiet);
    let mut cfg = config(images, hyper, !quiet && !json);
    match cmp.optimizer.as_str() {
        "adam" => {}
        "sgd" => cfg.optimizer = OptimizerConfig::Sgd { lr: hyper.lr.unwrap_or(0.05), momentum: 0.9 },
        other => bail!("unknown optimizer {other:?} (sgd or adam)"),
    }
    cfg.snapshots = cmp.snapshots.clone();
    let id = format!("mnist-cnn-{}", images.arch.name());
    // The files of `--save`, refused before training if they exist (unless `--force`).
    let saved = cmp.save.as_ref().map(|dir| {
        let ext = more_nn::model::FILE_EXTENSION;
        [
            dir.join(format!("{id}-plain.{ext}")),
            dir.join(format!("{id}-encrypted.{ext}")),
            dir.join(format!("{id}-encrypted.moreenc")),
        ]
    });
    if let Some(files) = &saved {
        refuse_existing(&files.each_ref().map(|f| f.as_path()), cmp.force)?;
    }
    let splits = splits(images, cmp.test_limit, hyper.seed)?;
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };

    // Plaintext.
    say(format!(
        "plaintext training: {} images, {} validation, seed {}",
        splits.train.inputs.shape()[0],
        splits.val.inputs.shape()[0],
        hyper.seed
    ));
    let task = TrainingTask {
        input_shape: MNIST_INPUT.to_vec(),
        specs: specs(images.arch),
        train: splits.train.clone(),
        val: Some(splits.val.clone()),
        init_seed: hyper.seed,
        cfg: cfg.clone(),
        setup: EncryptionSetup {
            input_noise: (0.0, cmp.input_noise),
            targets: TargetNoise::Distribution { spread: cmp.label_spread },
            ..EncryptionSetup::default()
        },
    };
    let plain = train_plain(&task, meta(&format!("{id}-plain"), images.arch))?;
    let (plain_out, plain_secs) = predict_plain(&plain.model, &splits.test.inputs, 500)?;
    let plain_acc = accuracy(&plain_out, &splits.test.targets);
    say(format!("plaintext: test accuracy {:.2}%", 100.0 * plain_acc));

    // Encrypted: a fresh key from the OS CSPRNG.
    let key = crate::encrypted::fresh_key(cmp.key_condition)?;
    say(format!("encrypted training under a fresh key (κ = {:.2})", key.condition_number()));
    let enc = train_task(&task, &key, meta(&format!("{id}-encrypted"), images.arch))?;
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
        seed: hyper.seed,
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
        input_noise: cmp.input_noise,
        label_spread: cmp.label_spread,
        plain_inference_us_per_image: plain_secs / n_test * 1e6,
        encrypted_inference_us_per_image: enc_secs / n_test * 1e6,
        inference_overhead: enc_secs / plain_secs,
        plain_val_accuracy: plain_hist.epochs.iter().filter_map(|e| e.val_accuracy).collect(),
        encrypted_val_accuracy: run.history.epochs.iter().filter_map(|e| e.val_accuracy).collect(),
    };
    let mut written = Vec::new();
    if let (Some(dir), Some([plain_file, decrypted_file, encrypted_file])) = (&cmp.save, &saved) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        plain_model.save(plain_file)?;
        run.model.save(decrypted_file)?;
        run.encrypted.save(encrypted_file)?;
        for (path, what) in [
            (plain_file, "trained on plaintext"),
            (decrypted_file, "trained on encrypted data, decrypted"),
            (encrypted_file, "trained on encrypted data, still encrypted"),
        ] {
            written.push(Written { path: path.clone(), what });
        }
    }
    let arch = if images.arch == Arch::Relu { "ReLU CNN" } else { "square CNN" };
    Ok(Comparison {
        headline: vec![
            Paired::new("test accuracy", plain_acc, enc_acc, Unit::Fraction, Better::Higher),
            Paired::new("training time per epoch", plain_epoch, enc_epoch, Unit::Seconds, Better::Lower),
        ],
        key_condition: Some(report.key_condition),
        plain_history: plain.history,
        encrypted_history: enc.run.history,
        title: format!("MNIST ({arch}): plaintext vs encrypted training, seed {}", hyper.seed),
        table: table(&report),
        details: Box::new(report),
        written,
    })
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

/// The report as printed without `--json`.
fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "MNIST, plaintext vs encrypted training — one run, same architecture, seed {} and hyper-parameters",
        r.seed
    );
    let _ = writeln!(s, "architecture: {}", r.architecture);
    let _ = writeln!(s, "optimizer: {}", r.optimizer);
    let _ = writeln!(
        s,
        "data: {} training, {} validation, {} test images; key κ = {:.2}",
        r.train_images, r.val_images, r.test_images, r.key_condition
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| | plaintext | encrypted | ratio / difference |");
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| test accuracy | {:.2}% | {:.2}% (decrypted model) | {:+.2} pp |",
        100.0 * r.plain_test_accuracy,
        100.0 * r.encrypted_test_accuracy,
        r.accuracy_gap_pp
    );
    let _ = writeln!(
        s,
        "| training time per epoch | {:.1} s | {:.1} s | {:.2}x |",
        r.plain_epoch_seconds, r.encrypted_epoch_seconds, r.training_overhead
    );
    let _ = writeln!(
        s,
        "| CPU time per epoch (all threads, incl. validation) | {:.1} s | {:.1} s | {:.2}x |",
        r.plain_cpu_seconds_per_epoch, r.encrypted_cpu_seconds_per_epoch, r.training_cpu_overhead
    );
    let _ = writeln!(
        s,
        "| inference time per image (batch 500) | {:.1} µs | {:.1} µs (encrypted weights) | {:.2}x |",
        r.plain_inference_us_per_image, r.encrypted_inference_us_per_image, r.inference_overhead
    );
    let _ = writeln!(
        s,
        "| epochs run (best) | {} ({}) | {} ({}) | |",
        r.plain_epochs, r.plain_best_epoch, r.encrypted_epochs, r.encrypted_best_epoch
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "encrypted model on the encrypted test set: {:.2}% accuracy, argmax agrees with the decrypted model on {:.2}% of images, max |logit diff| {:.2e}",
        100.0 * r.encrypted_model_encrypted_test_accuracy,
        100.0 * r.encrypted_model_agreement,
        r.encrypted_model_max_logit_diff
    );
    let _ = writeln!(s, "encrypting the training and validation data: {:.1} s", r.encrypt_data_seconds);
    let _ = writeln!(
        s,
        "random lanes: inputs U[0, {}), labels (1 + {}·U[-1,1))/Σ; largest |weight|: {:.3} (model), {:.3} (shadow model on the noise lane)",
        r.input_noise, r.label_spread, r.max_abs_weight, r.shadow_max_abs_weight
    );
    s
}
