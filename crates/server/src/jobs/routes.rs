//! The job routes: `GET /api/v1/training`, `POST /api/v1/jobs`, `GET|DELETE /api/v1/jobs/{id}`,
//! `GET /api/v1/jobs/{id}/events` (Server-Sent Events, resumable with `Last-Event-ID`) and
//! `GET /api/v1/jobs/{id}/model`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use more_enctrain::upload::{JobRequest, MEDIA_TYPE, decode_body, decode_header};

use super::store::{self, Record, State as JobState};
use super::{Jobs, TrainingLimits, UPLOAD_MEMORY_PER_BYTE, networks, tag};
use crate::extract::{ApiPath, Client};
use crate::request::{BodyReader, BodyRules, Received};
use crate::{ApiError, AppState};

/// Slowest upload rate a training upload is given time for: its deadline is the request timeout plus its
/// declared size (or the upload limit) at this rate (64 MiB: the timeout + 64 s).
pub const MIN_UPLOAD_BYTES_PER_S: usize = 1 << 20;

fn jobs_of(s: &AppState) -> Result<&Arc<Jobs>, ApiError> {
    s.jobs().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "training_disabled",
            "this server does not train (started with --no-training)",
        )
    })
}

/// `GET /api/v1/training`: whether the server trains, the networks offered and the limits.
pub async fn info(State(s): State<AppState>) -> impl IntoResponse {
    let Some(jobs) = s.jobs() else {
        return axum::Json(json!({"enabled": false, "networks": [], "limits": null}));
    };
    let l = jobs.limits;
    axum::Json(json!({
        "enabled": true,
        "media_type": MEDIA_TYPE,
        "networks": networks::offered(),
        "limits": {
            "max_upload_bytes": l.max_upload_bytes, "max_jobs_per_client": l.max_jobs_per_client,
            "max_jobs": l.max_jobs, "max_queue_bytes": l.max_queue_bytes, "max_held_jobs": l.max_held_jobs,
            "max_epochs": l.max_epochs, "max_batch_size": l.max_batch_size,
            "max_wall_seconds": l.max_wall.as_secs(), "ttl_seconds": l.ttl.as_secs(),
            "max_memory_bytes": l.max_memory_bytes, "threads": l.threads,
        },
    }))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_job", message)
}

fn check_request(r: &JobRequest, l: &TrainingLimits) -> Result<networks::Network, ApiError> {
    let network = networks::find(&r.network).ok_or_else(|| {
        let ids: Vec<&str> = networks::offered().iter().map(|n| n.id).collect();
        invalid(format!(
            "unknown network {:?}; offered: {}",
            r.network.chars().take(64).collect::<String>(),
            ids.join(", ")
        ))
    })?;
    if r.epochs == 0 || r.epochs > l.max_epochs {
        return Err(ApiError::unprocessable(
            "too_many_epochs",
            format!("epochs must be between 1 and {} (asked {})", l.max_epochs, r.epochs),
        ));
    }
    if r.batch_size == 0 || r.batch_size > l.max_batch_size {
        return Err(invalid(format!("batch_size must be between 1 and {} (asked {})", l.max_batch_size, r.batch_size)));
    }
    if !(r.lr.is_finite() && r.lr > 0.0 && r.lr <= 1.0) {
        return Err(invalid(format!("lr must be in (0, 1] (asked {})", r.lr)));
    }
    if !(r.lr_decay.is_finite() && r.lr_decay > 0.0 && r.lr_decay <= 1.0) {
        return Err(invalid(format!("lr_decay must be in (0, 1] (asked {})", r.lr_decay)));
    }
    Ok(network)
}

