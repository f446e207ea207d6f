//! `more wbc`: the whole-body circulation model (more-hemo) from the command line — one simulation with
//! its outputs and waveforms, or a Latin-hypercube data set for the surrogate; `more wbc train` and
//! `more wbc reproduce` are `more train wbc` and `more reproduce wbc`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use more_hemo::{OUTPUT_NAMES, OUTPUT_UNITS, PARAMETERS, PatientParams, plot};

use crate::args::{JsonArgs, QuietArgs, ReproduceOptions, RunArgs, SurrogateArgs, TrainCommon, TrainOptions, defaults};
use crate::tasks::{TaskRef, wbc::Wbc};

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
    /// Train the regression surrogate (plaintext, or on encrypted inputs and targets with --encrypted;
    /// = `more train wbc`).
    Train(TrainArgs),
    /// Train on plaintext and on encrypted data and compare them on held-out samples (= `more reproduce wbc`).
    Reproduce(ReproduceArgs),
}

/// `more wbc train`: the options of `more train` that the surrogate uses.
#[derive(Debug, Args)]
struct TrainArgs {
    #[command(flatten)]
    common: TrainCommon,
    #[command(flatten)]
    surrogate: SurrogateArgs,
}

/// `more wbc reproduce`: the options of `more reproduce` that the surrogate uses.
#[derive(Debug, Args)]
struct ReproduceArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    surrogate: SurrogateArgs,
    /// Accepted and ignored: the comparison trains both ways.
    #[arg(long)]
    encrypted: bool,
    /// Accepted and ignored: the comparison writes no model file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    json: JsonArgs,
    #[command(flatten)]
    quiet: QuietArgs,
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
        WbcCommand::Train(a) => {
            let options = TrainOptions { common: a.common, images: defaults(), surrogate: a.surrogate };
            crate::commands::train::train(TaskRef(&Wbc), &options)
        }
        WbcCommand::Reproduce(a) => {
            let options = ReproduceOptions {
                run: a.run,
                images: defaults(),
                comparison: defaults(),
                surrogate: a.surrogate,
                study: defaults(),
                json: a.json,
                quiet: a.quiet,
            };
            crate::commands::reproduce::reproduce(TaskRef(&Wbc), &options)
        }
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
