//! The tasks the commands run: one file per task naming its networks, data, metrics and defaults, and one
//! registration line (`registry!` below). The commands (`crate::commands`) are written once against
//! [`Task`]; a task offers the commands it supports (`more eval` and `more bench` need a [`Classifier`]).

use std::path::Path;

use anyhow::{Result, bail};
use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::args::{Given, ReproduceOptions, TrainOptions, flag};
use crate::comparison::Comparison;
use crate::data::LabelledImages;
use crate::server_job::ServerJob;

/// Registers the tasks: declares each module and lists its task, in the order `--help` shows them.
macro_rules! registry {
    ($($module:ident :: $task:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every task.
        pub static ALL: &[TaskRef] = &[$(TaskRef(&$module::$task)),*];
    };
}

registry!(mnist::Mnist, angio::Angio, wbc::Wbc);

/// Defaults of the hyper-parameters a command leaves to the task ([`crate::args::RunArgs`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Learning-rate factor per epoch.
    pub lr_decay: f32,
}

/// The hyper-parameters of one run: the command line's, else the task's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Learning rate, if given (the task's default depends on its network and optimizer).
    pub lr: Option<f32>,
    /// Learning-rate factor per epoch.
    pub lr_decay: f32,
    /// Seed.
    pub seed: u64,
}

impl Hyper {
    /// `run`'s values, each unset one from `defaults`.
    pub fn new(run: &crate::args::RunArgs, defaults: Defaults) -> Hyper {
        Hyper {
            epochs: run.epochs.unwrap_or(defaults.epochs),
            batch_size: run.batch_size.unwrap_or(defaults.batch_size),
            lr: run.lr,
            lr_decay: run.lr_decay.unwrap_or(defaults.lr_decay),
            seed: run.seed,
        }
    }
}

/// A command whose options depend on the task, for [`Task::options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `more train <task>` (also with `--encrypted`).
    Train,
    /// `more train <task> --encrypted --server URL`.
    TrainOnServer,
    /// `more reproduce <task>`.
    Reproduce,
}

/// The options of `more train` that only some tasks read (clap ids); every other option applies to every
/// task.
pub const TRAIN_OPTIONS: &[&str] = &[
    "arch",
    "augment",
    "patience",
    "validation",
    "limit",
    "data",
    "n_train",
    "n_test",
    "train_csv",
    "test_csv",
    "samples",
    "hidden",
    "server",
];

/// The options of `more reproduce` that only some tasks read.
pub const REPRODUCE_OPTIONS: &[&str] = &[
    "arch",
    "augment",
    "patience",
    "validation",
    "limit",
    "data",
    "optimizer",
    "test_limit",
    "input_noise",
    "label_spread",
    "save",
    "force",
    "svg",
    "n_train",
    "n_test",
    "train_csv",
    "test_csv",
    "samples",
    "hidden",
];

/// What `more eval` and `more bench` need of a classification task.
#[derive(Debug, Clone, Copy)]
pub struct Classifier {
    /// Input shape of its models (one image).
    pub input: [usize; 3],
    /// The bundled model `more bench` uses by default: a file name in `models/` (`crate::paths::bundled`).
    pub default_model: &'static str,
    /// The split `more eval` scores (metrics are named after it: `test_accuracy`, `val_accuracy`).
    pub eval_split: &'static str,
    /// What one row is called in reports (`image`, `frame`).
    pub row: &'static str,
    /// Plaintext inference batch size.
    pub batch: usize,
    /// Also report balanced accuracy and the confusion matrix (for unbalanced classes).
    pub per_class: bool,
    /// Class names, in output order.
    pub labels: &'static [&'static str],
    /// Rows of `eval_split` `more bench` times (all when `None`).
    pub bench_rows: Option<usize>,
    /// Loads a split as model inputs and labels, optionally only its first `limit` rows.
    pub load: fn(dir: &Path, split: &str, limit: Option<usize>) -> Result<LabelledImages>,
}

