//! The whole-body circulation surrogate under BFV (`more_bfv::regression`): `more bfv quantize-wbc` (float
//! model from `more train wbc --arch bfv` → integer network, checked for wrap-around, measured on the
//! held-out patients and written as a `.bfv.json` model), and the WBC side of `more eval wbc --scheme bfv`
//! and `more bench bfv --task wbc`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use cpu_time::ThreadTime;
use rayon::prelude::*;

use more_bfv::batch::{BATCH_INPUT_LEVEL, BATCH_OUTPUT_LEVEL, BATCH_SLOTS, BatchKeys};
use more_bfv::model::{BfvRegressionModel, FORMAT, REGRESSION_TASK, VERSION};
use more_bfv::params::{PLAINTEXT_MODULUS, scheme_info};
use more_bfv::regression::{FloatWeights, RegressionNet, RegressionRanges, RegressionScaling};
use more_bfv::wire::{decode_batch_keys, decode_ciphertexts, encode_batch_keys, encode_ciphertexts};
use more_bfv::{Client, RegressionEvaluator};
use more_hemo::{N_OUTPUTS, N_PARAMS, OUTPUT_NAMES, OUTPUT_UNITS, PARAMETERS};
use more_nn::{ElementFunction, LayerSpec, Model};

use crate::args::SurrogateArgs;
use crate::paths;
use crate::tasks::Hyper;
use crate::tasks::wbc::{Settings, load_data, load_or_generate};

/// The bundled model's file name in `models/`.
pub const WBC_BFV_MODEL: &str = "wbc-bfv-square.bfv.json";

/// Held-out patients measured by default (the test set of `more train wbc`).
pub const TEST_PATIENTS: usize = 2000;

/// Arguments of `more bfv quantize-wbc`.
#[derive(Debug, Args)]
pub struct QuantizeWbcArgs {
    /// The float model (`more train wbc --arch bfv`: dense 7->H, square, dense H->6).
    #[arg(long)]
    model: PathBuf,
    /// Output file (default `trained/wbc-bfv-square.bfv.json`; an existing file is kept unless `--force`).
    #[arg(long, default_value_os_t = Path::new(paths::TRAINED_DIR).join(WBC_BFV_MODEL))]
    out: PathBuf,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Model id.
    #[arg(long, default_value = "wbc-bfv-square")]
    id: String,
    /// Standardised inputs become `round(z · S)` (default: the best of 8 to 4096 in steps of 2^(1/4) on
    /// the training patients, with `--hidden-levels`).
    #[arg(long, value_name = "S")]
    input_scale: Option<f64>,
    /// Each hidden unit's weights become integers of magnitude at most N (default: searched with
    /// `--input-scale`, from 4 to 512 in steps of 2^(1/4)).
    #[arg(long, value_name = "N")]
    hidden_levels: Option<i64>,
    /// Limbs per output (1 or 2): each output is computed as this many values below t/2, the output
    /// weights split into digits, and added up by the client after decryption (more precision, one result
    /// ciphertext more per output and limb).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    output_limbs: u8,
    /// Seed of the simulated patients (default: the float model's training seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Training patients (the float model's training set): checked for wrap-around, used to pick the
    /// scales.
    #[arg(long, default_value_t = 8000)]
    n_train: usize,
    /// Held-out patients measured (float, integer and BFV networks).
    #[arg(long, default_value_t = TEST_PATIENTS)]
    n_test: usize,
    /// Read the training patients from this CSV (`more wbc dataset`) instead of simulating them.
    #[arg(long, value_name = "FILE")]
    train_csv: Option<PathBuf>,
    /// Read the held-out patients from this CSV instead of simulating them.
    #[arg(long, value_name = "FILE")]
    test_csv: Option<PathBuf>,
}

