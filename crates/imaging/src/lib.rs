//! # more-imaging
//!
//! Image preprocessing shared by the browser (through `more-wasm`), the CLI and training, so that a picture
//! is turned into a model input the same way everywhere.
//!
//! - [`mnist_digit`]: a drawn digit (any size, RGBA or grayscale, white-on-black or black-on-white) is made
//!   the way MNIST was made: cropped to the ink, fitted into 20x20 preserving the aspect ratio, and placed in
//!   a 28x28 field so that its centre of mass is at the centre.
//! - [`angio_frame`]: an angiogram (any size) is converted to grayscale and box-resized (area average) to
//!   128x128, exactly as the training frames in `shared/data/angio` were made;
//!   [`angio::angio_bfv_input`] averages that frame down to the 28x28 input of the BFV classifier.
//! - [`Normalization`]: the model's `x * scale`, then `(x - mean) / std` (from the model metadata).
//!
//! ```
//! use more_imaging::{GrayImage, Ink, mnist_digit};
//! // A 60x60 white square on black: centred and fitted into 20x20.
//! let mut px = vec![0u8; 100 * 100];
//! for y in 20..80 { for x in 10..70 { px[y * 100 + x] = 255; } }
//! let img = GrayImage::from_gray8(100, 100, &px).unwrap();
//! let digit = mnist_digit(&img, Ink::Auto).unwrap();
//! assert_eq!(digit.len(), 784);
//! assert_eq!(digit[14 * 28 + 14], 255.0);
//! assert_eq!(digit[2 * 28 + 2], 0.0);
//! ```
#![deny(missing_docs)]

pub mod angio;
#[cfg(feature = "decode")]
pub mod decode;
pub mod digit;
pub mod error;
pub mod gray;
pub mod normalize;

pub use angio::{ANGIO_BFV_SIZE, ANGIO_SIZE, angio_bfv_input, angio_frame};
#[cfg(feature = "decode")]
pub use decode::decode_image;
pub use digit::{Ink, MNIST_SIZE, mnist_digit};
pub use error::{Error, Result};
pub use gray::{GrayImage, MAX_SIDE, PixelFormat};
pub use normalize::Normalization;

/// The preprocessing kind of the BFV angiogram classifier: [`angio_frame`] at 128x128, then
/// [`angio_bfv_input`] (28x28).
pub const ANGIO_BFV_KIND: &str = "angio-bfv";

/// Preprocesses `image` for a model whose metadata names the preprocessing `kind` (`"mnist-digit"`,
/// `"angio-frame"` or [`ANGIO_BFV_KIND`]), optional `resize` (`[height, width]`, used by `angio-frame`;
/// default 128x128) and normalisation. Returns the model input, row-major, `height * width` values.
pub fn preprocess(kind: &str, image: &GrayImage, resize: Option<[usize; 2]>, norm: &Normalization) -> Result<Vec<f32>> {
    let mut x = match kind {
        "mnist-digit" => mnist_digit(image, Ink::Auto)?,
        "angio-frame" => {
            let [h, w] = resize.unwrap_or([ANGIO_SIZE, ANGIO_SIZE]);
            angio_frame(image, w, h)?
        }
        ANGIO_BFV_KIND => angio_bfv_input(&angio_frame(image, ANGIO_SIZE, ANGIO_SIZE)?)?,
        other => return Err(Error::UnknownKind(other.to_string())),
    };
    norm.apply(&mut x)?;
    Ok(x)
}
