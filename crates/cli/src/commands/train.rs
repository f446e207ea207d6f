//! `more train <task>`: plaintext training (and, with `--encrypted`, training on encrypted data).

use anyhow::Result;
use clap::Args;

use crate::args::TrainOptions;
use crate::tasks::{Hyper, TaskRef};

/// Arguments of `more train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task.
    #[arg(value_enum)]
    pub task: TaskRef,
    #[command(flatten)]
    pub options: TrainOptions,
}

/// Runs `more train`.
pub fn run(args: TrainArgs) -> Result<()> {
    train(args.task, &args.options)
}

/// Trains `task` with `options` (the task's defaults for the hyper-parameters left unset).
pub fn train(task: TaskRef, options: &TrainOptions) -> Result<()> {
    let hyper = Hyper::new(&options.common.run, task.train_defaults());
    task.train(options, &hyper)
}
