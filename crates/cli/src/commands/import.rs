//! `more import`: an ONNX network (PyTorch, scikit-learn, ...) as a `.morenn` model that runs on plaintext
//! and on MORE ciphertexts, with the task's preprocessing and labels unless the flags override them; where
//! the network fits more-bfv's layout, also its BFV quantization (`--bfv-out`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use more_nn::Model;
use more_onnx::{ImportOptions, Imported};

use crate::args::JsonArgs;
use crate::tasks::{self, TaskRef};

/// Arguments of `more import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ONNX file (exported by PyTorch, scikit-learn's skl2onnx, tf2onnx, ...).
    model: PathBuf,
    /// The task whose preprocessing and labels the model takes (from the task's bundled model). Default:
    /// the task whose bundled model reads the graph's input shape (a flat input of the same size counts).
    #[arg(long)]
    task: Option<TaskRef>,
    /// Inputs are multiplied by this first (default: the task's; `0.00392156862745098` = 1/255 for
    /// pixels a network saw in [0, 1]).
    #[arg(long)]
    scale: Option<f32>,
    /// Then `(x − mean) / std`: one value, or one per input feature separated by commas (default: the
    /// task's).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    mean: Option<Vec<f32>>,
    /// See `--mean`.
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Model id (default: the file name without `.onnx`).
    #[arg(long)]
    model_id: Option<String>,
    /// Output file (default `trained/<id>.morenn`; an existing file is kept unless `--force`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overwrite the output files if they exist.
    #[arg(long)]
    force: bool,
    /// The graph output to take when it has several float outputs.
    #[arg(long)]
    output: Option<String>,
    /// Leave a final softmax out (same class; the model then outputs logits).
    #[arg(long)]
    drop_softmax: bool,
    /// Also quantize the network for BFV and write it here (only for more-bfv's layout: conv 1→10 5x5
    /// stride 2 pad 2, square, flatten, dense 1960→10; checked for wrap-around on every MNIST test image).
    #[arg(long)]
    bfv_out: Option<PathBuf>,
    /// Levels of the BFV quantization as INPUT,CONV,DENSE (pixels become 0..=INPUT, weights integers of
    /// magnitude at most CONV and DENSE; default: `more bfv quantize`'s). Lower them when a value reaches
    /// t/2.
    #[arg(long, value_delimiter = ',', value_name = "INPUT,CONV,DENSE")]
    bfv_levels: Option<Vec<i64>>,
    /// Data directory for `--bfv-out`'s check (default `../shared/data`, or env `MORE_DATA`).
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    json: JsonArgs,
}

/// Runs `more import`.
pub fn run(args: ImportArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let id = match &args.model_id {
        Some(id) => id.clone(),
        None => args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "imported".into()),
    };
    // The graph is translated once; the task (named, or found from the input shape) then describes it.
    let mut options = ImportOptions::new(&id, "");
    options.output = args.output.clone();
    options.drop_softmax = args.drop_softmax;
    let started = Instant::now();
    let mut imported = more_onnx::import(&bytes, &options).with_context(|| args.model.display().to_string())?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let task = match args.task {
        Some(t) => t,
        None => task_for_shape(imported.model.input_shape())?,
    };
    let template = bundled(task)?;
    options.task = task.name().into();
    options.preprocessing = template.meta().preprocessing.clone();
    options.labels = template.meta().labels.clone();
    options.regression = template.meta().output_kind == more_nn::OutputKind::Values;
    if let Some(s) = args.scale {
        options.preprocessing.scale = s;
    }
    if let Some(m) = &args.mean {
        options.preprocessing.mean = m.clone();
    }
    if let Some(s) = &args.std {
        options.preprocessing.std = s.clone();
    }
    options.preprocessing.normalization().context("--scale, --mean and --std")?;
    imported.describe(&options);
    check_shapes(&imported.model, &template)?;
    if let (Some(_), Err(why)) = (&args.bfv_out, &imported.report.bfv) {
        bail!("--bfv-out: the network is not BFV-evaluable: {why}");
    }
    let out = crate::files::model_path(args.out.as_deref(), &id, args.force)?;
    imported.model.save(&out)?;
    let bfv = match (&args.bfv_out, &imported.report.bfv) {
        (Some(path), Ok(())) => {
            let levels = args.bfv_levels.as_deref();
            if levels.is_some_and(|l| l.len() != 3) {
                bail!("--bfv-levels takes three numbers: INPUT,CONV,DENSE");
            }
            crate::commands::bfv::quantize_imported(&out, path, &id, levels, args.data.as_deref(), args.force)
                .context("--bfv-out (lower --bfv-levels if a value reaches t/2)")?;
            Some(path.clone())
        }
        _ => None,
    };
    report(&args, &imported, &out, bfv.as_deref(), task, elapsed_ms);
    Ok(())
}

