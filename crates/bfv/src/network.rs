//! The quantized network BFV evaluates — `conv 1→10 5x5 stride 2 pad 2, square, dense 1960→classes` on
//! integers — its exact `i64` simulation, and post-training quantization from a more-nn model. The class
//! count is the network's own ([`QuantizedNet::classes`]: 10 for the digits, 2 for the angiogram views);
//! everything before the dense layer is the same for every task.
//!
//! BFV computes modulo `t`; the simulation computes over the integers. They agree on every value as long as
//! no value (nor any partial sum, in any order of summation) reaches `t/2` in magnitude, which
//! [`Ranges`] records and [`QuantizedNet::forward`] reports.

use serde::{Deserialize, Serialize};

use crate::{BfvError, Result};

/// Input side (28x28: an MNIST digit, or an angiogram frame area-resized from 128x128).
pub const IMAGE: usize = 28;
/// Convolution output channels.
pub const CHANNELS: usize = 10;
/// Convolution kernel side.
pub const KERNEL: usize = 5;
/// Kernel window positions (`KERNEL²`).
pub const WINDOW: usize = KERNEL * KERNEL;
/// Convolution stride.
pub const STRIDE: usize = 2;
/// Convolution zero padding.
pub const PAD: usize = 2;
/// Convolution output side.
pub const OUT: usize = (IMAGE + 2 * PAD - KERNEL) / STRIDE + 1;
/// Output positions per channel.
pub const POSITIONS: usize = OUT * OUT;
/// Hidden values (conv outputs, squared): the dense layer's inputs.
pub const HIDDEN: usize = CHANNELS * POSITIONS;
/// Fewest classes a network may have.
pub const MIN_CLASSES: usize = 2;
/// Most classes a network may have (the digits): at most [`crate::layout::MAX_OUTPUT_CIPHERTEXTS`] result
/// ciphertexts in the single-image packing.
pub const MAX_CLASSES: usize = 10;

/// Integer weights. Inputs are values `v ∈ [0, 1]` (pixel / 255) quantized to `x = round(v · input_levels)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantizedNet {
    /// Largest quantized pixel value.
    pub input_levels: i64,
    /// `[CHANNELS][WINDOW]`, window index `ky·5 + kx`.
    pub conv_weight: Vec<i64>,
    /// `[CHANNELS]`.
    pub conv_bias: Vec<i64>,
    /// `[classes][HIDDEN]`, hidden index `c·196 + oy·14 + ox` (more-nn's flatten order).
    pub dense_weight: Vec<i64>,
    /// `[classes]`: its length is the number of classes ([`QuantizedNet::classes`]).
    pub dense_bias: Vec<i64>,
}

/// The float weights of a trained network with this architecture, in more-nn's layouts.
#[derive(Debug, Clone, Copy)]
pub struct FloatNet<'a> {
    /// `[10, 1, 5, 5]` row-major.
    pub conv_weight: &'a [f32],
    /// `[10]`.
    pub conv_bias: &'a [f32],
    /// `[classes, 1960]` row-major.
    pub dense_weight: &'a [f32],
    /// `[classes]`.
    pub dense_bias: &'a [f32],
}

/// Largest magnitudes met during a forward pass: each bound covers every partial sum in any summation
/// order (the sum of absolute values of the terms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges {
    /// Convolution outputs, incl. bias (bound on partial sums).
    pub conv: i64,
    /// Their squares.
    pub square: i64,
    /// Dense outputs, incl. bias (bound on partial sums).
    pub dense: i64,
}

impl Ranges {
    /// The largest of the three.
    pub fn max(&self) -> i64 {
        self.conv.max(self.square).max(self.dense)
    }

    /// Elementwise maximum.
    pub fn merge(&self, other: &Ranges) -> Ranges {
        Ranges {
            conv: self.conv.max(other.conv),
            square: self.square.max(other.square),
            dense: self.dense.max(other.dense),
        }
    }
}

/// Quantizes one input value in `[0, 1]` (clamped; NaN counts as 0) to `round(v · input_levels)`.
pub fn quantize_pixel(v: f32, input_levels: i64) -> i64 {
    let v = if v.is_nan() { 0.0 } else { f64::from(v).clamp(0.0, 1.0) };
    (v * input_levels as f64).round() as i64
}

/// An error unless `classes` is in [`MIN_CLASSES`]`..=`[`MAX_CLASSES`].
pub fn check_classes(classes: usize) -> Result<()> {
    if (MIN_CLASSES..=MAX_CLASSES).contains(&classes) {
        Ok(())
    } else {
        Err(BfvError::Model(format!("{classes} classes; a network has {MIN_CLASSES} to {MAX_CLASSES}")))
    }
}

impl QuantizedNet {
    /// The number of classes (logits): the length of the dense bias.
    pub fn classes(&self) -> usize {
        self.dense_bias.len()
    }

