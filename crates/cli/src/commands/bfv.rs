//! `more bfv`: BFV beside MORE (`more-bfv`). `more bfv quantize` (float model → integer network checked on
//! every image of the task's checked splits), and the BFV side of `more eval <task> --scheme bfv` and
//! `more bench bfv [--task <task>]` for the classification tasks with a BFV model (MNIST, the angiogram
//! views: the same network and parameters, their own class counts; [`crate::tasks::BfvClassifier`]).

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
use crate::tasks::{self, BfvClassifier, TaskRef};
use clap::ValueEnum as _;

/// Arguments of `more bfv`.
#[derive(Debug, Args)]
pub struct BfvArgs {
    #[command(subcommand)]
    command: BfvCommand,
}

#[derive(Debug, Subcommand)]
enum BfvCommand {
    /// Quantize a float model (`more train mnist --arch bfv`, `more train angio --arch bfv`) to the integer
    /// network BFV evaluates; checks every image of the task's checked splits (MNIST: test; angio: train
    /// and val) for values reaching t/2 and writes the model file with its metrics.
    Quantize(QuantizeArgs),
    /// Quantize the WBC surrogate's float model (`more train wbc --arch bfv`) to the integer network BFV
    /// evaluates; checks the worst case over the accepted inputs and every patient for values reaching
    /// t/2, measures float, integer and BFV networks on the held-out patients and writes the model file.
    QuantizeWbc(super::bfv_wbc::QuantizeWbcArgs),
}

/// Arguments of `more bfv quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The float model (`.morenn`, conv 1->10 5x5/2, square, dense 1960->classes); its task (`mnist`,
    /// `angio`) decides the data checked and the defaults below.
    #[arg(long)]
    model: PathBuf,
    /// Output file (default `trained/<task>-bfv-square.bfv.json`; an existing file is kept unless
    /// `--force`). The server serves `models/`: write there with `--out` to replace the bundled model.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Model id (default `<task>-bfv-square`).
    #[arg(long)]
    id: Option<String>,
    /// Pixels become integers 0..=N (default: the task's, 15).
    #[arg(long, value_name = "N")]
    input_levels: Option<i64>,
    /// Convolution weights become integers of magnitude at most N (default: the task's, mnist 31, angio 16).
    #[arg(long, value_name = "N")]
    conv_levels: Option<i64>,
    /// Dense weights become integers of magnitude at most N (default: the task's, 31).
    #[arg(long, value_name = "N")]
    dense_levels: Option<i64>,
    /// Data directory (default `../shared/data`, or env `MORE_DATA`).
    #[arg(long)]
    data: Option<PathBuf>,
}

/// The classification task `more bench bfv` measures when given no `--task`.
pub const TASK: &str = "mnist";

/// The regression task BFV has a model for (`more eval wbc --scheme bfv`, `more bench bfv --task wbc`).
pub const REGRESSION_TASK: &str = "wbc";

