//! Labelled MNIST digits in the page, as the server offers them for the training demo
//! (`GET /api/v1/training/samples/mnist`, the labelled-image format of `more_nn::idx`). Pixels become
//! inputs in `[0, 1]` and labels one-hot targets, as the CLI prepares MNIST.

use more_nn::idx::ImageSet;
use ndarray::ArrayD;
use wasm_bindgen::prelude::*;

use crate::{Fault, fault};

/// Largest sample body parsed (a little over 10,000 digits).
pub const MAX_SAMPLE_BYTES: usize = 16 << 20;

/// Digit classes.
const CLASSES: usize = 10;

/// Labelled digits.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct MnistSamples {
    set: ImageSet,
}

impl MnistSamples {
    /// One-hot targets `[N, 10]` as an array.
    pub fn targets_array(&self) -> ArrayD<f32> {
        self.set.one_hot(CLASSES).into_dyn()
    }
}

#[wasm_bindgen]
impl MnistSamples {
    /// Parses a sample body; throws on anything else (bad magic, wrong sizes, labels above 9, images that
    /// are not 28x28).
    pub fn parse(bytes: &[u8]) -> Result<MnistSamples, Fault> {
        let set = ImageSet::from_bytes(bytes, MAX_SAMPLE_BYTES).map_err(|e| fault("not a labelled image set", e))?;
        let (n, h, w) = set.images.dim();
        if (h, w) != (28, 28) || n == 0 {
            return Err(Fault(format!("expected 28x28 digits, got {n} images of {h}x{w}")));
        }
        if let Some(bad) = set.labels.iter().find(|&&l| usize::from(l) >= CLASSES) {
            return Err(Fault(format!("label {bad} is not a digit")));
        }
        Ok(MnistSamples { set })
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether there are none (never, once parsed).
    #[wasm_bindgen(js_name = isEmpty)]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The labels.
    pub fn labels(&self) -> Vec<u8> {
        self.set.labels.clone()
    }

    /// Inputs `[N, 1, 28, 28]` in `[0, 1]`, row-major.
    pub fn inputs(&self) -> Vec<f32> {
        self.set.unit_inputs().into_iter().collect()
    }

    /// One-hot targets `[N, 10]`, row-major.
    pub fn targets(&self) -> Vec<f32> {
        self.targets_array().into_iter().collect()
    }

    /// The raw pixels of digit `i` (784 bytes; empty past the end), for display.
    pub fn pixels(&self, i: usize) -> Vec<u8> {
        if i >= self.len() {
            return Vec::new();
        }
        self.set.images.index_axis(ndarray::Axis(0), i).iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn body(n: usize, side: usize, label: u8) -> Vec<u8> {
        ImageSet { images: Array3::from_elem((n, side, side), 255), labels: vec![label; n] }.to_bytes()
    }

    #[test]
    fn parses_digits_and_refuses_other_sets() {
        let s = MnistSamples::parse(&body(3, 28, 7)).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.inputs().len(), 3 * 784);
        assert!(s.inputs().iter().all(|&v| v == 1.0));
        let t = s.targets();
        assert_eq!(t.len(), 30);
        assert_eq!(t[7], 1.0);
        assert_eq!(t.iter().sum::<f32>(), 3.0);
        assert_eq!(s.pixels(2).len(), 784);
        assert!(s.pixels(3).is_empty());
        assert!(MnistSamples::parse(&body(3, 27, 7)).unwrap_err().0.contains("28x28"));
        assert!(MnistSamples::parse(&body(3, 28, 10)).unwrap_err().0.contains("not a digit"));
        assert!(MnistSamples::parse(b"nonsense").is_err());
    }
}