/// The float weights of `dense 7->H, square, dense H->6`, both matrices as `[outputs][inputs]`.
fn float_weights(model: &Model) -> Result<FloatWeights> {
    let square = LayerSpec::Activation { function: ElementFunction::Square };
    match model.layers() {
        [d1, act, d2]
            if matches!(d1.spec(), LayerSpec::Dense { inputs: N_PARAMS, .. })
                && act.spec() == square
                && matches!(d2.spec(), LayerSpec::Dense { outputs: N_OUTPUTS, .. }) =>
        {
            let t = |w: &ndarray::ArrayD<f32>| -> Result<Vec<f32>> {
                let m = w.view().into_dimensionality::<ndarray::Ix2>().context("dense weight")?;
                Ok(m.t().iter().copied().collect())
            };
            let (a, b) = (d1.weights(), d2.weights());
            Ok(FloatWeights {
                hidden_weight: t(&a[0])?,
                hidden_bias: a[1].iter().copied().collect(),
                output_weight: t(&b[0])?,
                output_bias: b[1].iter().copied().collect(),
            })
        }
        _ => bail!("expected dense 7->H, square, dense H->6 (more train wbc --arch bfv)"),
    }
}

/// The integer network's shape, input box and scaling, before its weights are quantized.
fn template(float: &FloatWeights, model: &Model) -> Result<RegressionNet> {
    let p = &model.meta().preprocessing;
    ensure!(
        p.mean.len() == N_PARAMS
            && p.std.len() == N_PARAMS
            && p.output_scale.len() == N_OUTPUTS
            && p.output_offset.len() == N_OUTPUTS,
        "the float model lacks the WBC standardisation (train it with more train wbc --arch bfv)"
    );
    let hidden = float.hidden_bias.len();
    Ok(RegressionNet {
        inputs: N_PARAMS,
        hidden,
        outputs: N_OUTPUTS,
        scaling: RegressionScaling {
            input_min: PARAMETERS.iter().map(|s| s.min).collect(),
            input_max: PARAMETERS.iter().map(|s| s.max).collect(),
            input_mean: p.mean.iter().map(|&v| f64::from(v)).collect(),
            input_std: p.std.iter().map(|&v| f64::from(v)).collect(),
            input_scale: 1.0,
            output_divisor: vec![1.0; N_OUTPUTS],
            output_limbs: 1,
            limb_bits: 0,
            output_scale: p.output_scale.iter().map(|&v| f64::from(v)).collect(),
            output_offset: p.output_offset.iter().map(|&v| f64::from(v)).collect(),
        },
        hidden_weight: vec![0; hidden * N_PARAMS],
        hidden_bias: vec![0; hidden],
        output_weight: vec![0; N_OUTPUTS * hidden],
        output_bias: vec![0; N_OUTPUTS],
    })
}

