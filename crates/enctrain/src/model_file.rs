//! The still-encrypted model: parameters as ciphertexts under the data owner's key, plus what is needed
//! to use them for encrypted inference without the key.
//!
//! File layout (little-endian): magic `MOREENCM`, `u32` version (1), `u64` length of a JSON manifest,
//! the manifest (`{"basis": .., "spec": .., "shapes": [..]}`), then `1 + P` tensors — the canaries and
//! the `P` parameters — each as a `u64` length and a `more-core` wire-format tensor (4 planes, `f32`).
//! Loading re-checks every tensor against the basis, so a tensor spliced in from another key is rejected.

use more_core::{EncryptedTensor, decode, encode};
use serde::{Deserialize, Serialize};

use crate::basis::Basis;
use crate::coeff::CoeffTensor;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"MOREENCM";
const VERSION: u32 = 1;

/// Encrypted parameters with their basis, canaries and the model description.
#[derive(Debug, Clone)]
pub struct EncryptedModel {
    /// The public reference basis of the key.
    pub basis: Basis,
    /// The key owner's known-answer canaries (carried untouched).
    pub canaries: CoeffTensor<f32>,
    /// The parameters, in the model's parameter order.
    pub params: Vec<CoeffTensor<f32>>,
    /// The model description (architecture and metadata, without weights), as JSON.
    pub spec: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    basis: Basis,
    spec: serde_json::Value,
    shapes: Vec<Vec<usize>>,
}

impl EncryptedModel {
    /// Serialises the model.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let manifest = Manifest {
            basis: self.basis,
            spec: self.spec.clone(),
            shapes: self.params.iter().map(|p| p.shape().to_vec()).collect(),
        };
        let json = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(format!("manifest: {e}")))?;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for t in std::iter::once(&self.canaries).chain(&self.params) {
            let bytes = encode(&t.to_encrypted()?);
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Parses [`EncryptedModel::to_bytes`] output (at most `max_bytes`), validating shapes and that every
    /// tensor lies in the basis' span.
    pub fn from_bytes(bytes: &[u8], max_bytes: usize) -> Result<Self> {
        let bad = |what: &str| Error::Invalid(format!("encrypted model file: {what}"));
        if bytes.len() > max_bytes {
            return Err(bad(&format!("{} bytes exceed the limit {max_bytes}", bytes.len())));
        }
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(bad("not an encrypted model (bad magic)"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(&format!("unsupported version {version}")));
        }
        let mut pos = 12usize;
        let take = |pos: &mut usize| -> Result<&[u8]> {
            let end = pos.checked_add(8).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("truncated"))?;
            let len = u64::from_le_bytes(bytes[*pos..end].try_into().expect("8 bytes"));
            let len = usize::try_from(len).map_err(|_| bad("length overflows"))?;
            let stop = end.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("truncated"))?;
            *pos = stop;
            Ok(&bytes[end..stop])
        };
        let manifest: Manifest = serde_json::from_slice(take(&mut pos)?).map_err(|e| bad(&format!("manifest: {e}")))?;
        let basis = Basis::from_matrix(manifest.basis.xhat)?;
        let mut tensors = Vec::with_capacity(manifest.shapes.len() + 1);
        for i in 0..=manifest.shapes.len() {
            let t: EncryptedTensor<f32> = decode(take(&mut pos)?, max_bytes)?;
            if i > 0 && t.shape() != manifest.shapes[i - 1].as_slice() {
                return Err(bad(&format!(
                    "parameter {} has shape {:?}, manifest says {:?}",
                    i - 1,
                    t.shape(),
                    manifest.shapes[i - 1]
                )));
            }
            tensors.push(CoeffTensor::from_encrypted(&t, basis)?);
        }
        if pos != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        let canaries = tensors.remove(0);
        Ok(Self { basis, canaries, params: tensors, spec: manifest.spec })
    }

    /// Writes the model to a file.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        std::fs::write(path.as_ref(), self.to_bytes()?)
            .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", path.as_ref().display())))
    }

    /// Reads a model file (at most 1 GiB).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let bytes = std::fs::read(path.as_ref())
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.as_ref().display())))?;
        Self::from_bytes(&bytes, 1 << 30)
    }
}
