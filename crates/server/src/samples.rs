//! Sample images offered to the page (`--samples DIR`): `GET /api/v1/samples` lists the PNG/JPEG files of
//! the directory (with their label from an optional `labels.csv` of `file,label` lines), and
//! `GET /api/v1/samples/{file}` serves one. Only names from the listing are served, so no path can escape
//! the directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::extract::State;

use crate::extract::ApiPath as UrlPath;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::{ApiError, AppState};

/// One sample image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// File name.
    pub name: String,
    /// Where to fetch it.
    pub url: String,
    /// Label from `labels.csv` (e.g. `"RCA"`), or empty.
    pub label: String,
}

/// The sample directory and its listing.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    dir: Option<PathBuf>,
    list: Vec<Sample>,
}

fn media_type(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".png") {
        Some("image/png")
    } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        Some("image/jpeg")
    } else {
        None
    }
}

impl Samples {
    /// Lists the PNG and JPEG files of `dir`, sorted by name.
    pub fn load(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref();
        let mut labels = BTreeMap::new();
        if let Ok(csv) = std::fs::read_to_string(dir.join("labels.csv")) {
            for line in csv.lines().skip(1) {
                if let Some((file, label)) = line.split_once(',') {
                    labels.insert(file.trim().to_string(), label.trim().to_string());
                }
            }
        }
        let mut list = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if media_type(&name).is_some() && entry.path().is_file() {
                let label = labels.get(&name).cloned().unwrap_or_default();
                list.push(Sample { url: format!("/api/v1/samples/{name}"), name, label });
            }
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Samples { dir: Some(dir.to_path_buf()), list })
    }

    /// The listing.
    pub fn list(&self) -> &[Sample] {
        &self.list
    }
}

pub(crate) async fn list(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(serde_json::json!({ "samples": s.inner.samples.list }))
}

pub(crate) async fn file(State(s): State<AppState>, UrlPath(name): UrlPath<String>) -> Result<Response, ApiError> {
    let samples = &s.inner.samples;
    let (Some(dir), Some(sample)) = (&samples.dir, samples.list.iter().find(|x| x.name == name)) else {
        return Err(ApiError::not_found("no such sample"));
    };
    let bytes = tokio::fs::read(dir.join(&sample.name)).await.map_err(|_| ApiError::not_found("no such sample"))?;
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(&sample.name).unwrap_or("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    Ok(res)
}
