//! `more bfv`: BFV beside MORE (`more-bfv`). `more bfv quantize` (float model → integer network checked on
//! every test image), and the BFV side of `more eval mnist --scheme bfv` and `more bench bfv`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, FromArgMatches, Subcommand};
use cpu_time::ThreadTime;
use rayon::prelude::*;

use more_bfv::network::argmax;
use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL, PLAINTEXT_MODULUS, scheme_info};
use more_bfv::wire::{decode_ciphertexts, decode_keys, encode_ciphertexts, encode_keys};
use more_bfv::{BfvModel, Client, Evaluator, FloatNet, QuantizedNet, Ranges};
use more_nn::{ElementFunction, LayerSpec, Model};

use crate::paths;

/// Arguments of `more bfv`.
#[derive(Debug, Args)]
pub struct BfvArgs {
    #[command(subcommand)]
    command: BfvCommand,
}

#[derive(Debug, Subcommand)]
enum BfvCommand {
    /// Quantize a float model (`more train mnist --arch bfv`) to the integer network BFV evaluates; checks
    /// every test image for values reaching t/2 and writes the model file with its metrics.
    Quantize(QuantizeArgs),
    /// Quantize the WBC surrogate's float model (`more train wbc --arch bfv`) to the integer network BFV
    /// evaluates; checks the worst case over the accepted inputs and every patient for values reaching
    /// t/2, measures float, integer and BFV networks on the held-out patients and writes the model file.
    QuantizeWbc(super::bfv_wbc::QuantizeWbcArgs),
}

/// Arguments of `more bfv quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The float model (`.morenn`, conv 1->10 5x5/2, square, dense 1960->10).
    #[arg(long)]
    model: PathBuf,
    /// Output file (default `trained/mnist-bfv-square.bfv.json`; an existing file is kept unless
    /// `--force`). The server serves `models/`: write there with `--out` to replace the bundled model.
    #[arg(long, default_value_os_t = Path::new(paths::TRAINED_DIR).join(paths::BFV_MODEL))]
    out: PathBuf,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Model id.
    #[arg(long, default_value = "mnist-bfv-square")]
    id: String,
    /// Pixels become integers 0..=N.
    #[arg(long, default_value_t = 15)]
    input_levels: i64,
    /// Convolution weights become integers of magnitude at most N.
    #[arg(long, default_value_t = 31)]
    conv_levels: i64,
    /// Dense weights become integers of magnitude at most N.
    #[arg(long, default_value_t = 31)]
    dense_levels: i64,
    /// Data directory (default `../shared/data`, or env `MORE_DATA`).
    #[arg(long)]
    data: Option<PathBuf>,
}

/// The classification task BFV has a model for (the default of `more bench bfv`).
pub const TASK: &str = "mnist";

/// The regression task BFV has a model for (`more eval wbc --scheme bfv`, `more bench bfv --task wbc`).
pub const REGRESSION_TASK: &str = "wbc";

/// An error unless `task` is one BFV has a model for ([`TASK`], [`REGRESSION_TASK`]).
pub fn require_task(task: &str) -> Result<()> {
    ensure!(
        task == TASK || task == REGRESSION_TASK,
        "--scheme bfv has models for {TASK} and {REGRESSION_TASK} only, not {task}"
    );
    Ok(())
}

/// Runs `more bfv`.
pub fn run(args: BfvArgs) -> Result<()> {
    match args.command {
        BfvCommand::Quantize(a) => quantize(&a),
        BfvCommand::QuantizeWbc(a) => super::bfv_wbc::quantize(&a),
    }
}

/// The float weights of a model with the BFV architecture, the dense matrix transposed to
/// `[outputs, inputs]`: conv weight, conv bias, dense weight, dense bias.
fn float_weights(model: &Model) -> Result<[Vec<f32>; 4]> {
    let square = LayerSpec::Activation { function: ElementFunction::Square };
    match model.layers() {
        [conv, act, flatten, dense]
            if matches!(conv.spec(), LayerSpec::Conv2d { .. })
                && act.spec() == square
                && flatten.spec() == LayerSpec::Flatten
                && matches!(dense.spec(), LayerSpec::Dense { .. }) =>
        {
            let (c, d) = (conv.weights(), dense.weights());
            let dw = d[0].view().into_dimensionality::<ndarray::Ix2>().context("dense weight")?;
            Ok([
                c[0].iter().copied().collect(),
                c[1].iter().copied().collect(),
                dw.t().iter().copied().collect(),
                d[1].iter().copied().collect(),
            ])
        }
        _ => bail!("expected conv2d, square, flatten, dense (more train mnist --arch bfv)"),
    }
}