/// The task whose bundled model reads `shape` (or the same number of values, flat).
fn task_for_shape(shape: &[usize]) -> Result<TaskRef> {
    let values: usize = shape.iter().product();
    for &task in tasks::ALL {
        if let Ok(model) = bundled(task) {
            let theirs = model.input_shape();
            if theirs == shape || (shape.len() == 1 && theirs.iter().product::<usize>() == values) {
                return Ok(task);
            }
        }
    }
    bail!("no task reads an input of shape {shape:?}: name one with --task and set --scale/--mean/--std")
}

/// The task's bundled model: its preprocessing and labels are what an imported model of the task takes.
fn bundled(task: TaskRef) -> Result<Model> {
    let Some(name) = task.bundled_model() else {
        bail!("the {} task has no bundled model to take preprocessing and labels from", task.name());
    };
    let path = crate::paths::find_bundled(name);
    Model::load(&path).with_context(|| format!("the {} task's bundled model {}", task.name(), path.display()))
}

/// The imported network must read as many values as the task's models and answer one per label.
fn check_shapes(model: &Model, template: &Model) -> Result<()> {
    let task = &template.meta().task;
    let (ours, theirs) = (model.input_shape(), template.input_shape());
    if ours.iter().product::<usize>() != theirs.iter().product::<usize>() {
        bail!("the network reads {ours:?}, the {task} task's models {theirs:?}: pick another --task");
    }
    let (ours, theirs) = (model.output_len(), template.output_len());
    if ours != theirs {
        bail!(
            "the network has {ours} outputs, the {task} task {theirs} ({}): pick another --task",
            template.meta().labels.join(", ")
        );
    }
    Ok(())
}

fn report(args: &ImportArgs, imported: &Imported, out: &Path, bfv: Option<&Path>, task: TaskRef, elapsed_ms: f64) {
    let (m, r) = (&imported.model, &imported.report);
    let p = &m.meta().preprocessing;
    if args.json.json {
        let value = json!({
            "model": out.display().to_string(),
            "id": m.meta().id,
            "task": task.name(),
            "producer": r.producer,
            "opset": r.opset,
            "ir_version": r.ir_version,
            "input": r.input,
            "output": r.output,
            "input_shape": m.input_shape(),
            "outputs": m.output_len(),
            "architecture": m.meta().architecture,
            "ring_only": m.is_ring_only(),
            "operations": m.meta().operations,
            "operators": r.operators,
            "folded": r.folded,
            "dropped": r.dropped,
            "parameters": r.parameters,
            "preprocessing": {"scale": p.scale, "mean": p.mean, "std": p.std},
            "bfv_evaluable": r.bfv.is_ok(),
            "bfv_reason": r.bfv.as_ref().err(),
            "bfv_model": bfv.map(|b| b.display().to_string()),
            "import_ms": elapsed_ms,
        });
        println!("{value}");
        return;
    }
    println!("{}: {} ({}, opset {})", m.meta().id, args.model.display(), r.producer, r.opset);
    println!("  input {} {:?} -> output {} ({} values)", r.input, m.input_shape(), r.output, m.output_len());
    println!("  layers: {}", m.meta().architecture);
    println!("  {} parameters; operators {}", r.parameters, r.operators.join(", "));
    for f in &r.folded {
        println!("  folded: {f}");
    }
    for d in &r.dropped {
        println!("  dropped: {d}");
    }
    println!("  preprocessing ({}): x * {} then (x - {:?}) / {:?}", task.name(), p.scale, p.mean, p.std);
    let structured: Vec<&str> = m.meta().operations.iter().filter(|o| !o.ring_only).map(|o| o.name.as_str()).collect();
    if structured.is_empty() {
        println!("  under MORE: ring operations only");
    } else {
        println!("  under MORE: {} use the 2x2 structure (the rest is ring-only)", structured.join(", "));
    }
    match (&r.bfv, bfv) {
        (Ok(()), Some(path)) => println!("  BFV: quantized to {}", path.display()),
        (Ok(()), None) => {
            println!("  BFV: evaluable (polynomial); --bfv-out FILE quantizes it if it has more-bfv's layout")
        }
        (Err(why), _) => println!("  BFV: not evaluable: {why}"),
    }
    println!("  imported in {elapsed_ms:.1} ms");
    crate::files::wrote(out, None, false);
}
