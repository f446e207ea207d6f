//! Angiogram frame preprocessing: grayscale, then box-resize (area average) to 128x128 in 8-bit steps —
//! how the frames in `shared/data/angio` were made from the 512x512 ARCADE images. The known-answer test
//! (`tests/angio_samples.rs`) reproduces the stored training frames exactly (max difference 0).
//!
//! The BFV classifier of the views reads a smaller input: the same 128x128 frame area-resized to 28x28
//! ([`angio_bfv_input`]), so that it runs the digits' network shape under the digits' BFV parameters.
//! Training, evaluation, the server's listing and the page all make it with this one function.

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

/// Side of the BFV angiogram classifier's input: the input side of the BFV network (`more_bfv::network::IMAGE`),
/// the same 28 as an MNIST digit.
pub const ANGIO_BFV_SIZE: usize = 28;

/// The BFV angiogram classifier's input from a 128x128 frame (row-major, as [`angio_frame`] gives it and
/// the training frames are stored): the frame area-averaged ([`GrayImage::resize_area`], no rounding) to
/// [`ANGIO_BFV_SIZE`]x[`ANGIO_BFV_SIZE`], row-major. Each output pixel is a weighted mean of the frame's
/// pixels, so values keep the frame's units: grey levels in `0..=255` give grey levels, the same divided by
/// 255 give values in `[0, 1]`.
///
/// ```
/// use more_imaging::angio::{ANGIO_BFV_SIZE, angio_bfv_input};
/// let frame = vec![0.5f32; 128 * 128];
/// let x = angio_bfv_input(&frame).unwrap();
/// assert_eq!(x.len(), ANGIO_BFV_SIZE * ANGIO_BFV_SIZE);
/// assert!(x.iter().all(|&v| (v - 0.5).abs() < 1e-6));
/// assert!(angio_bfv_input(&frame[1..]).is_err());
/// ```
pub fn angio_bfv_input(frame: &[f32]) -> Result<Vec<f32>> {
    let image = GrayImage::new(ANGIO_SIZE, ANGIO_SIZE, frame.to_vec())?;
    Ok(image.resize_area(ANGIO_BFV_SIZE, ANGIO_BFV_SIZE)?.into_pixels())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bfv_input_averages_areas_of_the_frame() {
        // 128 / 28 = 32 / 7 frame pixels per output pixel: output (0, 0) covers frame rows and columns
        // 0..4 fully and 4/7 of pixel 4, so on a frame that is 7 in column 4 and 0 elsewhere it reads
        // 7 · (4/7) / (32/7) = 7/8.
        let mut frame = vec![0f32; ANGIO_SIZE * ANGIO_SIZE];
        for y in 0..ANGIO_SIZE {
            frame[y * ANGIO_SIZE + 4] = 7.0;
        }
        let x = angio_bfv_input(&frame).unwrap();
        assert!((x[0] - 0.875).abs() < 1e-5, "{}", x[0]);
        // Column 4 also reaches into output column 1 (3/7 of it): 7 · (3/7) / (32/7) = 21/32.
        assert!((x[1] - 21.0 / 32.0).abs() < 1e-5, "{}", x[1]);
        assert!(x[2..ANGIO_BFV_SIZE].iter().all(|&v| v == 0.0));
        // The mean is kept (area weights sum to one), and the scale does not matter (the map is linear).
        let ramp: Vec<f32> = (0..ANGIO_SIZE * ANGIO_SIZE).map(|i| (i % 251) as f32).collect();
        let (a, b) = (
            angio_bfv_input(&ramp).unwrap(),
            angio_bfv_input(&ramp.iter().map(|v| v / 255.0).collect::<Vec<_>>()).unwrap(),
        );
        let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        assert!((mean(&a) - mean(&ramp)).abs() < 1e-2);
        assert!(a.iter().zip(&b).all(|(x, y)| (x / 255.0 - y).abs() < 1e-5));
    }

    #[test]
    fn the_bfv_input_refuses_other_sizes_and_non_finite_values() {
        assert!(matches!(angio_bfv_input(&[0.0; 28 * 28]), Err(crate::Error::BadLength { .. })));
        let mut frame = vec![0f32; ANGIO_SIZE * ANGIO_SIZE];
        frame[5] = f32::NAN;
        assert_eq!(angio_bfv_input(&frame), Err(crate::Error::NonFinite));
    }
}
