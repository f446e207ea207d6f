//! Ids that are capabilities — whoever knows one may use what it names (a BFV key set, an uploaded model,
//! a BFV batch): 128 bits from the operating system's CSPRNG, written as 32 hex digits after a prefix.

use crate::ApiError;

/// `prefix` followed by 32 random hex digits; `what` names the id in the error if the CSPRNG fails.
pub fn random_id(prefix: &str, what: &str) -> Result<String, ApiError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal(&format!("drawing {what}"), e))?;
    Ok(raw.iter().fold(prefix.to_string(), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    }))
}
