//! The whole-body circulation surrogate: an MLP (`more_nn::networks::wbc_mlp`) from 7 patient parameters
//! to 6 outputs of the 0D model (more-hemo), trained on simulated Latin-hypercube samples — on plaintext or
//! on encrypted inputs and targets — and scored by its errors on held-out samples. `more wbc` has the
//! simulator's own commands.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use more_hemo::{OUTPUT_NAMES, OUTPUT_UNITS};

use super::{Defaults, Hyper, Task, Use};
use crate::args::{ReproduceOptions, SurrogateArgs, TrainOptions};
use crate::comparison::{Better, Comparison, Paired, Unit};
use crate::files::{command_line, model_path, wrote};
use crate::server_job::{BothSides, Outcome, ServerData, ServerJob};

/// The WBC task.
pub struct Wbc;

/// The default Adam learning rate.
const LR: f32 = 3e-3;

impl Task for Wbc {
    fn name(&self) -> &'static str {
        "wbc"
    }

    fn about(&self) -> &'static str {
        "whole-body circulation surrogate, 7-64-64-6 tanh MLP on simulated samples (200 epochs, batch 32, Adam lr \
         3e-3, decay 0.98)"
    }

    fn train_defaults(&self) -> Defaults {
        Defaults { epochs: 200, batch_size: 32, lr_decay: 0.98 }
    }

    fn reproduce_defaults(&self) -> Defaults {
        self.train_defaults()
    }

    fn bundled_model(&self) -> Option<&'static str> {
        Some(crate::paths::WBC_MODEL)
    }

    fn train(&self, options: &TrainOptions, hyper: &Hyper) -> anyhow::Result<()> {
        train(options, hyper)
    }

    fn server_job(&self, options: &TrainOptions, hyper: &Hyper) -> anyhow::Result<ServerJob> {
        server_job(options, hyper)
    }

    fn compare(&self, options: &ReproduceOptions, hyper: &Hyper) -> anyhow::Result<Comparison> {
        compare(options, hyper)
    }

    fn options(&self, command: Use) -> &'static [&'static str] {
        const SAMPLES: [&str; 6] = ["n_train", "n_test", "train_csv", "test_csv", "samples", "hidden"];
        match command {
            Use::Train => &["n_train", "n_test", "train_csv", "test_csv", "samples", "hidden", "arch"],
            Use::Reproduce => &SAMPLES,
            Use::TrainOnServer => &["n_train", "n_test", "train_csv", "test_csv", "samples", "hidden", "server"],
        }
    }

    fn instead(&self, option: &str, _command: Use) -> Option<&'static str> {
        Some(match option {
            "limit" => "use --samples to train on fewer patients",
            "test_limit" => "use --samples or --n-test for fewer held-out patients",
            "data" => "wbc simulates its patients, or reads them with --train-csv and --test-csv",
            "arch" => "more train wbc --arch bfv trains the BFV network; the width of the wbc network is --hidden",
            "augment" | "patience" | "validation" => {
                "wbc holds out 10% of its training samples for validation and trains every epoch"
            }
            "optimizer" => "wbc trains with Adam",
            "save" | "force" => "more reproduce wbc writes no model; more train wbc does",
            "svg" => "more reproduce wbc draws a figure only for a study (--runs K)",
            _ => return None,
        })
    }
}

/// One run's settings: where the samples come from, the hyper-parameters, the model id.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Samples and width.
    pub surrogate: SurrogateArgs,
    /// Hyper-parameters.
    pub hyper: Hyper,
    /// Model id (default `wbc-mlp`, or `wbc-mlp-plain` when trained on plaintext).
    pub model_id: Option<String>,
    /// No progress bars.
    pub quiet: bool,
    /// Per-epoch parameter snapshots (`plain/` or `encrypted/` below it).
    pub snapshots: Option<PathBuf>,
    /// Condition number of the training key (default: a fresh key with `κ` uniform in [1, 10]).
    pub key_condition: Option<f64>,
    /// Train the network BFV evaluates (`7 → hidden → square → 6`, [`bfv_specs`]) instead of the tanh MLP.
    pub bfv: bool,
}

impl Settings {
    /// The settings of one run.
    pub fn new(surrogate: &SurrogateArgs, hyper: &Hyper, model_id: Option<String>, quiet: bool) -> Settings {
        Settings {
            surrogate: surrogate.clone(),
            hyper: *hyper,
            model_id,
            quiet,
            snapshots: None,
            key_condition: None,
            bfv: false,
        }
    }

