//! The security walkthrough's attacks (`web/walkthrough.html`): what a server can compute from the bytes it
//! receives, **without the key**. Every function here takes wire-format tensors only (what the server
//! receives) — except [`homomorphic_pair`], which also needs nothing secret — and calls
//! `more_core::attack`; the page then compares the results with the user's own input.
//!
//! Readings with named parts ([`EigenvalueReading`], [`EqualityReading`], [`OutputReading`]) reach
//! JavaScript as plain objects (through `serde-wasm-bindgen`); each exported function has a typed twin
//! (e.g. [`eigenvalue_reading`] for [`attack_eigenvalues`]) for Rust callers and tests.

use more_core::attack::{self, DataPrior, Lane, LaneLooks};
use more_core::{AnyTensor, EncryptedTensor, NoiseRange};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::keys::Key;
use crate::{MAX_WIRE_BYTES, js_err, to_js};

fn decode(bytes: &[u8]) -> Result<EncryptedTensor<f64>, JsError> {
    let t = more_core::decode_any(bytes, MAX_WIRE_BYTES).map_err(|e| js_err("not an encrypted tensor", e))?;
    Ok(match t {
        AnyTensor::F32(t) => t.cast(),
        AnyTensor::F64(t) => t,
    })
}

fn element(t: &EncryptedTensor<f64>, index: u32) -> Result<more_core::Ciphertext, JsError> {
    t.get(index as usize)
        .ok_or_else(|| JsError::new(&format!("element {index} is out of range (the tensor has {} values)", t.len())))
}

fn to_f32(values: impl IntoIterator<Item = f64>) -> Vec<f32> {
    values.into_iter().map(|v| v as f32).collect()
}

/// What attack 1 reads from one ciphertext: the matrix, its trace `m + r`, its determinant `m·r`, and
/// the two eigenvalues `{m, r}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EigenvalueReading {
    /// The ciphertext row-major: `[c00, c01, c10, c11]`.
    pub ciphertext: [f64; 4],
    /// Its trace, `m + r`.
    pub trace: f64,
    /// Its determinant, `m·r`.
    pub det: f64,
    /// The larger eigenvalue.
    pub high: f64,
    /// The smaller eigenvalue.
    pub low: f64,
}

/// Attack 1 on element `index` of a wire tensor ([`attack_eigenvalues`] as a Rust value).
pub fn eigenvalue_reading(wire: &[u8], index: u32) -> Result<EigenvalueReading, JsError> {
    let t = decode(wire)?;
    let c = element(&t, index)?;
    let p = attack::eigenvalues(&c).map_err(|e| js_err("eigenvalue attack", e))?;
    let [[a, b], [c1, d]] = c.0;
    Ok(EigenvalueReading { ciphertext: [a, b, c1, d], trace: p.trace, det: p.det, high: p.high, low: p.low })
}

/// Attack 1 on element `index`: an object [`EigenvalueReading`] `{ciphertext, trace, det, high, low}`.
#[wasm_bindgen(js_name = attackEigenvalues)]
pub fn attack_eigenvalues(wire: &[u8], index: u32) -> Result<JsValue, JsError> {
    to_js(&eigenvalue_reading(wire, index)?)
}

/// Homomorphic operations on two encrypted values, computed with no key: a wire tensor of shape `[2]`
/// holding `C_i + C_j` and `C_i · C_j` (the page decrypts it with the key to show `m_i + m_j`, `m_i·m_j`).
#[wasm_bindgen(js_name = homomorphicPair)]
pub fn homomorphic_pair(wire: &[u8], i: u32, j: u32) -> Result<Vec<u8>, JsError> {
    let t = decode(wire)?;
    let (a, b) = (element(&t, i)?, element(&t, j)?);
    let (s, p) = ((a + b).0, (a * b).0);
    let planes: [ndarray::ArrayD<f64>; 4] =
        std::array::from_fn(|k| ndarray::arr1(&[s[k / 2][k % 2], p[k / 2][k % 2]]).into_dyn());
    let out = EncryptedTensor::from_planes(planes).map_err(|e| js_err("homomorphic pair", e))?;
    Ok(more_core::encode(&out))
}

