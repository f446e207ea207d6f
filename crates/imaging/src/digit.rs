//! MNIST-style preprocessing of a drawn digit.
//!
//! MNIST (LeCun et al.) took NIST digits, fitted each into a 20x20 box preserving its aspect ratio
//! (anti-aliased), and placed it in a 28x28 field so that the centre of mass of its pixels is at the
//! centre. Measured on the MNIST training set, the mean centre of mass is at pixel index (14.0, 14.0), so
//! that is where ours goes.

use crate::{Error, GrayImage, Result};

/// Side of the MNIST field.
pub const MNIST_SIZE: usize = 28;
/// Side of the box the digit is fitted into.
const BOX: usize = 20;
/// A pixel is ink if it is brighter than this fraction of the brightest pixel.
const INK_THRESHOLD: f32 = 0.1;

/// Which way round the ink is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ink {
    /// Light ink on a dark background (as MNIST).
    WhiteOnBlack,
    /// Dark ink on a light background (paper); inverted first.
    BlackOnWhite,
    /// Decide from the border: a light border (mean > 127.5) means dark ink.
    Auto,
}

fn border_mean(img: &GrayImage) -> f32 {
    let (w, h) = (img.width(), img.height());
    let mut sum = 0f64;
    let mut n = 0usize;
    for x in 0..w {
        sum += (img.get(x, 0) + img.get(x, h - 1)) as f64;
        n += 2;
    }
    for y in 0..h {
        sum += (img.get(0, y) + img.get(w - 1, y)) as f64;
        n += 2;
    }
    (sum / n as f64) as f32
}

