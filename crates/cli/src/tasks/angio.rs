//! Angiography view classification: LCA vs RCA on real ARCADE frames (128x128), with a CNN whose layers
//! all run on ciphertexts (`more_nn::networks::angio_cnn`). `more train angio [--encrypted]`,
//! `more eval angio [--encrypted]`, `more bench angio` and `more reproduce angio`.
//!
//! Under BFV the views are classified by the digits' BFV network with two classes
//! (`more_nn::networks::bfv_cnn`) on the frames averaged down to 28x28 (`more_imaging::angio_bfv_input`):
//! `more train angio --arch bfv`, then `more bfv quantize`, `more eval angio --scheme bfv` and
//! `more bench bfv --task angio`.
//!
//! Both training paths go through `more-enctrain`'s task API (`Task`, `train_plain`, `train_task`): the
//! same network, initial weights, seed, data and hyper-parameters, the same `more_nn::train::fit` loop.
//! Class weighting is by resampling (`PlainData::reweighted`, 625/375 → 625/625; `more-nn` has no
//! per-class loss weights). Augmentation (small rotations, contrast/brightness) is done once by the data
//! owner before training (extra rows); shifts are the trainer's own (`augment_shift`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use ndarray::{ArrayD, Axis, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::owner::KeyOwner;
use more_enctrain::task::{
    Task as TrainingTask, balanced_class_weights, compare as train_both, mean_epoch_seconds, predict_encrypted, predict_plain,
    train_plain,
};
use more_enctrain::train::{EncryptionSetup, PlainData};
use more_nn::idx;
use more_nn::networks::{self, ANGIO_INPUT};
use more_nn::train::{OptimizerConfig, TrainConfig};
use more_nn::{Model, ModelMeta, OutputKind};

use super::{BfvClassifier, BfvRows, Classifier, Defaults, Hyper, Task, Use};
use crate::args::{Arch, ReproduceOptions, TrainOptions};
use crate::data::LabelledImages;
use crate::encrypted::{EncryptedTaskOutput, train_encrypted_task};
use crate::comparison::{Better, Comparison, Paired, Unit};
use crate::files::{command_line, encrypted_outputs, model_path, wrote};
use crate::metrics::argmax;

/// The angiography task.
pub struct Angio;

impl Task for Angio {
    fn name(&self) -> &'static str {
        "angio"
    }

    fn about(&self) -> &'static str {
        "angiography view LCA vs RCA (ARCADE, 128x128), angio-cnn (train: 15 epochs, batch 64, SGD lr 0.02 \
         momentum 0.9, decay 0.85, one rotated copy per frame, classes balanced; reproduce: 12 epochs, batch 32); \
         --arch bfv: the BFV network on frames averaged to 28x28 (50 epochs, batch 32, Adam lr 1e-3, decay 0.97)"
    }

    fn train_defaults(&self) -> Defaults {
        Defaults { epochs: 15, batch_size: 64, lr_decay: 0.85 }
    }

    fn reproduce_defaults(&self) -> Defaults {
        Defaults { epochs: 12, batch_size: 32, lr_decay: 0.85 }
    }

    fn train(&self, options: &TrainOptions, hyper: &Hyper) -> Result<()> {
        match options.images.arch {
            // The default value of --arch: angio-cnn.
            Arch::Relu => train(options, hyper),
            Arch::Bfv => train_bfv(options),
            Arch::Square => bail!("angio trains angio-cnn, or with --arch bfv the network BFV evaluates (not square)"),
        }
    }

    fn compare(&self, options: &ReproduceOptions, hyper: &Hyper) -> Result<Comparison> {
        compare(options, hyper)
    }

    fn options(&self, command: Use) -> &'static [&'static str] {
        match command {
            Use::Train => &["arch", "augment", "patience", "limit", "data"],
            Use::TrainOnServer => &[],
            // The comparison shifts by ±4 px, as the shipped model was trained.
            Use::Reproduce => &["patience", "limit", "data", "svg"],
        }
    }

    fn instead(&self, option: &str, command: Use) -> Option<&'static str> {
        Some(match (option, command) {
            ("samples" | "n_train", _) => "use --limit to train on fewer frames",
            ("arch", Use::Reproduce) => "more reproduce angio compares angio-cnn trained both ways",
            ("hidden", _) => "angio's networks are chosen with --arch (angio-cnn, or bfv)",
            ("validation", _) => "angio selects its model on the 200 val frames",
            ("n_test" | "test_limit", _) => "angio scores all 200 val frames",
            ("train_csv" | "test_csv", _) => "the frames are read from --data",
            ("augment", Use::Reproduce) => "more reproduce angio shifts by up to ±4 px, as the shipped model",
            ("optimizer", _) => "angio trains with SGD, momentum 0.9",
            ("server", _) => "a server trains wbc-mlp and the MNIST networks; --encrypted without --server trains angio on encrypted frames here",
            _ => return None,
        })
    }

    fn classifier(&self) -> Option<Classifier> {
        Some(Classifier {
            input: ANGIO_INPUT,
            default_model: crate::paths::ANGIO_MODEL,
            eval_split: "val",
            row: "frame",
            batch: 100,
            per_class: true,
            labels: &LABELS,
            bench_rows: None,
            load,
        })
    }

    fn bfv(&self) -> Option<BfvClassifier> {
        Some(BfvClassifier {
            model_file: BFV_MODEL,
            model_id: "angio-bfv-square",
            eval_split: "val",
            // Every frame there is: the network must not wrap on any training or validation frame.
            checked_splits: &["train", "val"],
            quantize_runs_bfv: true,
            // The frames are bright over most of their area, unlike digits: the convolution's sums are
            // larger, so its weights get half the digits' levels (dense sums then stay 1.3 bits below t/2).
            levels: [15, 16, 31],
            row: "frame",
            labels: &LABELS,
            description: "X-ray coronary angiography view (LCA vs RCA, ARCADE) under BFV at 128-bit security: the \
                          frame averaged to 28x28, then conv, square, dense on integers, evaluated exactly (ring \
                          operations only)",
            load: bfv_rows,
        })
    }
}

