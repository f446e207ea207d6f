//! The error type of `more-core`.

use crate::dtype::DType;

/// Everything that can go wrong in the scheme, the tensor algebra and the wire format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key matrix is singular, non-finite, or more ill-conditioned than allowed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A key condition-number bound or noise range that cannot be used.
    #[error("invalid key options: {0}")]
    InvalidKeyOptions(String),
    /// A plaintext value to encrypt is NaN or infinite.
    #[error("cannot encrypt a non-finite value ({value}) at index {index}")]
    NonFinitePlaintext {
        /// Flat index of the offending value.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// An operation produced NaN or infinity (overflow, division by a zero determinant, ...).
    #[error("{op} produced a non-finite value at index {index}")]
    NonFinite {
        /// The operation that failed.
        op: &'static str,
        /// Flat index of the first bad element.
        index: usize,
    },
    /// A ciphertext has no inverse (its determinant is zero: one of its lanes is 0).
    #[error("ciphertext at index {index} is not invertible (determinant {det:e})")]
    Singular {
        /// Flat index of the element.
        index: usize,
        /// Its determinant.
        det: f64,
    },
    /// A matrix that cannot be a ciphertext: its eigenvalues are complex.
    #[error("element {index} is not a valid ciphertext: complex eigenvalues (discriminant {discriminant:e})")]
    NotACiphertext {
        /// Flat index of the element.
        index: usize,
        /// The (negative) discriminant `((c00 - c11)/2)^2 + c01*c10`.
        discriminant: f64,
    },
    /// Two operands have different shapes.
    #[error("shape mismatch in {op}: {left:?} vs {right:?}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Shape of the left operand.
        left: Vec<usize>,
        /// Shape of the right operand.
        right: Vec<usize>,
    },
    /// A shape that is not allowed (empty, zero-sized, too many dimensions, too many elements).
    #[error("invalid shape {shape:?}: {reason}")]
    InvalidShape {
        /// The shape.
        shape: Vec<usize>,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Bytes that are not a valid encoded tensor or key.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// The encoding would exceed the caller's size limit.
    #[error("encoded tensor too large: {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size the header announces (or the input length).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The encoding names a different element type than expected.
    #[error("wrong dtype: expected {expected}, found {found}")]
    WrongDType {
        /// What the caller asked for.
        expected: DType,
        /// What the bytes contain.
        found: DType,
    },
    /// A wire-format version this build does not understand.
    #[error("unsupported wire-format version {0}")]
    UnsupportedVersion(u8),
    /// A decoded value is NaN or infinite.
    #[error("non-finite value in plane {plane} at index {index}")]
    NonFiniteInput {
        /// Plane (0 = c00, 1 = c01, 2 = c10, 3 = c11).
        plane: usize,
        /// Flat index within the plane.
        index: usize,
    },
    /// A failed check that decryption used the right key.
    #[error("decryption check failed: {0} (wrong key?)")]
    WrongKey(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