    /// The model id: `--model-id`, else `wbc-mlp` (trained on encrypted data) or `wbc-mlp-plain`.
    /// With `--arch bfv`: `wbc-bfv-float` (`-enctrain` when trained on encrypted data).
    pub fn model_id(&self, encrypted: bool) -> String {
        let default = match (self.bfv, encrypted) {
            (true, true) => "wbc-bfv-float-enctrain",
            (true, false) => "wbc-bfv-float",
            (false, true) => "wbc-mlp",
            (false, false) => "wbc-mlp-plain",
        };
        self.model_id.clone().unwrap_or_else(|| default.into())
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        self.hyper.lr.unwrap_or(LR)
    }
}

/// The surrogate's layers: 7 → hidden → hidden → 6 with tanh.
pub fn specs(hidden: usize) -> Vec<more_nn::LayerSpec> {
    more_nn::networks::wbc_mlp(more_hemo::N_PARAMS, hidden, more_hemo::N_OUTPUTS)
}

/// The network BFV evaluates exactly (`more train wbc --arch bfv`): 7 → hidden → square → 6, one
/// multiplicative level. Its outputs are quadratic polynomials of the standardised inputs.
pub fn bfv_specs(hidden: usize) -> Vec<more_nn::LayerSpec> {
    use more_nn::{ElementFunction, LayerSpec};
    vec![
        LayerSpec::Dense { inputs: more_hemo::N_PARAMS, outputs: hidden },
        LayerSpec::Activation { function: ElementFunction::Square },
        LayerSpec::Dense { inputs: hidden, outputs: more_hemo::N_OUTPUTS },
    ]
}

/// The simulated samples and the scaling fitted on the training part.
pub struct WbcData {
    /// Training samples (validation rows are split off by seed).
    pub train: more_hemo::Dataset,
    /// Held-out test samples.
    pub test: more_hemo::Dataset,
    /// Input standardisation and output scaling (fitted on `train`).
    pub scaling: more_hemo::surrogate::Scaling,
    /// Seconds spent simulating (0 if read from CSV).
    pub simulate_seconds: f64,
}

/// What one training run produced.
pub struct Trained {
    /// The (decrypted) model, metadata filled in.
    pub model: more_nn::Model,
    /// Errors on the held-out test samples.
    pub test: more_hemo::surrogate::ErrorTable,
    /// Training seconds (training batches of all epochs).
    pub train_seconds: f64,
    /// Epochs run.
    pub epochs: usize,
    /// The training history (decrypted figures for an encrypted run).
    pub history: more_nn::train::History,
    /// Plaintext inference time per sample over the test set (µs).
    pub infer_plain_us: f64,
    /// Encrypted inference time per sample over the test set (µs; forward pass on ciphertexts).
    pub infer_encrypted_us: f64,
    /// Largest |output| difference between encrypted and plaintext inference (standardised units).
    pub max_encrypted_diff: f64,
    /// Encrypted training only: largest |weight| of the message lane and of the noise (shadow) lane.
    pub lanes: Option<(f64, f64)>,
    /// Encrypted training only: the training key's condition number.
    pub key_condition: Option<f64>,
}

/// Reads `csv`, or simulates `n` Latin-hypercube patients with `seed` (a progress bar unless `quiet`).
pub(crate) fn load_or_generate(
    csv: Option<&std::path::Path>,
    n: usize,
    seed: u64,
    what: &str,
    quiet: bool,
) -> anyhow::Result<more_hemo::Dataset> {
    if let Some(path) = csv {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        return Ok(more_hemo::Dataset::read_csv(std::io::BufReader::new(f))?);
    }
    anyhow::ensure!(n > 0, "the {what} needs at least one sample");
    let bar = if quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(n as u64) };
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what}: {{bar:40}} {{pos}}/{{len}} simulations {{elapsed_precise}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let d = more_hemo::generate(n, seed, &Default::default(), &|| bar.inc(1));
    bar.finish_and_clear();
    anyhow::ensure!(!d.is_empty(), "no {what} samples converged");
    Ok(d)
}