/// The bundled BFV model of the views (`more bench bfv --task angio`, `more eval angio --scheme bfv`).
pub const BFV_MODEL: &str = "angio-bfv-square.bfv.json";

/// Side of the model input (the frames in `shared/data/angio`).
pub const SIZE: usize = ANGIO_INPUT[1];
/// Class labels (0 = LCA, 1 = RCA).
pub const LABELS: [&str; 2] = ["LCA", "RCA"];
/// Pixel scale: inputs are `p / 255` (mean 0, std 1) — what `more-imaging`'s `angio-frame` gives, times this.
pub const SCALE: f32 = 1.0 / 255.0;

/// Metadata the server and the browser use: task, input shape, `angio-frame` preprocessing with the
/// normalisation the CLI used, labels, logits.
pub fn meta(id: &str) -> ModelMeta {
    let mut meta = ModelMeta::new(id, "angio");
    meta.description = "X-ray coronary angiography view (LCA vs RCA, ARCADE): CNN, conv 5x5/2, ReLU, avg pool, \
                        conv 3x3/2, ReLU, avg pool, dense; every layer runs on ciphertexts (ReLU by the spectral \
                        formula, which uses the 2x2 structure; the rest ring-only)"
        .into();
    meta.input_shape = vec![1, SIZE, SIZE];
    meta.preprocessing.kind = "angio-frame".into();
    meta.preprocessing.resize = Some([SIZE, SIZE]);
    meta.preprocessing.scale = SCALE;
    meta.preprocessing.mean = vec![0.0];
    meta.preprocessing.std = vec![1.0];
    meta.output_kind = OutputKind::Logits;
    meta.labels = LABELS.iter().map(|s| s.to_string()).collect();
    meta
}

/// A split as model inputs `[N, 1, 128, 128]` (`p / 255`), one-hot targets and labels.
pub fn load(dir: &Path, split: &str, limit: Option<usize>) -> Result<LabelledImages> {
    let set = idx::load_angio(dir, split).with_context(|| format!("loading angio {split} from {}", dir.display()))?;
    Ok(LabelledImages::new(set, limit, 2))
}

/// Frames `[N, 1, 128, 128]` as the BFV network's inputs `[N, 1, 28, 28]`: each averaged down by
/// `more_imaging::angio_bfv_input` (in the frames' own units).
pub fn bfv_inputs(frames: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let side = more_imaging::ANGIO_BFV_SIZE;
    let n = frames.shape()[0];
    ensure!(frames.shape()[1..] == [1, SIZE, SIZE], "frames of shape {:?}, expected [N, 1, 128, 128]", frames.shape());
    let flat = frames.as_standard_layout();
    let mut out = Vec::with_capacity(n * side * side);
    for frame in flat.as_slice().context("frames not contiguous")?.chunks(SIZE * SIZE) {
        out.extend(more_imaging::angio_bfv_input(frame)?);
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&[n, 1, side, side]), out).expect("sizes match"))
}

