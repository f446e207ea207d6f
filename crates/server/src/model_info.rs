//! What `GET /api/v1/models` and `POST /api/v1/models` say about a MORE model (`ModelInfo`), in one place
//! for the bundled and the uploaded models.

use serde::Serialize;

use crate::AppState;

/// One entry of `GET /api/v1/models`: the model's metadata plus what a client needs to call it. With the
/// coefficient form (the default), `operations` starts with its conversion, marked as using the 2x2
/// structure, and `ring_only` is `false` for every model; `layers_ring_only` says whether the layers
/// themselves are ring-only.
#[derive(Serialize)]
pub(crate) struct ModelInfo {
    #[serde(flatten)]
    meta: more_nn::ModelMeta,
    output_len: usize,
    ring_only: bool,
    layers_ring_only: bool,
    encrypted_form: &'static str,
    max_batch: usize,
    max_body_bytes: usize,
    infer_url: String,
    media_type: &'static str,
    scheme: &'static str,
}

pub(crate) fn model_info(s: &AppState, m: &more_nn::Model) -> ModelInfo {
    let form = s.inner.engine.config().form;
    let mut meta = m.meta().clone();
    if let Some(op) = form.operation() {
        meta.operations.insert(0, op);
    }
    ModelInfo {
        meta,
        output_len: m.output_len(),
        ring_only: m.is_ring_only() && !form.uses_2x2_structure(),
        layers_ring_only: m.is_ring_only(),
        encrypted_form: form.name(),
        max_batch: s.inner.limits.max_batch,
        max_body_bytes: s.body_limit(m),
        infer_url: format!("/api/v1/models/{}/infer", m.meta().id),
        media_type: more_core::codec::MEDIA_TYPE,
        scheme: "more",
    }
}
