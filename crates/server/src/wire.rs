//! Reading an inference request body (docs/wire-format.md) without trusting it.
//!
//! The body is streamed and its header is parsed once, as soon as it has arrived
//! ([`more_core::codec::parse_header`]). Everything the header alone decides is checked at that moment,
//! before the rest of the body is read: the declared size against the model's limit (413) and the
//! `Content-Length` (400), the dtype (422 `wrong_dtype`) and the shape against the model's input and the
//! batch limit (422 `wrong_shape`). The declared size is saturating, so no shape can overflow it, and the
//! buffer is then allocated once, at that size. When the body is complete its planes are decoded with the
//! same header ([`more_core::codec::decode_with_header`]: exact length, no NaN/±∞).

use more_core::codec::{self, Header};
use more_core::{DType, EncryptedTensor};

use crate::error::ApiError;
use crate::request::BodyReader;

/// What an inference request may carry for one model.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The model's input shape, without the batch axis.
    pub input_shape: &'a [usize],
    /// Largest leading batch dimension.
    pub max_batch: usize,
    /// Largest body, in bytes.
    pub limit: usize,
}

/// A request body read and decoded.
#[derive(Debug)]
pub struct Input {
    /// The ciphertext planes, always with a batch axis: `[4, N, ...input_shape]`.
    pub tensor: EncryptedTensor<f32>,
    /// Samples in the request.
    pub samples: usize,
    /// Whether the request had the batch axis (the answer keeps the client's form).
    pub batched: bool,
    /// Bytes of the body.
    pub bytes: usize,
}

impl Expected<'_> {
    /// Checks a header against the model the moment it arrives. Returns whether the shape has a batch axis.
    pub fn check(&self, header: &Header, content_length: Option<u64>) -> Result<bool, ApiError> {
        let total = header.total_len();
        if total > self.limit as u64 {
            return Err(ApiError::too_large(total, self.limit));
        }
        if let Some(len) = content_length
            && len != total
        {
            return Err(ApiError::malformed(format!("the header declares {total} bytes but Content-Length is {len}")));
        }
        if header.dtype != DType::F32 {
            return Err(ApiError::unprocessable(
                "wrong_dtype",
                format!("this model takes f32 planes (dtype 1), the body has {}", header.dtype),
            ));
        }
        let (shape, want) = (&header.shape, self.input_shape);
        let batched = if shape.as_slice() == want {
            false
        } else if shape.len() == want.len() + 1 && shape[1..] == *want {
            true
        } else {
            return Err(ApiError::unprocessable(
                "wrong_shape",
                format!("the model takes shape {want:?} or [N, ...{want:?}], the body has {shape:?}"),
            ));
        };
        if batched && shape[0] > self.max_batch {
            return Err(ApiError::unprocessable(
                "wrong_shape",
                format!("batch of {} exceeds the limit of {}", shape[0], self.max_batch),
            ));
        }
        Ok(batched)
    }
}

/// Reads and decodes a body for `expected` through `reader` (which enforces the route's limit, deadline
/// and memory reservation; its declared `Content-Length` is compared with the header's total).
pub async fn read_input(reader: &mut BodyReader, expected: Expected<'_>) -> Result<Input, ApiError> {
    let limit = expected.limit;
    let content_length = reader.declared();
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    // The header and what it declares, once it has arrived.
    let mut parsed: Option<(Header, u64, bool)> = None;
    while let Some(data) = reader.chunk().await? {
        let room = parsed.as_ref().map_or(limit as u64, |p| p.1);
        if (buf.len() + data.len()) as u64 > room {
            return Err(match parsed {
                Some((_, total, _)) => {
                    ApiError::malformed(format!("body is longer than the {total} bytes its header declares"))
                }
                None => ApiError::too_large((buf.len() + data.len()) as u64, limit),
            });
        }
        buf.extend_from_slice(&data);
        if parsed.is_none()
            && let Some(header) = codec::parse_header(&buf).map_err(|e| ApiError::from_decode(&e, limit))?
        {
            let batched = expected.check(&header, content_length)?;
            let total = header.total_len();
            if buf.len() as u64 > total {
                return Err(ApiError::malformed(format!("body is longer than the {total} bytes its header declares")));
            }
            // The buffer grows with the bytes that arrive (and the reservation with it), not with what the
            // header declares: a client that stops after its header holds no more than it sent.
            parsed = Some((header, total, batched));
        }
    }
    let Some((header, _, batched)) = parsed else {
        return Err(ApiError::malformed(format!("the body ended after {} bytes, inside the header", buf.len())));
    };
    let tensor = codec::decode_with_header::<f32>(&header, &buf).map_err(|e| ApiError::from_decode(&e, limit))?;
    let samples = if batched { header.shape[0] } else { 1 };
    let tensor = if batched {
        tensor
    } else {
        let mut with_batch = vec![1];
        with_batch.extend_from_slice(&header.shape);
        tensor.reshape(&with_batch).map_err(|e| ApiError::internal("adding the batch axis", e))?
    };
    Ok(Input { tensor, samples, batched, bytes: buf.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dtype: u8, dims: &[u32]) -> Vec<u8> {
        let mut h = vec![b'M', b'O', b'R', b'E', 1, dtype, dims.len() as u8, 0];
        for d in dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h
    }

    #[test]
    fn the_header_alone_decides_size_dtype_and_shape() {
        let want = [1, 8, 8];
        let expected = Expected { input_shape: &want, max_batch: 4, limit: 1 << 16 };
        let check = |bytes: &[u8], len: Option<u64>| {
            let h = codec::parse_header(bytes).unwrap().unwrap();
            expected.check(&h, len).map_err(|e| e.code)
        };
        let one = header(1, &[1, 8, 8]);
        let total = 8 + 12 + 4 * 64 * 4;
        assert_eq!(check(&one, Some(total)), Ok(false));
        assert_eq!(check(&header(1, &[3, 1, 8, 8]), None), Ok(true));
        assert_eq!(check(&one, Some(total + 1)), Err("malformed"));
        assert_eq!(check(&header(2, &[1, 8, 8]), None), Err("wrong_dtype"));
        assert_eq!(check(&header(1, &[1, 9, 8]), None), Err("wrong_shape"));
        assert_eq!(check(&header(1, &[5, 1, 8, 8]), None), Err("wrong_shape"));
        assert_eq!(check(&header(1, &[u32::MAX, u32::MAX, 8, 8]), None), Err("too_large"));
        // A prefix without all its dimensions is not a header yet.
        assert_eq!(codec::parse_header(&one[..15]).unwrap(), None);
    }
}
