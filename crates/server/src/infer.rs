//! `POST /api/v1/models/{id}/infer`: MORE inference on a wire-format ciphertext.
//!
//! Route → model lookup → [`BodyReader`] (media type, declared length, deadline, memory reserved as the
//! body arrives) → admission (requests in flight) → [`wire::read_input`] (the header parsed once, as it
//! arrives, and checked against the model; then the planes) → the forward pass's memory reserved →
//! [`Engine::infer_holding`](crate::Engine::infer_holding) (a bounded queue, worker threads merging
//! concurrent requests; the job owns the reservation) → the encoded answer.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::extract::ApiPath;
use crate::request::{BodyReader, BodyRules};
use crate::{ApiError, AppState, wire};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The handler.
pub async fn infer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let model = crate::uploads::find(&s, &id).await?;
    let limits = s.limits();
    let rules = BodyRules {
        media_type: more_core::codec::MEDIA_TYPE,
        limit: s.body_limit(&model),
        per_byte: crate::budget::BODY_COPIES,
        deadline: limits.request_timeout,
    };
    let mut reader = BodyReader::new(&headers, body, rules, s.budget())?;
    let Ok(_permit) = s.inner.inflight.clone().try_acquire_owned() else {
        return Err(ApiError::unavailable("overloaded", "too many inference requests in flight; retry shortly"));
    };
    let _counted = s.metrics().inference_started();
    let t0 = Instant::now();
    let expected = wire::Expected { input_shape: model.input_shape(), max_batch: limits.max_batch, limit: rules.limit };
    let wire::Input { tensor, samples, batched, bytes } = wire::read_input(&mut reader, expected).await?;
    // The body's copies and the forward pass's memory for its samples, owned by the job from here on.
    reader.reserve(s.reservation(&model, bytes))?;
    let memory = reader.into_reservation();
    let decode = t0.elapsed();

    let computed = tokio::time::timeout(
        limits.request_timeout.saturating_sub(decode),
        s.engine().infer_holding(model.clone(), tensor, Some(Box::new(memory))),
    )
    .await
    .map_err(|_| ApiError::unavailable("timeout", "the inference did not finish in time; retry shortly"))??;

    let t2 = Instant::now();
    let mut output = computed.output;
    if !batched {
        output = output.reshape(&[model.output_len()]).map_err(|e| ApiError::internal("removing the batch axis", e))?;
    }
    let bytes = more_core::encode(&output);
    let encode = t2.elapsed();
    tracing::info!(
        model = %crate::uploads::logged(&id),
        samples,
        batch = computed.batch_samples,
        decode_us = decode.as_micros() as u64,
        queue_us = computed.queue.as_micros() as u64,
        compute_us = computed.compute.as_micros() as u64,
        "inferred"
    );
    let timing = format!(
        "decode;dur={:.3}, queue;dur={:.3}, compute;dur={:.3};desc=\"batch {}\", encode;dur={:.3}",
        ms(decode),
        ms(computed.queue),
        ms(computed.compute),
        computed.batch_samples,
        ms(encode)
    );
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(more_core::codec::MEDIA_TYPE));
    h.insert(HeaderName::from_static("server-timing"), HeaderValue::from_str(&timing).expect("ascii"));
    h.insert(
        HeaderName::from_static("x-more-encrypted-form"),
        HeaderValue::from_static(s.engine().config().form.name()),
    );
    Ok(res)
}
