//! Class challenges: the server renders a secret phrase as an 8-bit image, encrypts it under a fresh MORE
//! key that it drops at once, and publishes only the ciphertext. Students recover the image without the
//! key (MORE leaks it: every ciphertext of one key shares the eigenvectors of `S`) and submit it; the
//! teacher reads who solved it and when.
//!
//! - `POST /api/v1/challenges` (teacher) → `201 {"id", "url"}`,
//! - `GET /api/v1/challenges/{id}` → shape, value range, tolerance, ciphertext URL,
//! - `GET /api/v1/challenges/{id}/ciphertext` → the wire-format tensor (`f64`, shape `[rows, cols]`),
//! - `POST /api/v1/challenges/{id}/answers` `{"name", "answer": [values row-major]}` or `{"name", "phrase"}`
//!   → `{"correct": bool}`,
//! - `GET /api/v1/challenges/{id}/answers` (teacher) → every answer and who solved it when.
//!
//! Everything is bounded ([`ChallengeLimits`]): challenges held, answers per challenge and per name, and
//! the body of an answer. Names are sanitised before they are stored or shown.
//!
//! Challenges and their answers live in a [`ChallengeStore`]: this process's memory, or Redis shared by
//! every replica (`--state`, [`crate::state_store`]); the handlers here are the same for both.

use std::time::SystemTime;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use more_core::{KeyOptions, SecretKey};
use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::extract::ApiPath;
use crate::request::{BodyReader, BodyRules, Received};
use crate::state_store::challenges::{AnswerRecord, ChallengeRecord, ChallengeStore, Refused};
use crate::state_store::{from_unix_ms, unix_ms};
use crate::teacher::TeacherToken;
use crate::{ApiError, AppState, glyphs};

/// Characters in a secret phrase.
pub const PHRASE_LEN: usize = 5;
/// An answer is correct when every value is within this of the secret pixel (values in `[0, 1]`).
pub const TOLERANCE: f64 = 0.1;
/// Longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 40;
/// Memory an answer holds per body byte while it is checked: the body and its values as `f64` (a value
/// takes at least two bytes of JSON, `0,`, and eight as a number).
pub const ANSWER_MEMORY_PER_BYTE: usize = 5;

/// Bounds on what the challenge store holds and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeLimits {
    /// Challenges held at once; creating one more is refused (409).
    pub max_challenges: usize,
    /// Answers kept per challenge; more are refused (409).
    pub max_answers: usize,
    /// Answers per name and challenge; more are refused (409).
    pub max_answers_per_name: usize,
    /// Largest answer body, bytes (413 above it).
    pub max_body: usize,
}

impl Default for ChallengeLimits {
    fn default() -> Self {
        ChallengeLimits { max_challenges: 100, max_answers: 2000, max_answers_per_name: 20, max_body: 64 << 10 }
    }
}

/// The challenges of one server (or of all replicas, when they live in Redis) and the teacher's token.
#[derive(Default)]
pub struct Store {
    token: Option<TeacherToken>,
    limits: ChallengeLimits,
    backend: ChallengeStore,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("limits", &self.limits).field("backend", &self.backend).finish()
    }
}

impl Store {
    /// A store in this process's memory with this teacher token and these limits. Without a token the
    /// teacher's routes answer 401.
    pub fn new(token: Option<TeacherToken>, limits: ChallengeLimits) -> Self {
        Store { token, limits, backend: ChallengeStore::default() }
    }

    /// The same token and limits over another backend (e.g. Redis).
    pub fn with_backend(self, backend: ChallengeStore) -> Self {
        Store { backend, ..self }
    }

    fn teacher(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match &self.token {
            Some(t) => t.check(headers),
            None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "this server has no teacher token")),
        }
    }
}