/// The BFV classifier of `task`, or an error naming the tasks BFV has models for (the classifiers and
/// [`REGRESSION_TASK`]).
pub fn classifier(task: TaskRef) -> Result<BfvClassifier> {
    task.bfv().ok_or_else(|| {
        let names = tasks::ALL.iter().filter(|t| t.bfv().is_some()).map(|t| t.name());
        anyhow::anyhow!(
            "--scheme bfv has models for {} only, not {}",
            tasks::and_list(names.chain([REGRESSION_TASK])),
            task.name()
        )
    })
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

/// The rows of the classifier's evaluation split as the BFV network's inputs (784 values in `[0, 1]`), and
/// labels, optionally only the first `limit`.
pub(super) fn eval_rows(c: &BfvClassifier, data_dir: Option<&Path>, limit: Option<usize>) -> Result<tasks::BfvRows> {
    (c.load)(&paths::data_dir(data_dir), c.eval_split, limit)
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
/// levels (or `levels` = input, conv, dense), checking its task's images for wrap-around as `more bfv
/// quantize` does. The model must take pixels as the bundled BFV models do (`x / 255`, no mean or standard
/// deviation).
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
    let task_name = Model::load(&args.model)?.meta().task.clone();
    let task = TaskRef::from_str(&task_name, false)
        .map_err(|_| anyhow::anyhow!("{} is a model of task {task_name:?}", args.model.display()))?;
    ensure!(
        task.name() != REGRESSION_TASK,
        "{} is a {REGRESSION_TASK} model: more bfv quantize-wbc quantizes it",
        args.model.display()
    );
    let c = classifier(task)?;
    let out = args.out.clone().unwrap_or_else(|| Path::new(paths::TRAINED_DIR).join(c.model_file));
    let id = args.id.clone().unwrap_or_else(|| c.model_id.to_string());
    crate::files::refuse_existing(&[&out], args.force)?;
    let side = more_bfv::network::IMAGE;
    let float = crate::data::model_for_task(&args.model, task.name(), &[1, side, side])?;
    let [cw, cb, dw, db] = float_weights(&float)?;
    ensure!(
        db.len() == c.labels.len(),
        "{} has {} outputs; {} has {} classes",
        args.model.display(),
        db.len(),
        task.name(),
        c.labels.len()
    );
    let weights = FloatNet { conv_weight: &cw, conv_bias: &cb, dense_weight: &dw, dense_bias: &db };
    let [input_levels, conv_levels, dense_levels] = c.levels;
    let input_levels = args.input_levels.unwrap_or(input_levels);
    let conv_levels = args.conv_levels.unwrap_or(conv_levels);
    let dense_levels = args.dense_levels.unwrap_or(dense_levels);
    let net = QuantizedNet::quantize(&weights, input_levels, conv_levels, dense_levels)?;
    let dir = paths::data_dir(args.data.as_deref());
    // Wrap-around: every image of the checked splits; accuracy: the evaluation split.
    let mut ranges = Ranges::default();
    let mut checked = Vec::new();
    let mut eval = None;
    for &split in c.checked_splits {
        let (images, labels) = (c.load)(&dir, split, None)?;
        let (correct, logits, r) = simulate(&net, &images, &labels)?;
        ranges = ranges.merge(&r);
        checked.push(format!("{} {split}", labels.len()));
        if split == c.eval_split {
            eval = Some((images, labels, correct, logits));
        }
    }
    let (images, labels, correct, int_logits) = match eval {
        Some(e) => e,
        None => {
            let (images, labels) = (c.load)(&dir, c.eval_split, None)?;
            let (correct, logits, _) = simulate(&net, &images, &labels)?;
            (images, labels, correct, logits)
        }
    };
    let (n, split) = (labels.len(), c.eval_split);
    let half_t = (PLAINTEXT_MODULUS / 2) as i64;
    println!(
        "{id}: integer {split} accuracy {:.2}% ({correct} / {n}); largest magnitudes over {} {}s: conv {} square {} \
         dense {} (t/2 = {half_t})",
        100.0 * correct as f64 / n as f64,
        checked.join(" + "),
        c.row,
        ranges.conv,
        ranges.square,
        ranges.dense
    );
    ensure!(ranges.max() < half_t, "a value reaches t/2 = {half_t}: lower the levels");
    // The float network on the same rows: its accuracy, and how often the integer network agrees with it.
    let float_pred = float_predictions(&float, &images)?;
    let float_correct = float_pred.iter().zip(&labels).filter(|(p, y)| **p == **y as usize).count();
    let float_agree = float_pred.iter().zip(&int_logits).filter(|(p, l)| **p == argmax(l)).count();
    println!(
        "float {split} accuracy {:.2}%; the integer network's argmax equals the float network's on {float_agree} / {n}",
        100.0 * float_correct as f64 / n as f64
    );
    let mut metrics = BTreeMap::new();
    metrics.insert(format!("integer_{split}_accuracy"), correct as f64 / n as f64);
    metrics.insert(format!("integer_{split}_images"), n as f64);
    metrics.insert(format!("float_{split}_accuracy"), float_correct as f64 / n as f64);
    metrics.insert("float_integer_argmax_agreement".into(), float_agree as f64);
    metrics.insert("largest_magnitude".into(), ranges.max() as f64);
    metrics.insert("headroom_bits".into(), (half_t as f64 / ranges.max() as f64).log2());
    if c.quantize_runs_bfv {
        let run = run_all(&net, &images)?;
        let bfv_correct = run.iter().zip(&labels).filter(|(l, y)| argmax(l) == **y as usize).count();
        let agree = run.iter().zip(&int_logits).filter(|(a, b)| argmax(a) == argmax(b)).count();
        let exact = run.iter().zip(&int_logits).filter(|(a, b)| a == b).count();
        println!(
            "BFV {split} accuracy {:.2}%; same argmax as the integer network {agree} / {n}, identical logits {exact} / {n}",
            100.0 * bfv_correct as f64 / n as f64
        );
        ensure!(exact == n, "BFV differs from the integer network on {} {split} {}s", n - exact, c.row);
        metrics.insert(format!("bfv_{split}_accuracy"), bfv_correct as f64 / n as f64);
        metrics.insert("bfv_argmax_agreement".into(), agree as f64);
        metrics.insert("bfv_exact_logits".into(), exact as f64);
    }
    let mut quantization = BTreeMap::new();
    quantization.insert("method".into(), "post-training, symmetric per layer, round to nearest".into());
    quantization.insert("input".into(), format!("x = round(pixel / 255 * {input_levels})"));
    quantization.insert("conv_weights".into(), format!("integers in [-{conv_levels}, {conv_levels}]"));
    quantization.insert("dense_weights".into(), format!("integers in [-{dense_levels}, {dense_levels}]"));
    quantization.insert("biases".into(), "scaled like the values they are added to".into());
    if c.checked_splits != [c.eval_split] {
        quantization.insert(
            "wrap_around".into(),
            format!(
                "largest magnitude {} over every {} ({}): below t/2 = {half_t}",
                ranges.max(),
                c.row,
                checked.join(" + ")
            ),
        );
    }
    let fmeta = float.meta();
    let mut training = fmeta.training.clone();
    training.insert("float_model".into(), fmeta.id.clone());
    training.insert("quantize_command".into(), crate::files::command_line());
    let classes = net.classes();
    let model = BfvModel {
        format: more_bfv::model::FORMAT.into(),
        version: more_bfv::model::VERSION,
        id,
        task: task.name().into(),
        description: c.description.into(),
        architecture: format!(
            "conv2d 1->10 5x5 stride 2 pad 2, square, flatten, dense 1960->{classes} (integers mod t)"
        ),
        scheme: scheme_info(),
        quantization,
        ranges,
        metrics,
        training,
        labels: c.labels.iter().map(|l| l.to_string()).collect(),
        network: net,
    };
    crate::files::create_parent(&out)?;
    model.save(&out)?;
    crate::files::wrote(&out, None, false);
    Ok(())
}

/// The float model's class (argmax) for each row of 784 values.
fn float_predictions(model: &Model, rows: &[Vec<f32>]) -> Result<Vec<usize>> {
    let side = more_bfv::network::IMAGE;
    let mut pred = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(500) {
        let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
        let x = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[chunk.len(), 1, side, side]), flat)?;
        let out = model.forward_plain(x.view())?;
        pred.extend(out.outer_iter().map(crate::metrics::argmax));
    }
    Ok(pred)
}

