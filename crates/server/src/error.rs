//! [`ApiError`]: every failure as JSON `{ "error": code, "message": text }` with its HTTP status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `"malformed"`.
    pub code: &'static str,
    /// Human-readable text (never contains payload bytes).
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
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

    /// 415: not `application/x-more-tensor`.
    pub fn unsupported_media_type(found: Option<&str>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be {}, got {}",
                more_core::codec::MEDIA_TYPE,
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

    /// 500: a bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(Body { error: self.code, message: &self.message })).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}
