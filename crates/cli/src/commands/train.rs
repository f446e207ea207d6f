//! `more train <task>`: plaintext training (and, with `--encrypted`, training on encrypted data; with
//! `--server` too, on a more-server: `crate::server_training`).

use anyhow::Result;
use clap::Args;

use crate::args::{Given, TrainOptions};
use crate::tasks::{Hyper, TaskRef, Use, refuse_unused_options};

/// Arguments of `more train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task.
    #[arg(value_enum)]
    pub task: TaskRef,
    #[command(flatten)]
    pub options: TrainOptions,
}

/// Runs `more train`: first refuses the options `given` on the command line that the task does not read.
pub fn run(args: TrainArgs, given: &Given) -> Result<()> {
    let command = if args.options.common.server.is_some() { Use::TrainOnServer } else { Use::Train };
    refuse_unused_options(args.task, command, given)?;
    train(args.task, &args.options)
}

/// Trains `task` with `options` (the task's defaults for the hyper-parameters left unset).
pub fn train(task: TaskRef, options: &TrainOptions) -> Result<()> {
    let hyper = Hyper::new(&options.common.run, task.train_defaults());
    match &options.common.server {
        Some(server) => crate::server_training::train(task, server, options, &hyper),
        None => task.train(options, &hyper),
    }
}
