//! `more wbc`: the whole-body circulation model (more-hemo) from the command line — one simulation with
//! its outputs and waveforms, or a Latin-hypercube data set for the surrogate.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use more_hemo::{OUTPUT_NAMES, OUTPUT_UNITS, PARAMETERS, PatientParams, plot};

/// `more wbc …`
#[derive(Debug, Args)]
pub struct WbcArgs {
    #[command(subcommand)]
    command: WbcCommand,
}

#[derive(Debug, Subcommand)]
enum WbcCommand {
    /// Simulate one patient to periodic steady state and print the outputs.
    Simulate(SimulateArgs),
    /// Simulate Latin-hypercube samples over the parameter ranges (in parallel) and write them as CSV.
    Dataset(DatasetArgs),
    /// Train the regression surrogate (plaintext, or on encrypted inputs and targets with --encrypted).
    Train(TrainArgs),
    /// Train on plaintext and on encrypted data and compare them on held-out samples (= `more reproduce wbc`).
    Reproduce(ReproduceArgs),
}

#[derive(Debug, Args)]
struct ReproduceArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    json: bool,
}

/// Patient parameters; each defaults to the normal adult (see `docs/wbc.md` for the ranges).
#[derive(Debug, Args)]
struct SimulateArgs {
    /// Heart rate (bpm), 50–110.
    #[arg(long)]
    heart_rate: Option<f64>,
    /// LV active elastance (mmHg/mL), 1.5–3.8.
    #[arg(long)]
    lv_contractility: Option<f64>,
    /// LV passive elastance (mmHg/mL), 0.05–0.15.
    #[arg(long)]
    lv_stiffness: Option<f64>,
    /// RV active elastance (mmHg/mL), 0.3–0.9.
    #[arg(long)]
    rv_contractility: Option<f64>,
    /// Systemic arterial resistance (mmHg·s/mL), 0.55–1.15.
    #[arg(long)]
    systemic_resistance: Option<f64>,
    /// Systemic arterial compliance (mL/mmHg), 0.8–1.8.
    #[arg(long)]
    arterial_compliance: Option<f64>,
    /// Total blood volume (mL), 4500–5600.
    #[arg(long)]
    blood_volume: Option<f64>,
    /// Write the final beat's waveforms as CSV.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write pressures over the beat and the LV pressure–volume loop as SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Print the outputs as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DatasetArgs {
    /// Number of samples.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Output CSV file (parameter columns, then output columns).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Seed of the Latin-hypercube design.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs `more wbc …`.
pub fn run(args: WbcArgs) -> anyhow::Result<()> {
    match args.command {
        WbcCommand::Simulate(a) => simulate(a),
        WbcCommand::Dataset(a) => dataset(a),
        WbcCommand::Train(a) => train(&a),
        WbcCommand::Reproduce(a) => reproduce(&a.train, a.json),
    }
}

fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let mut p = PatientParams::default();
    let given = [
        a.heart_rate,
        a.lv_contractility,
        a.lv_stiffness,
        a.rv_contractility,
        a.systemic_resistance,
        a.arterial_compliance,
        a.blood_volume,
    ];
    for (spec, v) in PARAMETERS.iter().zip(given) {
        if let Some(v) = v {
            p.set(spec.name, v)?;
        }
    }
    let t = std::time::Instant::now();
    let sim = more_hemo::simulate(&p)?;
    let elapsed = t.elapsed();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "params": sim.params,
                "outputs": sim.outputs,
                "beats": sim.beats,
                "periodicity_error": sim.periodicity_error,
                "volume_drift_ml": sim.volume_drift,
            }))?
        );
    } else {
        println!("patient parameters:");
        for (spec, v) in PARAMETERS.iter().zip(p.to_array()) {
            println!("  {:<22} {:>9.3} {}", spec.name, v, spec.unit);
        }
        println!("outputs (final beat at periodic steady state):");
        for ((name, unit), v) in OUTPUT_NAMES.iter().zip(OUTPUT_UNITS).zip(sim.outputs.to_array()) {
            println!("  {name:<22} {v:>9.2} {unit}");
        }
        let o = &sim.outputs;
        println!("  {:<22} {:>9.2} mL", "end_diastolic_volume", o.end_diastolic_volume);
        println!("  {:<22} {:>9.2} mL", "end_systolic_volume", o.end_systolic_volume);
        println!("  {:<22} {:>9.2} mmHg", "central_venous_pressure", o.central_venous_pressure);
        println!("  {:<22} {:>9.2} mmHg", "pulmonary_pressure", o.pulmonary_pressure);
        println!(
            "{} beats to periodic steady state (beat-to-beat change {:.1e} < 1e-4), volume drift {:.1e} mL, {:.1} ms",
            sim.beats,
            sim.periodicity_error,
            sim.volume_drift,
            elapsed.as_secs_f64() * 1e3
        );
    }
    if let Some(path) = &a.csv {
        std::fs::write(path, plot::waveforms_csv(&sim)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.svg {
        std::fs::write(path, plot::waveforms_svg(&sim)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn dataset(a: DatasetArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.n > 0, "--n must be at least 1");
    let bar = indicatif::ProgressBar::new(a.n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} simulations  {elapsed_precise} (eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t = std::time::Instant::now();
    let d = more_hemo::generate(a.n, a.seed, &Default::default(), &|| bar.inc(1));
    bar.finish();
    let file = std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    d.write_csv(std::io::BufWriter::new(file)).with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{} samples ({} failed to converge and were left out) in {:.1} s on {} threads -> {}",
        d.len(),
        d.failed,
        t.elapsed().as_secs_f64(),
        threads(),
        a.out.display()
    );
    Ok(())
}

fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Arguments of `more wbc train` (also what `more train wbc` runs).
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Train on encrypted inputs and targets (the data owner's key; the trainer sees only ciphertexts).
    #[arg(long)]
    pub encrypted: bool,
    /// Training samples (Latin hypercube, seed `--seed`); 10% of them are held out for validation.
    #[arg(long, default_value_t = N_TRAIN)]
    pub n_train: usize,
    /// Held-out test samples (an independent Latin hypercube, seed `--seed + 1000`).
    #[arg(long, default_value_t = N_TEST)]
    pub n_test: usize,
    /// Read the training samples from this CSV (`more wbc dataset`) instead of simulating them.
    #[arg(long, value_name = "FILE")]
    pub train_csv: Option<PathBuf>,
    /// Read the test samples from this CSV instead of simulating them.
    #[arg(long, value_name = "FILE")]
    pub test_csv: Option<PathBuf>,
    /// Hidden units per layer (two tanh layers).
    #[arg(long, default_value_t = HIDDEN)]
    pub hidden: usize,
    /// Epochs.
    #[arg(long, default_value_t = EPOCHS)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = BATCH)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = LR)]
    pub lr: f32,
    /// Learning-rate factor per epoch.
    #[arg(long, default_value_t = LR_DECAY)]
    pub lr_decay: f32,
    /// Seed for the data, initialisation, shuffling and split.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output model file (default `models/wbc-mlp.morenn` for --encrypted, else `models/wbc-mlp-plain.morenn`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
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

const N_TRAIN: usize = 8000;
const N_TEST: usize = 2000;
const HIDDEN: usize = 64;
const EPOCHS: usize = 200;
const BATCH: usize = 32;
const LR: f32 = 3e-3;
const LR_DECAY: f32 = 0.98;

impl TrainArgs {
    /// The `more wbc train` defaults with the options `more train wbc` shares with the other tasks
    /// (`--encrypted`, `--seed`, `--out`, `--lr`, `--quiet`); the WBC-specific hyper-parameters (epochs,
    /// batch size, samples, width) keep their WBC defaults — `more wbc train --help` lists them all.
    pub fn from_train(t: &crate::train::TrainArgs) -> Self {
        Self::with_shared(t.encrypted, t.seed, t.out.clone(), t.lr, t.quiet)
    }

    /// The WBC defaults with the shared options set.
    pub fn with_shared(encrypted: bool, seed: u64, out: Option<PathBuf>, lr: Option<f32>, quiet: bool) -> Self {
        Self {
            encrypted,
            n_train: N_TRAIN,
            n_test: N_TEST,
            train_csv: None,
            test_csv: None,
            hidden: HIDDEN,
            epochs: EPOCHS,
            batch_size: BATCH,
            lr: lr.unwrap_or(LR),
            lr_decay: LR_DECAY,
            seed,
            out,
            quiet,
        }
    }
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
    /// Plaintext inference time per sample over the test set (µs).
    pub infer_plain_us: f64,
    /// Encrypted inference time per sample over the test set (µs; forward pass on ciphertexts).
    pub infer_encrypted_us: f64,
    /// Largest |output| difference between encrypted and plaintext inference (standardised units).
    pub max_encrypted_diff: f64,
    /// Encrypted training only: largest |weight| of the message lane and of the noise (shadow) lane.
    pub lanes: Option<(f64, f64)>,
}

fn load_or_generate(
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
pub fn load_data(a: &TrainArgs) -> anyhow::Result<WbcData> {
    let t = std::time::Instant::now();
    let train = load_or_generate(a.train_csv.as_deref(), a.n_train, a.seed, "training set", a.quiet)?;
    let test = load_or_generate(a.test_csv.as_deref(), a.n_test, a.seed + 1000, "test set", a.quiet)?;
    anyhow::ensure!(train.len() >= 10, "at least 10 training samples are needed");
    let simulated = a.train_csv.is_none() || a.test_csv.is_none();
    let scaling = more_hemo::surrogate::Scaling::fit(&train);
    Ok(WbcData { train, test, scaling, simulate_seconds: if simulated { t.elapsed().as_secs_f64() } else { 0.0 } })
}

fn array(rows: usize, cols: usize, v: Vec<f32>) -> ndarray::ArrayD<f32> {
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[rows, cols]), v).expect("row-major [rows, cols]")
}

/// The surrogate's layers: 7 → hidden → hidden → 6 with tanh.
pub fn specs(hidden: usize) -> Vec<more_nn::LayerSpec> {
    use more_nn::{Activation, LayerSpec};
    let act = LayerSpec::Activation { function: Activation::Tanh };
    vec![
        LayerSpec::Dense { inputs: more_hemo::N_PARAMS, outputs: hidden },
        act.clone(),
        LayerSpec::Dense { inputs: hidden, outputs: hidden },
        act,
        LayerSpec::Dense { inputs: hidden, outputs: more_hemo::N_OUTPUTS },
    ]
}

fn max_abs(a: &ndarray::ArrayD<f32>) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64))
}

