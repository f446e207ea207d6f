//! The binary wire format of encrypted tensors (version 1). Specification: `docs/wire-format.md`.
//!
//! ```text
//! offset  size        field
//! 0       4           magic "MORE" (0x4D 0x4F 0x52 0x45)
//! 4       1           version = 1
//! 5       1           dtype: 1 = f32, 2 = f64
//! 6       1           ndim, 1..=8
//! 7       1           reserved, must be 0
//! 8       4·ndim      dims, u32 little-endian, each ≥ 1
//! 8+4·ndim 4·n·size   planes c00, c01, c10, c11 in that order, each n = Π dims values, row-major,
//!                     little-endian IEEE-754, all finite
//! ```
//!
//! Decoding never panics: it checks the size limit first, then the header, then that the byte count is
//! exactly what the shape implies, then that every value is finite.

use ndarray::{ArrayD, IxDyn};

// The dtype tag is defined apart (it imports nothing of the crate, so `error` and `real` can name it too)
// and named here as well, where the wire format uses it: `codec::DType` and `more_core::DType` are one type.
pub use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::real::Real;
use crate::tensor::{EncryptedTensor, MAX_DIMS, check_shape};

/// The four magic bytes.
pub const MAGIC: [u8; 4] = *b"MORE";
/// The version this build writes and reads.
pub const VERSION: u8 = 1;
/// The media type servers and clients use for encoded tensors.
pub const MEDIA_TYPE: &str = "application/x-more-tensor";

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Element type.
    pub dtype: DType,
    /// Plaintext shape.
    pub shape: Vec<usize>,
}

impl Header {
    /// Bytes of the header itself.
    pub fn header_len(&self) -> usize {
        8 + 4 * self.shape.len()
    }

    /// Number of values per plane, saturated at `u64::MAX` (a declared shape may be absurdly large).
    pub fn elements(&self) -> u64 {
        self.shape.iter().fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
    }

    /// Total encoded size in bytes (header and planes), saturated at `u64::MAX`, so that no declared shape
    /// can overflow it.
    pub fn total_len(&self) -> u64 {
        (self.header_len() as u64).saturating_add(self.elements().saturating_mul(4 * self.dtype.size() as u64))
    }
}

/// Parses the header at the start of `prefix`, which may be only the first bytes of a message (a body
/// still streaming in). `Ok(None)`: more bytes are needed. Checks magic, version, dtype tag, ndim, the
/// reserved byte and that no dimension is zero — not the length, which the caller compares with
/// [`Header::total_len`] once it knows it.
pub fn parse_header(prefix: &[u8]) -> Result<Option<Header>> {
    if prefix.len() < 8 {
        return Ok(None);
    }
    if prefix[..4] != MAGIC {
        return Err(Error::Malformed("missing magic \"MORE\"".into()));
    }
    if prefix[4] != VERSION {
        return Err(Error::UnsupportedVersion(prefix[4]));
    }
    let dtype =
        DType::from_tag(prefix[5]).ok_or_else(|| Error::Malformed(format!("unknown dtype tag {}", prefix[5])))?;
    let ndim = prefix[6] as usize;
    if ndim == 0 || ndim > MAX_DIMS {
        return Err(Error::Malformed(format!("ndim {ndim} is outside 1..={MAX_DIMS}")));
    }
    if prefix[7] != 0 {
        return Err(Error::Malformed("reserved byte 7 must be 0".into()));
    }
    if prefix.len() < 8 + 4 * ndim {
        return Ok(None);
    }
    let shape: Vec<usize> = prefix[8..8 + 4 * ndim]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if shape.contains(&0) {
        return Err(Error::Malformed(format!("shape {shape:?} has a zero dimension")));
    }
    Ok(Some(Header { dtype, shape }))
}

