//! Decoding PNG and JPEG files to [`GrayImage`]s (feature `decode`), for native callers: the CLI and tests.
//! The browser decodes images itself and passes RGBA pixels.

use crate::{Error, GrayImage, MAX_SIDE, PixelFormat, Result};

/// Decodes a PNG or JPEG file, recognised by its first bytes (not its name). Images over [`MAX_SIDE`]
/// pixels per side are refused from their header, before their pixels are decoded; 16-bit and palette
/// PNGs are reduced to 8 bits; CMYK JPEGs are refused.
pub fn decode_image(bytes: &[u8]) -> Result<GrayImage> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes)
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        decode_jpeg(bytes)
    } else {
        Err(Error::NotAnImage)
    }
}

fn check_side(width: usize, height: usize) -> Result<()> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::TooLarge { width, height, max: MAX_SIDE });
    }
    Ok(())
}

fn decode_png(bytes: &[u8]) -> Result<GrayImage> {
    let unreadable = |e: png::DecodingError| Error::Unreadable { format: "PNG", reason: e.to_string() };
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(unreadable)?;
    check_side(reader.info().width as usize, reader.info().height as usize)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Error::Unreadable { format: "PNG", reason: "the image is too large".into() })?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(unreadable)?;
    let format = match frame.color_type {
        png::ColorType::Grayscale => PixelFormat::Gray,
        png::ColorType::GrayscaleAlpha => PixelFormat::GrayAlpha,
        png::ColorType::Rgb => PixelFormat::Rgb,
        png::ColorType::Rgba => PixelFormat::Rgba,
        other => return Err(Error::Unreadable { format: "PNG", reason: format!("colour type {other:?}") }),
    };
    buf.truncate(frame.buffer_size());
    GrayImage::from_bytes(frame.width as usize, frame.height as usize, &buf, format)
}

fn decode_jpeg(bytes: &[u8]) -> Result<GrayImage> {
    let unreadable = |e: jpeg_decoder::Error| Error::Unreadable { format: "JPEG", reason: e.to_string() };
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(unreadable)?;
    let info = decoder.info().ok_or_else(|| Error::Unreadable { format: "JPEG", reason: "no image header".into() })?;
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    check_side(width, height)?;
    let pixels = decoder.decode().map_err(unreadable)?;
    let (pixels, format) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (pixels, PixelFormat::Gray),
        jpeg_decoder::PixelFormat::L16 => (pixels.chunks_exact(2).map(|p| p[0]).collect(), PixelFormat::Gray),
        jpeg_decoder::PixelFormat::RGB24 => (pixels, PixelFormat::Rgb),
        jpeg_decoder::PixelFormat::CMYK32 => {
            return Err(Error::Unreadable {
                format: "JPEG",
                reason: "CMYK is not supported (save it as RGB or grayscale)".into(),
            });
        }
    };
    GrayImage::from_bytes(width, height, &pixels, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(depth);
        enc.write_header().unwrap().write_image_data(data).unwrap();
        out
    }

    #[test]
    fn png_gray_rgb_and_16_bit_give_the_same_pixels() {
        let gray = decode_image(&png(2, 1, png::ColorType::Grayscale, png::BitDepth::Eight, &[0, 200])).unwrap();
        assert_eq!(gray.pixels(), &[0.0, 200.0]);
        let rgb =
            decode_image(&png(2, 1, png::ColorType::Rgb, png::BitDepth::Eight, &[0, 0, 0, 200, 200, 200])).unwrap();
        assert_eq!(rgb.pixels(), gray.pixels());
        let deep =
            decode_image(&png(2, 1, png::ColorType::Grayscale, png::BitDepth::Sixteen, &[0, 0, 200, 7])).unwrap();
        assert_eq!(deep.pixels(), gray.pixels());
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert_eq!(decode_image(b"GIF89a"), Err(Error::NotAnImage));
        assert_eq!(decode_image(b""), Err(Error::NotAnImage));
        let full = png(3, 3, png::ColorType::Grayscale, png::BitDepth::Eight, &[9; 9]);
        // Any cut before the pixels are complete (the last 12 bytes are the IEND chunk, which the decoder
        // does not need).
        for cut in 8..full.len() - 12 {
            assert!(decode_image(&full[..cut]).is_err(), "truncated at {cut}");
        }
        assert!(matches!(decode_image(&[0xff, 0xd8, 0xff, 0xe0, 0, 1]), Err(Error::Unreadable { format: "JPEG", .. })));
        let wide = png(9000, 1, png::ColorType::Grayscale, png::BitDepth::Eight, &[0; 9000]);
        assert!(matches!(decode_image(&wide), Err(Error::TooLarge { width: 9000, height: 1, .. })));
    }
}
