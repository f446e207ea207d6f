//! `more train <task>`: plaintext training (and, with `--encrypted`, training on encrypted data).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use more_nn::train::{
    Checkpoint, Dataset, Loss, Net, OptimizerConfig, TrainConfig, evaluate, fit, split_rows, take_rows,
};
use more_nn::{Activation, LayerSpec, ModelMeta, OutputKind, Plain};

use crate::data;

/// Network architectures for MNIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// CNN with ReLU activations (spectral formula on ciphertexts: uses the 2x2 structure).
    Relu,
    /// CryptoNets-style CNN with square activations (ring-only).
    Square,
    /// One convolution, square, one dense layer: the network quantized for BFV (`more-bfv`).
    Bfv,
}

/// Arguments of `more train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task: `mnist`, `angio` or `wbc` (with `--encrypted`).
    pub task: String,
    /// Model id stored in the file (default `mnist-cnn-<arch>`).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Architecture.
    #[arg(long, value_enum, default_value = "relu")]
    pub arch: Arch,
    /// Epochs.
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Seed for initialisation, shuffling, augmentation and the validation split.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output model file (default `models/<model-id>.morenn`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Data directory (default `../shared/data`, or env `MORE_DATA`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Train on encrypted inputs and labels (the data owner's key; see `more-enctrain`).
    #[arg(long)]
    pub encrypted: bool,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate (Adam).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Multiply the learning rate by this after every epoch.
    #[arg(long, default_value_t = 0.85)]
    pub lr_decay: f32,
    /// Train on only the first N training images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Random shifts of up to ± this many pixels (0 = none).
    #[arg(long, default_value_t = 2)]
    pub augment: usize,
    /// Early stopping: epochs without validation improvement.
    #[arg(long, default_value_t = 4)]
    pub patience: usize,
    /// Images held out of training for validation (model selection, early stopping).
    #[arg(long, default_value_t = 5000)]
    pub validation: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The layer specs of the MNIST networks (shared with `more reproduce`).
pub fn mnist_specs(arch: Arch) -> Vec<LayerSpec> {
    let conv = |i, o, k, stride, padding| LayerSpec::Conv2d {
        in_channels: i,
        out_channels: o,
        kernel: [k, k],
        stride,
        padding,
    };
    match arch {
        Arch::Relu => {
            let act = LayerSpec::Activation { function: Activation::Relu };
            vec![
                conv(1, 16, 5, 2, 2), // 16x14x14
                act.clone(),
                conv(16, 16, 3, 2, 1), // 16x7x7
                act.clone(),
                LayerSpec::Flatten,
                LayerSpec::Dense { inputs: 784, outputs: 64 },
                act,
                LayerSpec::Dense { inputs: 64, outputs: 10 },
            ]
        }
        Arch::Square => {
            let act = LayerSpec::Activation { function: Activation::Square };
            vec![
                conv(1, 8, 5, 2, 2), // 8x14x14
                act.clone(),
                LayerSpec::Flatten,
                LayerSpec::Dense { inputs: 8 * 14 * 14, outputs: 100 },
                act,
                LayerSpec::Dense { inputs: 100, outputs: 10 },
            ]
        }
        Arch::Bfv => vec![
            conv(1, 10, 5, 2, 2), // 10x14x14
            LayerSpec::Activation { function: Activation::Square },
            LayerSpec::Flatten,
            LayerSpec::Dense { inputs: 10 * 14 * 14, outputs: 10 },
        ],
    }
}

/// Metadata of an MNIST model (preprocessing as in `more-imaging`'s `mnist-digit`).
pub fn mnist_meta(id: &str, arch: Arch) -> ModelMeta {
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
    meta.labels = (0..10).map(|d| d.to_string()).collect();
    meta
}

/// Runs `more train`.
pub fn run(args: TrainArgs) -> Result<()> {
    if args.task == "wbc" {
        // The WBC surrogate: crates/cli/src/wbc.rs (`more wbc train --help` for its own options).
        return crate::wbc::train(&crate::wbc::TrainArgs::from_train(&args));
    }
    if args.task == "angio" {
        return crate::angio::train(&args);
    }
    if args.task != "mnist" {
        bail!("unknown task {:?} (available: mnist, angio, wbc)", args.task);
    }
    if args.encrypted {
        return crate::reproduce::train_encrypted_mnist(&args);
    }
    let arch_name = match args.arch {
        Arch::Relu => "relu",
        Arch::Square => "square",
        Arch::Bfv => "bfv-float",
    };
    let id = args.model_id.clone().unwrap_or_else(|| format!("mnist-cnn-{arch_name}"));
    let out =
        args.out.clone().unwrap_or_else(|| PathBuf::from(format!("models/{id}.{}", more_nn::model::FILE_EXTENSION)));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let dir = data::data_dir(args.data.as_deref());
    let all = data::mnist(&dir, "train", args.limit)?;
    let test = data::mnist(&dir, "test", None)?;
    let n = all.labels.len();
    let val_fraction = args.validation.min(n / 2) as f64 / n as f64;
    let (train_rows, val_rows) = split_rows(n, val_fraction, args.seed);
    let alg = Plain;
    let train = Dataset::new(&alg, take_rows(&all.inputs, &train_rows), take_rows(&all.targets, &train_rows))?;
    let val = Dataset::new(&alg, take_rows(&all.inputs, &val_rows), take_rows(&all.targets, &val_rows))?;
    let test_set = Dataset::new(&alg, test.inputs.clone(), test.targets.clone())?;

    let specs = mnist_specs(args.arch);
    let mut net = Net::new(&alg, &[1, 28, 28], &specs, &mut ChaCha8Rng::seed_from_u64(args.seed))?;
    let lr = args.lr.unwrap_or(match args.arch {
        Arch::Relu => 2e-3,
        Arch::Square | Arch::Bfv => 1e-3,
    });
    let mut meta = mnist_meta(&id, args.arch);
    let command = crate::data::command_line();
    meta.training.insert(
        "dataset".into(),
        format!("MNIST train ({} images, {} held out for validation)", train_rows.len(), val_rows.len()),
    );
    meta.training.insert("seed".into(), args.seed.to_string());
    meta.training.insert("command".into(), command);
    meta.training.insert(
        "optimizer".into(),
        format!("adam lr {lr} decay {} per epoch, batch {}", args.lr_decay, args.batch_size),
    );
    meta.training.insert("augmentation".into(), format!("random shifts up to ±{} px", args.augment));
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        loss: Loss::CrossEntropy,
        optimizer: OptimizerConfig::adam(lr),
        lr_decay: args.lr_decay,
        patience: Some(args.patience),
        augment_shift: args.augment,
        classification: true,
        progress: !args.quiet,
        eval_batch: 500,
        checkpoint: Some(Checkpoint { path: out.with_extension("checkpoint"), meta: meta.clone() }),
    };
    if !args.quiet {
        eprintln!(
            "training {id} on {} images ({} validation), {} epochs max, seed {}",
            train_rows.len(),
            val_rows.len(),
            args.epochs,
            args.seed
        );
    }
    let history = fit(&alg, &alg, &mut net, &train, Some(&val), &cfg)?;
    let _ = std::fs::remove_file(out.with_extension("checkpoint"));
    let (test_loss, test_acc) = evaluate(&alg, &alg, &net, &test_set, Loss::CrossEntropy, 500)?;
    let best = &history.epochs[history.best_epoch - 1];
    meta.training.insert("epochs".into(), history.best_epoch.to_string());
    meta.training.insert("epochs_run".into(), history.epochs.len().to_string());
    let train_secs: f64 = history.epochs.iter().map(|e| e.train_seconds).sum();
    meta.metrics.insert("test_accuracy".into(), test_acc);
    meta.metrics.insert("test_loss".into(), test_loss);
    meta.metrics.insert("val_accuracy".into(), best.val_accuracy.unwrap_or(f64::NAN));
    meta.metrics.insert("train_seconds_per_epoch".into(), train_secs / history.epochs.len() as f64);
    let model = net.to_model(&alg, meta)?;
    model.save(&out)?;
    println!(
        "{id}: test accuracy {:.2}% (loss {test_loss:.4}), best epoch {} of {}, {} multiply-adds/image, saved {}",
        100.0 * test_acc,
        history.best_epoch,
        history.epochs.len(),
        model.multiply_adds(),
        out.display()
    );
    Ok(())
}
