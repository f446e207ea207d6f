//! `GET /api/v1/openapi.yaml`: the machine-readable description of this API (`docs/openapi.yaml`), compiled
//! into the binary so that a client, a code generator or an API browser gets the description of the very
//! server it talks to.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The OpenAPI 3.1 document, as in `docs/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

/// The media type of the document (RFC 9512).
pub const MEDIA_TYPE: &str = "application/yaml";

pub(crate) async fn document() -> Response {
    let mut res = OPENAPI_YAML.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    res
}
