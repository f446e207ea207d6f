//! What can go wrong in an import: every refusal names what it refused and why.

use thiserror::Error;

/// Why a file did not import.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The bytes are not an ONNX model (protobuf decoding failed).
    #[error("not an ONNX model: {0}")]
    Decode(String),
    /// A size limit was exceeded (file, tensor or parameter count).
    #[error("too large: {0}")]
    TooLarge(String),
    /// An operator, or an attribute of one, that the importer does not translate.
    #[error("unsupported operator {op} (node \"{node}\", opset {opset}): {why}")]
    Unsupported {
        /// The ONNX operator type, e.g. `"LSTM"`.
        op: String,
        /// The node's name (or its first output when unnamed).
        node: String,
        /// The opset of the operator's domain the model declares.
        opset: i64,
        /// What exactly is not supported.
        why: String,
    },
    /// The graph is well formed ONNX but not a network more-nn can run (several computed inputs, a
    /// missing initializer, a shape that does not fit).
    #[error("{0}")]
    Graph(String),
    /// more-nn refused the translated layers.
    #[error("the translated network is invalid: {0}")]
    Model(#[from] more_nn::Error),
}

/// Import result.
pub type Result<T> = std::result::Result<T, ImportError>;