/// Simulates (or reads) the training and test samples.
pub fn load_data(a: &Settings) -> anyhow::Result<WbcData> {
    let (seed, quiet) = (a.hyper.seed, a.quiet);
    let mut d = a.surrogate.clone();
    if let Some(n) = d.samples {
        anyhow::ensure!(n >= 15, "--samples needs at least 15 patients (80% train, 20% held out)");
        d.n_test = n / 5;
        d.n_train = n - d.n_test;
    }
    let t = std::time::Instant::now();
    let train = load_or_generate(d.train_csv.as_deref(), d.n_train, seed, "training set", quiet)?;
    let test = load_or_generate(d.test_csv.as_deref(), d.n_test, seed + 1000, "test set", quiet)?;
    anyhow::ensure!(train.len() >= 10, "at least 10 training samples are needed");
    let simulated = d.train_csv.is_none() || d.test_csv.is_none();
    let scaling = more_hemo::surrogate::Scaling::fit(&train);
    Ok(WbcData { train, test, scaling, simulate_seconds: if simulated { t.elapsed().as_secs_f64() } else { 0.0 } })
}

fn array(rows: usize, cols: usize, v: Vec<f32>) -> ndarray::ArrayD<f32> {
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[rows, cols]), v).expect("row-major [rows, cols]")
}

fn max_abs(a: &ndarray::ArrayD<f32>) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64))
}