    /// Checks the shapes (conv 1->10 5x5, dense 1960->classes with [`MIN_CLASSES`] to [`MAX_CLASSES`]
    /// classes) and the magnitudes (every weight below `2^40`, `input_levels` in `1..=255`).
    pub fn validate(&self) -> Result<()> {
        check_classes(self.classes())?;
        let shape_ok = self.conv_weight.len() == CHANNELS * WINDOW
            && self.conv_bias.len() == CHANNELS
            && self.dense_weight.len() == self.classes() * HIDDEN;
        if !shape_ok {
            return Err(BfvError::Model(format!(
                "weight shapes do not match conv 1->10 5x5, dense 1960->{}",
                self.classes()
            )));
        }
        if !(1..=255).contains(&self.input_levels) {
            return Err(BfvError::Model(format!("input_levels {} outside 1..=255", self.input_levels)));
        }
        let limit = 1i64 << 40;
        let all = self.conv_weight.iter().chain(&self.conv_bias).chain(&self.dense_weight).chain(&self.dense_bias);
        if all.clone().any(|w| w.abs() >= limit) {
            return Err(BfvError::Model("a weight is 2^40 or larger".into()));
        }
        Ok(())
    }

    /// The quantized input of one image (784 values in `[0, 1]`, row-major, as more-imaging's `mnist-digit`
    /// preprocessing and the MNIST loader give them).
    pub fn quantize_image(&self, pixels: &[f32]) -> Result<Vec<i64>> {
        if pixels.len() != IMAGE * IMAGE {
            return Err(BfvError::Input(format!("{} pixels, expected {}", pixels.len(), IMAGE * IMAGE)));
        }
        Ok(pixels.iter().map(|&p| quantize_pixel(p, self.input_levels)).collect())
    }

    /// The exact integer forward pass on a quantized image: logits and the ranges met.
    pub fn forward(&self, x: &[i64]) -> (Vec<i64>, Ranges) {
        let mut ranges = Ranges::default();
        let patches = im2col(x);
        let mut hidden = vec![0i64; HIDDEN];
        for c in 0..CHANNELS {
            let w = &self.conv_weight[c * WINDOW..(c + 1) * WINDOW];
            for p in 0..POSITIONS {
                let (mut v, mut bound) = (self.conv_bias[c], self.conv_bias[c].abs());
                for (k, &wk) in w.iter().enumerate() {
                    let term = wk * patches[k][p];
                    v += term;
                    bound += term.abs();
                }
                ranges.conv = ranges.conv.max(bound);
                let sq = v * v;
                ranges.square = ranges.square.max(sq);
                hidden[c * POSITIONS + p] = sq;
            }
        }
        let logits = (0..self.classes())
            .map(|j| {
                let w = &self.dense_weight[j * HIDDEN..(j + 1) * HIDDEN];
                let (mut v, mut bound) = (self.dense_bias[j], self.dense_bias[j].abs());
                for (wi, hi) in w.iter().zip(&hidden) {
                    let term = wi * hi;
                    v += term;
                    bound += term.abs();
                }
                ranges.dense = ranges.dense.max(bound);
                v
            })
            .collect();
        (logits, ranges)
    }

    /// Post-training quantization of the float network with this architecture (inputs in `[0, 1]`; weights
    /// in more-nn's layouts: conv `[10, 1, 5, 5]`, dense `[classes, 1960]`): pixels to `input_levels + 1` levels,
    /// convolution weights to integers of magnitude at most `conv_levels`, dense weights to at most
    /// `dense_levels`. Biases follow the scale of what they are added to, so the integer logits are the float
    /// logits times one positive factor (up to rounding): the argmax is kept.
    pub fn quantize(
        float: &FloatNet<'_>,
        input_levels: i64,
        conv_levels: i64,
        dense_levels: i64,
    ) -> Result<QuantizedNet> {
        let classes = float.dense_bias.len();
        check_classes(classes)?;
        if float.conv_weight.len() != CHANNELS * WINDOW
            || float.conv_bias.len() != CHANNELS
            || float.dense_weight.len() != classes * HIDDEN
        {
            return Err(BfvError::Model(format!("expected conv 1->10 5x5 stride 2 pad 2 and dense 1960->{classes}")));
        }
        let max_abs = |it: &mut dyn Iterator<Item = f32>| it.fold(0f64, |m, v| m.max(f64::from(v).abs()));
        let s1 = conv_levels as f64 / max_abs(&mut float.conv_weight.iter().copied()).max(1e-12);
        let s2 = dense_levels as f64 / max_abs(&mut float.dense_weight.iter().copied()).max(1e-12);
        // Scale of a convolution output: weights × s1, inputs × input_levels.
        let h_scale = s1 * input_levels as f64;
        let q = |v: f64| v.round() as i64;
        let net = QuantizedNet {
            input_levels,
            conv_weight: float.conv_weight.iter().map(|&w| q(f64::from(w) * s1)).collect(),
            conv_bias: float.conv_bias.iter().map(|&b| q(f64::from(b) * h_scale)).collect(),
            dense_weight: float.dense_weight.iter().map(|&w| q(f64::from(w) * s2)).collect(),
            dense_bias: float.dense_bias.iter().map(|&b| q(f64::from(b) * s2 * h_scale * h_scale)).collect(),
        };
        net.validate()?;
        Ok(net)
    }
}

