//! Extractors whose rejections are [`ApiError`]s, so that every error the API answers is JSON.

use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::conn::ClientAddr;
use crate::error::ApiError;

/// [`Path`], answering 400 `bad_path` (JSON) when a segment cannot be decoded, e.g. a percent-encoded
/// byte sequence that is not UTF-8.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.body_text())),
        }
    }
}

/// The client a request comes from, as per-client limits count it: the peer's IP address (`"unknown"`
/// when the server runs without connection info, as in-process tests do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<ClientAddr>>().map(|c| c.0.0.ip());
        Ok(Client(peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())))
    }
}