/// The MNIST test images as rows of 784 values in `[0, 1]`, and labels.
pub(super) fn test_images(data_dir: Option<&Path>, limit: Option<usize>) -> Result<(Vec<Vec<f32>>, Vec<u8>)> {
    let dir = paths::data_dir(data_dir);
    let test = crate::tasks::mnist::load(&dir, "test", limit)?;
    let rows = test.inputs.as_slice().context("inputs not contiguous")?.chunks(784).map(<[f32]>::to_vec).collect();
    Ok((rows, test.labels))
}

/// The integer network on every image: (correct, predictions, logits, ranges).
pub(super) fn simulate(
    net: &QuantizedNet,
    images: &[Vec<f32>],
    labels: &[u8],
) -> Result<(usize, Vec<Vec<i64>>, Ranges)> {
    let results = images
        .par_iter()
        .map(|img| Ok(net.forward(&net.quantize_image(img)?)))
        .collect::<Result<Vec<_>, more_bfv::BfvError>>()?;
    let ranges = results.iter().fold(Ranges::default(), |r, (_, x)| r.merge(x));
    let correct = results.iter().zip(labels).filter(|((l, _), y)| argmax(l) == **y as usize).count();
    Ok((correct, results.into_iter().map(|(l, _)| l).collect(), ranges))
}

/// `more import --bfv-out`: quantizes an imported model (already written to `model`) with the default
/// levels (or `levels` = input, conv, dense), checking every MNIST test image for wrap-around as `more bfv quantize` does. The model must take
/// pixels as the bundled BFV model does (`x / 255`, no mean or standard deviation).
pub fn quantize_imported(
    model: &Path,
    out: &Path,
    id: &str,
    levels: Option<&[i64]>,
    data: Option<&Path>,
    force: bool,
) -> Result<()> {
    let float = Model::load(model)?;
    let p = &float.meta().preprocessing;
    let unit =
        (p.scale - 1.0 / 255.0).abs() < 1e-9 && p.mean.iter().all(|&m| m == 0.0) && p.std.iter().all(|&s| s == 1.0);
    ensure!(
        unit,
        "BFV quantizes pixels as x / 255: import with --scale 0.00392156862745098 --mean 0 --std 1 (the \
         network must have been trained on pixels in [0, 1])"
    );
    // The command's own parser supplies the default levels.
    let mut argv: Vec<std::ffi::OsString> = vec!["quantize".into(), "--model".into(), model.into()];
    argv.extend(["--out".into(), out.into(), "--id".into(), format!("{id}-bfv").into()]);
    if let Some(d) = data {
        argv.extend(["--data".into(), d.into()]);
    }
    if let Some([input, conv, dense]) = levels {
        for (flag, v) in [("--input-levels", input), ("--conv-levels", conv), ("--dense-levels", dense)] {
            argv.extend([flag.into(), v.to_string().into()]);
        }
    }
    if force {
        argv.push("--force".into());
    }
    let matches = QuantizeArgs::augment_args(clap::Command::new("quantize")).try_get_matches_from(argv)?;
    quantize(&QuantizeArgs::from_arg_matches(&matches)?)
}