/// The result of the ciphertext-only attack on an encrypted image.
#[wasm_bindgen]
pub struct ImageRecovery {
    values: Vec<f32>,
    noise: Vec<f32>,
    confidence: f64,
    eigenvectors: Vec<f64>,
    spread: f64,
    degenerate: bool,
    scores: Option<LaneScores>,
}

/// How much each lane of an image looks like data ([`ImageRecovery::scores`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LaneScores {
    /// The lane judged to be the image.
    pub chosen: LaneLooks,
    /// The other lane.
    pub other: LaneLooks,
}

#[wasm_bindgen]
impl ImageRecovery {
    /// The recovered image (the lane judged to be data), row-major.
    pub fn values(&self) -> Vec<f32> {
        self.values.clone()
    }

    /// The other lane: the random values the encryption mixed in.
    pub fn noise(&self) -> Vec<f32> {
        self.noise.clone()
    }

    /// How sure the lane choice is, in `[0, 1]`.
    #[wasm_bindgen(getter)]
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// The two shared eigenvectors `[v1x, v1y, v2x, v2y]` (unit length): the key's columns up to scale.
    pub fn eigenvectors(&self) -> Vec<f64> {
        self.eigenvectors.clone()
    }

    /// How far the ciphertexts are from one common eigenbasis (rounding-sized under one key).
    #[wasm_bindgen(getter)]
    pub fn spread(&self) -> f64 {
        self.spread
    }

    /// True when every pixel had equal lanes (the basis is then arbitrary but still exact).
    #[wasm_bindgen(getter)]
    pub fn degenerate(&self) -> bool {
        self.degenerate
    }

    /// Data-likeness scores of both lanes, an object [`LaneScores`] `{chosen, other}`, each
    /// `{ties, smooth, grid, range, score}` (a feature that was not used is left out); `undefined` when
    /// the lane was not chosen by its looks.
    pub fn scores(&self) -> Result<JsValue, JsError> {
        to_js(&self.scores)
    }
}

/// Attack 2: recovers a whole encrypted image (`height x width`, 8-bit levels mapped onto `[lo, hi]`) from
/// its ciphertexts alone, choosing the data lane automatically.
#[wasm_bindgen(js_name = attackRecoverImage)]
pub fn attack_recover_image(wire: &[u8], height: u32, width: u32, lo: f64, hi: f64) -> Result<ImageRecovery, JsError> {
    let t = decode(wire)?;
    let prior = DataPrior::image_8bit(lo, hi, height as usize, width as usize);
    let rec = attack::ciphertext_only(&[&t], &prior).map_err(|e| js_err("ciphertext-only attack", e))?;
    let [v1, v2] = rec.basis.eigenvectors();
    let chosen = rec.verdict.lane.index();
    let scores = rec.verdict.looks.map(|looks| LaneScores { chosen: looks[chosen], other: looks[1 - chosen] });
    Ok(ImageRecovery {
        values: to_f32(rec.decrypt(&t)),
        noise: to_f32(rec.noise(&t)),
        confidence: rec.verdict.confidence,
        eigenvectors: vec![v1[0], v1[1], v2[0], v2[1]],
        spread: rec.basis.spread(),
        degenerate: rec.basis.is_degenerate(),
        scores,
    })
}

/// Attack 4: an equivalent key from one known pixel (`index` of the tensor has plaintext `value`). The
/// returned [`Key`] decrypts everything encrypted under the user's key.
#[wasm_bindgen(js_name = attackKeyFromKnownPixel)]
pub fn attack_key_from_known_pixel(wire: &[u8], index: u32, value: f64) -> Result<Key, JsError> {
    let t = decode(wire)?;
    let c = element(&t, index)?;
    let key = attack::recover_key(&c, value, NoiseRange::default()).map_err(|e| js_err("key recovery", e))?;
    Ok(Key::from_inner(key))
}