/// Trains the surrogate on `data` (plaintext, or encrypted inputs and targets) and evaluates it on the
/// held-out samples, in plaintext and on ciphertexts under a fresh key.
pub fn fit_surrogate(a: &TrainArgs, data: &WbcData, encrypted: bool) -> anyhow::Result<Trained> {
    use more_nn::train::{Dataset, Loss, Net, OptimizerConfig, TrainConfig, fit, split_rows};
    use more_nn::{ModelMeta, OutputKind, Plain};
    use rand_chacha::rand_core::SeedableRng;

    let (np, no) = (more_hemo::N_PARAMS, more_hemo::N_OUTPUTS);
    let scaling = &data.scaling;
    let all = &data.train;
    let x = array(all.len(), np, scaling.inputs(all));
    let y = array(all.len(), no, scaling.targets(all));
    let (tr, va) = split_rows(all.len(), 0.1, a.seed);
    let take = |m: &ndarray::ArrayD<f32>, rows: &[usize]| m.select(ndarray::Axis(0), rows);
    let (xt, yt, xv, yv) = (take(&x, &tr), take(&y, &tr), take(&x, &va), take(&y, &va));

    let id = if encrypted { "wbc-mlp" } else { "wbc-mlp-plain" };
    let mut meta = ModelMeta::new(id, "wbc");
    meta.description = format!(
        "Regression surrogate of the 0D whole-body circulation model (more-hemo): 7 patient parameters to 6 outputs, trained on {}",
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
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        loss: Loss::Mse,
        optimizer: OptimizerConfig::adam(a.lr),
        lr_decay: a.lr_decay,
        patience: None,
        augment_shift: 0,
        classification: false,
        progress: !a.quiet,
        eval_batch: 1000,
        checkpoint: None,
    };
    let specs = specs(a.hidden);
    let (mut model, history, kappa, lanes) = if encrypted {
        use more_enctrain::owner::KeyOwner;
        use more_enctrain::train::{EncryptionSetup, PlainData, TargetNoise, train_encrypted};
        // The data owner's key encrypts inputs AND targets (noise lanes uniform in the standardised data
        // ranges); more-enctrain's task-generic trainer runs more-nn's `fit` on the ciphertexts, then the
        // owner checks its canaries and decrypts the weights.
        let key = more_core::SecretKey::generate(more_core::KeyOptions::default())?;
        let setup = EncryptionSetup {
            input_noise: (-2.0, 2.0),
            targets: TargetNoise::Uniform { lo: -1.0, hi: 1.0 },
            chunk: 2048,
        };
        let train_data = PlainData { inputs: xt, targets: yt };
        let val_data = PlainData { inputs: xv, targets: yv };
        let run = train_encrypted(&key, &train_data, Some(&val_data), &[np], &specs, a.seed, &cfg, meta, &setup)?;
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
        let mut init = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
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
        a.seed,
        tr.len(),
        va.len()
    );
    m.training.insert("dataset".into(), tr_info);
    m.training.insert(
        "test_set".into(),
        format!("{} independent Latin-hypercube samples (seed {})", test.len(), a.seed + 1000),
    );
    m.training.insert("command".into(), crate::data::command_line());
    m.training.insert("seed".into(), a.seed.to_string());
    m.training.insert(
        "optimizer".into(),
        format!("adam lr {} decay {} per epoch, batch {}, MSE on standardised outputs", a.lr, a.lr_decay, a.batch_size),
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
        test: errs,
        train_seconds,
        epochs: history.epochs.len(),
        infer_plain_us,
        infer_encrypted_us,
        max_encrypted_diff,
        lanes,
    })
}