/// `POST /api/v1/jobs`: checks and stores the upload, queues the job; 202 with its URLs.
pub async fn create(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let jobs = jobs_of(&s)?.clone();
    let l = jobs.limits;
    let declared = crate::request::declared_length(&headers).unwrap_or(0) as usize;
    jobs.admit(&client, declared).await?;
    // The upload is read within its deadline, reserving from the uploads' own budget as it arrives: slow or
    // silent uploads hold only what they sent, and only until their deadline.
    let expected = crate::request::declared_length(&headers)
        .map_or(l.max_upload_bytes, |d| d.min(l.max_upload_bytes as u64) as usize);
    let deadline = s.limits().request_timeout + Duration::from_secs((expected / MIN_UPLOAD_BYTES_PER_S) as u64);
    let rules =
        BodyRules { media_type: MEDIA_TYPE, limit: l.max_upload_bytes, per_byte: UPLOAD_MEMORY_PER_BYTE, deadline };
    let Received { bytes: body, reservation } =
        BodyReader::new(&headers, body, rules, jobs.upload_budget())?.read_all().await?;
    let (request, _) = decode_header(&body).map_err(|e| ApiError::malformed(e.to_string()))?;
    let network = check_request(&request, &l)?;
    let memory = 2 * body.len() + request.batch_size * network.activation_bytes;
    if memory > l.max_memory_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "memory_limit",
            format!(
                "training this job would take about {} MiB, above the server's {} MiB per job; send fewer rows or a smaller batch",
                memory >> 20,
                l.max_memory_bytes >> 20
            ),
        ));
    }
    // The check runs on a blocking thread that owns its permit and the upload's reservation: a client
    // that disconnects cannot leave more checks running than the permits allow.
    let permit = tokio::time::timeout(s.limits().request_timeout, jobs.checks.clone().acquire_owned())
        .await
        .map_err(|_| ApiError::unavailable("overloaded", "other training uploads are being checked; retry shortly"))?
        .map_err(|e| ApiError::internal("the upload checks", e))?;
    let checked = {
        let body = body.clone();
        let (shape, outputs) = (network.input_shape.clone(), network.outputs);
        tokio::task::spawn_blocking(move || {
            let _owned = (permit, reservation);
            decode_body(&body, &shape, outputs).map(|u| u.data.len())
        })
        .await
        .map_err(|e| ApiError::internal("checking an upload", e))?
    };
    let rows = checked.map_err(|e| match e {
        more_enctrain::Error::Core(c @ more_core::Error::Malformed(_)) => ApiError::malformed(c.to_string()),
        other => ApiError::unprocessable("invalid_data", other.to_string()),
    })?;
    let id = format!("{:032x}", rand::random::<u128>());
    let record = Record {
        id: id.clone(),
        client,
        request,
        rows,
        upload_bytes: body.len(),
        memory_bytes: memory,
        created: store::now(),
        state: JobState::Queued,
        error: None,
        attempts: 0,
    };
    let status = jobs.insert(record, body.to_vec()).await?;
    tracing::info!(job = tag(&id), rows, network = %network.id, "training job queued");
    let mut res = (StatusCode::ACCEPTED, axum::Json(status)).into_response();
    res.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/api/v1/jobs/{id}")).map_err(|e| ApiError::internal("location", e))?,
    );
    Ok(res)
}

/// `GET /api/v1/jobs/{id}`: the job's state.
pub async fn status(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(jobs_of(&s)?.status(&id).await?).into_response())
}

/// `DELETE /api/v1/jobs/{id}`: cancels the job and deletes everything of it.
pub async fn delete(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    jobs_of(&s)?.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/jobs/{id}/model`: the encrypted model, once; the job is deleted after it is read.
pub async fn model(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let bytes = jobs_of(&s)?.take_model(&id).await?;
    let mut res = (StatusCode::OK, bytes).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-more-encrypted-model"));
    Ok(res)
}

/// `GET /api/v1/jobs/{id}/events`: Server-Sent Events — every event after the client's `Last-Event-ID`
/// (all of them without it), then the new ones, until the job is done, failed or cancelled. A comment line
/// goes out every [`Limits::stream_heartbeat`](crate::Limits::stream_heartbeat) while nothing happens, so
/// neither the server's idle timer nor a proxy's cuts a long job's stream; a client that is cut anyway
/// reconnects with `Last-Event-ID` and misses nothing, repeats nothing.
pub async fn events(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let jobs = jobs_of(&s)?;
    let after = match headers.get("last-event-id").map(|v| v.to_str().map(str::trim)) {
        None | Some(Ok("")) => None,
        Some(Ok(v)) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_last_event_id",
                "Last-Event-ID must be the id of an event of this stream (a whole number)",
            )
        })?),
        Some(Err(_)) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_last_event_id", "Last-Event-ID is not text"));
        }
    };
    use futures_util::StreamExt;
    // The stream ends when the server begins to stop; the client reconnects with Last-Event-ID.
    let stream = jobs
        .follow(&id, after)
        .await?
        .map(|e| Ok::<_, std::convert::Infallible>(Event::default().event(e.kind).id(e.id.to_string()).data(e.data)))
        .take_until(s.stopped());
    let beat = s.limits().stream_heartbeat;
    let mut res = Sse::new(stream).keep_alive(KeepAlive::new().interval(beat).text("heartbeat")).into_response();
    res.headers_mut().insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    Ok(res)
}
