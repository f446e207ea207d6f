//! The teacher's bearer token: who may create class challenges and read their answers.
//!
//! The token comes from `--teacher-token` / `MORE_TEACHER_TOKEN`, or is drawn from the operating system's
//! CSPRNG at start. Requests send it as `Authorization: Bearer TOKEN`; it is compared in constant time
//! (`subtle`), so the time of a refusal does not tell how much of a guess was right.

use axum::http::{HeaderMap, StatusCode, header};
use rand::{RngCore, SeedableRng};
use subtle::ConstantTimeEq;

use crate::ApiError;

/// Shortest token accepted from the command line or environment.
pub const MIN_TOKEN_LEN: usize = 16;

/// A teacher token (never printed by `Debug`).
#[derive(Clone)]
pub struct TeacherToken(String);

impl std::fmt::Debug for TeacherToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TeacherToken(…)")
    }
}

impl TeacherToken {
    /// A fresh token: 32 bytes from the OS CSPRNG, as 64 hex digits.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand_chacha::ChaCha20Rng::from_os_rng().fill_bytes(&mut bytes);
        TeacherToken(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A given token: at least [`MIN_TOKEN_LEN`] printable ASCII characters, no spaces.
    pub fn new(token: &str) -> Result<Self, String> {
        if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "the teacher token must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces"
            ));
        }
        Ok(TeacherToken(token.to_string()))
    }

    /// The token's text (to print it once at start).
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// `Ok` if the request carries `Authorization: Bearer <this token>`, else 401 `unauthorized`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(given) = given else {
            return Err(unauthorized("this needs the teacher's token as Authorization: Bearer TOKEN"));
        };
        if bool::from(given.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(unauthorized("wrong teacher token"))
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        h
    }

    #[test]
    fn only_the_exact_token_passes() {
        let t = TeacherToken::generate();
        assert_eq!(t.reveal().len(), 64);
        assert_ne!(t.reveal(), TeacherToken::generate().reveal());
        assert!(t.check(&bearer(t.reveal())).is_ok());
        for wrong in ["", "x", &t.reveal()[..63], &format!("{}0", t.reveal())] {
            assert_eq!(t.check(&bearer(wrong)).unwrap_err().status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(t.check(&HeaderMap::new()).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert!(TeacherToken::new("short").is_err());
        assert!(TeacherToken::new("has a space in it!!").is_err());
        assert!(format!("{t:?}").find(t.reveal()).is_none());
    }
}
