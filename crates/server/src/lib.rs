//! # more-server
//!
//! The encrypted-inference server: serves the page (`index.html`, `web/`) and runs the more-nn models of a
//! directory on MORE ciphertexts. It never receives a key, logs no payloads and keeps no ciphertext after
//! answering. The API is documented in `docs/api.md`:
//!
//! - `GET /api/v1/health`, `GET /api/v1/models` (+ `GET /api/v1/models/{id}`), `GET /api/v1/samples`
//!   (+ `GET /api/v1/samples/{file}`), `GET /api/v1/openapi.yaml`,
//! - `POST /api/v1/models/{id}/infer` with an `application/x-more-tensor` body,
//! - `GET /metrics` (Prometheus text format, [`metrics`]),
//! - the class challenges under `/api/v1/challenges` (see [`challenge`]; the teacher's routes need the
//!   [`TeacherToken`]).
//! - BFV: `POST /api/v1/bfv/keys`, `POST /api/v1/bfv/models/{id}/infer?key_id=` ([`bfv`]).
//! - uploaded models ([`uploads`]): `POST /api/v1/models` (a model file) → an unguessable id that the
//!   infer route takes like a bundled model's; `DELETE /api/v1/models/{id}`.
//! - training jobs on encrypted data ([`jobs`]): `GET /api/v1/training`, `POST /api/v1/jobs`,
//!   `GET|DELETE /api/v1/jobs/{id}`, `GET /api/v1/jobs/{id}/events` (Server-Sent Events),
//!   `GET /api/v1/jobs/{id}/model`.
//!
//! Shared state: class challenges, BFV keys, uploaded models and training jobs live in this process or, with `--state redis://…`, in Redis
//! shared by every replica ([`state_store`]).
//!
//! Memory: every admitted inference request reserves its bodies' and its forward pass's memory from one
//! budget ([`budget`]), so the process stays below the bound [`AppState::memory_bound`] whatever the worker
//! count.
//!
//! [`app`] ([`router`]) builds the router from an [`AppState`] ([`state`]); `main.rs` only parses flags and
//! serves. Every route that reads a body reads it through [`request::BodyReader`] (media type, declared
//! length, a deadline, memory reserved as the bytes arrive); an inference request then goes as [`infer`]
//! describes. Failures are [`ApiError`]s.

pub mod allocator;
pub mod bfv;
pub mod bfv_batch;
mod bfv_limits;
pub mod budget;
mod capability;
pub mod challenge;
pub mod conn;
pub mod engine;
pub mod error;
pub mod extract;
pub mod glyphs;
pub mod idempotency;
pub mod infer;
pub mod jobs;
pub mod metrics;
pub mod model_info;
pub mod openapi;
pub mod request;
pub mod router;
pub mod samples;
pub mod state;
pub mod state_store;
pub mod teacher;
pub mod training_data;
mod upload_limits;
pub mod uploads;
pub mod wire;

pub use challenge::ChallengeLimits;
pub use engine::{Engine, EngineConfig, Registry};
pub use error::ApiError;
pub use more_nn::EncryptedForm;
pub use router::app;
pub use samples::Samples;
pub use state::{AppState, Limits, MEMORY_PER_BODY_BYTE};
pub use teacher::TeacherToken;
