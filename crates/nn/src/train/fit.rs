//! The training loop: mini-batches, shuffling with a fixed seed, augmentation, per-epoch metrics, early
//! stopping on a validation split, checkpoints — the same code for every [`Algebra`].

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::algebra::{Algebra, PAD, Reveal};
use crate::error::{Error, Result};
use crate::metrics::correct;
use crate::model::ModelMeta;
use crate::train::loss::Loss;
use crate::train::net::Net;
use crate::train::optim::{Optimizer, OptimizerConfig};

/// Inputs `[N, ...]` and targets `[N, K]` in some algebra.
#[derive(Debug, Clone)]
pub struct Dataset<A: Algebra> {
    /// The inputs.
    pub inputs: A::Tensor,
    /// The targets (one-hot for classification).
    pub targets: A::Tensor,
}

impl<A: Algebra> Dataset<A> {
    /// Pairs inputs and targets, checking that they have the same number of rows.
    pub fn new(alg: &A, inputs: A::Tensor, targets: A::Tensor) -> Result<Self> {
        let (si, st) = (alg.shape(&inputs), alg.shape(&targets));
        if si.is_empty() || st.len() != 2 || si[0] != st[0] || si[0] == 0 {
            return Err(Error::Training(format!("inputs {si:?} and targets {st:?} must be [N, ...] and [N, K]")));
        }
        Ok(Dataset { inputs, targets })
    }

    /// Number of samples.
    pub fn len(&self, alg: &A) -> usize {
        alg.shape(&self.inputs)[0]
    }

    /// Rows `rows` as a new data set.
    pub fn select(&self, alg: &A, rows: &[usize]) -> Result<Self> {
        Ok(Dataset { inputs: alg.select_rows(&self.inputs, rows)?, targets: alg.select_rows(&self.targets, rows)? })
    }
}

/// Where to write the best model so far.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The model file.
    pub path: PathBuf,
    /// Metadata to store with it.
    pub meta: ModelMeta,
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Seed of the shuffling and augmentation generator (initialisation takes its own generator).
    pub seed: u64,
    /// The loss.
    pub loss: Loss,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Multiply the learning rate by this after every epoch (1 = constant).
    pub lr_decay: f32,
    /// Stop after this many epochs without improvement on the validation set (needs one).
    pub patience: Option<usize>,
    /// Random shifts of up to ± this many pixels for `[N, C, H, W]` inputs (0 = none). A shift is a
    /// gather: no arithmetic, so it also runs on ciphertexts.
    pub augment_shift: usize,
    /// Report accuracy (argmax of outputs vs targets) and select on it.
    pub classification: bool,
    /// Show a progress bar (feature `progress`; hidden when stderr is not a terminal) and one line per epoch
    /// on stderr.
    pub progress: bool,
    /// Batch size for evaluation passes.
    pub eval_batch: usize,
    /// Save the best model here after each improving epoch.
    pub checkpoint: Option<Checkpoint>,
    /// Write the parameters as the key owner sees them (revealed) after every epoch into this directory,
    /// as `epoch-NNN.f32` (all parameter tensors in order, little-endian `f32`): how two runs drift apart.
    pub snapshots: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            seed: 1,
            loss: Loss::CrossEntropy,
            optimizer: OptimizerConfig::adam(1e-3),
            lr_decay: 1.0,
            patience: None,
            augment_shift: 0,
            classification: true,
            progress: false,
            eval_batch: 500,
            checkpoint: None,
            snapshots: None,
        }
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (as trained: with augmentation).
    pub train_loss: f64,
    /// Training accuracy over the epoch's batches (classification).
    pub train_accuracy: Option<f64>,
    /// Mean validation loss.
    pub val_loss: Option<f64>,
    /// Validation accuracy (classification).
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch (training and validation), seconds (0 where no clock is available).
    pub seconds: f64,
    /// Seconds spent in the training batches only.
    pub train_seconds: f64,
}

/// What [`fit`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    /// One entry per epoch run.
    pub epochs: Vec<EpochStats>,
    /// The epoch whose parameters the network holds at the end (best on validation, else the last).
    pub best_epoch: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
}