/// `more train wbc [--encrypted]` / `more wbc train`: trains, prints the held-out errors, saves the model.
pub fn train(a: &TrainArgs) -> anyhow::Result<()> {
    let data = load_data(a)?;
    let t = fit_surrogate(a, &data, a.encrypted)?;
    let id = t.model.meta().id.clone();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("models/{id}.{}", more_nn::model::FILE_EXTENSION)));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    t.model.save(&out)?;
    println!(
        "{id} ({}): {} epochs, {:.1} s training; held-out errors on {} samples:",
        if a.encrypted { "trained on encrypted inputs and targets" } else { "trained on plaintext" },
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
    println!(
        "encrypted inference agrees with plaintext within {:.2e} (standardised units); saved {}",
        t.max_encrypted_diff,
        out.display()
    );
    Ok(())
}

/// `more reproduce wbc`: [`reproduce`] with the WBC defaults and the shared options (`--seed`, `--lr`,
/// `--json`, `--quiet`).
pub fn reproduce_from(r: &crate::reproduce::ReproduceArgs) -> anyhow::Result<()> {
    let a = TrainArgs::with_shared(false, r.seed, None, r.lr, r.quiet || r.json);
    reproduce(&a, r.json)
}

/// `more reproduce wbc`: the same data, seed and hyper-parameters trained on plaintext and on encrypted
/// data; per output, mean absolute and relative errors of both on the held-out samples, and the times.
pub fn reproduce(a: &TrainArgs, json: bool) -> anyhow::Result<()> {
    let data = load_data(a)?;
    let plain = fit_surrogate(a, &data, false)?;
    let enc = fit_surrogate(a, &data, true)?;
    let no = more_hemo::N_OUTPUTS;
    let rel_diff: Vec<f64> =
        (0..no).map(|k| (enc.test.mean_rel[k] - plain.test.mean_rel[k]).abs() / plain.test.mean_rel[k]).collect();
    let pass_mre = (0..no).all(|k| plain.test.mean_rel[k] < 0.03 && enc.test.mean_rel[k] < 0.03);
    let pass_close = rel_diff.iter().all(|d| *d < 0.05);
    if json {
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
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "train_samples": data.train.len(), "test_samples": data.test.len(), "epochs": a.epochs,
                "simulate_seconds": data.simulate_seconds,
                "plain_train_seconds": plain.train_seconds, "encrypted_train_seconds": enc.train_seconds,
                "training_overhead": enc.train_seconds / plain.train_seconds,
                "plain_infer_us": plain.infer_plain_us, "encrypted_infer_us": plain.infer_encrypted_us,
                "max_weight_noise_lane": enc.lanes.map(|l| l.1),
                "outputs": per_output, "pass_mre_below_3pct": pass_mre, "pass_encrypted_within_5pct": pass_close,
            }))?
        );
        return Ok(());
    }
    println!(
        "WBC surrogate ({} training / {} held-out samples, 7-{h}-{h}-6 tanh MLP, {} epochs, seed {}):",
        data.train.len(),
        data.test.len(),
        a.epochs,
        a.seed,
        h = a.hidden
    );
    println!();
    println!("| output | plaintext-trained MAE | MRE | encrypted-trained MAE | MRE | MRE difference |");
    println!("|---|---|---|---|---|---|");
    for k in 0..no {
        println!(
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
    println!();
    println!("| | plaintext | encrypted | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| training ({} epochs) | {:.1} s | {:.1} s | {:.2}x |",
        a.epochs,
        plain.train_seconds,
        enc.train_seconds,
        enc.train_seconds / plain.train_seconds
    );
    println!(
        "| inference per sample (batch {}) | {:.2} µs | {:.2} µs | {:.2}x |",
        data.test.len(),
        plain.infer_plain_us,
        plain.infer_encrypted_us,
        plain.infer_encrypted_us / plain.infer_plain_us
    );
    println!();
    if data.simulate_seconds > 0.0 {
        println!("simulating the data sets took {:.1} s", data.simulate_seconds);
    }
    if let Some((message, noise)) = enc.lanes {
        println!("encrypted training: largest |weight| message lane {message:.3}, noise (shadow) lane {noise:.3}");
    }
    println!(
        "bars: both mean relative errors < 3%: {}; encrypted-trained MRE within 5% (relative) of plaintext-trained for every output: {}",
        if pass_mre { "PASS" } else { "FAIL" },
        if pass_close { "PASS" } else { "FAIL" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(encrypted: bool) -> TrainArgs {
        TrainArgs {
            n_train: 48,
            n_test: 16,
            epochs: 3,
            batch_size: 8,
            hidden: 8,
            quiet: true,
            ..TrainArgs::with_shared(encrypted, 5, None, None, true)
        }
    }

    #[test]
    fn plaintext_and_encrypted_training_agree_on_a_small_set() {
        let a = small(false);
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
    fn train_wbc_uses_the_wbc_defaults() {
        let a = TrainArgs::with_shared(true, 7, None, Some(1e-2), false);
        assert_eq!((a.epochs, a.n_train, a.hidden, a.seed, a.lr), (EPOCHS, N_TRAIN, HIDDEN, 7, 1e-2));
        assert_eq!(specs(16).len(), 5);
    }
}