fn quantize(args: &QuantizeArgs) -> Result<()> {
    crate::files::refuse_existing(&[&args.out], args.force)?;
    let float = crate::data::model_for_task(&args.model, "mnist", &[1, 28, 28])?;
    let [cw, cb, dw, db] = float_weights(&float)?;
    let weights = FloatNet { conv_weight: &cw, conv_bias: &cb, dense_weight: &dw, dense_bias: &db };
    let net = QuantizedNet::quantize(&weights, args.input_levels, args.conv_levels, args.dense_levels)?;
    let (images, labels) = test_images(args.data.as_deref(), None)?;
    let n = labels.len();
    let (correct, _, ranges) = simulate(&net, &images, &labels)?;
    let half_t = (PLAINTEXT_MODULUS / 2) as i64;
    println!(
        "{}: integer accuracy {:.2}% ({correct} / {n}); largest magnitudes conv {} square {} dense {} (t/2 = {half_t})",
        args.id,
        100.0 * correct as f64 / n as f64,
        ranges.conv,
        ranges.square,
        ranges.dense
    );
    ensure!(ranges.max() < half_t, "a value reaches t/2 = {half_t}: lower the levels");
    let fmeta = float.meta();
    let mut metrics = BTreeMap::new();
    metrics.insert("integer_test_accuracy".into(), correct as f64 / n as f64);
    metrics.insert("integer_test_images".into(), n as f64);
    metrics.insert("float_test_accuracy".into(), fmeta.metrics.get("test_accuracy").copied().unwrap_or(f64::NAN));
    metrics.insert("largest_magnitude".into(), ranges.max() as f64);
    metrics.insert("headroom_bits".into(), (half_t as f64 / ranges.max() as f64).log2());
    let mut quantization = BTreeMap::new();
    quantization.insert("method".into(), "post-training, symmetric per layer, round to nearest".into());
    quantization.insert("input".into(), format!("x = round(pixel / 255 * {})", args.input_levels));
    quantization.insert("conv_weights".into(), format!("integers in [-{0}, {0}]", args.conv_levels));
    quantization.insert("dense_weights".into(), format!("integers in [-{0}, {0}]", args.dense_levels));
    quantization.insert("biases".into(), "scaled like the values they are added to".into());
    let mut training = fmeta.training.clone();
    training.insert("float_model".into(), fmeta.id.clone());
    training.insert("quantize_command".into(), crate::files::command_line());
    let model = BfvModel {
        format: more_bfv::model::FORMAT.into(),
        version: more_bfv::model::VERSION,
        id: args.id.clone(),
        task: "mnist".into(),
        description: "MNIST digits under BFV at 128-bit security: conv, square, dense on integers, evaluated \
                      exactly (ring operations only)"
            .into(),
        architecture: "conv2d 1->10 5x5 stride 2 pad 2, square, flatten, dense 1960->10 (integers mod t)".into(),
        scheme: scheme_info(),
        quantization,
        ranges,
        metrics,
        training,
        labels: (0..10).map(|d| d.to_string()).collect(),
        network: net,
    };
    crate::files::create_parent(&args.out)?;
    model.save(&args.out)?;
    crate::files::wrote(&args.out, None, false);
    Ok(())
}

/// One encrypted inference, timed per step: what a browser and the server do, through the wire format.
struct Run {
    logits: Vec<i64>,
    encrypt_ms: f64,
    server_ms: f64,
    decrypt_ms: f64,
    /// Thread CPU time of the three steps (does not count time other processes hold the core).
    cpu_ms: f64,
    input_bytes: usize,
    output_bytes: usize,
}

fn run_one(client: &Client, keys: &more_bfv::EvalKeys, ev: &Evaluator, x: &[i64]) -> Result<Run> {
    let mut rng = rand::rng();
    let cpu = ThreadTime::now();
    let t0 = Instant::now();
    let input = encode_ciphertexts(&client.encrypt(x, &mut rng)?, INPUT_LEVEL);
    let t1 = Instant::now();
    let cts = decode_ciphertexts(&input, more_bfv::layout::INPUT_CIPHERTEXTS, INPUT_LEVEL)?;
    let output = encode_ciphertexts(&ev.evaluate(keys, &cts)?, OUTPUT_LEVEL);
    let t2 = Instant::now();
    let out = decode_ciphertexts(&output, more_bfv::layout::OUTPUT_CIPHERTEXTS, OUTPUT_LEVEL)?;
    let logits = client.decrypt(&out)?;
    let t3 = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    Ok(Run {
        logits,
        encrypt_ms: ms(t0, t1),
        server_ms: ms(t1, t2),
        decrypt_ms: ms(t2, t3),
        cpu_ms: cpu.elapsed().as_secs_f64() * 1e3,
        input_bytes: input.len(),
        output_bytes: output.len(),
    })
}