/// A split as the BFV network's inputs: rows of 784 values in `[0, 1]` (each frame averaged to 28x28) and
/// labels, optionally only the first `limit` frames.
pub fn bfv_rows(dir: &Path, split: &str, limit: Option<usize>) -> Result<BfvRows> {
    let set = load(dir, split, limit)?;
    let inputs = bfv_inputs(&set.inputs)?;
    let rows = inputs.as_slice().context("inputs not contiguous")?.chunks(784).map(<[f32]>::to_vec).collect();
    Ok((rows, set.labels))
}

/// A split as training data and its labels.
fn load_data(dir: &Path, split: &str, limit: Option<usize>) -> Result<(PlainData, Vec<u8>)> {
    let set = load(dir, split, limit)?;
    Ok((PlainData { inputs: set.inputs, targets: set.targets }, set.labels))
}

/// Rotates a `h x w` frame by `degrees` about its centre (bilinear; outside pixels take the frame's mean).
pub fn rotate(frame: &[f32], h: usize, w: usize, degrees: f32) -> Vec<f32> {
    let mean = frame.iter().sum::<f32>() / frame.len().max(1) as f32;
    let (s, c) = degrees.to_radians().sin_cos();
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let at = |y: isize, x: isize| {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize { mean } else { frame[y as usize * w + x as usize] }
    };
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            let (dy, dx) = (y as f32 - cy, x as f32 - cx);
            let sy = cy + c * dy - s * dx;
            let sx = cx + s * dy + c * dx;
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let (y0, x0) = (y0 as isize, x0 as isize);
            out[y * w + x] = (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
                + fy * ((1.0 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
        }
    }
    out
}

/// Augmentation settings (done once, before training and encryption).
#[derive(Debug, Clone, Copy)]
pub struct Augment {
    /// Augmented copies of every training frame (0 = none).
    pub copies: usize,
    /// Rotations uniform in `±degrees`.
    pub degrees: f32,
    /// Contrast factor uniform in `1 ± contrast` (about the frame's mean), brightness `± contrast / 2`.
    pub contrast: f32,
}

/// `data` plus `aug.copies` rotated / contrast-changed copies of each row (seeded), pixels clamped to [0, 1].
pub fn augment(data: &PlainData, aug: Augment, seed: u64) -> PlainData {
    if aug.copies == 0 {
        return data.clone();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = data.inputs.shape()[0];
    let (h, w) = (data.inputs.shape()[2], data.inputs.shape()[3]);
    let mut inputs = data.inputs.clone().into_raw_vec_and_offset().0;
    let mut targets = data.targets.clone().into_raw_vec_and_offset().0;
    let classes = data.targets.shape()[1];
    for _ in 0..aug.copies {
        for i in 0..n {
            let frame: Vec<f32> = data.inputs.index_axis(Axis(0), i).iter().copied().collect();
            let deg = rng.random_range(-aug.degrees..=aug.degrees);
            let c = 1.0 + rng.random_range(-aug.contrast..=aug.contrast);
            let b = rng.random_range(-aug.contrast / 2.0..=aug.contrast / 2.0);
            let mut f = rotate(&frame, h, w, deg);
            let m = f.iter().sum::<f32>() / f.len() as f32;
            f.iter_mut().for_each(|v| *v = ((*v - m) * c + m + b).clamp(0.0, 1.0));
            inputs.extend_from_slice(&f);
            targets.extend(data.targets.index_axis(Axis(0), i).iter().copied());
        }
    }
    let rows = n * (1 + aug.copies);
    PlainData {
        inputs: ArrayD::from_shape_vec(IxDyn(&[rows, 1, h, w]), inputs).expect("sizes match"),
        targets: ArrayD::from_shape_vec(IxDyn(&[rows, classes]), targets).expect("sizes match"),
    }
}

/// Hyper-parameters shared by `more train angio`, `--encrypted` and `more reproduce angio`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Epochs.
    pub epochs: usize,
    /// Seed (initialisation, shuffling, augmentation, resampling).
    pub seed: u64,
    /// Batch size.
    pub batch_size: usize,
    /// SGD learning rate (momentum 0.9).
    pub lr: f32,
    /// Learning-rate decay per epoch.
    pub lr_decay: f32,
    /// Random shifts of up to ± this many pixels.
    pub shift: usize,
    /// Early-stopping patience.
    pub patience: usize,
    /// Rotation / contrast augmentation.
    pub augment: Augment,
    /// Train on only the first N training frames.
    pub limit: Option<usize>,
    /// Data directory.
    pub data: PathBuf,
    /// Progress lines.
    pub progress: bool,
    /// Train the BFV network (Adam, frames averaged to 28x28) instead of angio-cnn (SGD, 128x128).
    pub bfv: bool,
}

/// The augmentation of every angiography run: one rotated, contrast-changed copy per frame.
const AUGMENT: Augment = Augment { copies: 1, degrees: 8.0, contrast: 0.15 };

/// The default SGD learning rate.
const LR: f32 = 0.02;

impl Settings {
    fn from_train(options: &TrainOptions, hyper: &Hyper) -> Settings {
        let images = &options.images;
        Settings {
            epochs: hyper.epochs,
            seed: hyper.seed,
            batch_size: hyper.batch_size,
            lr: hyper.lr.unwrap_or(LR),
            lr_decay: hyper.lr_decay,
            shift: images.augment,
            patience: images.patience,
            augment: AUGMENT,
            limit: images.limit,
            data: images.data.dir(),
            progress: !options.common.quiet.quiet,
            bfv: false,
        }
    }

    fn describe(&self, meta: &mut ModelMeta, train_rows: usize) {
        let t = &mut meta.training;
        t.insert("command".into(), command_line());
        t.insert("seed".into(), self.seed.to_string());
        t.insert(
            "dataset".into(),
            format!(
                "ARCADE angio train ({} frames; with augmented copies and class resampling {train_rows} rows); \
                 selection on the 200 val frames",
                self.limit.unwrap_or(1000)
            ),
        );
        let optimizer = if self.bfv { "adam" } else { "sgd" };
        let momentum = if self.bfv { "" } else { " momentum 0.9" };
        t.insert(
            "optimizer".into(),
            format!("{optimizer} lr {}{momentum}, decay {} per epoch, batch {}", self.lr, self.lr_decay, self.batch_size),
        );
        if self.bfv {
            t.insert(
                "input".into(),
                "each 128x128 frame (and augmented copy) averaged to 28x28 (more_imaging::angio_bfv_input)".into(),
            );
        }
        t.insert(
            "augmentation".into(),
            format!(
                "{} copy per frame: rotation ±{}°, contrast ×(1±{}), brightness ±{}; random shifts ±{} px",
                self.augment.copies,
                self.augment.degrees,
                self.augment.contrast,
                self.augment.contrast / 2.0,
                self.shift
            ),
        );
        t.insert("class_weighting".into(), "balanced by resampling (N / (K·n_c))".into());
    }
}

/// The task both runs share: augmented, class-balanced training rows, the val split, the network.
pub fn task(s: &Settings) -> Result<(TrainingTask, Vec<u8>)> {
    let (train, _) = load_data(&s.data, "train", s.limit)?;
    let (mut val, val_labels) = load_data(&s.data, "val", None)?;
    // Augmentation acts on the 128x128 frames, as on angio-cnn's; the BFV network then reads each row
    // averaged down, as it will read a frame in use.
    let mut train = augment(&train, s.augment, s.seed);
    if s.bfv {
        train.inputs = bfv_inputs(&train.inputs)?;
        val.inputs = bfv_inputs(&val.inputs)?;
    }
    let train = train.reweighted(&balanced_class_weights(&train.targets)?, s.seed)?;
    let (input_shape, specs, optimizer) = if s.bfv {
        let side = more_imaging::ANGIO_BFV_SIZE;
        (vec![1, side, side], networks::bfv_cnn(LABELS.len()), OptimizerConfig::adam(s.lr))
    } else {
        (ANGIO_INPUT.to_vec(), networks::angio_cnn(), OptimizerConfig::Sgd { lr: s.lr, momentum: 0.9 })
    };
    let cfg = TrainConfig {
        epochs: s.epochs,
        batch_size: s.batch_size,
        seed: s.seed,
        optimizer,
        lr_decay: s.lr_decay,
        patience: Some(s.patience),
        augment_shift: s.shift,
        classification: true,
        progress: s.progress,
        eval_batch: 100,
        ..TrainConfig::default()
    };
    let task = TrainingTask {
        input_shape,
        specs,
        train,
        val: Some(val),
        init_seed: s.seed,
        cfg,
        setup: EncryptionSetup { chunk: 128, ..EncryptionSetup::default() },
    };
    Ok((task, val_labels))
}

/// Plaintext predictions (argmax) and logits of `model` on `x`.
pub fn predict(model: &Model, x: &ArrayD<f32>) -> Result<(Vec<usize>, ArrayD<f32>)> {
    let (out, _) = predict_plain(model, x, 100)?;
    Ok((out.axis_iter(Axis(0)).map(argmax).collect(), out))
}

fn record_scores(model: &mut Model, x: &ArrayD<f32>, labels: &[u8]) -> Result<(f64, f64)> {
    let (pred, _) = predict(model, x)?;
    let (acc, bal) = scores(&pred, labels);
    let m = &mut model.meta_mut().metrics;
    m.insert("val_accuracy".into(), acc);
    m.insert("val_balanced_accuracy".into(), bal);
    Ok((acc, bal))
}

/// Accuracy and balanced accuracy of two-class predictions.
fn scores(pred: &[usize], labels: &[u8]) -> (f64, f64) {
    crate::metrics::scores(pred, labels, LABELS.len())
}

/// `more train angio [--encrypted]`.
fn train(options: &TrainOptions, hyper: &Hyper) -> Result<()> {
    let (model_id, out, quiet) = (&options.common.model_id, options.common.out.as_deref(), options.common.quiet.quiet);
    let encrypted = options.common.encrypted;
    let id = model_id.clone().unwrap_or_else(|| (if encrypted { "angio-cnn-enctrain" } else { "angio-cnn" }).into());
    let out = if encrypted {
        encrypted_outputs(out, &id, options.common.force)?
    } else {
        model_path(out, &id, options.common.force)?
    };
    let s = Settings::from_train(options, hyper);
    let (task, val_labels) = task(&s)?;
    let val = task.val.clone().context("val split")?;
    if encrypted {
        let mut m = meta(&id);
        s.describe(&mut m, task.train.rows());
        let mut r = train_encrypted_task(
            &task,
            m,
            None,
            &EncryptedTaskOutput { id: id.clone(), out: out.clone(), quiet },
        )?;
        let model = &mut r.run.model;
        let (acc, bal) = record_scores(model, &val.inputs, &val_labels)?;
        model.save(&out)?;
        println!("{id}: decrypted model's val accuracy {:.2}%, balanced accuracy {:.2}%", 100.0 * acc, 100.0 * bal);
        return Ok(());
    }
    let mut m = meta(&id);
    s.describe(&mut m, task.train.rows());
    if !quiet {
        eprintln!("training {id} on {} rows, {} epochs max, seed {}", task.train.rows(), s.epochs, s.seed);
    }
    let mut run = train_plain(&task, m)?;
    let best = run.history.best_epoch;
    let epochs_run = run.history.epochs.len();
    {
        let t = &mut run.model.meta_mut().training;
        t.insert("epochs".into(), best.to_string());
        t.insert("epochs_run".into(), epochs_run.to_string());
    }
    run.model.meta_mut().metrics.insert("train_seconds_per_epoch".into(), mean_epoch_seconds(&run.history));
    let (acc, bal) = record_scores(&mut run.model, &val.inputs, &val_labels)?;
    run.model.save(&out)?;
    println!(
        "{id}: val accuracy {:.2}%, balanced accuracy {:.2}%, best epoch {best} of {epochs_run}, {} multiply-adds/frame",
        100.0 * acc,
        100.0 * bal,
        run.model.multiply_adds(),
    );
    wrote(&out, None, false);
    Ok(())
}

/// Defaults of `more train angio --arch bfv`: epochs, batch size, Adam's learning rate and its decay per
/// epoch (the recipe of the digits' BFV network, with the angiograms' batch size).
const BFV_DEFAULTS: (usize, usize, f32, f32) = (50, 32, 1e-3, 0.97);

/// Metadata of the BFV network's float model: task, input `[1, 28, 28]`, the `angio-bfv` preprocessing
/// (`more_imaging::ANGIO_BFV_KIND`: the 128x128 frame averaged to 28x28), pixels over 255, labels.
pub fn bfv_meta(id: &str) -> ModelMeta {
    // angio-cnn's metadata (task, scale, normalisation, labels, logits) with the BFV network's input.
    let side = more_imaging::ANGIO_BFV_SIZE;
    let mut meta = meta(id);
    meta.description = "X-ray coronary angiography view (LCA vs RCA, ARCADE) for BFV: the frame averaged to 28x28, \
                        conv 5x5/2, square, dense (ring operations only; `more bfv quantize` makes the integer \
                        network)"
        .into();
    meta.input_shape = vec![1, side, side];
    meta.preprocessing.kind = more_imaging::ANGIO_BFV_KIND.into();
    meta.preprocessing.resize = None;
    meta
}

/// `more train angio --arch bfv`: the network BFV evaluates, in floats on plaintext frames averaged to
/// 28x28 (the angio-cnn recipe's augmentation, class balancing and selection on the val frames; Adam).
fn train_bfv(options: &TrainOptions) -> Result<()> {
    let common = &options.common;
    ensure!(
        !common.encrypted,
        "--arch bfv trains on plaintext: BFV then evaluates the quantized network (more train angio --encrypted \
         trains angio-cnn)"
    );
    let (epochs, batch_size, lr, lr_decay) = BFV_DEFAULTS;
    let run = &common.run;
    let hyper = Hyper {
        epochs: run.epochs.unwrap_or(epochs),
        batch_size: run.batch_size.unwrap_or(batch_size),
        lr: Some(run.lr.unwrap_or(lr)),
        lr_decay: run.lr_decay.unwrap_or(lr_decay),
        seed: run.seed,
    };
    let id = common.model_id.clone().unwrap_or_else(|| "angio-bfv-float".into());
    let out = model_path(common.out.as_deref(), &id, common.force)?;
    let s = Settings { bfv: true, ..Settings::from_train(options, &hyper) };
    let (task, val_labels) = task(&s)?;
    let val = task.val.clone().context("val split")?;
    let mut m = bfv_meta(&id);
    s.describe(&mut m, task.train.rows());
    if !common.quiet.quiet {
        eprintln!("training {id} on {} rows of 28x28, {} epochs max, seed {}", task.train.rows(), s.epochs, s.seed);
    }
    let started = Instant::now();
    let mut run = train_plain(&task, m)?;
    let seconds = started.elapsed().as_secs_f64();
    let best = run.history.best_epoch;
    let epochs_run = run.history.epochs.len();
    {
        let t = &mut run.model.meta_mut().training;
        t.insert("epochs".into(), best.to_string());
        t.insert("epochs_run".into(), epochs_run.to_string());
    }
    let metrics = &mut run.model.meta_mut().metrics;
    metrics.insert("train_seconds_per_epoch".into(), mean_epoch_seconds(&run.history));
    metrics.insert("train_seconds".into(), seconds);
    let (acc, bal) = record_scores(&mut run.model, &val.inputs, &val_labels)?;
    run.model.save(&out)?;
    println!(
        "{id}: val accuracy {:.2}%, balanced accuracy {:.2}%, best epoch {best} of {epochs_run}, {seconds:.1} s",
        100.0 * acc,
        100.0 * bal,
    );
    wrote(&out, None, false);
    Ok(())
}

/// Encrypted inference of one frame under a fresh key: decrypted logits.
pub fn encrypted_logits(model: &Model, frame: ndarray::ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
    let key = SecretKey::generate(KeyOptions::default())?;
    let enc = key.encrypt_tensor(&frame)?;
    Ok(key.decrypt_tensor(&model.forward_encrypted(&enc)?))
}

/// Plaintext and encrypted figures of one measurement in the `more reproduce angio` table.
#[derive(Debug, Serialize)]
pub struct Pair {
    /// Plaintext.
    pub plain: f64,
    /// Encrypted.
    pub encrypted: f64,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.encrypted / self.plain
    }
}