/// Trains the surrogate on `data` (plaintext, or encrypted inputs and targets) and evaluates it on the
/// held-out samples, in plaintext and on ciphertexts under a fresh key.
pub fn fit_surrogate(a: &Settings, data: &WbcData, encrypted: bool) -> anyhow::Result<Trained> {
    use more_nn::train::{Dataset, Loss, Net, OptimizerConfig, TrainConfig, fit, split_rows};
    use more_nn::{ModelMeta, OutputKind, Plain};
    use rand_chacha::rand_core::SeedableRng;

    let (np, no) = (more_hemo::N_PARAMS, more_hemo::N_OUTPUTS);
    let scaling = &data.scaling;
    let all = &data.train;
    let x = array(all.len(), np, scaling.inputs(all));
    let y = array(all.len(), no, scaling.targets(all));
    let (h, seed) = (&a.hyper, a.hyper.seed);
    let (tr, va) = split_rows(all.len(), 0.1, seed);
    let take = |m: &ndarray::ArrayD<f32>, rows: &[usize]| m.select(ndarray::Axis(0), rows);
    let (xt, yt, xv, yv) = (take(&x, &tr), take(&y, &tr), take(&x, &va), take(&y, &va));

    let id = a.model_id(encrypted);
    let mut meta = ModelMeta::new(&id, "wbc");
    meta.description = format!(
        "Regression surrogate of the 0D whole-body circulation model (more-hemo): 7 patient parameters to 6 outputs{}, trained on {}",
        if a.bfv { " through one hidden layer squared (the network BFV evaluates)" } else { "" },
        if encrypted { "MORE-encrypted inputs and targets" } else { "plaintext data" }
    );
    meta.preprocessing.kind = "wbc-params".into();
    meta.preprocessing.scale = 1.0;
    meta.preprocessing.mean = scaling.input_mean.iter().map(|v| *v as f32).collect();
    meta.preprocessing.std = scaling.input_std.iter().map(|v| *v as f32).collect();
    meta.preprocessing.output_offset = scaling.output_offset.iter().map(|v| *v as f32).collect();
    meta.preprocessing.output_scale = scaling.output_scale.iter().map(|v| *v as f32).collect();
    meta.output_kind = OutputKind::Values;
    meta.labels = OUTPUT_NAMES.iter().map(|s| s.to_string()).collect();
    let cfg = TrainConfig {
        epochs: h.epochs,
        batch_size: h.batch_size,
        seed,
        loss: Loss::Mse,
        optimizer: OptimizerConfig::adam(a.lr()),
        lr_decay: h.lr_decay,
        patience: None,
        augment_shift: 0,
        classification: false,
        progress: !a.quiet,
        eval_batch: 1000,
        checkpoint: None,
        snapshots: a.snapshots.as_ref().map(|d| d.join(if encrypted { "encrypted" } else { "plain" })),
    };
    let specs = if a.bfv { bfv_specs(a.surrogate.hidden) } else { specs(a.surrogate.hidden) };
    let (mut model, history, kappa, lanes) = if encrypted {
        use more_enctrain::owner::KeyOwner;
        use more_enctrain::train::{EncryptionSetup, PlainData, train_encrypted};
        // The data owner's key encrypts inputs AND targets (noise lanes uniform in the standardised data
        // ranges); more-enctrain's task-generic trainer runs more-nn's `fit` on the ciphertexts, then the
        // owner checks its canaries and decrypts the weights.
        let key = crate::encrypted::fresh_key(a.key_condition)?;
        let setup = EncryptionSetup::standardised_regression();
        let train_data = PlainData { inputs: xt, targets: yt };
        let val_data = PlainData { inputs: xv, targets: yv };
        let run = train_encrypted(&key, &train_data, Some(&val_data), &[np], &specs, seed, &cfg, meta, &setup)?;
        // How large the shadow model on the noise lane grew (it must stay bounded for precision).
        let owner = KeyOwner::new(key.clone());
        let (mut message, mut noise) = (0.0f64, 0.0f64);
        for p in &run.encrypted.params {
            message = message.max(max_abs(&owner.decrypt(p)));
            noise = noise.max(max_abs(&owner.decrypt_noise(p)));
        }
        (run.model, run.history, Some(key.condition_number()), Some((message, noise)))
    } else {
        let alg = Plain;
        let train_set = Dataset::new(&alg, xt, yt)?;
        let val_set = Dataset::new(&alg, xv, yv)?;
        let mut init = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut net = Net::new(&alg, &[np], &specs, &mut init)?;
        let history = fit(&alg, &alg, &mut net, &train_set, Some(&val_set), &cfg)?;
        (net.to_model(&alg, meta)?, history, None, None)
    };
    // Held-out evaluation: plaintext inference, and encrypted inference under a fresh key.
    let test = &data.test;
    let xtest = array(test.len(), np, scaling.inputs(test));
    let t = std::time::Instant::now();
    let yp = model.forward_plain(xtest.view())?;
    let infer_plain_us = t.elapsed().as_secs_f64() * 1e6 / test.len() as f64;
    let pred = scaling.outputs(yp.as_slice().context("non-contiguous output")?);
    let errs = more_hemo::surrogate::errors(&pred, &test.outputs);
    let key = more_core::SecretKey::generate(more_core::KeyOptions::default())?;
    let cx = key.encrypt_tensor::<f32>(&xtest.view())?;
    let t = std::time::Instant::now();
    let cy = model.forward_encrypted(&cx)?;
    let infer_encrypted_us = t.elapsed().as_secs_f64() * 1e6 / test.len() as f64;
    let ye = key.decrypt_tensor(&cy);
    let max_encrypted_diff = ye.iter().zip(yp.iter()).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
    let train_seconds: f64 = history.epochs.iter().map(|e| e.train_seconds).sum();
    let m = model.meta_mut();
    let tr_info = format!(
        "more-hemo Latin hypercube (seed {}): {} training samples, {} held out for validation",
        seed,
        tr.len(),
        va.len()
    );
    m.training.insert("dataset".into(), tr_info);
    m.training.insert(
        "test_set".into(),
        format!("{} independent Latin-hypercube samples (seed {})", test.len(), seed + 1000),
    );
    m.training.insert("command".into(), command_line());
    m.training.insert("seed".into(), seed.to_string());
    m.training.insert(
        "optimizer".into(),
        format!("adam lr {} decay {} per epoch, batch {}, MSE on standardised outputs", a.lr(), h.lr_decay, h.batch_size),
    );
    m.training.insert("epochs".into(), history.best_epoch.to_string());
    m.training.insert("epochs_run".into(), history.epochs.len().to_string());
    m.training.insert("encrypted".into(), encrypted.to_string());
    if let Some(k) = kappa {
        m.training.insert("key_condition_number".into(), format!("{k:.3}"));
    }
    for (k, name) in OUTPUT_NAMES.iter().enumerate() {
        m.metrics.insert(format!("test_mae_{name}"), errs.mean_abs[k]);
        m.metrics.insert(format!("test_mre_{name}"), errs.mean_rel[k]);
    }
    m.metrics.insert("test_mre_mean".into(), errs.mean_rel.iter().sum::<f64>() / no as f64);
    m.metrics.insert("train_seconds".into(), train_seconds);
    m.metrics.insert("max_encrypted_output_diff".into(), max_encrypted_diff);
    if let Some((message, noise)) = lanes {
        m.metrics.insert("max_weight_message_lane".into(), message);
        m.metrics.insert("max_weight_noise_lane".into(), noise);
    }
    Ok(Trained {
        model,
        key_condition: kappa,
        test: errs,
        train_seconds,
        epochs: history.epochs.len(),
        history,
        infer_plain_us,
        infer_encrypted_us,
        max_encrypted_diff,
        lanes,
    })
}

