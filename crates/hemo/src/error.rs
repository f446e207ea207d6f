//! Errors of the circulation model.

/// Everything that can go wrong when simulating or generating a data set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A patient parameter is not finite or lies outside its documented range.
    #[error("parameter {name} = {value} is outside its range [{min}, {max}] {unit}")]
    OutOfRange {
        /// Parameter name, e.g. `heart_rate`.
        name: &'static str,
        /// The value given.
        value: f64,
        /// Lower bound of the accepted range.
        min: f64,
        /// Upper bound of the accepted range.
        max: f64,
        /// Unit of the parameter.
        unit: &'static str,
    },
    /// A parameter vector has the wrong length.
    #[error("expected {expected} parameters, got {got}")]
    WrongLength {
        /// Number of parameters expected.
        expected: usize,
        /// Number of parameters given.
        got: usize,
    },
    /// An unknown parameter name.
    #[error("unknown parameter {0:?}")]
    UnknownParameter(String),
    /// The integration produced a non-finite state (should not happen inside the ranges).
    #[error("the simulation diverged (non-finite state) at t = {time:.3} s")]
    Diverged {
        /// Simulated time at which the state became non-finite.
        time: f64,
    },
    /// The run did not reach periodic steady state within the beat budget.
    #[error("no periodic steady state after {beats} beats (last beat-to-beat change {change:.2e})")]
    NotPeriodic {
        /// Beats simulated.
        beats: usize,
        /// Last relative beat-to-beat change of the state.
        change: f64,
    },
    /// Invalid simulation or data-set options.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