/// `more reproduce angio`: plaintext vs encrypted training (same seed, data and hyper-parameters) and
/// plaintext vs encrypted inference, from one run.
fn compare(options: &ReproduceOptions, hyper: &Hyper) -> Result<Comparison> {
    let images = &options.images;
    let s = Settings {
        epochs: hyper.epochs,
        seed: hyper.seed,
        batch_size: hyper.batch_size,
        lr: hyper.lr.unwrap_or(LR),
        lr_decay: hyper.lr_decay,
        shift: 4,
        patience: images.patience,
        augment: AUGMENT,
        limit: images.limit,
        data: images.data.dir(),
        progress: !options.quiet.quiet && !options.json.json,
        bfv: false,
    };
    let (mut task, labels) = task(&s)?;
    task.cfg.snapshots = options.comparison.snapshots.clone();
    let val = task.val.clone().context("val split")?;
    let n = labels.len();
    let key = crate::encrypted::fresh_key(options.comparison.key_condition)?;
    let c = train_both(&task, &key, meta("angio-cnn-plain"), meta("angio-cnn-enctrain"))?;
    let (plain_model, enc_run) = (&c.plain.model, &c.encrypted.run);

    // Accuracy: the plaintext-trained model vs the decrypted encrypted-trained one.
    let (pp, _) = predict(plain_model, &val.inputs)?;
    let (dp, dec_logits) = predict(&enc_run.model, &val.inputs)?;
    let (pa, pb) = scores(&pp, &labels);
    let (da, db) = scores(&dp, &labels);

    // Training engine: the encrypted-trained model, its weights still encrypted, on encrypted val frames.
    let (_, plain_secs) = predict_plain(&enc_run.model, &val.inputs, 100)?;
    let mut owner = KeyOwner::new(key.clone());
    let (enc_out, enc_secs) = predict_encrypted(&mut owner, &enc_run.encrypted, &val.inputs, 100)?;
    let ep: Vec<usize> = enc_out.axis_iter(Axis(0)).map(argmax).collect();
    let enc_model_agree = ep.iter().zip(&dp).filter(|(a, b)| a == b).count();
    let enc_model_diff = enc_out.iter().zip(&dec_logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);

    // Serving engine (what the server runs): the plaintext-trained model, one frame at a time, plaintext
    // vs a fresh key per frame (encrypt, forward on ciphertexts, decrypt).
    let mut frame_plain = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let out = plain_model.forward_plain(val.inputs.slice_axis(Axis(0), (i..i + 1).into()))?;
        frame_plain.push(argmax(out.index_axis(Axis(0), 0)));
    }
    let serve_plain = t.elapsed().as_secs_f64();
    let mut frame_enc = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let out = encrypted_logits(plain_model, val.inputs.slice_axis(Axis(0), (i..i + 1).into()))?;
        frame_enc.push(argmax(out.index_axis(Axis(0), 0)));
    }
    let serve_enc = t.elapsed().as_secs_f64();
    let serve_agree = frame_enc.iter().zip(&frame_plain).filter(|(a, b)| a == b).count();

    let ms = |secs: f64| 1e3 * secs / n.max(1) as f64;
    let accuracy = Pair { plain: pa, encrypted: da };
    let balanced = Pair { plain: pb, encrypted: db };
    let wall = Pair { plain: mean_epoch_seconds(&c.plain.history), encrypted: mean_epoch_seconds(&enc_run.history) };
    let cpu = Pair { plain: c.plain.cpu_seconds_per_epoch, encrypted: c.encrypted.cpu_seconds_per_epoch };
    let train_engine = Pair { plain: ms(plain_secs), encrypted: ms(enc_secs) };
    let serve_engine = Pair { plain: ms(serve_plain), encrypted: ms(serve_enc) };
    let report = serde_json::json!({
        "task": "angio", "seed": s.seed, "epochs": s.epochs, "train_rows": task.train.rows(), "val_frames": n,
        "architecture": plain_model.meta().architecture, "key_condition": key.condition_number(),
        "val_accuracy": accuracy, "val_balanced_accuracy": balanced,
        "accuracy_gap_pp": 100.0 * (da - pa),
        "epoch_wall_seconds": wall, "epoch_cpu_seconds": cpu,
        "training_overhead": wall.ratio(), "training_cpu_overhead": cpu.ratio(),
        "inference_ms_per_frame_training_engine": train_engine,
        "inference_ms_per_frame_serving_engine": serve_engine,
        "inference_overhead_training_engine": train_engine.ratio(),
        "inference_overhead_serving_engine": serve_engine.ratio(),
        "encrypted_model_argmax_agreement": enc_model_agree,
        "encrypted_model_max_logit_diff": enc_model_diff,
        "encrypted_inference_argmax_agreement": serve_agree,
        "encrypt_data_seconds": enc_run.encrypt_seconds,
        "plain_epochs_run": c.plain.history.epochs.len(), "encrypted_epochs_run": enc_run.history.epochs.len(),
        "plain_best_epoch": c.plain.history.best_epoch, "encrypted_best_epoch": enc_run.history.best_epoch,
        "plain_history": c.plain.history, "encrypted_history": enc_run.history,
    });
    let mut t = String::new();
    let _ = writeln!(
            t,
        "Angiography (ARCADE, LCA vs RCA), plaintext vs encrypted training — one run, same network, seed {} and \
         hyper-parameters",
        s.seed
    );
    let _ = writeln!(t, "architecture: {}", plain_model.meta().architecture);
    let _ = writeln!(
            t,
        "data: {} training rows (1 augmented copy per frame, classes balanced by resampling), {n} val frames; key κ = {:.2}",
        task.train.rows(),
        key.condition_number()
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "| | plaintext | encrypted | ratio / difference |");
    let _ = writeln!(t, "|---|---|---|---|");
    let mut pct = |p: &Pair, what: &str| {
        let _ = writeln!(
            t,
            "| {what} | {:.2}% | {:.2}% (decrypted model) | {:+.2} pp |",
            100.0 * p.plain,
            100.0 * p.encrypted,
            100.0 * (p.encrypted - p.plain)
        );
    };
    pct(&accuracy, "val accuracy");
    pct(&balanced, "val balanced accuracy");
    let mut row = |p: &Pair, what: &str, unit: &str, note: &str| {
        let _ = writeln!(t, "| {what} | {:.2} {unit} | {:.2} {unit}{note} | {:.2}x |", p.plain, p.encrypted, p.ratio());
    };
    row(&wall, "training time per epoch", "s", "");
    row(&cpu, "CPU time per epoch (all threads, incl. validation)", "s", "");
    row(&train_engine, "inference per frame, training engine (batch 100, f64)", "ms", " (encrypted weights)");
    row(&serve_engine, "inference per frame, serving engine (batch 1, f32, fresh key each)", "ms", "");
    let _ = writeln!(
            t,
        "| epochs run (best) | {} ({}) | {} ({}) | |",
        c.plain.history.epochs.len(),
        c.plain.history.best_epoch,
        enc_run.history.epochs.len(),
        enc_run.history.best_epoch
    );
    let _ = writeln!(t);
    let _ = writeln!(
            t,
        "encrypted-weights model on encrypted val frames: argmax agrees with the decrypted model on {enc_model_agree}/{n}, \
         max |logit diff| {enc_model_diff:.2e}"
    );
    let _ = writeln!(t, "serving engine: encrypted vs plaintext argmax agreement {serve_agree}/{n}");
    let _ = writeln!(t, "encrypting the training and val frames: {:.1} s", enc_run.encrypt_seconds);
    Ok(Comparison {
        headline: vec![
            Paired::new("val accuracy", pa, da, Unit::Fraction, Better::Higher),
            Paired::new("val balanced accuracy", pb, db, Unit::Fraction, Better::Higher),
            Paired::new("training time per epoch", wall.plain, wall.encrypted, Unit::Seconds, Better::Lower),
        ],
        key_condition: Some(key.condition_number()),
        plain_history: c.plain.history,
        encrypted_history: c.encrypted.run.history,
        title: format!("Angiography (ARCADE LCA vs RCA): plaintext vs encrypted training, seed {}", s.seed),
        details: Box::new(report),
        table: t,
        written: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_zero_is_identity_and_90_turns() {
        let f: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let r = rotate(&f, 4, 4, 0.0);
        assert!(r.iter().zip(&f).all(|(a, b)| (a - b).abs() < 1e-5));
        let r = rotate(&f, 4, 4, 90.0);
        // Rotating four times by 90° returns the frame.
        let r4 = (0..3).fold(r.clone(), |g, _| rotate(&g, 4, 4, 90.0));
        assert!(r4.iter().zip(&f).all(|(a, b)| (a - b).abs() < 1e-3));
        assert!(r.iter().zip(&f).any(|(a, b)| (a - b).abs() > 1.0));
    }
}