/// Reads and checks the header of a complete message, including that its length matches the shape and
/// the limit.
pub fn read_header(bytes: &[u8], max_bytes: usize) -> Result<Header> {
    if bytes.len() > max_bytes {
        return Err(Error::TooLarge { size: bytes.len() as u64, limit: max_bytes as u64 });
    }
    let Some(header) = parse_header(bytes)? else {
        return Err(Error::Malformed(if bytes.len() < 8 {
            format!("{} bytes is shorter than the 8-byte header", bytes.len())
        } else {
            "truncated shape".into()
        }));
    };
    let total = header.total_len();
    if total > max_bytes as u64 {
        return Err(Error::TooLarge { size: total, limit: max_bytes as u64 });
    }
    if total != bytes.len() as u64 {
        let (shape, dtype) = (&header.shape, header.dtype);
        return Err(Error::Malformed(format!("shape {shape:?} as {dtype} needs {total} bytes, got {}", bytes.len())));
    }
    check_shape(&header.shape).map_err(|e| Error::Malformed(e.to_string()))?;
    Ok(header)
}

/// Encodes a tensor.
pub fn encode<F: Real>(t: &EncryptedTensor<F>) -> Vec<u8> {
    let shape = t.shape();
    let mut out = Vec::with_capacity(8 + 4 * shape.len() + t.data().len() * F::BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, F::DTYPE.tag(), shape.len() as u8, 0]);
    for &d in shape {
        out.extend_from_slice(&(d as u32).to_le_bytes());
    }
    for &x in t.data().as_slice().expect("standard layout") {
        x.write_le(&mut out);
    }
    out
}

/// Decodes a tensor of element type `F`, rejecting inputs over `max_bytes`, of another dtype, of
/// inconsistent length, or with non-finite values.
pub fn decode<F: Real>(bytes: &[u8], max_bytes: usize) -> Result<EncryptedTensor<F>> {
    let header = read_header(bytes, max_bytes)?;
    decode_with_header(&header, bytes)
}

/// Decodes the planes of a complete message whose header was already parsed (by [`parse_header`] while
/// the message streamed in, or by [`read_header`]): checks the dtype, that the length is exactly what the
/// header declares, and that every value is finite. The header is not parsed again.
pub fn decode_with_header<F: Real>(header: &Header, bytes: &[u8]) -> Result<EncryptedTensor<F>> {
    if header.dtype != F::DTYPE {
        return Err(Error::WrongDType { expected: F::DTYPE, found: header.dtype });
    }
    if header.total_len() != bytes.len() as u64 {
        let (shape, dtype, total) = (&header.shape, header.dtype, header.total_len());
        return Err(Error::Malformed(format!("shape {shape:?} as {dtype} needs {total} bytes, got {}", bytes.len())));
    }
    check_shape(&header.shape).map_err(|e| Error::Malformed(e.to_string()))?;
    let n = header.shape.iter().product::<usize>();
    let body = &bytes[header.header_len()..];
    let mut values = Vec::with_capacity(4 * n);
    for (i, chunk) in body.chunks_exact(F::BYTES).enumerate() {
        let x = F::read_le(chunk);
        if !x.is_finite() {
            return Err(Error::NonFiniteInput { plane: i / n, index: i % n });
        }
        values.push(x);
    }
    let mut full = vec![4];
    full.extend_from_slice(&header.shape);
    let data = ArrayD::from_shape_vec(IxDyn(&full), values).map_err(|e| Error::Malformed(e.to_string()))?;
    EncryptedTensor::from_data(data)
}

/// A decoded tensor of either precision.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyTensor {
    /// `f32` planes.
    F32(EncryptedTensor<f32>),
    /// `f64` planes.
    F64(EncryptedTensor<f64>),
}

/// Decodes a tensor of whichever dtype the header names.
pub fn decode_any(bytes: &[u8], max_bytes: usize) -> Result<AnyTensor> {
    let header = read_header(bytes, max_bytes)?;
    match header.dtype {
        DType::F32 => decode_with_header(&header, bytes).map(AnyTensor::F32),
        DType::F64 => decode_with_header(&header, bytes).map(AnyTensor::F64),
    }
}
