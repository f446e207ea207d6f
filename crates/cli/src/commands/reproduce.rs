//! `more reproduce <task>`: the papers' table — the same network, seed, data and hyper-parameters trained
//! on plaintext and on encrypted data in one run, compared. The task measures
//! ([`Task::compare`](crate::tasks::Task::compare)); this command alone presents the
//! [`Comparison`]: its table or JSON, the report file, the figure, or a study of many runs.

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::args::{Given, ReproduceOptions};
use crate::comparison::Comparison;
use crate::files::{write_svg, wrote};
use crate::tasks::{Hyper, TaskRef, Use, refuse_unused_options};

/// Arguments of `more reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The task.
    #[arg(value_enum)]
    pub task: TaskRef,
    #[command(flatten)]
    pub options: ReproduceOptions,
}

/// Runs `more reproduce`: first refuses the options `given` on the command line that the task (or the
/// study) does not read.
pub fn run(args: ReproduceArgs, given: &Given) -> Result<()> {
    if args.options.study.is_study() {
        if given.has("save") {
            bail!(
                "--save writes the models of a single run; a study (--runs, --resume, --drift-kappas) makes many: \
                 drop --save, or run one comparison with --seed S --save DIR"
            );
        }
        // A study draws its own figure for every task.
        refuse_unused_options(args.task, Use::Reproduce, &given.without("svg"))?;
    } else {
        refuse_unused_options(args.task, Use::Reproduce, given)?;
    }
    reproduce(args.task, &args.options)
}

/// Runs `task`'s comparison with `options` (the task's defaults for the hyper-parameters left unset); with
/// `--runs`, `--resume` or `--drift-kappas` the repeated study of [`crate::study`].
pub fn reproduce(task: TaskRef, options: &ReproduceOptions) -> Result<()> {
    let hyper = Hyper::new(&options.run, task.reproduce_defaults());
    if options.study.is_study() {
        return study(task, options, &hyper);
    }
    let comparison = task.compare(options, &hyper)?;
    present(&comparison, options)
}

/// One comparison: the files it wrote, the figure (`--svg`), the report file (`--report`), then the JSON
/// object (`--json`) or the table on stdout.
fn present(c: &Comparison, options: &ReproduceOptions) -> Result<()> {
    let (json, cmp) = (options.json.json, &options.comparison);
    for file in &c.written {
        wrote(&file.path, Some(file.what), json);
    }
    if let Some(path) = &cmp.svg {
        write_svg(path, &crate::plot::training_curves_svg(&c.title, &c.plain_history, &c.encrypted_history))?;
    }
    let text = c.details.to_pretty()?;
    if let Some(path) = &cmp.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        println!("{text}");
    } else {
        print!("{}", c.table);
    }
    Ok(())
}

/// The study: each run is one [`Task::compare`](crate::tasks::Task::compare) with its seed, key condition
/// and snapshot directory, quiet; the study keeps and summarises the runs' comparisons.
fn study(task: TaskRef, options: &ReproduceOptions, hyper: &Hyper) -> Result<()> {
    let report = crate::study::run(task.name(), hyper.seed, &options.study, study_settings(), |req| {
        let mut one = options.clone();
        one.run.seed = req.seed;
        one.comparison.key_condition = req.key_condition;
        one.comparison.snapshots = Some(req.snapshots.clone());
        one.quiet.quiet = true;
        task.compare(&one, &Hyper { seed: req.seed, ..*hyper })
    })?;
    let cmp = &options.comparison;
    if let Some(path) = &cmp.svg {
        write_svg(path, &crate::plot::study_svg(&report))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &cmp.report {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if options.json.json {
        println!("{json}");
    } else {
        crate::study::print_table(&report);
    }
    Ok(())
}

/// The command-line arguments a study must keep when it is resumed (`study::settings_of`).
fn study_settings() -> Vec<String> {
    crate::study::settings_of(std::env::args().skip(2))
}