/// A fresh challenge: a random phrase rendered, encrypted under a key generated here and dropped here.
fn make_challenge() -> Result<ChallengeRecord, ApiError> {
    let mut rng = rand::rng();
    let alphabet: Vec<char> = glyphs::ALPHABET.chars().collect();
    let phrase: String = (0..PHRASE_LEN).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
    let pixels = glyphs::render(&phrase).ok_or_else(|| ApiError::internal("rendering the phrase", &phrase))?;
    let shape = glyphs::shape(PHRASE_LEN);
    let values: Vec<f64> = pixels.iter().map(|&p| f64::from(p) / 255.0).collect();
    let image = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| ApiError::internal("shaping", e))?;
    // The key lives only in this block: afterwards nobody, the server included, holds it.
    let tensor = {
        let key = SecretKey::generate(KeyOptions::default()).map_err(|e| ApiError::internal("key generation", e))?;
        key.encrypt_tensor(&image.view()).map_err(|e| ApiError::internal("encrypting the challenge", e))?
    };
    let ciphertext = more_core::encode(&tensor);
    Ok(ChallengeRecord { created_ms: unix_ms(SystemTime::now()), phrase, pixels, shape, ciphertext })
}

fn new_id() -> String {
    let mut rng = rand::rng();
    (0..12).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect()
}

fn unknown(id: &str) -> ApiError {
    let shown: String = id.chars().take(32).collect();
    ApiError::not_found(format!("no challenge {shown:?}"))
}

fn limit_reached(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "limit_reached", message)
}

/// `POST /api/v1/challenges` (teacher): creates a challenge.
pub async fn create(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let store = s.challenges();
    store.teacher(&headers)?;
    let challenge = make_challenge()?;
    let id = new_id();
    if let Err(refused) = store.backend.create(&id, challenge, store.limits.max_challenges).await? {
        let held = match refused {
            Refused::ChallengesFull(n) => n,
            _ => store.limits.max_challenges,
        };
        return Err(limit_reached(format!("this server holds {held} challenges already")));
    }
    tracing::info!(%id, "challenge created");
    let url = format!("/api/v1/challenges/{id}");
    let mut res = (StatusCode::CREATED, Json(serde_json::json!({ "id": id, "url": url }))).into_response();
    res.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&url).map_err(|e| ApiError::internal("url", e))?);
    Ok(res)
}

/// `GET /api/v1/challenges/{id}`: what a student needs to solve it.
pub async fn info(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let c = s.challenges().backend.meta(&id).await?.ok_or_else(|| unknown(&id))?;
    Ok(Json(serde_json::json!({
        "id": id,
        "created": rfc3339(from_unix_ms(c.created_ms)),
        "shape": c.shape,
        "dtype": "f64",
        "value_range": [0.0, 1.0],
        "levels": 256,
        "tolerance": TOLERANCE,
        "phrase_length": PHRASE_LEN,
        "alphabet": glyphs::ALPHABET,
        "ciphertext_url": format!("/api/v1/challenges/{id}/ciphertext"),
        "media_type": more_core::codec::MEDIA_TYPE,
        "answers_url": format!("/api/v1/challenges/{id}/answers"),
    }))
    .into_response())
}

/// `GET /api/v1/challenges/{id}/ciphertext`: the encrypted image in the wire format.
pub async fn ciphertext(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let ciphertext = s.challenges().backend.ciphertext(&id).await?.ok_or_else(|| unknown(&id))?;
    let mut res = (StatusCode::OK, ciphertext).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(more_core::codec::MEDIA_TYPE));
    Ok(res)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerIn {
    name: String,
    answer: Option<Vec<f64>>,
    phrase: Option<String>,
}

/// Keeps letters, digits, spaces and `-_.'`, collapses runs of spaces and cuts at [`MAX_NAME_CHARS`].
/// `None` if nothing is left.
pub fn sanitise_name(raw: &str) -> Option<String> {
    let kept: String = raw
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|&c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '\''))
        .collect();
    let name: String = kept.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    let name: String = name.chars().take(MAX_NAME_CHARS).collect();
    let name = name.trim_end().to_string();
    (!name.is_empty()).then_some(name)
}

