//! The error type of `more-enctrain`.

/// Everything that can go wrong while converting, computing on or decrypting coefficient-form tensors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the scheme itself.
    #[error(transparent)]
    Core(#[from] more_core::Error),
    /// No ciphertext in the sample has two distinct real eigenvalues, so no reference `X̂` exists.
    #[error("no usable reference ciphertext: {0}")]
    NoReference(String),
    /// A ciphertext does not lie in `span{I, X̂}`: it was encrypted under another key.
    #[error(
        "element {index} is not in the reference span (relative residual {residual:e}): encrypted under another key?"
    )]
    NotInSpan {
        /// Flat index of the element.
        index: usize,
        /// `‖C − αI − βX̂‖ / ‖C‖`.
        residual: f64,
    },
    /// Two tensors were expressed in different reference bases.
    #[error("operands use different reference bases (in {op})")]
    BasisMismatch {
        /// The operation.
        op: &'static str,
    },
    /// Shapes that do not fit the operation.
    #[error("{op}: shapes {left:?} and {right:?} do not fit")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Left operand shape.
        left: Vec<usize>,
        /// Right operand shape.
        right: Vec<usize>,
    },
    /// An operation produced NaN or infinity.
    #[error("{op} produced a non-finite value")]
    NonFinite {
        /// The operation.
        op: &'static str,
    },
    /// Decryption with a key that does not match the data: the known-answer check failed.
    #[error("wrong key: {0}")]
    WrongKey(String),
    /// Invalid training data or configuration.
    #[error("invalid input: {0}")]
    Invalid(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