/// Preprocesses a drawn digit into the 28x28 MNIST layout: white ink on black, cropped to the ink's
/// bounding box, fitted into 20x20 preserving the aspect ratio (area average), contrast-stretched so the
/// brightest pixel is 255 (MNIST strokes have saturated cores), and centred by centre of mass.
/// Returns 784 values in `0..=255`, row-major. Errors with [`Error::NoInk`] on an empty drawing.
pub fn mnist_digit(image: &GrayImage, ink: Ink) -> Result<Vec<f32>> {
    let invert = match ink {
        Ink::WhiteOnBlack => false,
        Ink::BlackOnWhite => true,
        Ink::Auto => border_mean(image) > 127.5,
    };
    let img = if invert { image.inverted() } else { image.clone() };
    // Ink relative to the background (the darkest pixel), so a grey background is not ink.
    let lo = img.pixels().iter().copied().fold(f32::INFINITY, f32::min);
    let hi = img.pixels().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if hi - lo < 1.0 {
        return Err(Error::NoInk);
    }
    let threshold = lo + INK_THRESHOLD * (hi - lo);
    let (w, h) = (img.width(), img.height());
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if img.get(x, y) > threshold {
                x0 = x0.min(x);
                x1 = x1.max(x + 1);
                y0 = y0.min(y);
                y1 = y1.max(y + 1);
            }
        }
    }
    let crop = img.crop(x0, y0, x1, y1);
    let (cw, ch) = (crop.width() as f64, crop.height() as f64);
    let s = BOX as f64 / cw.max(ch);
    let nw = ((cw * s).round() as usize).clamp(1, BOX);
    let nh = ((ch * s).round() as usize).clamp(1, BOX);
    let small = crop.resize_area(nw, nh)?;
    let px: Vec<f32> = small.pixels().iter().map(|v| (v - lo).max(0.0)).collect();
    let peak = px.iter().copied().fold(0.0f32, f32::max);
    if peak <= 0.0 {
        return Err(Error::NoInk);
    }
    let px: Vec<f32> = px.iter().map(|v| v * 255.0 / peak).collect();
    // Centre of mass (pixel-index coordinates) of the fitted digit.
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for y in 0..nh {
        for x in 0..nw {
            let v = px[y * nw + x] as f64;
            m += v;
            mx += v * x as f64;
            my += v * y as f64;
        }
    }
    let centre = (MNIST_SIZE / 2) as f64;
    let place = |com: f64, n: usize| -> usize {
        let off = (centre - com).round();
        off.clamp(0.0, (MNIST_SIZE - n) as f64) as usize
    };
    let ox = place(mx / m, nw);
    let oy = place(my / m, nh);
    let mut out = vec![0f32; MNIST_SIZE * MNIST_SIZE];
    for y in 0..nh {
        for x in 0..nw {
            out[(oy + y) * MNIST_SIZE + ox + x] = px[y * nw + x];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn com(px: &[f32]) -> (f64, f64) {
        let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
        for (i, &v) in px.iter().enumerate() {
            m += v as f64;
            mx += v as f64 * (i % 28) as f64;
            my += v as f64 * (i / 28) as f64;
        }
        (mx / m, my / m)
    }

    /// A vertical bar (a "1") drawn black on white in a corner of a big canvas.
    #[test]
    fn bar_in_corner_is_fitted_and_centred() {
        let (w, h) = (300, 200);
        let mut px = vec![255u8; w * h];
        for y in 10..110 {
            for x in 20..40 {
                px[y * w + x] = 0;
            }
        }
        let img = GrayImage::from_gray8(w, h, &px).unwrap();
        let d = mnist_digit(&img, Ink::Auto).unwrap();
        // 20x100 -> 4x20 with centre of mass (1.5, 9.5): placed at round(14 - 1.5) = 13 (halves away
        // from zero), round(14 - 9.5) = 5.
        let lit: Vec<usize> = (0..784).filter(|&i| d[i] > 0.0).collect();
        assert_eq!(lit.len(), 80);
        assert!(lit.iter().all(|&i| (5..25).contains(&(i / 28)) && (13..17).contains(&(i % 28))));
        assert!(lit.iter().all(|&i| d[i] == 255.0));
        let (cx, cy) = com(&d);
        assert!((cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5);
    }

    #[test]
    fn off_centre_mass_moves_the_box() {
        // An "L" (40x100): the foot pulls the centre of mass down, so the 20-row box sits at row 2, not at
        // the geometric centre (row 4).
        let mut px = vec![0u8; 40 * 100];
        for y in 0..100 {
            for x in 0..10 {
                px[y * 40 + x] = 255;
            }
        }
        for y in 90..100 {
            for x in 0..40 {
                px[y * 40 + x] = 255;
            }
        }
        let img = GrayImage::from_gray8(40, 100, &px).unwrap();
        let d = mnist_digit(&img, Ink::WhiteOnBlack).unwrap();
        let first_row = (0..784).find(|&i| d[i] > 0.0).unwrap() / 28;
        assert_eq!(first_row, 2);
        let (cx, cy) = com(&d);
        assert!((cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5, "{cx} {cy}");
        // A shape whose centre of mass cannot reach the centre stays whole (clamped at the edge).
        let mut px = vec![0u8; 100 * 100];
        for y in 0..100 {
            px[y * 100] = 255;
        }
        for y in 80..100 {
            for x in 0..100 {
                px[y * 100 + x] = 255;
            }
        }
        let img = GrayImage::from_gray8(100, 100, &px).unwrap();
        let d = mnist_digit(&img, Ink::WhiteOnBlack).unwrap();
        assert!(d[..28].iter().any(|&v| v > 0.0), "top row kept");
    }

    #[test]
    fn polarity_does_not_matter_with_auto() {
        let mut px = vec![0u8; 50 * 50];
        for i in 5..45 {
            px[i * 50 + i] = 255;
            px[i * 50 + i + 1] = 200;
        }
        let white = GrayImage::from_gray8(50, 50, &px).unwrap();
        let black = white.inverted();
        assert_eq!(mnist_digit(&white, Ink::Auto).unwrap(), mnist_digit(&black, Ink::Auto).unwrap());
    }

    #[test]
    fn empty_drawing_is_an_error() {
        let img = GrayImage::from_gray8(10, 10, &[0; 100]).unwrap();
        assert_eq!(mnist_digit(&img, Ink::Auto), Err(Error::NoInk));
        let img = GrayImage::from_gray8(10, 10, &[255; 100]).unwrap();
        assert_eq!(mnist_digit(&img, Ink::Auto), Err(Error::NoInk));
    }
}