/// Attack 3 (Tsaban–Lifshitz): decrypts every element from one known pixel through `C = α·C_known + β·I`.
#[wasm_bindgen(js_name = attackLinearRelation)]
pub fn attack_linear_relation(wire: &[u8], index: u32, value: f64) -> Result<Vec<f32>, JsError> {
    let t = decode(wire)?;
    let c = element(&t, index)?;
    let out = attack::decrypt_with_known(&c, value, &t).map_err(|e| js_err("linear relation", e))?;
    Ok(to_f32(out))
}

/// Attack 5: the ink mask — `1` where the pixel differs from the public `background` level, `0` where it
/// equals it — from determinants only.
#[wasm_bindgen(js_name = attackInkMask)]
pub fn attack_ink_mask(wire: &[u8], background: f64) -> Result<Vec<u8>, JsError> {
    let t = decode(wire)?;
    Ok(attack::ink_mask(&t, background, attack::DEFAULT_REL_TOL).iter().map(|&b| u8::from(b)).collect())
}

/// What attack 5 reads from two ciphertexts: whether their plaintexts are equal, and the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EqualityReading {
    /// `det(C_i − C_j)`: zero exactly when the plaintexts are equal (up to rounding).
    pub det: f64,
    /// The smallest eigenvalue of `C_i − C_j` in absolute value.
    pub smallest: f64,
    /// The scale the tolerance is relative to.
    pub scale: f64,
    /// The verdict: equal plaintexts.
    pub equal: bool,
}

/// Attack 5 on elements `i` and `j` ([`attack_equality`] as a Rust value).
pub fn equality_reading(wire: &[u8], i: u32, j: u32) -> Result<EqualityReading, JsError> {
    let t = decode(wire)?;
    let z = attack::equality_test(&element(&t, i)?, &element(&t, j)?, attack::DEFAULT_REL_TOL);
    Ok(EqualityReading { det: z.det, smallest: z.smallest, scale: z.scale, equal: z.is_zero })
}

/// Attack 5: are elements `i` and `j` equal? An object [`EqualityReading`] `{det, smallest, scale, equal}`.
#[wasm_bindgen(js_name = attackEquality)]
pub fn attack_equality(wire: &[u8], i: u32, j: u32) -> Result<JsValue, JsError> {
    to_js(&equality_reading(wire, i, j)?)
}

/// What the server reads from the model's encrypted answer without the key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputReading {
    /// The answer's values (the model's scores), in order.
    pub values: Vec<f64>,
    /// The index of the largest value: the class the model gives.
    pub argmax: usize,
}

/// [`attack_outputs`] as a Rust value.
pub fn output_reading(
    input_wire: &[u8],
    output_wire: &[u8],
    height: u32,
    width: u32,
    lo: f64,
    hi: f64,
) -> Result<OutputReading, JsError> {
    let input = decode(input_wire)?;
    let output = decode(output_wire)?;
    let prior = DataPrior::image_8bit(lo, hi, height as usize, width as usize);
    let rec = attack::ciphertext_only(&[&input], &prior).map_err(|e| js_err("ciphertext-only attack", e))?;
    let leak = attack::leak_outputs(&rec.basis, Lane::First, &output).map_err(|e| js_err("output leak", e))?;
    Ok(OutputReading {
        values: leak.values.iter().copied().collect(),
        argmax: leak.argmax.first().copied().unwrap_or(0),
    })
}

/// What the server learns about the model's answer: the eigenbasis and lane recovered from the encrypted
/// input image (`height x width`, levels on `[lo, hi]`) decrypt the encrypted output. An object
/// [`OutputReading`] `{values, argmax}`.
#[wasm_bindgen(js_name = attackOutputs)]
pub fn attack_outputs(
    input_wire: &[u8],
    output_wire: &[u8],
    height: u32,
    width: u32,
    lo: f64,
    hi: f64,
) -> Result<JsValue, JsError> {
    to_js(&output_reading(input_wire, output_wire, height, width, lo, hi)?)
}
