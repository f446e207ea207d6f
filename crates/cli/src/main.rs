//! `more`: train, evaluate and benchmark networks on plaintext and MORE-encrypted data.
//!
//! Each subcommand lives in `commands/`, each task in `tasks/`, the shared argument groups in `args.rs`,
//! the default data and model locations in `paths.rs`;
//! this file only parses arguments and dispatches.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod args;
mod commands;
mod comparison;
mod data;
mod encrypted;
mod files;
mod metrics;
mod paths;
mod plot;
mod remote;
mod server_job;
mod server_training;
mod stats;
mod study;
mod tasks;

use commands::{attack, bench, bfv, challenge, classify, eval, import, reproduce, train, wbc};

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
    /// Class challenges on a more-server: create one, read who solved it.
    Challenge(challenge::ChallengeArgs),
    /// BFV (lattice-based, 128-bit) beside MORE: quantize a model for it.
    Bfv(bfv::BfvArgs),
    /// Import an ONNX network (PyTorch, scikit-learn, ...) as a model that runs on MORE ciphertexts.
    Import(import::ImportArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Which options the user typed (not defaults): the commands refuse the ones their task does not read.
    let given = matches.subcommand().map(|(_, m)| args::Given::of(m)).unwrap_or_default();
    let result = match cli.command {
        Command::Train(args) => train::run(args, &given),
        Command::Eval(args) => eval::run(args, &given),
        Command::Bench(args) => bench::run(args, &given),
        Command::Wbc(args) => wbc::run(args),
        Command::Reproduce(args) => reproduce::run(args, &given),
        Command::Attack(args) => attack::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Challenge(args) => challenge::run(args),
        Command::Bfv(args) => bfv::run(args),
        Command::Import(args) => import::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// One line for the user: the error and its causes joined by `: `, each cause left out when the message
/// before it already says it (`path: No such file …` followed by `No such file …`). No backtrace, even
/// when `RUST_BACKTRACE` is set: these are errors in the user's input, not bugs.
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    #[test]
    fn error_chain_is_one_line_without_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Err::<(), _>(io).context("/x: No such file or directory").context("loading the model").unwrap_err();
        assert_eq!(super::error_chain(&e), "loading the model: /x: No such file or directory");
        let e = anyhow::anyhow!("bad magic").context("invalid model file");
        assert_eq!(super::error_chain(&e), "invalid model file: bad magic");
    }
}
