//! `more`: train, evaluate and benchmark networks on plaintext and MORE-encrypted data.
//!
//! Each subcommand lives in its own module; this file only parses arguments and dispatches.

use clap::{Parser, Subcommand};

mod angio;
mod attack;
mod bench;
mod classify;
mod data;
mod eval;
mod plot;
mod reproduce;
mod train;
mod wbc;

/// Privacy-preserving deep learning on MORE-encrypted data.
#[derive(Debug, Parser)]
#[command(name = "more", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (plaintext, or on encrypted data with --encrypted).
    Train(train::TrainArgs),
    /// Evaluate a model file on a test set, in plaintext and (with --encrypted) on ciphertexts.
    Eval(eval::EvalArgs),
    /// Benchmark plaintext vs encrypted inference.
    Bench(bench::BenchArgs),
    /// Whole-body circulation: simulate the 0D model, generate data sets, train the surrogate.
    Wbc(wbc::WbcArgs),
    /// Reproduce the papers' table: plaintext vs encrypted training in one run.
    Reproduce(reproduce::ReproduceArgs),
    /// Attack MORE without the key: recover encrypted test sets, model weights and answers.
    Attack(attack::AttackArgs),
    /// Classify PNG/JPEG files on ciphertexts, as the browser does (fresh key per image).
    Classify(classify::ClassifyArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Wbc(args) => wbc::run(args),
        Command::Reproduce(args) => reproduce::run(args),
        Command::Attack(args) => attack::run(args),
        Command::Classify(args) => classify::run(args),
    }
}
