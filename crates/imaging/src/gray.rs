//! Grayscale images with `f32` pixels in `0..=255`, conversion from 8-bit buffers, and area-average resize.

use crate::{Error, Result};

/// The largest accepted width or height, in pixels.
pub const MAX_SIDE: usize = 8192;

/// Layout of an 8-bit pixel buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// One byte per pixel.
    Gray,
    /// Two bytes per pixel: gray, alpha.
    GrayAlpha,
    /// Three bytes per pixel: red, green, blue.
    Rgb,
    /// Four bytes per pixel: red, green, blue, alpha (e.g. canvas `ImageData`).
    Rgba,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            PixelFormat::Gray => 1,
            PixelFormat::GrayAlpha => 2,
            PixelFormat::Rgb => 3,
            PixelFormat::Rgba => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PixelFormat::Gray => "grayscale",
            PixelFormat::GrayAlpha => "gray+alpha",
            PixelFormat::Rgb => "RGB",
            PixelFormat::Rgba => "RGBA",
        }
    }
}

/// A grayscale image, row-major, pixel values in `0..=255` (not rounded).
#[derive(Debug, Clone, PartialEq)]
pub struct GrayImage {
    width: usize,
    height: usize,
    data: Vec<f32>,
}

fn check_size(width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::Empty { width, height });
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::TooLarge { width, height, max: MAX_SIDE });
    }
    Ok(())
}

/// ITU-R BT.601 luma with integer rounding, as PIL's `convert("L")`: `(299 R + 587 G + 114 B) / 1000`.
fn luma(r: u8, g: u8, b: u8) -> f32 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as f32
}

