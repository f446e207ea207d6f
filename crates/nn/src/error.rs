//! The error type of `more-nn`.

/// Everything that can go wrong when building, loading, running or training a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the MORE scheme (a ciphertext operation, a key, the wire format).
    #[error(transparent)]
    Core(#[from] more_core::Error),
    /// A tensor has the wrong shape for an operation or layer.
    #[error("shape mismatch in {op}: expected {expected}, found {found:?}")]
    Shape {
        /// The operation or layer.
        op: &'static str,
        /// What was expected (human-readable).
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A model description that cannot work (e.g. a dense layer after a 3-D tensor).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A model file that is not valid: wrong magic, version, checksum, truncated, bad metadata.
    #[error("invalid model file: {0}")]
    ModelFile(String),
    /// A data file (IDX) that is missing or not valid.
    #[error("invalid data file {path}: {reason}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A value became NaN or infinite (e.g. training diverged).
    #[error("non-finite value in {0}")]
    NonFinite(&'static str),
    /// An encrypted input whose elements cannot be ciphertexts (complex eigenvalues), found by a layer
    /// that uses the 2x2 structure.
    #[error("not a valid ciphertext: an element has complex eigenvalues (found in {0})")]
    NotACiphertext(&'static str),
    /// An encrypted input whose planes are not ciphertexts of one key: an element lies outside the
    /// two-dimensional algebra `span{I, J}` of its sample (found by the coefficient form).
    #[error(
        "not ciphertexts of one key: element {index} of sample {sample} lies outside the sample's algebra \
         (relative residual {residual:.1e})"
    )]
    NotOneKey {
        /// The sample (batch index).
        sample: usize,
        /// The element within the sample.
        index: usize,
        /// `‖C − α·I − β·J‖_F / ‖C‖_F`.
        residual: f64,
    },
    /// An invalid training configuration or data set.
    #[error("invalid training setup: {0}")]
    Training(String),
    /// An operation the tensor algebra does not support (e.g. revealing values without the key).
    #[error("unsupported operation: {0}")]
    Unsupported(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn shape(op: &'static str, expected: impl Into<String>, found: &[usize]) -> Self {
        Error::Shape { op, expected: expected.into(), found: found.to_vec() }
    }
}
