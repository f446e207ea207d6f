//! Image preprocessing for the models (wrapping `more-imaging`).

use more_imaging::{GrayImage, Normalization, PixelFormat};
use wasm_bindgen::prelude::*;

use crate::js_err;

fn image(pixels: &[u8], width: u32, height: u32) -> Result<GrayImage, JsError> {
    let (w, h) = (width as usize, height as usize);
    let format = match pixels.len() {
        n if n == w * h * 4 => PixelFormat::Rgba,
        n if n == w * h => PixelFormat::Gray,
        n if n == w * h * 3 => PixelFormat::Rgb,
        _ => PixelFormat::Rgba, // let the checked constructor report the mismatch
    };
    GrayImage::from_bytes(w, h, pixels, format).map_err(|e| js_err("cannot read the image", e))
}

/// Preprocesses an image (8-bit RGBA as in canvas `ImageData`, or grayscale: one byte per pixel) the way
/// the model's metadata says (`kind` = `"mnist-digit"`, `"angio-frame"` or `"angio-bfv"`; `resizeH`/`resizeW`
/// = 0 for the default), WITHOUT the normalisation: values in `0..=255`, for display.
#[wasm_bindgen(js_name = preprocessImageRaw)]
pub fn preprocess_image_raw(
    kind: &str,
    pixels: &[u8],
    width: u32,
    height: u32,
    resize_h: u32,
    resize_w: u32,
) -> Result<Vec<f32>, JsError> {
    let img = image(pixels, width, height)?;
    let resize = (resize_h > 0 && resize_w > 0).then_some([resize_h as usize, resize_w as usize]);
    more_imaging::preprocess(kind, &img, resize, &Normalization::default()).map_err(|e| match e {
        more_imaging::Error::NoInk => JsError::new("nothing is drawn yet: draw a digit first"),
        e => js_err("cannot preprocess the image", e),
    })
}

/// The model's normalisation: `x * scale`, then `(x - mean) / std` (`mean`/`std` of length 1 or one per
/// value; empty means 0 and 1).
#[wasm_bindgen]
pub fn normalize(values: &[f32], scale: f32, mean: &[f32], std: &[f32]) -> Result<Vec<f32>, JsError> {
    let n = Normalization::new(scale, mean.to_vec(), std.to_vec()).map_err(|e| js_err("model metadata", e))?;
    let mut x = values.to_vec();
    n.apply(&mut x).map_err(|e| js_err("model metadata", e))?;
    Ok(x)
}

/// [`preprocess_image_raw`] followed by [`normalize`]: the model input.
#[wasm_bindgen(js_name = preprocessImage)]
#[allow(clippy::too_many_arguments)]
pub fn preprocess_image(
    kind: &str,
    pixels: &[u8],
    width: u32,
    height: u32,
    resize_h: u32,
    resize_w: u32,
    scale: f32,
    mean: &[f32],
    std: &[f32],
) -> Result<Vec<f32>, JsError> {
    let raw = preprocess_image_raw(kind, pixels, width, height, resize_h, resize_w)?;
    normalize(&raw, scale, mean, std)
}

/// The BFV angiogram classifier's 28x28 input (784 values, row-major) from a 128x128 frame (16,384 values,
/// as `preprocessImageRaw("angio-frame", …)` gives it): the frame area-averaged down
/// (`more_imaging::angio_bfv_input`, the rule training and evaluation use). The values keep the frame's
/// units: grey levels in, grey levels out (divide by 255 for the BFV client's `[0, 1]`).
#[wasm_bindgen(js_name = angioBfvInput)]
pub fn angio_bfv_input(frame128: &[f32]) -> Result<Vec<f32>, JsError> {
    more_imaging::angio_bfv_input(frame128).map_err(|e| js_err("cannot make the BFV input of the frame", e))
}
