//! [`DType`]: the element type of an encrypted tensor's planes, as the wire format tags it.
//!
//! It stands apart from the rest of the crate (it imports none of it), so that the error type, the
//! [`Real`](crate::Real) trait and the wire format ([`crate::codec`]) can all name it without importing one
//! another.

use std::fmt;

/// Element type tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE-754 binary32, tag 1.
    F32,
    /// IEEE-754 binary64, tag 2.
    F64,
}

impl DType {
    /// The wire tag.
    pub fn tag(self) -> u8 {
        match self {
            Self::F32 => 1,
            Self::F64 => 2,
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// The dtype of a wire tag; `None` for a tag no dtype has (the wire format turns that into its error).
    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Self::F32),
            2 => Some(Self::F64),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        })
    }
}
