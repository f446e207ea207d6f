//! The argument groups of the `more` command, each defined once and flattened into the commands that take
//! it (`#[command(flatten)]`). Options whose default depends on the task are `Option`s here; the task
//! fills them in (its `tasks::Defaults`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, ValueEnum};

/// The options given on the command line, by clap id (the field name: `n_train` for `--n-train`) — not
/// those left at their defaults nor taken from the environment. Checking an option against this set, not
/// its value against the default, tells `--augment 2` (given, the default value) from no `--augment`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given(BTreeSet<String>);

impl Given {
    /// The options `matches` (one subcommand's) got from the command line.
    pub fn of(matches: &ArgMatches) -> Given {
        Given(
            matches
                .ids()
                .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.as_str().to_string())
                .collect(),
        )
    }

    /// Whether the option with this id was given.
    pub fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }

    /// The same set without the option `id`.
    pub fn without(&self, id: &str) -> Given {
        let mut set = self.0.clone();
        set.remove(id);
        Given(set)
    }
}

/// The flag of a clap id as the user types it: `n_train` → `--n-train`.
pub fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// `--data DIR`.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory (default `../shared/data`, or env `MORE_DATA`).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    /// The directory to read data sets from.
    pub fn dir(&self) -> PathBuf {
        crate::paths::data_dir(self.data.as_deref())
    }
}

/// `--json`.
#[derive(Debug, Clone, Args)]
pub struct JsonArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--quiet`.
#[derive(Debug, Clone, Args)]
pub struct QuietArgs {
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The encryption scheme a command runs under (`more eval --scheme`, `more bench --scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheme {
    /// MORE: fast, weak (the papers' scheme).
    More,
    /// BFV: 128-bit lattice security (fhe.rs).
    Bfv,
}

/// Network architectures for MNIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// CNN with ReLU activations (spectral formula on ciphertexts: uses the 2x2 structure).
    Relu,
    /// CryptoNets-style CNN with square activations (ring-only).
    Square,
    /// One convolution, square, one dense layer: the network quantized for BFV (`more bfv quantize`).
    Bfv,
}

impl Arch {
    /// The name in model ids (`mnist-cnn-relu`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Relu => "relu",
            Arch::Square => "square",
            Arch::Bfv => "bfv-float",
        }
    }
}

/// The hyper-parameters every training run has. Unset ones take the task's defaults (listed with the
/// task names in `--help`).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Epochs (default: the task's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed for the data split, initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mini-batch size (default: the task's).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate (default: the task's).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Multiply the learning rate by this after every epoch (default: the task's).
    #[arg(long)]
    pub lr_decay: Option<f32>,
}

/// Options of image tasks' training (MNIST, angiography).
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// MNIST architecture.
    #[arg(long, value_enum, default_value = "relu")]
    pub arch: Arch,
    /// Random shifts of up to ± this many pixels (0 = none).
    #[arg(long, default_value_t = 2)]
    pub augment: usize,
    /// Early stopping: epochs without validation improvement.
    #[arg(long, default_value_t = 4)]
    pub patience: usize,
    /// Images held out of training for validation (model selection, early stopping).
    #[arg(long, default_value_t = 5000)]
    pub validation: usize,
    /// Train on only the first N training images.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Where the whole-body circulation surrogate's samples come from, and its width.
#[derive(Debug, Clone, Args)]
pub struct SurrogateArgs {
    /// WBC: training samples (Latin hypercube, seed `--seed`); 10% of them are held out for validation.
    #[arg(long, default_value_t = 8000)]
    pub n_train: usize,
    /// WBC: held-out test samples (an independent Latin hypercube, seed `--seed + 1000`).
    #[arg(long, default_value_t = 2000)]
    pub n_test: usize,
    /// WBC: read the training samples from this CSV (`more wbc dataset`) instead of simulating them.
    #[arg(long, value_name = "FILE")]
    pub train_csv: Option<PathBuf>,
    /// WBC: read the test samples from this CSV instead of simulating them.
    #[arg(long, value_name = "FILE")]
    pub test_csv: Option<PathBuf>,
    /// WBC: simulate N patients in all, 80% for training and 20% held out (instead of `--n-train` and
    /// `--n-test`).
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// WBC: hidden units per layer (two tanh layers).
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
}