/// BFV on every row, one image per set of ciphertexts (the single-image packing) on all cores, under one
/// fresh key pair: the decrypted logits.
fn run_all(net: &QuantizedNet, rows: &[Vec<f32>]) -> Result<Vec<Vec<i64>>> {
    let mut rng = rand::rng();
    let client = Client::new(&mut rng);
    let keys = decode_keys(&encode_keys(&client.eval_keys(&mut rng)?))?;
    let ev = Evaluator::new(net)?;
    rows.par_iter().map(|img| Ok(run_one(&client, &keys, &ev, &net.quantize_image(img)?)?.logits)).collect()
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
    let classes = ev.net().classes();
    let out = decode_ciphertexts(&output, more_bfv::layout::output_ciphertexts(classes), OUTPUT_LEVEL)?;
    let logits = client.decrypt(&out, classes)?;
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

/// `more eval <task> --scheme bfv [--model F] [--limit N]`: the integer network on the evaluation split
/// (MNIST's test images, the angiograms' val frames), and BFV inference on each (one key pair for the run,
/// on all cores), compared logit by logit.
pub fn eval(
    task: TaskRef,
    model_path: Option<&Path>,
    data_dir: Option<&Path>,
    limit: Option<usize>,
    json: bool,
) -> Result<()> {
    let (c, model, (images, labels)) = evaluation_set(task, model_path, data_dir, limit)?;
    let n = labels.len();
    let net = &model.network;
    let (int_correct, int_logits, ranges) = simulate(net, &images, &labels)?;
    let started = Instant::now();
    let logits = run_all(net, &images)?;
    let wall = started.elapsed().as_secs_f64();
    let enc_correct = logits.iter().zip(&labels).filter(|(l, y)| argmax(l) == **y as usize).count();
    let agree = logits.iter().zip(&int_logits).filter(|(a, b)| argmax(a) == argmax(b)).count();
    let exact = logits.iter().zip(&int_logits).filter(|(a, b)| a == b).count();
    let mut out = serde_json::json!({
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
    // The digits' line stays as it was; other tasks also name themselves and their split.
    if task.name() != TASK {
        out["task"] = task.name().into();
        out["split"] = c.eval_split.into();
    }
    if json {
        println!("{out}");
    } else {
        println!(
            "{}: integer network {:.2}%, BFV {:.2}% on {n} {} {}s; same argmax {agree} / {n}, identical logits \
             {exact} / {n}; largest magnitude {} < t/2 = {}; {wall:.1} s",
            model.id,
            100.0 * int_correct as f64 / n as f64,
            100.0 * enc_correct as f64 / n as f64,
            c.eval_split,
            c.row,
            ranges.max(),
            PLAINTEXT_MODULUS / 2
        );
    }
    Ok(())
}

/// The BFV model of `task`: `path`, else the bundled one; a model of another task is refused.
/// What `more eval … --scheme bfv` and `more bench bfv` run on: the task's BFV classifier, its model file
/// (bundled unless given) and the first `limit` rows of its evaluation split (at least one).
fn evaluation_set(
    task: TaskRef,
    model_path: Option<&Path>,
    data_dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<(BfvClassifier, BfvModel, tasks::BfvRows)> {
    let c = classifier(task)?;
    let model = load_model(task, &c, model_path)?;
    let rows = eval_rows(&c, data_dir, limit)?;
    ensure!(!rows.1.is_empty(), "no {}s to evaluate", c.row);
    Ok((c, model, rows))
}

fn load_model(task: TaskRef, c: &BfvClassifier, path: Option<&Path>) -> Result<BfvModel> {
    let path = path.map_or_else(|| paths::bundled(c.model_file), Path::to_path_buf);
    let model = BfvModel::load(&path)?;
    ensure!(
        model.task == task.name(),
        "{} is the {} model {}, not a model for {}",
        path.display(),
        model.task,
        model.id,
        task.name()
    );
    Ok(model)
}

/// `more bench bfv [--task T] [--json] [--limit N]`: one image at a time, end to end (encrypt, serialise,
/// server evaluation, serialise, decrypt), on the first N images of the task's evaluation split (default
/// 200), in one thread. Times are wall clock (`ms_per_image` and its split) and thread CPU time
/// (`cpu_ms_per_image`, which on a shared machine leaves out the time other processes hold the core).
pub fn bench(
    task: TaskRef,
    model_path: Option<&Path>,
    data_dir: Option<&Path>,
    limit: Option<usize>,
    json: bool,
) -> Result<()> {
    let (c, model, (images, labels)) = evaluation_set(task, model_path, data_dir, Some(limit.unwrap_or(200)))?;
    let n = labels.len();
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
    let integer_accuracy = format!("integer_{}_accuracy", c.eval_split);
    let mut out = serde_json::json!({
        // `more bench bfv` named the digits' line after the scheme; other tasks name the task.
        "task": if task.name() == TASK { "bfv" } else { task.name() },
        "model": model.id,
        "images": n,
        "accuracy": correct as f64 / nf,
        "argmax_agreement": agree,
        "exact_logits": exact,
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
    out[&integer_accuracy] = model.metrics.get(&integer_accuracy).copied().into();
    if task.name() != TASK {
        out["split"] = c.eval_split.into();
        out["classes"] = net.classes().into();
        out["result_ciphertexts"] = more_bfv::layout::output_ciphertexts(net.classes()).into();
    }
    if json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