impl GrayImage {
    /// An image from `width * height` finite values (row-major).
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        check_size(width, height)?;
        if data.len() != width * height {
            return Err(Error::BadLength {
                got: data.len(),
                expected: width * height,
                width,
                height,
                format: "grayscale",
            });
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite);
        }
        Ok(GrayImage { width, height, data })
    }

    /// An image from an 8-bit grayscale buffer.
    pub fn from_gray8(width: usize, height: usize, bytes: &[u8]) -> Result<Self> {
        Self::from_bytes(width, height, bytes, PixelFormat::Gray)
    }

    /// An image from an 8-bit RGBA buffer (e.g. canvas `ImageData`): BT.601 luma, composited over black
    /// (a transparent pixel is background).
    pub fn from_rgba8(width: usize, height: usize, bytes: &[u8]) -> Result<Self> {
        Self::from_bytes(width, height, bytes, PixelFormat::Rgba)
    }

    /// An image from an 8-bit buffer in `format`. Color is reduced to BT.601 luma (as PIL's `"L"`); an
    /// alpha channel composites the pixel over black.
    pub fn from_bytes(width: usize, height: usize, bytes: &[u8], format: PixelFormat) -> Result<Self> {
        check_size(width, height)?;
        let ch = format.channels();
        let expected = width * height * ch;
        if bytes.len() != expected {
            return Err(Error::BadLength { got: bytes.len(), expected, width, height, format: format.name() });
        }
        let data = match format {
            PixelFormat::Gray => bytes.iter().map(|&v| v as f32).collect(),
            PixelFormat::GrayAlpha => bytes.chunks_exact(2).map(|p| p[0] as f32 * p[1] as f32 / 255.0).collect(),
            PixelFormat::Rgb => bytes.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect(),
            PixelFormat::Rgba => bytes
                .chunks_exact(4)
                .map(|p| {
                    let l = luma(p[0], p[1], p[2]);
                    if p[3] == 255 { l } else { l * p[3] as f32 / 255.0 }
                })
                .collect(),
        };
        Ok(GrayImage { width, height, data })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, row-major.
    pub fn pixels(&self) -> &[f32] {
        &self.data
    }

    /// The pixels, consuming the image.
    pub fn into_pixels(self) -> Vec<f32> {
        self.data
    }

    /// Pixel at column `x`, row `y`.
    pub fn get(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// `255 - v` for every pixel.
    pub fn inverted(&self) -> GrayImage {
        GrayImage { width: self.width, height: self.height, data: self.data.iter().map(|v| 255.0 - v).collect() }
    }

    /// The sub-image of columns `x0..x1` and rows `y0..y1` (clamped to the image; at least one pixel).
    pub fn crop(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> GrayImage {
        let x1 = x1.clamp(1, self.width);
        let y1 = y1.clamp(1, self.height);
        let x0 = x0.min(x1 - 1);
        let y0 = y0.min(y1 - 1);
        let mut data = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for y in y0..y1 {
            data.extend_from_slice(&self.data[y * self.width + x0..y * self.width + x1]);
        }
        GrayImage { width: x1 - x0, height: y1 - y0, data }
    }

    /// Box (area-average) resize to `width x height`: each output pixel is the mean of the source area it
    /// covers, partial pixels weighted by the covered fraction. For integer factors (512 -> 128) this is the
    /// plain mean of each 4x4 block. Works for up- and downscaling.
    pub fn resize_area(&self, width: usize, height: usize) -> Result<GrayImage> {
        self.resize_area_with(width, height, false)
    }

    /// [`GrayImage::resize_area`] as an 8-bit image library does it (PIL's `Image.resize(size, BOX)` on an
    /// `"L"` image): the horizontal pass, rounded to whole grey levels (halves up), then the vertical pass,
    /// rounded again. The angiography training frames were made this way.
    pub fn resize_area_8bit(&self, width: usize, height: usize) -> Result<GrayImage> {
        self.resize_area_with(width, height, true)
    }

    fn resize_area_with(&self, width: usize, height: usize, round: bool) -> Result<GrayImage> {
        check_size(width, height)?;
        let q = |v: f32| if round { (v + 0.5).floor().clamp(0.0, 255.0) } else { v };
        let wx = area_weights(self.width, width);
        let wy = area_weights(self.height, height);
        // Horizontal pass: height x width_out.
        let mut tmp = vec![0f32; self.height * width];
        for y in 0..self.height {
            let row = &self.data[y * self.width..(y + 1) * self.width];
            for (ox, taps) in wx.iter().enumerate() {
                tmp[y * width + ox] = q(taps.iter().map(|&(i, w)| row[i] * w).sum());
            }
        }
        // Vertical pass.
        let mut data = vec![0f32; height * width];
        for (oy, taps) in wy.iter().enumerate() {
            let out = &mut data[oy * width..(oy + 1) * width];
            for &(i, w) in taps {
                let src = &tmp[i * width..(i + 1) * width];
                for (o, s) in out.iter_mut().zip(src) {
                    *o += s * w;
                }
            }
            if round {
                out.iter_mut().for_each(|v| *v = q(*v));
            }
        }
        Ok(GrayImage { width, height, data })
    }
}

/// For each output index, the source indices it covers and their weights (summing to 1).
fn area_weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let start = o as f64 * scale;
            let end = ((o + 1) as f64 * scale).min(n_in as f64);
            let mut taps = Vec::new();
            let mut i = start.floor() as usize;
            while (i as f64) < end && i < n_in {
                let w = end.min(i as f64 + 1.0) - start.max(i as f64);
                if w > 1e-12 {
                    taps.push((i, w));
                }
                i += 1;
            }
            let total: f64 = taps.iter().map(|t| t.1).sum();
            taps.into_iter().map(|(i, w)| (i, (w / total) as f32)).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_factor_is_block_mean() {
        let px: Vec<u8> = (0..16).collect();
        let img = GrayImage::from_gray8(4, 4, &px).unwrap();
        let r = img.resize_area(2, 2).unwrap();
        // Block means: (0+1+4+5)/4 = 2.5, (2+3+6+7)/4 = 4.5, ...
        assert_eq!(r.pixels(), &[2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn fractional_factor_preserves_mean_and_constant() {
        let img = GrayImage::new(7, 5, vec![42.0; 35]).unwrap();
        let r = img.resize_area(3, 2).unwrap();
        assert!(r.pixels().iter().all(|v| (v - 42.0).abs() < 1e-4));
        let ramp = GrayImage::new(5, 1, vec![0.0, 10.0, 20.0, 30.0, 40.0]).unwrap();
        let r = ramp.resize_area(2, 1).unwrap();
        // [0, 2.5) -> (0 + 10 + 0.5 * 20) / 2.5 = 8; [2.5, 5) -> (0.5 * 20 + 30 + 40) / 2.5 = 32
        assert!((r.pixels()[0] - 8.0).abs() < 1e-4 && (r.pixels()[1] - 32.0).abs() < 1e-4);
    }

    #[test]
    fn upscale_repeats_pixels() {
        let img = GrayImage::new(2, 1, vec![0.0, 100.0]).unwrap();
        assert_eq!(img.resize_area(4, 1).unwrap().pixels(), &[0.0, 0.0, 100.0, 100.0]);
    }

    #[test]
    fn rgba_uses_luma_and_alpha() {
        let img = GrayImage::from_rgba8(3, 1, &[255, 0, 0, 255, 255, 255, 255, 0, 10, 20, 30, 255]).unwrap();
        assert_eq!(img.pixels(), &[76.0, 0.0, 18.0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(GrayImage::from_gray8(0, 3, &[]), Err(Error::Empty { .. })));
        assert!(matches!(GrayImage::from_rgba8(2, 2, &[0; 15]), Err(Error::BadLength { .. })));
        assert!(matches!(GrayImage::from_gray8(MAX_SIDE + 1, 1, &[]), Err(Error::TooLarge { .. })));
        assert_eq!(GrayImage::new(1, 1, vec![f32::NAN]), Err(Error::NonFinite));
    }
}
