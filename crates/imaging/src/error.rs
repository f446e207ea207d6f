//! Errors of the preprocessing functions (user input: never a panic).

/// What went wrong while preprocessing an image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Width or height is zero.
    #[error("the image is empty ({width}x{height})")]
    Empty {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
    /// A side is larger than [`crate::MAX_SIDE`].
    #[error("the image is too large ({width}x{height}; at most {max} pixels per side)")]
    TooLarge {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// The limit per side.
        max: usize,
    },
    /// The pixel buffer does not have `width * height * channels` entries.
    #[error("the pixel buffer has {got} values, expected {expected} for {width}x{height} {format}")]
    BadLength {
        /// Entries in the buffer.
        got: usize,
        /// Entries expected.
        expected: usize,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// Pixel format name.
        format: &'static str,
    },
    /// A pixel value is NaN or infinite.
    #[error("pixel values must be finite")]
    NonFinite,
    /// Nothing is drawn (no pixel differs from the background).
    #[error("nothing is drawn: the image has no ink")]
    NoInk,
    /// The normalisation parameters are unusable.
    #[error("bad normalisation: {0}")]
    BadNormalization(String),
    /// A preprocessing kind this crate does not know.
    #[error("unknown preprocessing kind {0:?} (expected \"mnist-digit\", \"angio-frame\" or \"angio-bfv\")")]
    UnknownKind(String),
    /// The bytes are neither a PNG nor a JPEG file.
    #[error("not a PNG or JPEG file")]
    NotAnImage,
    /// A PNG or JPEG file that cannot be decoded (truncated, corrupt or an unsupported variant).
    #[error("not a readable {format}: {reason}")]
    Unreadable {
        /// `PNG` or `JPEG`.
        format: &'static str,
        /// What the decoder said.
        reason: String,
    },
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
