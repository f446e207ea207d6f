//! Sample training data offered to the page (`--training-data DIR`, the directory holding `mnist/`): the
//! first [`MAX_OFFERED`] MNIST training and test images, held in memory (15.7 MB, counted in the memory
//! bound), served in slices by `GET /api/v1/training/samples/mnist?split=&offset=&count=` in the
//! labelled-image format (`more_nn::idx::ImageSet::to_bytes`). The page stands in for a data owner who
//! would bring their own images; the server learns nothing from handing out public data.

use std::collections::HashMap;
use std::path::Path;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use more_nn::idx::{ImageSet, LABELLED_IMAGES_MEDIA_TYPE, load_mnist};

use crate::{ApiError, AppState};

/// Images kept per split.
pub const MAX_OFFERED: usize = 10_000;

/// Images one request may ask for.
pub const MAX_PER_REQUEST: usize = 10_000;

/// Images a request gets when it names no count.
pub const DEFAULT_COUNT: usize = 1_000;

/// The MNIST sample sets.
#[derive(Debug, Clone)]
pub struct TrainingData {
    train: ImageSet,
    test: ImageSet,
}

impl TrainingData {
    /// The first [`MAX_OFFERED`] images of MNIST's training and test splits under `dir/mnist`.
    pub fn load_mnist(dir: &Path) -> more_nn::Result<Self> {
        Ok(TrainingData {
            train: load_mnist(dir, "train")?.take(MAX_OFFERED),
            test: load_mnist(dir, "test")?.take(MAX_OFFERED),
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        [&self.train, &self.test].iter().map(|s| s.images.len() + s.labels.len()).sum()
    }

    fn split(&self, name: &str) -> Option<&ImageSet> {
        match name {
            "train" => Some(&self.train),
            "test" => Some(&self.test),
            _ => None,
        }
    }
}

fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_REQUEST, "bad_query", message)
}

fn number(query: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| bad_query(format!("{name} must be a non-negative whole number, got {v:?}"))),
    }
}

/// `GET /api/v1/training/samples/mnist`: `split` (`train` or `test`, default `train`), `offset` (default
/// 0) and `count` (default [`DEFAULT_COUNT`], at most [`MAX_PER_REQUEST`]) images as one labelled-image
/// body. 404 `no_training_data` when the server offers none.
pub async fn mnist(State(s): State<AppState>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(data) = s.training_data() else {
        return ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "no_training_data",
            "this server offers no sample training data (start it with --training-data DIR)",
        )
        .into_response();
    };
    let answer = || -> Result<Response, ApiError> {
        let name = query.get("split").map_or("train", String::as_str);
        let set = data.split(name).ok_or_else(|| {
            bad_query(format!("split must be train or test, got {:?}", name.chars().take(16).collect::<String>()))
        })?;
        let offset = number(&query, "offset", 0)?;
        let count = number(&query, "count", DEFAULT_COUNT)?;
        if count == 0 || count > MAX_PER_REQUEST {
            return Err(bad_query(format!("count must be 1 to {MAX_PER_REQUEST}, got {count}")));
        }
        if offset >= set.len() {
            return Err(bad_query(format!("offset {offset} is past the {} images of the {name} split", set.len())));
        }
        // The answer is built in memory (up to 7.8 MB for 10,000 images): it reserves its size from the
        // request budget until it has been sent (or the client has gone), like any other request.
        let images = count.min(set.len() - offset);
        let size = 20 + images * (set.images.len() / set.len().max(1) + 1);
        let held = s.budget().try_reserve(size).ok_or_else(|| crate::request::over_budget(s.budget(), size))?;
        let bytes = axum::body::Bytes::from(set.range_bytes(offset, count));
        let length = HeaderValue::from(bytes.len());
        let body = futures_util::stream::unfold((Some(bytes), Some(held)), |(bytes, held)| async move {
            // The reservation lives in the stream's state: it is released when the body ends or is dropped.
            let chunk = bytes?;
            Some((Ok::<_, std::convert::Infallible>(chunk), (None, held)))
        });
        let mut r = axum::body::Body::from_stream(body).into_response();
        r.headers_mut().insert(header::CONTENT_LENGTH, length);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(LABELLED_IMAGES_MEDIA_TYPE));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
        Ok(r)
    };
    answer().unwrap_or_else(IntoResponse::into_response)
}
