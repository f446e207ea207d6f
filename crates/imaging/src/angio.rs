//! Angiogram frame preprocessing: grayscale, then box-resize (area average) to 128x128 in 8-bit steps —
//! how the frames in `shared/data/angio` were made from the 512x512 ARCADE images. The known-answer test
//! (`tests/angio_samples.rs`) reproduces the stored training frames exactly (max difference 0).

use crate::{GrayImage, Result};

/// Side of the training frames.
pub const ANGIO_SIZE: usize = 128;

/// Box-resizes a grayscale frame of any size to `width x height` as an 8-bit library does (horizontal
/// pass, rounded to whole grey levels with halves up, then vertical pass, rounded again — PIL's
/// `resize(BOX)` on an `"L"` image; a single-pass mean rounded once differs by 1 grey level on ~20% of
/// pixels). Returns `height * width` values in `0..=255`, row-major.
pub fn angio_frame(image: &GrayImage, width: usize, height: usize) -> Result<Vec<f32>> {
    Ok(image.resize_area_8bit(width, height)?.into_pixels())
}