/// The im2col view of a 28x28 image: for each window position `k = ky·5 + kx`, the 196 input values that
/// position multiplies (zero where it falls in the padding).
pub fn im2col(x: &[i64]) -> Vec<Vec<i64>> {
    (0..WINDOW)
        .map(|k| {
            let (ky, kx) = (k / KERNEL, k % KERNEL);
            (0..POSITIONS)
                .map(|p| {
                    let (oy, ox) = (p / OUT, p % OUT);
                    let (y, x_) =
                        ((oy * STRIDE + ky) as isize - PAD as isize, (ox * STRIDE + kx) as isize - PAD as isize);
                    if (0..IMAGE as isize).contains(&y) && (0..IMAGE as isize).contains(&x_) {
                        x[y as usize * IMAGE + x_ as usize]
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect()
}

/// Index of the largest logit (the first on ties).
pub fn argmax(logits: &[i64]) -> usize {
    logits.iter().enumerate().fold((0, i64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_net(classes: usize) -> QuantizedNet {
        QuantizedNet {
            input_levels: 15,
            conv_weight: (0..CHANNELS * WINDOW).map(|i| (i as i64 % 7) - 3).collect(),
            conv_bias: (0..CHANNELS as i64).map(|c| c - 4).collect(),
            dense_weight: (0..classes * HIDDEN).map(|i| (i as i64 * 31 % 11) - 5).collect(),
            dense_bias: (0..classes as i64).collect(),
        }
    }

    #[test]
    fn forward_matches_a_direct_convolution() {
        for classes in [MAX_CLASSES, MIN_CLASSES] {
            forward_matches_a_direct_convolution_with(classes);
        }
    }

    fn forward_matches_a_direct_convolution_with(classes: usize) {
        let net = tiny_net(classes);
        let x: Vec<i64> = (0..784).map(|i| (i * 7 % 16) as i64).collect();
        let (logits, ranges) = net.forward(&x);
        // Direct definition of the convolution, square and dense layer.
        let mut hidden = vec![0i64; HIDDEN];
        for c in 0..CHANNELS {
            for oy in 0..OUT {
                for ox in 0..OUT {
                    let mut v = net.conv_bias[c];
                    for ky in 0..KERNEL {
                        for kx in 0..KERNEL {
                            let (y, xx) = ((oy * 2 + ky) as isize - 2, (ox * 2 + kx) as isize - 2);
                            if (0..28).contains(&y) && (0..28).contains(&xx) {
                                v += net.conv_weight[c * 25 + ky * 5 + kx] * x[y as usize * 28 + xx as usize];
                            }
                        }
                    }
                    hidden[c * 196 + oy * 14 + ox] = v * v;
                }
            }
        }
        assert_eq!(logits.len(), classes);
        for (j, &logit) in logits.iter().enumerate() {
            let expect: i64 =
                net.dense_bias[j] + (0..HIDDEN).map(|i| net.dense_weight[j * HIDDEN + i] * hidden[i]).sum::<i64>();
            assert_eq!(logit, expect);
            assert!(expect.abs() <= ranges.dense);
        }
        assert_eq!(ranges.square, hidden.iter().copied().max().unwrap());
    }

    #[test]
    fn validate_refuses_wrong_shapes() {
        let mut net = tiny_net(MAX_CLASSES);
        net.validate().unwrap();
        net.dense_bias.pop();
        assert!(net.validate().is_err());
        // Two classes are a network; one class, or more than ten, are not.
        tiny_net(2).validate().unwrap();
        assert_eq!(tiny_net(2).classes(), 2);
        assert!(tiny_net(1).validate().is_err());
        assert!(tiny_net(MAX_CLASSES + 1).validate().is_err());
    }

    #[test]
    fn pixel_quantization_covers_the_range() {
        assert_eq!(quantize_pixel(0.0, 15), 0);
        assert_eq!(quantize_pixel(1.0, 15), 15);
        assert_eq!(quantize_pixel(128.0 / 255.0, 15), 8);
        assert_eq!(quantize_pixel(f32::NAN, 15), 0);
        assert_eq!(quantize_pixel(7.0, 15), 15);
    }
}