/// `more eval mnist --scheme bfv --model F [--limit N]`: the integer network on the images, and BFV
/// inference on each (one key pair for the run, on all cores), compared logit by logit.
pub fn eval(model_path: &Path, data_dir: Option<&Path>, limit: Option<usize>, json: bool) -> Result<()> {
    let model = BfvModel::load(model_path)?;
    let (images, labels) = test_images(data_dir, limit)?;
    let n = labels.len();
    let net = &model.network;
    let (int_correct, int_logits, ranges) = simulate(net, &images, &labels)?;
    let mut rng = rand::rng();
    let client = Client::new(&mut rng);
    let keys = client.eval_keys(&mut rng)?;
    let ev = Evaluator::new(net)?;
    let started = Instant::now();
    let runs = images
        .par_iter()
        .map(|img| run_one(&client, &keys, &ev, &net.quantize_image(img)?))
        .collect::<Result<Vec<_>>>()?;
    let wall = started.elapsed().as_secs_f64();
    let enc_correct = runs.iter().zip(&labels).filter(|(r, y)| argmax(&r.logits) == **y as usize).count();
    let agree = runs.iter().zip(&int_logits).filter(|(r, l)| argmax(&r.logits) == argmax(l)).count();
    let exact = runs.iter().zip(&int_logits).filter(|(r, l)| &r.logits == *l).count();
    let out = serde_json::json!({
        "model": model.id,
        "scheme": "bfv",
        "images": n,
        "integer_accuracy": int_correct as f64 / n as f64,
        "accuracy": enc_correct as f64 / n as f64,
        "argmax_agreement": agree,
        "exact_logits": exact,
        "largest_magnitude": ranges.max(),
        "half_plaintext_modulus": PLAINTEXT_MODULUS / 2,
        "seconds": wall,
    });
    if json {
        println!("{out}");
    } else {
        println!(
            "{}: integer network {:.2}%, BFV {:.2}% on {n} images; same argmax {agree} / {n}, identical logits \
             {exact} / {n}; largest magnitude {} < t/2 = {}; {wall:.1} s",
            model.id,
            100.0 * int_correct as f64 / n as f64,
            100.0 * enc_correct as f64 / n as f64,
            ranges.max(),
            PLAINTEXT_MODULUS / 2
        );
    }
    Ok(())
}

/// `more bench bfv [--json] [--limit N]`: one image at a time, end to end (encrypt, serialise, server
/// evaluation, serialise, decrypt), on the first N test images (default 200), in one thread. Times are wall
/// clock (`ms_per_image` and its split) and thread CPU time (`cpu_ms_per_image`, which on a shared machine
/// leaves out the time other processes hold the core).
pub fn bench(model_path: Option<&Path>, data_dir: Option<&Path>, limit: Option<usize>, json: bool) -> Result<()> {
    let model = BfvModel::load(model_path.map_or_else(|| paths::bundled(paths::BFV_MODEL), Path::to_path_buf))?;
    let (images, labels) = test_images(data_dir, Some(limit.unwrap_or(200)))?;
    let n = labels.len();
    ensure!(n > 0, "no images");
    let net = &model.network;
    let mut rng = rand::rng();
    let t0 = Instant::now();
    let client = Client::new(&mut rng);
    let key_bytes = encode_keys(&client.eval_keys(&mut rng)?);
    let keygen_ms = t0.elapsed().as_secs_f64() * 1e3;
    let keys = decode_keys(&key_bytes)?;
    let ev = Evaluator::new(net)?;
    let (mut correct, mut agree, mut exact) = (0, 0, 0);
    let (mut enc, mut srv, mut dec, mut cpu) = (0.0, 0.0, 0.0, 0.0);
    let (mut input_bytes, mut output_bytes) = (0, 0);
    for (img, &y) in images.iter().zip(&labels) {
        let x = net.quantize_image(img)?;
        let (expect, _) = net.forward(&x);
        let r = run_one(&client, &keys, &ev, &x)?;
        correct += usize::from(argmax(&r.logits) == y as usize);
        agree += usize::from(argmax(&r.logits) == argmax(&expect));
        exact += usize::from(r.logits == expect);
        (enc, srv, dec, cpu) = (enc + r.encrypt_ms, srv + r.server_ms, dec + r.decrypt_ms, cpu + r.cpu_ms);
        (input_bytes, output_bytes) = (r.input_bytes, r.output_bytes);
    }
    let nf = n as f64;
    let info = scheme_info();
    let out = serde_json::json!({
        "task": "bfv",
        "model": model.id,
        "images": n,
        "accuracy": correct as f64 / nf,
        "argmax_agreement": agree,
        "exact_logits": exact,
        "integer_test_accuracy": model.metrics.get("integer_test_accuracy"),
        "ms_per_image": (enc + srv + dec) / nf,
        "cpu_ms_per_image": cpu / nf,
        "encrypt_ms": enc / nf,
        "server_ms": srv / nf,
        "decrypt_ms": dec / nf,
        "keygen_ms": keygen_ms,
        "eval_key_bytes": key_bytes.len(),
        "ciphertext_bytes": input_bytes,
        "input_ciphertexts": more_bfv::layout::INPUT_CIPHERTEXTS,
        "result_bytes": output_bytes,
        "security_bits": info.security_bits,
        "ring_degree": info.ring_degree,
        "ciphertext_modulus_bits": info.ciphertext_modulus_bits,
        "plaintext_modulus": info.plaintext_modulus,
        "threads": 1,
    });
    if json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