/// What the BFV commands need of a classification task that has a BFV model (`more bfv quantize`,
/// `more eval <task> --scheme bfv`, `more bench bfv --task <task>`): its data as the BFV network's 28x28
/// inputs and its bundled model. The network and its parameters are the same for every such task; only the
/// class count differs.
#[derive(Debug, Clone, Copy)]
pub struct BfvClassifier {
    /// The bundled `.bfv.json` model, a file name in `models/`; also the default name `more bfv quantize`
    /// writes in `trained/`.
    pub model_file: &'static str,
    /// The model id `more bfv quantize` gives by default.
    pub model_id: &'static str,
    /// The split `more eval --scheme bfv` and `more bench bfv` score (metrics are named after it).
    pub eval_split: &'static str,
    /// The splits `more bfv quantize` checks for wrap-around (every value and partial sum below t/2).
    pub checked_splits: &'static [&'static str],
    /// Run BFV on every image of the evaluation split when quantizing, and record the result in the model
    /// file (for small evaluation splits).
    pub quantize_runs_bfv: bool,
    /// `more bfv quantize`'s default levels: pixels to `0..=input`, convolution weights to `±conv`, dense
    /// weights to `±dense` — `[input, conv, dense]`, as large as keeps every checked value below t/2
    /// with some headroom.
    pub levels: [i64; 3],
    /// What one row is called in reports (`image`, `frame`).
    pub row: &'static str,
    /// Class names, in output order.
    pub labels: &'static [&'static str],
    /// One sentence for the model file.
    pub description: &'static str,
    /// Loads a split as rows of 784 values in `[0, 1]` (the BFV network's input, 28x28 row-major) and
    /// labels, optionally only the first `limit` rows.
    pub load: fn(dir: &Path, split: &str, limit: Option<usize>) -> Result<BfvRows>,
}

/// Inputs of the BFV network, one row of 784 values in `[0, 1]` each (28x28 row-major), and their labels.
pub type BfvRows = (Vec<Vec<f32>>, Vec<u8>);

/// A task: its name, its defaults and the commands it supports. Commands a task does not support answer
/// with an error naming the tasks that do.
pub trait Task: Sync {
    /// The name on the command line and in model metadata (`mnist`).
    fn name(&self) -> &'static str;
    /// One line for `--help`: the data, the network and the defaults.
    fn about(&self) -> &'static str;
    /// Defaults of `more train`.
    fn train_defaults(&self) -> Defaults;
    /// Defaults of `more reproduce`.
    fn reproduce_defaults(&self) -> Defaults;
    /// `more train <task> [--encrypted]`.
    fn train(&self, options: &TrainOptions, hyper: &Hyper) -> Result<()>;
    /// `more reproduce <task>`: the same network trained on plaintext and on encrypted data in one run,
    /// measured. It prints at most progress (on stderr, unless `--quiet`); `commands::reproduce` presents
    /// the result, and a study repeats it.
    fn compare(&self, options: &ReproduceOptions, hyper: &Hyper) -> Result<Comparison>;
    /// The options of [`TRAIN_OPTIONS`] or [`REPRODUCE_OPTIONS`] this task reads in `command`; the others
    /// are refused when given ([`refuse_unused_options`]).
    fn options(&self, command: Use) -> &'static [&'static str];
    /// What to do instead of giving `option`, which this task does not read in `command` (shown after the
    /// error, e.g. `use --limit to train on fewer digits` for `--samples`).
    fn instead(&self, option: &str, command: Use) -> Option<&'static str> {
        let _ = (option, command);
        None
    }
    /// `more train <task> --encrypted --server URL`: the job a server trains for this task
    /// (`crate::server_training`). A task without one lists no options for [`Use::TrainOnServer`], so
    /// `--server` is refused before this is asked.
    fn server_job(&self, options: &TrainOptions, hyper: &Hyper) -> Result<ServerJob> {
        let _ = (options, hyper);
        bail!("a server does not train {}", self.name())
    }
    /// The classifier of `more eval` and `more bench`, if the task has one.
    fn classifier(&self) -> Option<Classifier> {
        None
    }
    /// The classifier under BFV, if the task has a BFV classification model.
    fn bfv(&self) -> Option<BfvClassifier> {
        None
    }
    /// The task's bundled model, a file name in `models/`: the preprocessing and labels an imported
    /// model of the task takes (`more import`). Default: the classifier's model.
    fn bundled_model(&self) -> Option<&'static str> {
        self.classifier().map(|c| c.default_model)
    }
}

/// A registered task, as a typed command-line value (`more train mnist`).
#[derive(Clone, Copy)]
pub struct TaskRef(pub &'static dyn Task);

impl std::ops::Deref for TaskRef {
    type Target = dyn Task;
    fn deref(&self) -> &(dyn Task + 'static) {
        self.0
    }
}

impl std::fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl ValueEnum for TaskRef {
    fn value_variants<'a>() -> &'a [Self] {
        ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name()).help(self.0.about()))
    }
}

