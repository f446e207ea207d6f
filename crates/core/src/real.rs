//! The floating-point element types an encrypted tensor can hold.

use std::fmt::{Debug, Display};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::Float;

use crate::dtype::DType;

/// An element type for ciphertext planes: `f32` or `f64`.
///
/// Scalar formulas (key application, spectral functions) are always evaluated in `f64`; the planes are
/// stored in `Self`. `f32` halves memory and bandwidth and is what inference uses; `f64` keeps the
/// `κ(S)²·max(|m|,|r|)` error small enough for long training runs.
pub trait Real:
    Float
    + LinalgScalar
    + ScalarOperand
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + 'static
{
    /// The wire-format dtype tag of this type.
    const DTYPE: DType;
    /// Number of bytes of one element.
    const BYTES: usize;
    /// Converts from `f64` (rounding to nearest).
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` (exact).
    fn as_f64(self) -> f64;
    /// Appends the little-endian bytes of `self`.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads one element from exactly `Self::BYTES` little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

impl Real for f32 {
    const DTYPE: DType = DType::F32;
    const BYTES: usize = 4;
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline]
    fn read_le(bytes: &[u8]) -> Self {
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl Real for f64 {
    const DTYPE: DType = DType::F64;
    const BYTES: usize = 8;
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline]
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline]
    fn read_le(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[..8]);
        f64::from_le_bytes(b)
    }
}