/// Per-output mean relative error of `pred` against `truth`.
fn mre(pred: &[Vec<f64>], truth: &[[f64; N_OUTPUTS]]) -> [f64; N_OUTPUTS] {
    let p: Vec<[f64; N_OUTPUTS]> = pred.iter().map(|r| std::array::from_fn(|k| r[k])).collect();
    more_hemo::surrogate::errors(&p, truth).mean_rel
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// What the integer network gives on a set of patients.
struct Simulated {
    /// Physical outputs.
    physical: Vec<Vec<f64>>,
    /// The outputs' limbs, as BFV decrypts them.
    limbs: Vec<Vec<i64>>,
    /// Largest magnitudes met.
    ranges: RegressionRanges,
}

/// The integer network on every patient.
fn simulate(net: &RegressionNet, inputs: &[[f64; N_PARAMS]]) -> Result<Simulated> {
    let runs = inputs
        .par_iter()
        .map(|p| Ok(net.forward(&net.scaling.quantize_input(p)?)))
        .collect::<Result<Vec<_>, more_bfv::BfvError>>()?;
    let ranges = runs.iter().fold(RegressionRanges::default(), |r, (_, x)| r.merge(x));
    let limbs: Vec<Vec<i64>> = runs.into_iter().map(|(y, _)| y).collect();
    Ok(Simulated { physical: limbs.iter().map(|y| net.scaling.decode(y)).collect(), limbs, ranges })
}

/// The float network's physical outputs.
fn float_outputs(net: &RegressionNet, float: &FloatWeights, inputs: &[[f64; N_PARAMS]]) -> Vec<Vec<f64>> {
    inputs.iter().map(|p| net.scaling.physical(&float.view().forward(&net.scaling.standardise(p)))).collect()
}

/// All patients under BFV in the slot-per-sample packing (8,192 per set of ciphertexts), through the wire
/// format: their integer outputs.
fn bfv_all(client: &Client, keys: &BatchKeys, ev: &RegressionEvaluator, xs: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
    let net = ev.net();
    let mut out = Vec::with_capacity(xs.len());
    for chunk in xs.chunks(BATCH_SLOTS) {
        let input =
            encode_ciphertexts(&client.encrypt_samples(chunk, net.inputs, &mut rand::rng())?, BATCH_INPUT_LEVEL);
        let cts = decode_ciphertexts(&input, net.inputs, BATCH_INPUT_LEVEL)?;
        let result = encode_ciphertexts(&ev.evaluate(keys, &cts)?, BATCH_OUTPUT_LEVEL);
        let back = decode_ciphertexts(&result, net.result_ciphertexts(), BATCH_OUTPUT_LEVEL)?;
        out.extend(client.decrypt_samples(&back, net.result_ciphertexts(), chunk.len())?);
    }
    Ok(out)
}

fn settings(
    seed: u64,
    n_train: usize,
    n_test: usize,
    train_csv: Option<PathBuf>,
    test_csv: Option<PathBuf>,
) -> Settings {
    let surrogate = SurrogateArgs { n_train, n_test, train_csv, test_csv, samples: None, hidden: 0 };
    let hyper = Hyper { epochs: 1, batch_size: 1, lr: None, lr_decay: 1.0, seed };
    Settings::new(&surrogate, &hyper, None, false)
}

/// The held-out patients of a model trained with `seed` (an independent Latin hypercube, seed + 1000, as
/// `more train wbc` draws them).
fn held_out(seed: u64, n: usize) -> Result<more_hemo::Dataset> {
    load_or_generate(None, n, seed + 1000, "held-out patients", false)
}

fn model_seed(model: &BfvRegressionModel) -> u64 {
    model.training.get("seed").and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// `more bfv quantize-wbc`.
pub fn quantize(args: &QuantizeWbcArgs) -> Result<()> {
    crate::files::refuse_existing(&[&args.out], args.force)?;
    let float_model = Model::load(&args.model)?;
    ensure!(
        float_model.meta().task == "wbc",
        "{} is a {} model, not wbc",
        args.model.display(),
        float_model.meta().task
    );
    let float = float_weights(&float_model)?;
    let template = template(&float, &float_model)?;
    let seed =
        args.seed.unwrap_or_else(|| float_model.meta().training.get("seed").and_then(|s| s.parse().ok()).unwrap_or(1));
    let data = load_data(&settings(seed, args.n_train, args.n_test, args.train_csv.clone(), args.test_csv.clone()))?;
    let (train, test) = (&data.train, &data.test);
    // The scales: given, or the pair with the smallest mean relative error on the training patients.
    let scales: Vec<f64> = match args.input_scale {
        Some(s) => vec![s],
        None => (0..=36).map(|i| 8.0 * 2f64.powf(f64::from(i) / 4.0)).map(f64::round).collect(),
    };
    let levels: Vec<i64> = match args.hidden_levels {
        Some(l) => vec![l],
        None => (0..=28).map(|i| (4.0 * 2f64.powf(f64::from(i) / 4.0)).round() as i64).collect(),
    };
    let mut best: Option<(f64, RegressionNet)> = None;
    for &s in &scales {
        for &l in &levels {
            let Ok(net) = RegressionNet::quantize(&float.view(), &template, s, l, usize::from(args.output_limbs))
            else {
                continue;
            };
            let err = mean(&mre(&simulate(&net, &train.inputs)?.physical, &train.outputs));
            if best.as_ref().is_none_or(|(e, _)| err < *e) {
                best = Some((err, net));
            }
        }
    }
    let (_, net) = best.context("no scale fits below t/2")?;
    let half_t = (PLAINTEXT_MODULUS / 2) as i64;
    let worst = net.box_ranges();
    let train_ranges = simulate(&net, &train.inputs)?.ranges;
    let Simulated { physical: int_pred, limbs: int_out, ranges: test_ranges } = simulate(&net, &test.inputs)?;
    let sample_ranges = train_ranges.merge(&test_ranges);
    ensure!(worst.max() < half_t && sample_ranges.max() < half_t, "a value reaches t/2 = {half_t}");
    let float_pred = float_outputs(&net, &float, &test.inputs);
    // BFV on every held-out patient at once (one slot each).
    let client = Client::new(&mut rand::rng());
    let keys = client.batch_keys(&mut rand::rng())?;
    let ev = RegressionEvaluator::new(&net)?;
    let xs = test.inputs.iter().map(|p| net.scaling.quantize_input(p)).collect::<Result<Vec<_>, _>>()?;
    let t = Instant::now();
    let bfv_out = bfv_all(&client, &keys, &ev, &xs)?;
    let bfv_seconds = t.elapsed().as_secs_f64();
    let exact = bfv_out.iter().zip(&int_out).filter(|(a, b)| a == b).count();
    let bfv_pred: Vec<Vec<f64>> = bfv_out.iter().map(|y| net.scaling.decode(y)).collect();
    // MORE's surrogate on the same patients, for comparison.
    let more_model = Model::load(paths::bundled(paths::WBC_MODEL)).ok();
    let more_errors = more_model.as_ref().map(|m| more_wbc_mlp_errors(m, test)).transpose()?;
    let (fe, ie, be) = (mre(&float_pred, &test.outputs), mre(&int_pred, &test.outputs), mre(&bfv_pred, &test.outputs));
    let mut metrics = BTreeMap::new();
    for (k, name) in OUTPUT_NAMES.iter().enumerate() {
        metrics.insert(format!("float_test_mre_{name}"), fe[k]);
        metrics.insert(format!("integer_test_mre_{name}"), ie[k]);
        metrics.insert(format!("bfv_test_mre_{name}"), be[k]);
        if let Some(m) = &more_errors {
            metrics.insert(format!("more_wbc_mlp_test_mre_{name}"), m[k]);
        }
    }
    metrics.insert("float_test_mre_mean".into(), mean(&fe));
    metrics.insert("integer_test_mre_mean".into(), mean(&ie));
    metrics.insert("bfv_test_mre_mean".into(), mean(&be));
    if let Some(m) = &more_errors {
        metrics.insert("more_wbc_mlp_test_mre_mean".into(), mean(m));
    }
    metrics.insert("test_patients".into(), test.len() as f64);
    metrics.insert("train_patients".into(), train.len() as f64);
    metrics.insert("bfv_exact_outputs".into(), exact as f64);
    metrics.insert("bfv_all_test_patients_seconds".into(), bfv_seconds);
    metrics.insert("largest_magnitude_worst_case".into(), worst.max() as f64);
    metrics.insert("largest_magnitude_samples".into(), sample_ranges.max() as f64);
    metrics.insert("headroom_bits".into(), (half_t as f64 / worst.max() as f64).log2());
    let mut quantization = BTreeMap::new();
    quantization.insert(
        "method".into(),
        "post-training fixed point, round to nearest; scales picked on the training patients".into(),
    );
    quantization.insert(
        "input".into(),
        format!("X = round((p - mean) / std * {}) (standardised inputs)", net.scaling.input_scale),
    );
    quantization.insert(
        "hidden_weights".into(),
        format!(
            "per hidden unit, largest |weight| -> {} (unit factor c_h folded into the output weights as 1/c_h^2)",
            args.hidden_levels.unwrap_or_else(|| largest_hidden(&net))
        ),
    );
    quantization.insert(
        "output_weights".into(),
        format!(
            "per output, the largest divisor whose worst case over the input box stays below t/2 \
             for every limb; {} limbs per output, lower limbs {} bits",
            net.scaling.output_limbs, net.scaling.limb_bits
        ),
    );
    quantization.insert("biases".into(), "scaled like the values they are added to".into());
    quantization.insert(
        "wrap_around".into(),
        format!(
            "worst case over the accepted input box {} (every partial sum, any order), largest over {} training and {} held-out patients {}; t/2 = {half_t}",
            worst.max(),
            train.len(),
            test.len(),
            sample_ranges.max()
        ),
    );
    let mut training = float_model.meta().training.clone();
    training.insert("float_model".into(), float_model.meta().id.clone());
    training.insert("quantize_command".into(), crate::files::command_line());
    training.insert("seed".into(), seed.to_string());
    training.insert("test_set".into(), format!("{} Latin-hypercube patients (seed {})", test.len(), seed + 1000));
    let model = BfvRegressionModel {
        format: FORMAT.into(),
        version: VERSION,
        id: args.id.clone(),
        task: REGRESSION_TASK.into(),
        description: "Whole-body circulation surrogate under BFV at 128-bit security: 7 patient parameters to 6 \
                      outputs through one squared hidden layer, on integers, evaluated exactly (ring operations \
                      only)"
            .into(),
        architecture: format!(
            "dense 7->{h}, square, dense {h}->6 (integers mod t; one patient per slot)",
            h = net.hidden
        ),
        scheme: scheme_info(),
        quantization,
        ranges: worst,
        sample_ranges,
        metrics,
        training,
        input_names: PARAMETERS.iter().map(|p| p.name.to_string()).collect(),
        labels: OUTPUT_NAMES.iter().map(|s| s.to_string()).collect(),
        units: OUTPUT_UNITS.iter().map(|s| s.to_string()).collect(),
        network: net,
        float_network: float,
    };
    print_table(&model, &fe, &ie, &be, more_errors.as_ref(), test.len());
    println!(
        "input scale {}, worst case {} < t/2 = {half_t} ({:.1} bits of headroom); BFV outputs equal to the integer network {exact} / {}",
        model.network.scaling.input_scale,
        worst.max(),
        (half_t as f64 / worst.max() as f64).log2(),
        test.len()
    );
    crate::files::create_parent(&args.out)?;
    model.save(&args.out)?;
    crate::files::wrote(&args.out, None, false);
    Ok(())
}

fn largest_hidden(net: &RegressionNet) -> i64 {
    net.hidden_weight.iter().map(|w| w.abs()).max().unwrap_or(0)
}

/// MORE's bundled surrogate (`wbc-mlp`) on the same patients, plaintext inference (its encrypted inference
/// agrees to within 2.4e-6).
fn more_wbc_mlp_errors(model: &Model, test: &more_hemo::Dataset) -> Result<[f64; N_OUTPUTS]> {
    let scaling = crate::tasks::wbc::scaling_of(model)?;
    Ok(crate::tasks::wbc::plaintext_errors(model, &scaling, test)?.mean_rel)
}

fn print_table(
    model: &BfvRegressionModel,
    fe: &[f64; N_OUTPUTS],
    ie: &[f64; N_OUTPUTS],
    be: &[f64; N_OUTPUTS],
    more: Option<&[f64; N_OUTPUTS]>,
    n: usize,
) {
    println!("{}: mean relative error on {n} held-out patients", model.id);
    println!("| output | float | integer | BFV | MORE wbc-mlp |");
    println!("|---|---|---|---|---|");
    let cell = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.3}%", 100.0 * v));
    for (k, name) in OUTPUT_NAMES.iter().enumerate() {
        println!(
            "| {name} | {:.3}% | {:.3}% | {:.3}% | {} |",
            100.0 * fe[k],
            100.0 * ie[k],
            100.0 * be[k],
            cell(more.map(|m| m[k]))
        );
    }
    println!(
        "| mean | {:.3}% | {:.3}% | {:.3}% | {} |",
        100.0 * mean(fe),
        100.0 * mean(ie),
        100.0 * mean(be),
        cell(more.map(|m| mean(m)))
    );
}

fn load_model(path: Option<&Path>) -> Result<BfvRegressionModel> {
    let path = path.map_or_else(|| paths::bundled(WBC_BFV_MODEL), Path::to_path_buf);
    Ok(BfvRegressionModel::load(&path)?)
}

/// `more eval wbc --scheme bfv [--model F] [--limit N]`: the float, integer and BFV networks on the first N
/// held-out patients (default 2,000; BFV on all of them at once, one patient per slot), per-output mean
/// relative errors, and whether BFV equals the integer network.
pub fn eval(model_path: Option<&Path>, limit: Option<usize>, json: bool) -> Result<()> {
    let model = load_model(model_path)?;
    let n = limit.unwrap_or(TEST_PATIENTS);
    ensure!(n > 0, "--limit must be at least 1");
    let test = held_out(model_seed(&model), n)?;
    let net = &model.network;
    let float_pred = float_outputs(net, &model.float_network, &test.inputs);
    let Simulated { physical: int_pred, limbs: int_out, ranges } = simulate(net, &test.inputs)?;
    let client = Client::new(&mut rand::rng());
    let keys = decode_batch_keys(&encode_batch_keys(&client.batch_keys(&mut rand::rng())?))?;
    let ev = RegressionEvaluator::new(net)?;
    let xs = test.inputs.iter().map(|p| net.scaling.quantize_input(p)).collect::<Result<Vec<_>, _>>()?;
    let t = Instant::now();
    let bfv_out = bfv_all(&client, &keys, &ev, &xs)?;
    let seconds = t.elapsed().as_secs_f64();
    let exact = bfv_out.iter().zip(&int_out).filter(|(a, b)| a == b).count();
    let bfv_pred: Vec<Vec<f64>> = bfv_out.iter().map(|y| net.scaling.decode(y)).collect();
    let (fe, ie, be) = (mre(&float_pred, &test.outputs), mre(&int_pred, &test.outputs), mre(&bfv_pred, &test.outputs));
    if json {
        let outputs: Vec<_> = (0..N_OUTPUTS)
            .map(|k| {
                serde_json::json!({"output": OUTPUT_NAMES[k], "float_mre": fe[k], "integer_mre": ie[k], "bfv_mre": be[k]})
            })
            .collect();
        let out = serde_json::json!({
            "model": model.id, "scheme": "bfv", "task": "wbc", "patients": test.len(),
            "float_mre": mean(&fe), "integer_mre": mean(&ie), "bfv_mre": mean(&be),
            "worst_output_bfv_mre": be.iter().copied().fold(0.0, f64::max),
            "exact_outputs": exact, "largest_magnitude": ranges.max(), "half_plaintext_modulus": PLAINTEXT_MODULUS / 2,
            "bfv_seconds": seconds, "outputs": outputs,
        });
        println!("{out}");
    } else {
        let more = Model::load(paths::bundled(paths::WBC_MODEL)).ok();
        let more_errors = more.as_ref().map(|m| more_wbc_mlp_errors(m, &test)).transpose()?;
        print_table(&model, &fe, &ie, &be, more_errors.as_ref(), test.len());
        println!(
            "BFV outputs equal to the integer network {exact} / {}; largest magnitude {} < t/2 = {}; BFV {seconds:.2} s for all (one patient per slot)",
            test.len(),
            ranges.max(),
            PLAINTEXT_MODULUS / 2
        );
    }
    Ok(())
}

/// `more bench bfv --task wbc [--json] [--limit N]`: N held-out patients (default 200), one at a time, end
/// to end (encrypt, serialise, server evaluation, serialise, decrypt), one patient per set of ciphertexts.
pub fn bench(model_path: Option<&Path>, limit: Option<usize>, json: bool) -> Result<()> {
    let model = load_model(model_path)?;
    let n = limit.unwrap_or(200);
    ensure!(n > 0, "--limit must be at least 1");
    let test = held_out(model_seed(&model), n)?;
    let net = &model.network;
    let mut rng = rand::rng();
    let t0 = Instant::now();
    let client = Client::new(&mut rng);
    let key_bytes = encode_batch_keys(&client.batch_keys(&mut rng)?);
    let keygen_ms = t0.elapsed().as_secs_f64() * 1e3;
    let keys = decode_batch_keys(&key_bytes)?;
    let ev = RegressionEvaluator::new(net)?;
    let (mut enc, mut srv, mut dec, mut cpu) = (0.0, 0.0, 0.0, 0.0);
    let (mut input_bytes, mut output_bytes, mut exact) = (0, 0, 0);
    let mut preds = Vec::with_capacity(test.len());
    for p in &test.inputs {
        let x = net.scaling.quantize_input(p)?;
        let (expect, _) = net.forward(&x);
        let cpu0 = ThreadTime::now();
        let t0 = Instant::now();
        let input = encode_ciphertexts(
            &client.encrypt_samples(std::slice::from_ref(&x), net.inputs, &mut rng)?,
            BATCH_INPUT_LEVEL,
        );
        let t1 = Instant::now();
        let cts = decode_ciphertexts(&input, net.inputs, BATCH_INPUT_LEVEL)?;
        let output = encode_ciphertexts(&ev.evaluate(&keys, &cts)?, BATCH_OUTPUT_LEVEL);
        let t2 = Instant::now();
        let back = decode_ciphertexts(&output, net.result_ciphertexts(), BATCH_OUTPUT_LEVEL)?;
        let y = client.decrypt_samples(&back, net.result_ciphertexts(), 1)?.remove(0);
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        (enc, srv, dec) = (enc + ms(t0, t1), srv + ms(t1, t2), dec + ms(t2, t3));
        cpu += cpu0.elapsed().as_secs_f64() * 1e3;
        (input_bytes, output_bytes) = (input.len(), output.len());
        exact += usize::from(y == expect);
        preds.push(net.scaling.decode(&y));
    }
    let errors = mre(&preds, &test.outputs);
    let nf = test.len() as f64;
    let info = scheme_info();
    let out = serde_json::json!({
        "task": "wbc",
        "model": model.id,
        "images": test.len(),
        "patients": test.len(),
        "mean_relative_error": mean(&errors),
        "worst_output_relative_error": errors.iter().copied().fold(0.0, f64::max),
        "relative_error_per_output": OUTPUT_NAMES.iter().zip(errors).map(|(n, e)| (n.to_string(), e)).collect::<BTreeMap<_, _>>(),
        "exact_outputs": exact,
        "ms_per_image": (enc + srv + dec) / nf,
        "cpu_ms_per_image": cpu / nf,
        "encrypt_ms": enc / nf,
        "server_ms": srv / nf,
        "decrypt_ms": dec / nf,
        "keygen_ms": keygen_ms,
        "eval_key_bytes": key_bytes.len(),
        "ciphertext_bytes": input_bytes,
        "input_ciphertexts": net.inputs,
        "result_ciphertexts": net.result_ciphertexts(),
        "result_bytes": output_bytes,
        "hidden_units": net.hidden,
        "security_bits": info.security_bits,
        "ring_degree": info.ring_degree,
        "ciphertext_modulus_bits": info.ciphertext_modulus_bits,
        "plaintext_modulus": info.plaintext_modulus,
        "threads": rayon::current_num_threads(),
    });
    if json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
