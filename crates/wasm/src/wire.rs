//! Reading wire-format tensors without a key: the shape, and the four planes for display.

use wasm_bindgen::prelude::*;

use crate::{MAX_WIRE_BYTES, js_err};

/// The shape declared by a wire-format tensor.
#[wasm_bindgen(js_name = wireShape)]
pub fn wire_shape(bytes: &[u8]) -> Result<Vec<u32>, JsError> {
    let h = more_core::codec::read_header(bytes, MAX_WIRE_BYTES).map_err(|e| js_err("not an encrypted tensor", e))?;
    Ok(h.shape.iter().map(|&d| d as u32).collect())
}

/// The four ciphertext planes (`c00`, `c01`, `c10`, `c11`) of a wire-format tensor, concatenated
/// (`4 * n` values) — exactly what the server receives, for display.
#[wasm_bindgen(js_name = wirePlanes)]
pub fn wire_planes(bytes: &[u8]) -> Result<Vec<f32>, JsError> {
    let t = more_core::decode_any(bytes, MAX_WIRE_BYTES).map_err(|e| js_err("not an encrypted tensor", e))?;
    Ok(match t {
        more_core::AnyTensor::F32(t) => t.into_data().into_iter().collect(),
        more_core::AnyTensor::F64(t) => t.into_data().into_iter().map(|v| v as f32).collect(),
    })
}