/// A wall clock that is absent on `wasm32-unknown-unknown` (where `Instant` panics).
struct Clock(#[cfg(not(target_arch = "wasm32"))] std::time::Instant);

impl Clock {
    fn start() -> Self {
        Clock(
            #[cfg(not(target_arch = "wasm32"))]
            std::time::Instant::now(),
        )
    }
    fn seconds(&self) -> f64 {
        #[cfg(not(target_arch = "wasm32"))]
        return self.0.elapsed().as_secs_f64();
        #[cfg(target_arch = "wasm32")]
        0.0
    }
}

/// Gather indices that shift each image of `[N, C, H, W]` by its own `(dy, dx)`, zero-filling.
fn shift_indices(shape: &[usize], shifts: &[(isize, isize)]) -> Vec<usize> {
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    let mut idx = Vec::with_capacity(n * c * h * w);
    for (b, &(dy, dx)) in shifts.iter().enumerate().take(n) {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let sy = y as isize - dy;
                    let sx = x as isize - dx;
                    idx.push(if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        ((b * c + ch) * h + sy as usize) * w + sx as usize
                    } else {
                        PAD
                    });
                }
            }
        }
    }
    idx
}

/// Mean loss and accuracy (if `classification`) of `net` on `data`, revealed by `reveal`.
pub fn evaluate<A: Algebra, R: Reveal<A> + ?Sized + Sync>(
    alg: &A,
    reveal: &R,
    net: &Net<A>,
    data: &Dataset<A>,
    loss: Loss,
    batch: usize,
) -> Result<(f64, f64)> {
    let n = data.len(alg);
    let rows: Vec<usize> = (0..n).collect();
    let one = |chunk: &[usize]| -> Result<(f64, usize)> {
        let b = data.select(alg, chunk)?;
        let out = reveal.reveal(&net.predict(alg, &b.inputs)?)?;
        let tgt = reveal.reveal(&b.targets)?;
        Ok((loss.value(&out, &tgt)?, correct(&out, &tgt)))
    };
    // Feature `parallel`: the evaluation chunks run on rayon's pool.
    #[cfg(feature = "parallel")]
    let parts: Vec<Result<(f64, usize)>> = {
        use rayon::prelude::*;
        rows.par_chunks(batch.max(1)).map(one).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let parts: Vec<Result<(f64, usize)>> = rows.chunks(batch.max(1)).map(one).collect();
    let (mut total, mut right) = (0.0, 0usize);
    for p in parts {
        let (l, r) = p?;
        total += l;
        right += r;
    }
    Ok((total / n as f64, right as f64 / n as f64))
}

/// One optimisation step on a batch; returns the network's outputs for the batch (before the update).
pub fn train_step<A: Algebra>(
    alg: &A,
    net: &mut Net<A>,
    optimizer: &mut Optimizer<A>,
    loss: Loss,
    inputs: &A::Tensor,
    targets: &A::Tensor,
) -> Result<A::Tensor> {
    let (out, tape) = net.forward(alg, inputs)?;
    let grad = loss.gradient(alg, &out, targets)?;
    let grads = net.backward(alg, tape, grad)?;
    optimizer.step(alg, net.params_mut(), &grads)?;
    Ok(out)
}

#[cfg(feature = "progress")]
type Bar = indicatif::ProgressBar;
#[cfg(not(feature = "progress"))]
type Bar = ();

#[cfg(feature = "progress")]
fn make_bar(show: bool, len: usize, epoch: usize, epochs: usize) -> Option<Bar> {
    if !show {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    Some(bar)
}

#[cfg(not(feature = "progress"))]
fn make_bar(_show: bool, _len: usize, _epoch: usize, _epochs: usize) -> Option<Bar> {
    None
}

#[cfg(feature = "progress")]
fn bar_update(bar: &Option<Bar>, done: usize, msg: String) {
    if let Some(b) = bar {
        b.set_position(done as u64);
        b.set_message(msg);
    }
}

#[cfg(not(feature = "progress"))]
fn bar_update(_bar: &Option<Bar>, _done: usize, _msg: String) {}

#[cfg(feature = "progress")]
fn bar_finish(bar: Option<Bar>, line: String) {
    if let Some(b) = bar {
        b.finish_and_clear();
        eprintln!("{line}");
    }
}

#[cfg(not(feature = "progress"))]
fn bar_finish(_bar: Option<Bar>, _line: String) {}

/// Trains `net` on `train`, selecting on `val` (if given), and returns the history. At the end the net
/// holds the best parameters (by validation accuracy, or loss for regression). `reveal` only serves
/// reporting and checkpoints. The same as driving a [`Fitting`] epoch by epoch.
pub fn fit<A: Algebra, R: Reveal<A> + ?Sized>(
    alg: &A,
    reveal: &R,
    net: &mut Net<A>,
    train: &Dataset<A>,
    val: Option<&Dataset<A>>,
    cfg: &TrainConfig,
) -> Result<History> {
    let mut fitting = Fitting::new(alg, train, val, cfg)?;
    while fitting.next_epoch(alg, reveal, net, train, val, cfg)?.is_some() {}
    Ok(fitting.finish(net, val.is_some()))
}

/// The training loop's state between epochs, for callers that act after every epoch (a page drawing
/// its loss curve, a worker reporting progress): [`Fitting::next_epoch`] until it returns `None`, then
/// [`Fitting::finish`]. Pass the same net, data and configuration to every call.
#[derive(Debug)]
pub struct Fitting<A: Algebra> {
    rng: ChaCha8Rng,
    optimizer: Optimizer<A>,
    order: Vec<usize>,
    history: History,
    best: Option<(f64, Vec<A::Tensor>)>,
    since_best: usize,
    done: bool,
}

impl<A: Algebra> Fitting<A> {
    /// Checks the configuration against the data and starts at epoch 1.
    pub fn new(alg: &A, train: &Dataset<A>, val: Option<&Dataset<A>>, cfg: &TrainConfig) -> Result<Self> {
        if cfg.batch_size == 0 || cfg.epochs == 0 {
            return Err(Error::Training("batch size and epochs must be positive".into()));
        }
        if cfg.patience.is_some() && val.is_none() {
            return Err(Error::Training("early stopping needs a validation set".into()));
        }
        if cfg.augment_shift > 0 && alg.shape(&train.inputs).len() != 4 {
            return Err(Error::Training("shift augmentation needs [N, C, H, W] inputs".into()));
        }
        Ok(Fitting {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            optimizer: Optimizer::new(cfg.optimizer),
            order: (0..train.len(alg)).collect(),
            history: History { epochs: vec![], best_epoch: 0, stopped_early: false },
            best: None,
            since_best: 0,
            done: false,
        })
    }

    /// The epochs run so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Runs the next epoch and returns its metrics, or `None` once all epochs ran or early stopping ended
    /// training.
    pub fn next_epoch<R: Reveal<A> + ?Sized>(
        &mut self,
        alg: &A,
        reveal: &R,
        net: &mut Net<A>,
        train: &Dataset<A>,
        val: Option<&Dataset<A>>,
        cfg: &TrainConfig,
    ) -> Result<Option<EpochStats>> {
        let epoch = self.history.epochs.len() + 1;
        if self.done || epoch > cfg.epochs {
            self.done = true;
            return Ok(None);
        }
        if train.len(alg) != self.order.len() {
            return Err(Error::Training("the training set changed between epochs".into()));
        }
        let input_shape = alg.shape(&train.inputs);
        let batches = self.order.len().div_ceil(cfg.batch_size);
        let clock = Clock::start();
        self.order.shuffle(&mut self.rng);
        let bar = make_bar(cfg.progress, batches, epoch, cfg.epochs);
        let (mut loss_sum, mut right, mut seen) = (0.0, 0usize, 0usize);
        for (bi, rows) in self.order.chunks(cfg.batch_size).enumerate() {
            let batch = train.select(alg, rows)?;
            let inputs = if cfg.augment_shift > 0 {
                let k = cfg.augment_shift as i64;
                let rng = &mut self.rng;
                let mut draw = || rand::Rng::random_range(rng, -k..=k) as isize;
                let shifts: Vec<(isize, isize)> = (0..rows.len()).map(|_| (draw(), draw())).collect();
                let mut shape = input_shape.clone();
                shape[0] = rows.len();
                alg.gather(&batch.inputs, &shift_indices(&shape, &shifts), &shape)?
            } else {
                batch.inputs
            };
            let out = train_step(alg, net, &mut self.optimizer, cfg.loss, &inputs, &batch.targets)?;
            let (o, t) = (reveal.reveal(&out)?, reveal.reveal(&batch.targets)?);
            let l = cfg.loss.value(&o, &t)?;
            if !l.is_finite() {
                return Err(Error::NonFinite("training loss (diverged; lower the learning rate)"));
            }
            loss_sum += l;
            right += correct(&o, &t);
            seen += rows.len();
            let acc =
                if cfg.classification { format!(" acc {:.4}", right as f64 / seen as f64) } else { String::new() };
            bar_update(&bar, bi + 1, format!("loss {:.4}{acc}", loss_sum / seen as f64));
        }
        let train_seconds = clock.seconds();
        let (val_loss, val_accuracy) = match val {
            Some(v) => {
                let (l, a) = evaluate(alg, reveal, net, v, cfg.loss, cfg.eval_batch)?;
                (Some(l), cfg.classification.then_some(a))
            }
            None => (None, None),
        };
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: cfg.classification.then_some(right as f64 / seen as f64),
            val_loss,
            val_accuracy,
            seconds: clock.seconds(),
            train_seconds,
        };
        let mut line = format!("epoch {epoch}/{}: loss {:.4}", cfg.epochs, stats.train_loss);
        if let Some(a) = stats.train_accuracy {
            line.push_str(&format!(" acc {a:.4}"));
        }
        if let Some(l) = stats.val_loss {
            line.push_str(&format!(" | val loss {l:.4}"));
        }
        if let Some(a) = stats.val_accuracy {
            line.push_str(&format!(" val acc {a:.4}"));
        }
        line.push_str(&format!(" ({:.1} s)", stats.seconds));
        bar_finish(bar, line);
        if let Some(dir) = &cfg.snapshots {
            write_snapshot(reveal, net, &dir.join(format!("epoch-{epoch:03}.f32")))?;
        }
        // Higher is better: validation accuracy, else minus validation loss, else minus training loss.
        let score = stats.val_accuracy.or(stats.val_loss.map(|l| -l)).unwrap_or(-stats.train_loss);
        self.history.epochs.push(stats.clone());
        if self.best.as_ref().is_none_or(|(s, _)| score > *s) {
            self.best = Some((score, net.params().into_iter().cloned().collect()));
            self.history.best_epoch = epoch;
            self.since_best = 0;
            if let Some(cp) = &cfg.checkpoint {
                let mut meta = cp.meta.clone();
                meta.training.insert("epochs".into(), epoch.to_string());
                net.to_model(reveal, meta)?.save(&cp.path)?;
            }
        } else {
            self.since_best += 1;
        }
        if cfg.patience.is_some_and(|p| self.since_best >= p) {
            self.history.stopped_early = epoch < cfg.epochs;
            self.done = true;
        }
        if cfg.lr_decay != 1.0 {
            let lr = self.optimizer.config().lr() * cfg.lr_decay;
            self.optimizer.set_lr(lr);
        }
        Ok(Some(stats))
    }

    /// Ends training: with a validation set (`selected`), the net gets the best epoch's parameters back.
    pub fn finish(self, net: &mut Net<A>, selected: bool) -> History {
        if selected && let Some((_, params)) = self.best {
            for (p, b) in net.params_mut().into_iter().zip(params) {
                *p = b;
            }
        }
        self.history
    }
}

/// Writes `net`'s revealed parameters to `path` (see [`TrainConfig::snapshots`]).
fn write_snapshot<A: Algebra, R: Reveal<A> + ?Sized>(reveal: &R, net: &Net<A>, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    for p in net.params() {
        for v in reveal.reveal(p)?.iter() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    let io = |source| Error::Io { path: path.display().to_string(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, bytes).map_err(io)
}

/// Splits plaintext `(inputs, targets)` rows into `(train, validation)` after a seeded shuffle, with
/// `val_fraction` of the rows (at least one) held out.
pub fn split_rows(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rows: Vec<usize> = (0..n).collect();
    rows.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let v = ((n as f64 * val_fraction).round() as usize).clamp(usize::from(n > 1), n.saturating_sub(1));
    let val = rows.split_off(n - v);
    (rows, val)
}

/// Selects rows of a plaintext array (axis 0).
pub fn take_rows(a: &ArrayD<f32>, rows: &[usize]) -> ArrayD<f32> {
    a.select(Axis(0), rows)
}

/// Plaintext training in one call: builds a [`Net`] from `specs` (initialised from `init_seed`), trains it on
/// `train = (inputs [N, ...], targets [N, K])`, selecting on `val` if given, and returns the trained
/// [`crate::Model`] (with `meta`) and the history.
pub fn fit_plain(
    input_shape: &[usize],
    specs: &[crate::LayerSpec],
    train: (ArrayD<f32>, ArrayD<f32>),
    val: Option<(ArrayD<f32>, ArrayD<f32>)>,
    cfg: &TrainConfig,
    init_seed: u64,
    meta: ModelMeta,
) -> Result<(crate::Model, History)> {
    let alg = crate::Plain;
    let train = Dataset::new(&alg, train.0, train.1)?;
    let val = val.map(|(x, y)| Dataset::new(&alg, x, y)).transpose()?;
    let mut net = Net::new(&alg, input_shape, specs, &mut ChaCha8Rng::seed_from_u64(init_seed))?;
    let history = fit(&alg, &alg, &mut net, &train, val.as_ref(), cfg)?;
    Ok((net.to_model(&alg, meta)?, history))
}
