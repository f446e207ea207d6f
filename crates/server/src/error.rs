//! [`ApiError`]: every failure as JSON `{ "error": code, "message": text }` with its HTTP status.
//!
//! Two kinds of failure reach a client. A client's mistake (a malformed body, an unknown model, a full
//! queue, …) is answered with a 4xx or 503 status and a message that tells the client what to change.
//! An internal failure (a bug: a model that panicked, a tensor that cannot be reshaped) is logged in full
//! — in the request's span, so the line carries its `x-request-id` — and answered 500 with a generic
//! message: the client learns that it is not its fault and which id to report, nothing about the server.
//! Handlers return `Result<_, ApiError>` and use `?`: [`From`] conversions map the engine's
//! [`JobError`] to its status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::engine::JobError;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `"malformed"`.
    pub code: &'static str,
    /// Human-readable text (never contains payload bytes).
    pub message: String,
    /// For internal errors: the full cause, logged when the answer is made and never sent.
    cause: Option<String>,
}

/// What a client is told about an internal error.
pub const INTERNAL_MESSAGE: &str =
    "internal server error; the server log has the details under this response's x-request-id";

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), cause: None }
    }

    /// 400: bytes that are not a valid wire-format tensor.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    /// 404: no model with this id.
    pub fn unknown_model(id: &str) -> Self {
        let mut shown: String = id.chars().take(64).collect();
        if shown.len() < id.len() {
            shown.push('…');
        }
        Self::new(StatusCode::NOT_FOUND, "unknown_model", format!("no model with id {shown:?}; see GET /api/v1/models"))
    }

    /// 404: no such route or file.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413: body above the limit.
    pub fn too_large(size: u64, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body of {size} bytes exceeds the limit of {limit} bytes"),
        )
    }

    /// 415: not the media type `wanted`.
    pub fn unsupported_media_type(wanted: &str, found: Option<&str>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be {wanted}, got {}",
                found.map_or_else(|| "none".to_string(), |s| format!("{:?}", s.chars().take(80).collect::<String>()))
            ),
        )
    }

    /// 422: a well-formed tensor the model cannot take.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429: the inference queue is full.
    pub fn queue_full() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", "the inference queue is full; retry shortly")
    }

    /// 503: overloaded (waited too long) or shutting down.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 500: a bug. `context` says what the server was doing; it and `cause` are logged with the request
    /// id, and the client gets [`INTERNAL_MESSAGE`].
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", INTERNAL_MESSAGE);
        e.cause = Some(format!("{context}: {cause}"));
        e
    }

    /// The logged cause of an internal error (`None` for a client's mistake).
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// Maps a wire-format decoding error to its status (400 malformed, 413 too large, 422 dtype/non-finite).
    pub fn from_decode(e: &more_core::Error, limit: usize) -> Self {
        use more_core::Error as E;
        match e {
            E::TooLarge { size, .. } => Self::too_large(*size, limit),
            E::WrongDType { expected, found } => {
                Self::unprocessable("wrong_dtype", format!("this model takes {expected} planes, the body has {found}"))
            }
            E::NonFiniteInput { .. } => Self::unprocessable("non_finite", e.to_string()),
            _ => Self::malformed(e.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::QueueFull => Self::queue_full(),
            JobError::ShuttingDown => Self::unavailable("shutting_down", e.to_string()),
            JobError::Rejected(message) => Self::unprocessable("invalid_ciphertext", message),
            JobError::Panicked => Self::internal("inference", e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            // Runs inside the request's span: the log line carries the request id.
            tracing::error!(cause = %cause, "internal error");
        }
        let mut res = (self.status, Json(Body { error: self.code, message: &self.message })).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(e: ApiError) -> (StatusCode, String) {
        let res = e.into_response();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn job_errors_map_to_their_status_and_internal_causes_stay_in_the_log() {
        let cases = [
            (JobError::QueueFull, StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            (JobError::ShuttingDown, StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            (JobError::Rejected("complex eigenvalues".into()), StatusCode::UNPROCESSABLE_ENTITY, "invalid_ciphertext"),
            (JobError::Panicked, StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        ];
        for (job, status, code) in cases {
            let e = ApiError::from(job);
            assert_eq!((e.status, e.code), (status, code));
        }
        // A client's mistake keeps its explanation.
        let (_, text) = body_of(ApiError::from(JobError::Rejected("complex eigenvalues".into()))).await;
        assert!(text.contains("complex eigenvalues"), "{text}");
        // An internal error is answered with the generic message; its cause is only logged.
        let e = ApiError::internal("reshaping the answer", "incompatible shape [4, 3]");
        assert_eq!(e.cause(), Some("reshaping the answer: incompatible shape [4, 3]"));
        let (status, text) = body_of(e).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!text.contains("incompatible") && !text.contains("reshaping"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["error"], "internal");
        assert_eq!(json["message"], INTERNAL_MESSAGE);
    }
}
