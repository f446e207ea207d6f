//! Reading a wire-format request body (docs/wire-format.md) without trusting it.
//!
//! The body is streamed. As soon as the fixed header and the dimensions have arrived, the declared size is
//! computed (saturating, so no shape can overflow it) and checked against the limit and the
//! `Content-Length`: a body announcing a huge tensor is answered 413 before it is read, and the buffer is
//! allocated once, at the declared size. The complete bytes are then checked and decoded by
//! [`more_core::decode_any`] (magic, version, dtype, ndim, reserved byte, zero dimensions, exact length,
//! NaN/±infinity).

use axum::body::Body;
use http_body_util::BodyExt;
use more_core::{AnyTensor, DType};

use crate::error::ApiError;

/// Size of the fixed part of the header.
const FIXED: usize = 8;

/// What the header announces, from a prefix of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Total encoded length (header and planes), saturated at `u64::MAX`.
    pub total: u64,
}

/// Parses the header from a prefix of the body. `Ok(None)`: more bytes are needed.
pub fn peek_header(prefix: &[u8]) -> Result<Option<Declared>, more_core::Error> {
    use more_core::Error as E;
    if prefix.len() < FIXED {
        return Ok(None);
    }
    if prefix[..4] != more_core::codec::MAGIC {
        return Err(E::Malformed("missing magic \"MORE\"".into()));
    }
    if prefix[4] != more_core::codec::VERSION {
        return Err(E::UnsupportedVersion(prefix[4]));
    }
    let dtype = match prefix[5] {
        1 => DType::F32,
        2 => DType::F64,
        t => return Err(E::Malformed(format!("unknown dtype tag {t}"))),
    };
    let ndim = prefix[6] as usize;
    if ndim == 0 || ndim > 8 {
        return Err(E::Malformed(format!("ndim {ndim} is outside 1..=8")));
    }
    if prefix[7] != 0 {
        return Err(E::Malformed("reserved byte 7 must be 0".into()));
    }
    if prefix.len() < FIXED + 4 * ndim {
        return Ok(None);
    }
    let shape: Vec<usize> = prefix[FIXED..FIXED + 4 * ndim]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let elements = shape.iter().fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
    let total = ((FIXED + 4 * ndim) as u128).saturating_add(elements.saturating_mul(4 * dtype.size() as u128));
    Ok(Some(Declared { dtype, shape, total: total.min(u64::MAX as u128) as u64 }))
}

/// Reads and decodes a body of at most `limit` bytes. `content_length` is the request's header, if any.
pub async fn read_tensor(body: Body, content_length: Option<u64>, limit: usize) -> Result<AnyTensor, ApiError> {
    if let Some(len) = content_length
        && len > limit as u64
    {
        return Err(ApiError::too_large(len, limit));
    }
    let mut body = body;
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    let mut declared: Option<u64> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::malformed(format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        let room = declared.unwrap_or(limit as u64) as usize;
        if buf.len() + data.len() > room {
            let size = (buf.len() + data.len()) as u64;
            return Err(match declared {
                Some(total) if total <= limit as u64 => {
                    ApiError::malformed(format!("body is longer than the {total} bytes its header declares"))
                }
                _ => ApiError::too_large(size, limit),
            });
        }
        buf.extend_from_slice(&data);
        if declared.is_none()
            && let Some(d) = peek_header(&buf).map_err(|e| ApiError::from_decode(&e, limit))?
        {
            if d.total > limit as u64 {
                return Err(ApiError::too_large(d.total, limit));
            }
            if let Some(len) = content_length
                && len != d.total
            {
                return Err(ApiError::malformed(format!(
                    "the header declares {} bytes but Content-Length is {len}",
                    d.total
                )));
            }
            if buf.len() as u64 > d.total {
                return Err(ApiError::malformed(format!(
                    "body is longer than the {} bytes its header declares",
                    d.total
                )));
            }
            declared = Some(d.total);
            buf.reserve_exact(d.total as usize - buf.len());
        }
    }
    more_core::decode_any(&buf, limit).map_err(|e| ApiError::from_decode(&e, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_needs_dims_then_saturates() {
        let mut h = b"MORE\x01\x01\x02\x00".to_vec();
        assert_eq!(peek_header(&h[..5]).unwrap(), None);
        assert_eq!(peek_header(&h).unwrap(), None);
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        let d = peek_header(&h).unwrap().unwrap();
        assert_eq!(d.shape, vec![u32::MAX as usize; 2]);
        assert!(d.total > 1 << 60);
        h[7] = 1;
        assert!(peek_header(&h).is_err());
        assert!(peek_header(b"MORX\x01\x01\x01\x00").is_err());
        assert!(peek_header(b"MORE\x02\x01\x01\x00").is_err());
        assert!(peek_header(b"MORE\x01\x03\x01\x00").is_err());
        assert!(peek_header(b"MORE\x01\x01\x09\x00").is_err());
    }
}
