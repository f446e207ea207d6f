//! What `more reproduce <task>` measures, as one value: the same network trained on plaintext and on
//! encrypted data, compared. A task computes a [`Comparison`] (`crate::tasks::Task::compare`); the command
//! alone decides what to do with it — print its table or its JSON, write the report file and the figure,
//! or keep it as one run of a study (`crate::study`), which reads only the [`Paired`] headline metrics.

use std::path::PathBuf;

use more_nn::train::History;
use serde::{Deserialize, Serialize};

/// How a paired metric's values are shown and judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A fraction (accuracy, relative error), shown in percent, differences in percentage points. A
    /// quality: a study gives it a verdict against the plaintext runs' seed-to-seed spread.
    Fraction,
    /// A number shown as it is (a loss, an error in the data's own units). A quality, as a fraction is.
    Number,
    /// Seconds. A cost: a study gives the encrypted-over-plaintext ratio.
    Seconds,
}

impl Unit {
    /// Display factor: values are stored raw (fractions, seconds) and shown multiplied by this.
    pub fn scale(self) -> f64 {
        match self {
            Unit::Fraction => 100.0,
            Unit::Number | Unit::Seconds => 1.0,
        }
    }

    /// The unit after scaling, as printed after a value (`%`, ` s`).
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Fraction => "%",
            Unit::Number => "",
            Unit::Seconds => " s",
        }
    }

    /// The unit of a difference after scaling (` pp`, ` s`).
    pub fn difference_suffix(self) -> &'static str {
        match self {
            Unit::Fraction => " pp",
            Unit::Number => "",
            Unit::Seconds => " s",
        }
    }

    /// Whether the metric measures quality (judged by a verdict) rather than cost (judged by a ratio).
    pub fn is_quality(self) -> bool {
        self != Unit::Seconds
    }
}

/// Which way a paired metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Higher is better (accuracy).
    Higher,
    /// Lower is better (error, time).
    Lower,
}

/// One headline figure measured on both sides: the plaintext-trained and the encrypted-trained run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Name in tables and JSON (`test accuracy`).
    pub name: String,
    /// The plaintext run's value (raw: a fraction, seconds).
    pub plain: f64,
    /// The encrypted run's value.
    pub encrypted: f64,
    /// How the values are shown and judged.
    pub unit: Unit,
    /// Which way is better.
    pub better: Better,
}

impl Paired {
    /// A metric named `name` with both sides' values.
    pub fn new(name: &str, plain: f64, encrypted: f64, unit: Unit, better: Better) -> Paired {
        Paired { name: name.into(), plain, encrypted, unit, better }
    }
}

/// A file the comparison wrote (`--save`), with what it holds, for the command to announce.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// What it holds (`trained on plaintext`).
    pub what: &'static str,
}

/// A task's measurements as JSON, whatever type holds them: a struct keeps its fields' order, a
/// `serde_json::Value` its own.
pub trait Details {
    /// As a JSON value (to add to, as a study's run file does).
    fn to_value(&self) -> serde_json::Result<serde_json::Value>;
    /// As indented JSON text (`--json`, `--report`).
    fn to_pretty(&self) -> serde_json::Result<String>;
}

impl<T: Serialize> Details for T {
    fn to_value(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }

    fn to_pretty(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

/// One plaintext-vs-encrypted comparison of a task.
pub struct Comparison {
    /// The figures a study repeats and summarises, in the order its table shows them.
    pub headline: Vec<Paired>,
    /// Condition number of the encrypted run's key.
    pub key_condition: Option<f64>,
    /// Training history of the plaintext run.
    pub plain_history: History,
    /// Training history of the encrypted run (decrypted figures, as the key owner sees them).
    pub encrypted_history: History,
    /// The figure's title (`--svg`).
    pub title: String,
    /// Everything the task measured: the JSON object of `--json` and `--report`.
    pub details: Box<dyn Details>,
    /// The same as Markdown tables and notes, as printed without `--json`.
    pub table: String,
    /// Model files written on request (`--save`).
    pub written: Vec<Written>,
}