/// `POST /api/v1/challenges/{id}/answers`: checks one answer and records it.
pub async fn answer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let store = s.challenges();
    if !store.backend.exists(&id).await? {
        return Err(unknown(&id));
    }
    let rules = BodyRules {
        media_type: "application/json",
        limit: store.limits.max_body,
        per_byte: ANSWER_MEMORY_PER_BYTE,
        deadline: s.limits().request_timeout,
    };
    let Received { bytes, reservation: _held } = BodyReader::new(&headers, body, rules, s.budget())?.read_all().await?;
    let input: AnswerIn = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::malformed(format!("the answer is not {{\"name\", \"answer\"}} JSON: {e}")))?;
    let name = sanitise_name(&input.name)
        .ok_or_else(|| ApiError::unprocessable("bad_name", "the name needs at least one letter or digit"))?;

    let (c, pixels) = store.backend.secret(&id).await?.ok_or_else(|| unknown(&id))?;
    let (kind, correct) = match (&input.answer, &input.phrase) {
        (Some(values), None) => {
            let n = c.shape[0] * c.shape[1];
            if values.len() != n {
                return Err(ApiError::unprocessable(
                    "wrong_length",
                    format!(
                        "the answer has {} values; the image has {n} ({}x{}, row-major)",
                        values.len(),
                        c.shape[0],
                        c.shape[1]
                    ),
                ));
            }
            let ok = values.iter().zip(&pixels).all(|(v, &p)| (v - f64::from(p) / 255.0).abs() <= TOLERANCE);
            ("image", ok)
        }
        (None, Some(phrase)) => {
            let typed: String = phrase.chars().filter(|c| !c.is_whitespace()).take(64).collect();
            ("phrase", typed.to_uppercase() == c.phrase)
        }
        _ => {
            return Err(ApiError::unprocessable("bad_answer", "give exactly one of \"answer\" (values) or \"phrase\""));
        }
    };
    let limits = store.limits;
    let record =
        AnswerRecord { name: name.clone(), kind: kind.to_string(), correct, at_ms: unix_ms(SystemTime::now()) };
    match store.backend.record(&id, record, limits.max_answers, limits.max_answers_per_name).await? {
        Ok(()) => {}
        Err(Refused::AnswersFull) => return Err(limit_reached("this challenge has taken all the answers it keeps")),
        Err(Refused::NameFull) => {
            return Err(limit_reached(format!("{name} has used all {} answers", limits.max_answers_per_name)));
        }
        Err(_) => return Err(unknown(&id)),
    }
    Ok(Json(serde_json::json!({ "correct": correct })).into_response())
}

#[derive(Serialize)]
struct AnswerOut<'a> {
    name: &'a str,
    kind: &'a str,
    correct: bool,
    at: String,
}

/// `GET /api/v1/challenges/{id}/answers` (teacher): every answer, and each name's first correct one.
pub async fn answers(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = s.challenges();
    store.teacher(&headers)?;
    let (c, answers) = store.backend.answers(&id).await?.ok_or_else(|| unknown(&id))?;
    let created = from_unix_ms(c.created_ms);
    let all: Vec<AnswerOut> = answers
        .iter()
        .map(|a| AnswerOut { name: &a.name, kind: &a.kind, correct: a.correct, at: rfc3339(from_unix_ms(a.at_ms)) })
        .collect();
    let mut solved: Vec<serde_json::Value> = Vec::new();
    for a in answers.iter().filter(|a| a.correct) {
        if !solved.iter().any(|v| v["name"] == a.name.as_str()) {
            let at = from_unix_ms(a.at_ms);
            let secs = at.duration_since(created).unwrap_or_default().as_secs_f64();
            solved.push(
                serde_json::json!({ "name": a.name, "at": rfc3339(at), "seconds": (secs * 10.0).round() / 10.0 }),
            );
        }
    }
    Ok(Json(serde_json::json!({
        "id": id,
        "created": rfc3339(created),
        "phrase": c.phrase,
        "solved": solved,
        "answers": all,
    }))
    .into_response())
}

/// `2026-01-31T12:34:56Z` (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_210_096); // a leap day
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitise_name("  Ada   Lovelace "), Some("Ada Lovelace".into()));
        assert_eq!(sanitise_name("<script>x</script>"), Some("scriptxscript".into()));
        assert_eq!(sanitise_name("Zoë\n\tO'Neil"), Some("Zoë O'Neil".into()));
        assert_eq!(sanitise_name("<>\u{0}/"), None);
        assert_eq!(sanitise_name(&"a".repeat(100)).unwrap().chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn a_challenge_decrypts_to_its_phrase_under_no_kept_key() {
        let c = make_challenge().unwrap();
        assert_eq!(c.phrase.len(), PHRASE_LEN);
        assert_eq!(glyphs::render(&c.phrase).unwrap(), c.pixels);
        let t: more_core::EncryptedTensor<f64> = more_core::decode(&c.ciphertext, 1 << 20).unwrap();
        assert_eq!(t.shape(), c.shape);
    }
}