/// `more train wbc [--encrypted]` (also `more wbc train`): trains, prints the held-out errors, saves the
/// model.
fn train(options: &TrainOptions, hyper: &Hyper) -> anyhow::Result<()> {
    let common = &options.common;
    let mut a = Settings::new(&options.surrogate, hyper, common.model_id.clone(), common.quiet.quiet);
    a.bfv = match options.images.arch {
        // The default value of --arch: the tanh MLP.
        crate::args::Arch::Relu => false,
        crate::args::Arch::Bfv => true,
        crate::args::Arch::Square => anyhow::bail!(
            "wbc trains the tanh MLP, or with --arch bfv the square-activated network BFV evaluates (not square)"
        ),
    };
    let encrypted = common.encrypted;
    let out = model_path(common.out.as_deref(), &a.model_id(encrypted), common.force)?;
    let data = load_data(&a)?;
    let t = fit_surrogate(&a, &data, encrypted)?;
    let id = t.model.meta().id.clone();
    t.model.save(&out)?;
    println!(
        "{id} ({}): {} epochs, {:.1} s training; held-out errors on {} samples:",
        if encrypted { "trained on encrypted inputs and targets" } else { "trained on plaintext" },
        t.epochs,
        t.train_seconds,
        t.test.n
    );
    for (k, name) in OUTPUT_NAMES.iter().enumerate() {
        println!(
            "  {name:<20} MAE {:>8.4} {:<6} MRE {:>7.3}%  (max {:.2}%)",
            t.test.mean_abs[k],
            OUTPUT_UNITS[k],
            100.0 * t.test.mean_rel[k],
            100.0 * t.test.max_rel[k]
        );
    }
    if let Some((message, noise)) = t.lanes {
        println!("largest |weight|: message lane {message:.3}, noise (shadow) lane {noise:.3}");
    }
    println!("encrypted inference agrees with plaintext within {:.2e} (standardised units)", t.max_encrypted_diff);
    wrote(&out, None, false);
    Ok(())
}

/// Held-out errors of `model` (plaintext inference) on `data.test`.
fn held_out_errors(model: &more_nn::Model, data: &WbcData) -> anyhow::Result<more_hemo::surrogate::ErrorTable> {
    plaintext_errors(model, &data.scaling, &data.test)
}

/// Errors of `model` (plaintext inference, inputs and outputs scaled by `scaling`) on `test`.
pub fn plaintext_errors(
    model: &more_nn::Model,
    scaling: &more_hemo::surrogate::Scaling,
    test: &more_hemo::Dataset,
) -> anyhow::Result<more_hemo::surrogate::ErrorTable> {
    let x = array(test.len(), more_hemo::N_PARAMS, scaling.inputs(test));
    let y = model.forward_plain(x.view())?;
    let pred = scaling.outputs(y.as_slice().context("non-contiguous output")?);
    Ok(more_hemo::surrogate::errors(&pred, &test.outputs))
}

