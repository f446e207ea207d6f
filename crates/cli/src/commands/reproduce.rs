//! `more reproduce <task>`: the papers' table — the same network, seed, data and hyper-parameters trained
//! on plaintext and on encrypted data in one run, compared.

use anyhow::Result;
use clap::Args;

use crate::args::ReproduceOptions;
use crate::tasks::{Hyper, TaskRef};

/// Arguments of `more reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The task.
    #[arg(value_enum)]
    pub task: TaskRef,
    #[command(flatten)]
    pub options: ReproduceOptions,
}

/// Runs `more reproduce`.
pub fn run(args: ReproduceArgs) -> Result<()> {
    reproduce(args.task, &args.options)
}

/// Runs `task`'s comparison with `options` (the task's defaults for the hyper-parameters left unset).
pub fn reproduce(task: TaskRef, options: &ReproduceOptions) -> Result<()> {
    let hyper = Hyper::new(&options.run, task.reproduce_defaults());
    task.reproduce(options, &hyper)
}