/// The names of the tasks `has` accepts, for error messages (`mnist, angio`).
pub fn names_where(has: impl Fn(&dyn Task) -> bool) -> String {
    ALL.iter().filter(|t| has(t.0)).map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.into_iter().collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// An error for the first option of `given` that `task` does not read in `command`, naming the option,
/// the tasks that do read it and the task's hint: `--samples applies to wbc, not mnist (use --limit to
/// train on fewer digits)`. Options every task reads are not checked.
pub fn refuse_unused_options(task: TaskRef, command: Use, given: &Given) -> Result<()> {
    let (options, commands): (&[&str], &[Use]) = match command {
        Use::Reproduce => (REPRODUCE_OPTIONS, &[Use::Reproduce]),
        Use::Train | Use::TrainOnServer => (TRAIN_OPTIONS, &[Use::Train, Use::TrainOnServer]),
    };
    let used = task.options(command);
    let Some(&id) = options.iter().find(|id| given.has(id) && !used.contains(id)) else { return Ok(()) };
    let (flag, name) = (flag(id), task.name());
    let hint = task.instead(id, command).map(|h| format!(" ({h})")).unwrap_or_default();
    if command == Use::TrainOnServer && task.options(Use::Train).contains(&id) {
        bail!("{flag} does not apply when a server trains {name} (--server){hint}");
    }
    let users = and_list(ALL.iter().filter(|t| commands.iter().any(|c| t.options(*c).contains(&id))).map(|t| t.name()));
    if users.is_empty() {
        bail!("{flag} does not apply to {name}{hint}");
    }
    bail!("{flag} applies to {users}, not {name}{hint}")
}

/// The task's classifier, or an error naming the tasks `command` runs on.
pub fn classifier(task: TaskRef, command: &str) -> Result<Classifier> {
    task.classifier().ok_or_else(|| {
        anyhow::anyhow!(
            "`more {command}` runs on classification tasks ({}); {} has none",
            names_where(|t| t.classifier().is_some()),
            task.name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_sentences() {
        assert_eq!(and_list([]), "");
        assert_eq!(and_list(["wbc"]), "wbc");
        assert_eq!(and_list(["mnist", "angio"]), "mnist and angio");
        assert_eq!(and_list(["mnist", "angio", "wbc"]), "mnist, angio and wbc");
    }

    /// The lists name real options of the commands (a misspelt id would never be refused).
    #[test]
    fn task_specific_options_exist() {
        use clap::Args;
        for (options, command) in [
            (TRAIN_OPTIONS, crate::args::TrainOptions::augment_args(clap::Command::new("train"))),
            (REPRODUCE_OPTIONS, crate::args::ReproduceOptions::augment_args(clap::Command::new("reproduce"))),
        ] {
            let ids: Vec<&str> = command.get_arguments().map(|a| a.get_id().as_str()).collect();
            for o in options {
                assert!(ids.contains(o), "{o} is not an option of `more {}`", command.get_name());
            }
        }
    }

    /// Every task-specific option is read by some task, so no option of `more train` or `more reproduce`
    /// is accepted and ignored by all of them.
    #[test]
    fn every_task_specific_option_has_a_task() {
        for (options, commands) in
            [(TRAIN_OPTIONS, &[Use::Train, Use::TrainOnServer][..]), (REPRODUCE_OPTIONS, &[Use::Reproduce])]
        {
            for o in options {
                assert!(ALL.iter().any(|t| commands.iter().any(|c| t.options(*c).contains(o))), "{o}");
            }
        }
    }

    /// Every registered task: a unique name that parses back to it, a description for `--help`, sane
    /// defaults, and — for classifiers — a default model that exists, takes the classifier's input and
    /// is labelled with this task and its class names.
    #[test]
    fn every_registered_task_is_complete() {
        let mut names: Vec<&str> = ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "task names are unique");
        for task in ALL {
            let parsed = TaskRef::from_str(task.name(), false).expect("the name parses");
            assert_eq!(parsed.name(), task.name());
            assert!(!task.about().is_empty(), "{task:?}");
            for (command, options) in
                [(Use::Train, TRAIN_OPTIONS), (Use::TrainOnServer, TRAIN_OPTIONS), (Use::Reproduce, REPRODUCE_OPTIONS)]
            {
                for o in task.options(command) {
                    assert!(options.contains(o), "{task:?} lists {o}, which is not a task-specific option");
                }
            }
            for d in [task.train_defaults(), task.reproduce_defaults()] {
                assert!(d.epochs > 0 && d.batch_size > 0 && d.lr_decay > 0.0 && d.lr_decay <= 1.0, "{task:?}");
            }
            if let Some(name) = task.bundled_model() {
                let model = more_nn::Model::load(crate::paths::built_models_dir().join(name)).expect(name);
                assert_eq!(model.meta().task, task.name(), "{name}");
            }
            if let Some(c) = task.classifier() {
                let path = crate::paths::built_models_dir().join(c.default_model);
                let model = more_nn::Model::load(&path).expect(c.default_model);
                assert_eq!(model.meta().task, task.name());
                assert_eq!(model.input_shape(), c.input.as_slice());
                assert_eq!(model.meta().labels, c.labels.to_vec(), "{task:?}");
                assert!(c.batch > 0 && c.bench_rows != Some(0));
            }
        }
    }
}
