//! The model's input normalisation: `x * scale`, then `(x - mean) / std`.

use crate::{Error, Result};

/// Normalisation parameters from the model metadata (`preprocessing.scale`, `.mean`, `.std`). `mean` and
/// `std` have length 1 (broadcast) or one entry per value of a sample; empty means 0 and 1. This is the
/// project's one normalisation: the browser (through `more-wasm`), the CLI, the server and `more-nn`'s
/// `Preprocessing::normalize` all call [`Normalization::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Multiplier applied first (e.g. 1/255).
    pub scale: f32,
    /// Subtracted after scaling.
    pub mean: Vec<f32>,
    /// Divided by after subtracting the mean.
    pub std: Vec<f32>,
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization { scale: 1.0, mean: vec![], std: vec![] }
    }
}

impl Normalization {
    /// Checks the parameters: finite, `std` non-zero.
    pub fn new(scale: f32, mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        let n = Normalization { scale, mean, std };
        if !n.scale.is_finite() || n.mean.iter().chain(&n.std).any(|v| !v.is_finite()) {
            return Err(Error::BadNormalization("values must be finite".into()));
        }
        if n.std.contains(&0.0) {
            return Err(Error::BadNormalization("std must not be zero".into()));
        }
        Ok(n)
    }

    /// Normalises `x` in place: `(x·scale − mean)/std`. `x` holds one or more whole samples, so a `mean` or
    /// `std` of `n > 1` values needs `x.len()` to be a multiple of `n` (value `i` uses entry `i mod n`).
    pub fn apply(&self, x: &mut [f32]) -> Result<()> {
        let len = x.len();
        let pick = |v: &[f32], default: f32, i: usize| match v.len() {
            0 => Ok(default),
            1 => Ok(v[0]),
            n if len % n == 0 => Ok(v[i % n]),
            n => Err(Error::BadNormalization(format!("{n} mean/std values for an input of {len} values"))),
        };
        pick(&self.mean, 0.0, 0)?;
        pick(&self.std, 1.0, 0)?;
        if self.std.contains(&0.0) {
            return Err(Error::BadNormalization("std must not be zero".into()));
        }
        for (i, v) in x.iter_mut().enumerate() {
            let m = pick(&self.mean, 0.0, i)?;
            let s = pick(&self.std, 1.0, i)?;
            *v = (*v * self.scale - m) / s;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_normalisation() {
        let n = Normalization::new(1.0 / 255.0, vec![0.1307], vec![0.3081]).unwrap();
        let mut x = [0.0, 255.0];
        n.apply(&mut x).unwrap();
        assert!((x[0] + 0.424_212_9).abs() < 1e-5 && (x[1] - 2.821_487_3).abs() < 1e-5);
    }

    #[test]
    fn per_feature_and_errors() {
        let n = Normalization::new(1.0, vec![1.0, 2.0], vec![2.0, 4.0]).unwrap();
        let mut x = [3.0, 6.0];
        n.apply(&mut x).unwrap();
        assert_eq!(x, [1.0, 1.0]);
        let mut batch = [3.0, 6.0, 5.0, 10.0];
        n.apply(&mut batch).unwrap();
        assert_eq!(batch, [1.0, 1.0, 2.0, 2.0]);
        assert!(n.apply(&mut [1.0, 2.0, 3.0]).is_err());
        assert!(Normalization::new(1.0, vec![0.0], vec![0.0]).is_err());
        assert!(Normalization::new(f32::NAN, vec![], vec![]).is_err());
    }
}
