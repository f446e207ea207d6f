//! The store of uploaded models: in this process (parsed) or in Redis (the model file's bytes, as the
//! server rewrote them with the id it gave), with the same limits either way
//! ([`UploadLimits`]): a time to live that restarts with every use, a cap on
//! the number of models and a per-client share beyond which a client's least recently used model is
//! replaced — the rules of [`super::capped`], each model costing one.
//!
//! Redis layout (every key under [`PREFIX`](super::PREFIX), see [`super::capped`]): `more:model:{id}` the
//! model file; `more:models` the ids by expiry; `more:models:sizes` (1 each) and `more:models:owners`.
//!
//! Each replica parses a model on first use and keeps the parse in a small in-process cache
//! ([`CACHED_MODELS`] at most, counted in the memory bound). Every lookup restarts the model's time to live
//! in Redis first and learns from it whether the model still exists, so a model deleted (or replaced, or
//! expired) through another replica is never used.

use std::sync::{Arc, Mutex};

use more_nn::Model;

use super::Redis;
use super::capped::{CappedMap, Caps, Full, Namespace, ParsedCache};
use crate::ApiError;
use crate::upload_limits::UploadLimits;

/// Parsed models one replica keeps when uploaded models live in Redis.
pub const CACHED_MODELS: usize = 8;

/// The store.
pub enum ModelStore {
    /// Parsed models in this process's memory.
    Embedded(CappedMap<Model>),
    /// Model files in Redis, parses cached here.
    Redis {
        /// The connection.
        redis: Redis,
        /// The parses.
        cache: Mutex<ParsedCache<Arc<Model>>>,
    },
}

impl Default for ModelStore {
    fn default() -> Self {
        ModelStore::Embedded(CappedMap::default())
    }
}

/// What a model lookup found: a parsed model, its file to parse, or nothing.
pub type Lookup = super::capped::Lookup<Model>;

fn namespace() -> Namespace {
    Namespace::under_prefix("models", "models:sizes", "models:owners", "model:")
}

fn caps(limits: &UploadLimits) -> Caps {
    Caps { cap: limits.max_models, share: limits.client_share, ttl: limits.ttl }
}

/// 503 `model_store_full`.
fn store_full(used: usize, limits: &UploadLimits) -> ApiError {
    ApiError::unavailable(
        "model_store_full",
        format!(
            "the server holds as many uploaded models as it may ({used} of {}; {} per client, the oldest replaced); \
             retry when one expires or is deleted",
            limits.max_models,
            limits.client_share.min(limits.max_models)
        ),
    )
}

impl ModelStore {
    /// A store in Redis whose replica caches at most [`CACHED_MODELS`] parses.
    pub fn redis(redis: Redis, limits: &UploadLimits) -> ModelStore {
        let most = CACHED_MODELS.min(limits.max_models);
        let cache = ParsedCache::new(most, most.saturating_mul(limits.model_memory()));
        ModelStore::Redis { redis, cache: Mutex::new(cache) }
    }

    /// Models this process may hold parsed: the cap, or the cache's size when the models live in Redis.
    pub fn models_held(&self, limits: &UploadLimits) -> usize {
        match self {
            ModelStore::Embedded(_) => limits.max_models,
            ModelStore::Redis { .. } => CACHED_MODELS.min(limits.max_models),
        }
    }

    /// Checks that one more model from `client` would fit (after replacing its oldest) and changes
    /// nothing; 503 `model_store_full` if it would not.
    pub async fn check_room(&self, limits: &UploadLimits, client: &str) -> Result<(), ApiError> {
        let stored = match self {
            ModelStore::Embedded(map) => map.store(&caps(limits), client, None, 1),
            ModelStore::Redis { redis, .. } => namespace().store(redis, &caps(limits), client, (1, 1), None).await?,
        };
        stored.map(|_| ()).map_err(|Full { used }| store_full(used, limits))
    }

    /// Stores `model` (its file `file`, for Redis) under its id, replacing the client's oldest models beyond
    /// its share; 503 `model_store_full` if the store is full.
    pub async fn insert(&self, limits: &UploadLimits, client: &str, model: Model, file: &[u8]) -> Result<(), ApiError> {
        let id = model.meta().id.clone();
        let replaced = match self {
            ModelStore::Embedded(map) => map.store(&caps(limits), client, Some((id, model)), 1),
            ModelStore::Redis { redis, .. } => {
                let stored = namespace().store(redis, &caps(limits), client, (1, 1), Some((&id, file))).await?;
                if stored.is_ok() {
                    self.cache(limits, Arc::new(model));
                }
                stored
            }
        }
        .map_err(|Full { used }| store_full(used, limits))?;
        if replaced > 0 {
            tracing::info!(replaced, "uploaded models replaced: the client's share of the store was full");
        }
        Ok(())
    }

    /// The model `id`, restarting its time to live: parsed, or its file to parse, or unknown.
    pub async fn lookup(&self, limits: &UploadLimits, id: &str) -> Result<Lookup, ApiError> {
        match self {
            ModelStore::Embedded(map) => Ok(map.get(limits.ttl, id, true).map_or(Lookup::Unknown, Lookup::Ready)),
            ModelStore::Redis { redis, cache } => {
                let ns = namespace();
                if !ns.touch(redis, limits.ttl, id).await? {
                    cache.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                    return Ok(Lookup::Unknown);
                }
                if let Some(model) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
                    return Ok(Lookup::Ready(model));
                }
                Ok(ns.fetch(redis, id).await?.map_or(Lookup::Unknown, Lookup::Fetched))
            }
        }
    }

    /// Keeps a parse in the replica's cache (Redis only).
    pub fn cache(&self, limits: &UploadLimits, model: Arc<Model>) {
        if let ModelStore::Redis { cache, .. } = self {
            let id = model.meta().id.clone();
            cache.lock().unwrap_or_else(|e| e.into_inner()).put(&id, model, limits.model_memory());
        }
    }

    /// Deletes the model `id`; `false` if there was none.
    pub async fn remove(&self, id: &str) -> Result<bool, ApiError> {
        match self {
            ModelStore::Embedded(map) => Ok(map.remove(id)),
            ModelStore::Redis { redis, cache } => {
                cache.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                namespace().delete(redis, id).await
            }
        }
    }
}