/// The scaling a surrogate model file carries (its preprocessing's mean, std, output scale and offset).
pub fn scaling_of(model: &more_nn::Model) -> anyhow::Result<more_hemo::surrogate::Scaling> {
    let p = &model.meta().preprocessing;
    anyhow::ensure!(
        p.mean.len() == more_hemo::N_PARAMS
            && p.std.len() == more_hemo::N_PARAMS
            && p.output_scale.len() == more_hemo::N_OUTPUTS
            && p.output_offset.len() == more_hemo::N_OUTPUTS,
        "{} lacks the surrogate's scaling",
        model.meta().id
    );
    let f = |v: &[f32], k: usize| f64::from(v[k]);
    Ok(more_hemo::surrogate::Scaling {
        input_mean: std::array::from_fn(|k| f(&p.mean, k)),
        input_std: std::array::from_fn(|k| f(&p.std, k)),
        output_offset: std::array::from_fn(|k| f(&p.output_offset, k)),
        output_scale: std::array::from_fn(|k| f(&p.output_scale, k)),
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The largest `--samples N` whose training part (`N − N/5`, the rest held out) has at most `rows` patients.
fn samples_for_training_rows(rows: usize) -> usize {
    let mut n = rows + rows / 4 + 1;
    while n - n / 5 > rows {
        n -= 1;
    }
    n
}

/// `more train wbc --encrypted --server URL` (`crate::server_training`): the server trains its `wbc-mlp`
/// on the simulated patients' standardised inputs and targets, encrypted with the noise lanes of
/// `more train wbc --encrypted`; both models are scored on the held-out patients.
fn server_job(options: &TrainOptions, hyper: &Hyper) -> anyhow::Result<ServerJob> {
    use more_enctrain::train::EncryptionSetup;
    use more_enctrain::upload::{JobRequest, OptimizerKind};

    let common = &options.common;
    let a = Settings::new(&options.surrogate, hyper, common.model_id.clone(), common.quiet.quiet || common.json);
    anyhow::ensure!(a.surrogate.hidden == 64, "the server's wbc-mlp has 64 hidden units (--hidden 64)");
    let id = a.model_id(true);
    let request = JobRequest {
        network: "wbc-mlp".into(),
        epochs: hyper.epochs,
        batch_size: hyper.batch_size,
        lr: a.lr(),
        lr_decay: hyper.lr_decay,
        optimizer: OptimizerKind::Adam,
        seed: hyper.seed,
    };
    let mut plain_meta = more_nn::ModelMeta::new("wbc-mlp-plain", "wbc");
    plain_meta.output_kind = more_nn::OutputKind::Values;
    let (np, no) = (more_hemo::N_PARAMS, more_hemo::N_OUTPUTS);
    let job_id = id.clone();
    let data = move || -> anyhow::Result<ServerData> {
        let data = load_data(&a)?;
        let all = &data.train;
        let x = array(all.len(), np, data.scaling.inputs(all));
        let y = array(all.len(), no, data.scaling.targets(all));
        let from_csv = a.surrogate.train_csv.is_some();
        let fewer = move |train_rows: usize| {
            if from_csv {
                format!("use at most {train_rows} rows of the --train-csv file")
            } else {
                format!("pass --samples {} (or --n-train {train_rows})", samples_for_training_rows(train_rows))
            }
        };
        let finish = move |sides: &mut BothSides, server: &str| -> anyhow::Result<Outcome> {
            let plain = held_out_errors(&sides.plain, &data)?;
            let enc = held_out_errors(&sides.remote.model, &data)?;
            let (plain_mre, enc_mre) = (mean(&plain.mean_rel), mean(&enc.mean_rel));
            let m = sides.remote.model.meta_mut();
            m.id = id.clone();
            m.task = "wbc".into();
            m.labels = OUTPUT_NAMES.iter().map(|s| s.to_string()).collect();
            m.output_kind = more_nn::OutputKind::Values;
            m.preprocessing.kind = "wbc-params".into();
            m.preprocessing.scale = 1.0;
            m.preprocessing.mean = data.scaling.input_mean.iter().map(|v| *v as f32).collect();
            m.preprocessing.std = data.scaling.input_std.iter().map(|v| *v as f32).collect();
            m.preprocessing.output_offset = data.scaling.output_offset.iter().map(|v| *v as f32).collect();
            m.preprocessing.output_scale = data.scaling.output_scale.iter().map(|v| *v as f32).collect();
            m.training.insert("command".into(), command_line());
            m.training.insert("encrypted".into(), "true".into());
            m.training.insert("trainer".into(), format!("more-server at {server}"));
            m.metrics.insert("test_mre_mean".into(), enc_mre);
            let per_output: Vec<_> = (0..no)
                .map(|k| {
                    serde_json::json!({
                        "output": OUTPUT_NAMES[k], "plaintext_mre": plain.mean_rel[k], "encrypted_mre": enc.mean_rel[k],
                        "plaintext_mae": plain.mean_abs[k], "encrypted_mae": enc.mean_abs[k],
                    })
                })
                .collect();
            let remote = &sides.remote;
            let json = serde_json::json!({
                "train_samples": data.train.len(), "test_samples": data.test.len(),
                "plaintext_mre": plain_mre, "encrypted_mre": enc_mre,
                "mre_relative_difference": (enc_mre - plain_mre).abs() / plain_mre,
                "plaintext_final_loss": sides.plain_history.epochs.last().map(|e| e.train_loss),
                "encrypted_final_loss": remote.epoch_losses.last(),
                "outputs": per_output,
            });
            let mut t = String::new();
            let _ = writeln!(
                t,
                "wbc-mlp trained by {server} on encrypted data ({} patients, {} held out, {} epochs): {:.1} s from encryption to the decrypted model, {} bytes uploaded",
                data.train.len(),
                data.test.len(),
                remote.epoch_losses.len(),
                remote.seconds,
                remote.upload_bytes
            );
            let _ = writeln!(
                t,
                "time per epoch: {:.3} s here on plaintext, {:.3} s on the server on ciphertexts",
                sides.plain_epoch_seconds(),
                sides.server_epoch_seconds()
            );
            let _ = writeln!(t, "| output | plaintext-trained MRE | encrypted-trained MRE |");
            let _ = writeln!(t, "|---|---|---|");
            for (k, name) in OUTPUT_NAMES.iter().enumerate() {
                let _ = writeln!(t, "| {name} | {:.3}% | {:.3}% |", 100.0 * plain.mean_rel[k], 100.0 * enc.mean_rel[k]);
            }
            let _ = writeln!(t, "| mean | {:.3}% | {:.3}% |", 100.0 * plain_mre, 100.0 * enc_mre);
            Ok(Outcome { json, text: t })
        };
        Ok(ServerData {
            inputs: x,
            targets: y,
            // The same noise lanes as `more train wbc --encrypted`.
            setup: EncryptionSetup::standardised_regression(),
            noun: "training patients",
            fewer: Box::new(fewer),
            finish: Box::new(finish),
        })
    };
    Ok(ServerJob {
        id: job_id,
        request,
        input_shape: vec![np],
        specs: specs(64),
        loss: more_nn::train::Loss::Mse,
        classification: false,
        plain_meta,
        data: Box::new(data),
    })
}

/// `more reproduce wbc`: the same data, seed and hyper-parameters trained on plaintext and on encrypted
/// data; per output, mean absolute and relative errors of both on the held-out samples, and the times.
fn compare(options: &ReproduceOptions, hyper: &Hyper) -> anyhow::Result<Comparison> {
    let json = options.json.json;
    let mut a = Settings::new(&options.surrogate, hyper, None, options.quiet.quiet || json);
    a.snapshots = options.comparison.snapshots.clone();
    a.key_condition = options.comparison.key_condition;
    let data = load_data(&a)?;
    let plain = fit_surrogate(&a, &data, false)?;
    let enc = fit_surrogate(&a, &data, true)?;
    let no = more_hemo::N_OUTPUTS;
    let rel_diff: Vec<f64> =
        (0..no).map(|k| (enc.test.mean_rel[k] - plain.test.mean_rel[k]).abs() / plain.test.mean_rel[k]).collect();
    let pass_mre = (0..no).all(|k| plain.test.mean_rel[k] < 0.03 && enc.test.mean_rel[k] < 0.03);
    let pass_close = rel_diff.iter().all(|d| *d < 0.05);
    let (plain_mre, enc_mre) = (mean(&plain.test.mean_rel), mean(&enc.test.mean_rel));
    let per_output: Vec<_> = (0..no)
        .map(|k| {
            serde_json::json!({
                "output": OUTPUT_NAMES[k], "unit": OUTPUT_UNITS[k],
                "plain_mae": plain.test.mean_abs[k], "plain_mre": plain.test.mean_rel[k],
                "encrypted_mae": enc.test.mean_abs[k], "encrypted_mre": enc.test.mean_rel[k],
                "mre_relative_difference": rel_diff[k],
            })
        })
        .collect();
    let report = serde_json::json!({
        "task": "wbc", "seed": hyper.seed, "key_condition": enc.key_condition,
        "train_samples": data.train.len(), "test_samples": data.test.len(), "epochs": hyper.epochs,
        "simulate_seconds": data.simulate_seconds,
        "plain_train_seconds": plain.train_seconds, "encrypted_train_seconds": enc.train_seconds,
        "training_overhead": enc.train_seconds / plain.train_seconds,
        "plain_infer_us": plain.infer_plain_us, "encrypted_infer_us": plain.infer_encrypted_us,
        "max_weight_noise_lane": enc.lanes.map(|l| l.1),
        "plain_mean_mre": plain_mre, "encrypted_mean_mre": enc_mre,
        "outputs": per_output, "pass_mre_below_3pct": pass_mre, "pass_encrypted_within_5pct": pass_close,
    });
    let mut t = String::new();
    let _ = writeln!(
        t,
        "WBC surrogate ({} training / {} held-out samples, 7-{h}-{h}-6 tanh MLP, {} epochs, seed {}):",
        data.train.len(),
        data.test.len(),
        hyper.epochs,
        hyper.seed,
        h = a.surrogate.hidden
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "| output | plaintext-trained MAE | MRE | encrypted-trained MAE | MRE | MRE difference |");
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for k in 0..no {
        let _ = writeln!(
        t,
            "| {} ({}) | {:.4} | {:.3}% | {:.4} | {:.3}% | {:.2}% |",
            OUTPUT_NAMES[k],
            OUTPUT_UNITS[k],
            plain.test.mean_abs[k],
            100.0 * plain.test.mean_rel[k],
            enc.test.mean_abs[k],
            100.0 * enc.test.mean_rel[k],
            100.0 * rel_diff[k]
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "| | plaintext | encrypted | ratio |");
    let _ = writeln!(t, "|---|---|---|---|");
    let _ = writeln!(
        t,
        "| training ({} epochs) | {:.1} s | {:.1} s | {:.2}x |",
        hyper.epochs,
        plain.train_seconds,
        enc.train_seconds,
        enc.train_seconds / plain.train_seconds
    );
    let _ = writeln!(
        t,
        "| inference per sample (batch {}) | {:.2} µs | {:.2} µs | {:.2}x |",
        data.test.len(),
        plain.infer_plain_us,
        plain.infer_encrypted_us,
        plain.infer_encrypted_us / plain.infer_plain_us
    );
    let _ = writeln!(t);
    if data.simulate_seconds > 0.0 {
        let _ = writeln!(t, "simulating the data sets took {:.1} s", data.simulate_seconds);
    }
    if let Some((message, noise)) = enc.lanes {
        let _ = writeln!(t, "encrypted training: largest |weight| message lane {message:.3}, noise (shadow) lane {noise:.3}");
    }
    let _ = writeln!(
        t,
        "bars: both mean relative errors < 3%: {}; encrypted-trained MRE within 5% (relative) of plaintext-trained for every output: {}",
        if pass_mre { "PASS" } else { "FAIL" },
        if pass_close { "PASS" } else { "FAIL" }
    );
    Ok(Comparison {
        headline: vec![
            Paired::new("mean relative error (6 outputs)", plain_mre, enc_mre, Unit::Fraction, Better::Lower),
            Paired::new("training time", plain.train_seconds, enc.train_seconds, Unit::Seconds, Better::Lower),
        ],
        key_condition: enc.key_condition,
        plain_history: plain.history,
        encrypted_history: enc.history,
        title: format!("WBC surrogate: plaintext vs encrypted training, seed {}", hyper.seed),
        details: Box::new(report),
        table: t,
        written: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::defaults;

    fn small() -> Settings {
        let surrogate = SurrogateArgs { n_train: 48, n_test: 16, hidden: 8, ..defaults::<SurrogateArgs>() };
        let hyper = Hyper { epochs: 3, batch_size: 8, lr: None, lr_decay: 0.98, seed: 5 };
        Settings::new(&surrogate, &hyper, None, true)
    }

    #[test]
    fn plaintext_and_encrypted_training_agree_on_a_small_set() {
        let a = small();
        let data = load_data(&a).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (48, 16));
        let plain = fit_surrogate(&a, &data, false).unwrap();
        let enc = fit_surrogate(&a, &data, true).unwrap();
        assert_eq!(plain.model.meta().labels, OUTPUT_NAMES.to_vec());
        assert_eq!(plain.model.meta().preprocessing.output_scale.len(), more_hemo::N_OUTPUTS);
        assert_eq!(enc.model.meta().id, "wbc-mlp");
        assert!(enc.lanes.is_some_and(|(m, n)| m.is_finite() && n.is_finite()));
        // Same data, seed and initialisation: the decrypted model predicts what the plaintext one does.
        for k in 0..more_hemo::N_OUTPUTS {
            let (p, e) = (plain.test.mean_abs[k], enc.test.mean_abs[k]);
            assert!(p.is_finite() && (p - e).abs() <= 1e-3 * p.max(1e-3), "{k}: {p} vs {e}");
        }
        // Encrypted inference of each model decrypts to its plaintext inference.
        assert!(plain.max_encrypted_diff < 1e-3 && enc.max_encrypted_diff < 1e-3);
    }

    #[test]
    fn samples_for_training_rows_keeps_within_the_rows() {
        for rows in 1..500 {
            let n = samples_for_training_rows(rows);
            assert!(n - n / 5 <= rows && (n + 1) - (n + 1) / 5 > rows, "{rows}: {n}");
        }
        assert_eq!(samples_for_training_rows(800), 1000);
    }

    /// `more train wbc` and `more wbc train` without options: the WBC defaults, whatever the image tasks use.
    #[test]
    fn train_wbc_uses_the_wbc_defaults() {
        let run = crate::args::RunArgs { epochs: None, seed: 7, batch_size: None, lr: Some(1e-2), lr_decay: None };
        let hyper = Hyper::new(&run, Wbc.train_defaults());
        let a = Settings::new(&defaults(), &hyper, None, false);
        assert_eq!((hyper.epochs, hyper.batch_size, hyper.lr_decay, hyper.seed), (200, 32, 0.98, 7));
        assert_eq!((a.surrogate.n_train, a.surrogate.n_test, a.surrogate.hidden, a.lr()), (8000, 2000, 64, 1e-2));
        let hyper = Hyper { lr: None, ..hyper };
        assert_eq!(Settings::new(&defaults(), &hyper, None, false).lr(), LR);
        assert_eq!(specs(16).len(), 5);
    }
}