/// What every `more train` run takes, whatever the task.
#[derive(Debug, Clone, Args)]
pub struct TrainCommon {
    /// Model id stored in the file (default: the task's, e.g. `mnist-cnn-<arch>`, with `-enctrain` when
    /// trained on encrypted data).
    #[arg(long)]
    pub model_id: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Output model file (default `trained/<model-id>.morenn`; an existing file is kept unless `--force`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite the output files if they exist (the model, and with `--encrypted` its `.moreenc` and
    /// `.key.json`).
    #[arg(long)]
    pub force: bool,
    /// Train on encrypted inputs and labels (the data owner's key; the trainer sees only ciphertexts).
    #[arg(long)]
    pub encrypted: bool,
    /// With `--encrypted`: train on this `more-server` (e.g. `http://127.0.0.1:8080`) as its data owner —
    /// encrypt, upload, follow the decrypted loss, download and decrypt the model — and compare it with the
    /// same network trained here on the same plaintext (same seed and hyper-parameters).
    #[arg(long, value_name = "URL", requires = "encrypted")]
    pub server: Option<String>,
    /// With `--server`: print one JSON line (both models' errors, times, bytes uploaded) instead of text.
    #[arg(long, requires = "server")]
    pub json: bool,
    #[command(flatten)]
    pub quiet: QuietArgs,
}

/// The options of `more train <task>` (and of `more wbc train`, which has no image options).
#[derive(Debug, Clone, Args)]
pub struct TrainOptions {
    #[command(flatten)]
    pub common: TrainCommon,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub surrogate: SurrogateArgs,
}

/// The plaintext-vs-encrypted comparison's own options: those that shape the runs (MNIST reads them all),
/// and where `more reproduce` puts the result (`--report` for every task, `--svg` for those that draw
/// training curves, and for every study).
#[derive(Debug, Clone, Args)]
pub struct ComparisonArgs {
    /// Optimizer (both runs): `sgd` (momentum 0.9; ring-only on ciphertexts) or `adam` (its square root
    /// and reciprocal use the 2x2 structure).
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// Evaluate on only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// The random lane of encrypted inputs is uniform in `[0, input_noise)`.
    #[arg(long, default_value_t = 0.25)]
    pub input_noise: f64,
    /// The random lane of encrypted one-hot labels: `(1 + spread·u)/Σ`, `u` uniform in `[−1, 1)`.
    #[arg(long, default_value_t = 0.5)]
    pub label_spread: f64,
    /// Also write the three models (plaintext, decrypted, still encrypted) into this directory.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// With `--save`: overwrite the model files already in the directory.
    #[arg(long, requires = "save")]
    pub force: bool,
    /// Also write the JSON object to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also draw both runs' training curves (training loss, validation accuracy per epoch) as an SVG file;
    /// with `--runs`, both sides' distributions and the weight drift.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Encrypt under a fresh key with exactly this condition number `κ(S)` (default: `κ` uniform in
    /// [1, 10]).
    #[arg(long, value_name = "KAPPA")]
    pub key_condition: Option<f64>,
    /// Per-epoch parameter snapshots of both runs, `plain/` and `encrypted/` below it (set by a study).
    #[arg(skip)]
    pub snapshots: Option<PathBuf>,
}

/// The options of `more reproduce <task>` (and of `more wbc reproduce`).
#[derive(Debug, Clone, Args)]
pub struct ReproduceOptions {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub comparison: ComparisonArgs,
    #[command(flatten)]
    pub surrogate: SurrogateArgs,
    #[command(flatten)]
    pub study: crate::study::StudyArgs,
    #[command(flatten)]
    pub json: JsonArgs,
    #[command(flatten)]
    pub quiet: QuietArgs,
}

/// An argument group with every option at its default: for commands that do not offer the group (e.g.
/// `more wbc train` has no image options) but call code that takes it.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults"));
    let matches = command.try_get_matches_from(["defaults"]).expect("every option of the group has a default");
    T::from_arg_matches(&matches).expect("the group parses its own defaults")
}
