//! The limits of uploaded models ([`UploadLimits`]). Both the upload routes ([`crate::uploads`], which names
//! everything here under its own path too) and the model store ([`crate::state_store::models`]) read them,
//! so they live apart from either: this module imports neither.

use std::time::Duration;

/// Memory a stored model is counted as beyond its file's size: its parsed metadata and listing (at most
/// [`MAX_METADATA_BYTES`](crate::uploads::MAX_METADATA_BYTES) of JSON, a few times that parsed) and the allocator's slack.
pub const MODEL_OVERHEAD_BYTES: usize = 1 << 20;

/// By default a client may hold a quarter of the uploaded models ([`UploadLimits::client_share`]).
pub const CLIENT_SHARES: usize = 4;

/// The limits of uploaded models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Models held at once (0: uploads are off).
    pub max_models: usize,
    /// Largest model file, bytes.
    pub max_bytes: usize,
    /// A model is dropped this long after its last use.
    pub ttl: Duration,
    /// Models one client may hold; beyond it, a new upload replaces the client's least recently used one.
    pub client_share: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits::new(16, 8 << 20, Duration::from_secs(3600))
    }
}

impl UploadLimits {
    /// `max_models` of at most `max_bytes`, each living `ttl` after its last use, a client holding a
    /// quarter of them (at least one).
    pub fn new(max_models: usize, max_bytes: usize, ttl: Duration) -> Self {
        UploadLimits { max_models, max_bytes, ttl, client_share: (max_models / CLIENT_SHARES).max(1) }
    }

    /// Memory one stored model is counted as: its file's largest size (the parsed weights take as many
    /// bytes as the file holds) and [`MODEL_OVERHEAD_BYTES`].
    pub fn model_memory(&self) -> usize {
        self.max_bytes.saturating_add(MODEL_OVERHEAD_BYTES)
    }
}
