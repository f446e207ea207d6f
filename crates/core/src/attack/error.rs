//! Errors of the attacks.

/// Why an attack could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AttackError {
    /// The input is not a set of MORE ciphertexts (or holds non-finite values).
    #[error(transparent)]
    Scheme(#[from] crate::Error),
    /// A ciphertext whose two lanes are equal (`C = m·I`) carries no information about the key.
    #[error("{0}: the ciphertext has equal lanes (it is a multiple of I) and reveals nothing about the key")]
    EqualLanes(&'static str),
    /// Nothing to attack (no tensors, an index out of range, mismatched lengths).
    #[error("invalid attack input: {0}")]
    Input(String),
}

/// Result alias of the attack module.
pub type Result<T> = std::result::Result<T, AttackError>;
