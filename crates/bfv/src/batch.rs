//! The throughput packing: one image per SIMD slot, so that one set of ciphertexts carries up to 8,192
//! images, and the same quantized network ([`QuantizedNet`]) evaluated on all of them at once.
//!
//! Input pixel `k` of every image is ciphertext `k` (784 per batch), with image `b` in slot `b`. Every step of
//! the network is then slot-wise, so no rotation (and no rotation key) is needed:
//!
//! - **Convolution**: each hidden value `(c, p)` is `bias_c + Σ_k w[c][k] · input[patch(p, k)]` — a sum of
//!   products of ciphertexts by small signed integers, accumulated on the ciphertexts' coefficients with lazy
//!   modular reduction ([`ScaledSum`]).
//! - **Square**: one ciphertext product per hidden value (1,960), left unrelinearised (three polynomials).
//! - **Dense**: each logit is `bias_j + Σ_h W[j][h] · square_h`, accumulated the same way on the
//!   three-polynomial products; only the results (one per class: 10 for the digits) are relinearised, then
//!   switched down to [`BATCH_OUTPUT_LEVEL`].
//!
//! The work does not depend on how many slots are filled (a batch of one costs as much as a batch of 8,192),
//! so small batches use the single-image packing of [`crate::layout`] instead: below [`BATCH_CROSSOVER`]
//! images it needs less server time.
//!
//! Ring operations only: products by integers, additions, ciphertext products, relinearisation and modulus
//! switching. The batch is encrypted at [`BATCH_INPUT_LEVEL`] (log2 q = 130 bits): one ciphertext product
//! needs no more, and it makes every ciphertext 40% smaller and every product faster than at the full
//! modulus.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use fhe::bfv::{BfvParameters, Ciphertext, Encoding, Plaintext, RelinearizationKey};
use fhe_math::rq::traits::TryConvertFrom;
use fhe_math::rq::{Poly, Representation};
use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
use ndarray::Array2;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::layout::{from_mod, to_mod};
use crate::network::{HIDDEN, IMAGE, KERNEL, OUT, PAD, POSITIONS, QuantizedNet, STRIDE, WINDOW, check_classes};
use crate::params::{PLAINTEXT_MODULUS, RING_DEGREE, parameters};
use crate::scheme::{Client, fhe_err};
use crate::{BfvError, Result};

/// Images per batch: one per slot.
pub const BATCH_SLOTS: usize = RING_DEGREE;

/// Input ciphertexts per batch: one per pixel.
pub const BATCH_INPUT_CIPHERTEXTS: usize = IMAGE * IMAGE;

/// Level of the batch's input ciphertexts: the first three moduli (log2 q = 130).
pub const BATCH_INPUT_LEVEL: usize = 2;

/// Level of the result ciphertexts (log2 q = 86).
pub const BATCH_OUTPUT_LEVEL: usize = 3;

/// Below this many images the single-image packing costs the server less: it evaluates one image in about
/// 0.15 s of one core, a batch of any size costs about 25 s of one core (both measured on this project's
/// 2-core machine), so the batch wins from about 170 images on.
pub const BATCH_CROSSOVER: usize = 170;

/// The public key a batch needs: relinearisation at [`BATCH_INPUT_LEVEL`]. No rotation keys.
#[derive(Debug)]
pub struct BatchKeys {
    /// Relinearisation key for ciphertexts at [`BATCH_INPUT_LEVEL`].
    pub relin: RelinearizationKey,
}

impl Client {
    /// The batch's evaluation key (0.4 MB as a message; the single-image keys are 7.7 MB).
    pub fn batch_keys<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<BatchKeys> {
        let relin = RelinearizationKey::new_leveled(self.secret(), BATCH_INPUT_LEVEL, BATCH_INPUT_LEVEL, rng)
            .map_err(fhe_err("relinearisation key"))?;
        Ok(BatchKeys { relin })
    }

    /// Encrypts up to [`BATCH_SLOTS`] quantized images (784 values each): 784 ciphertexts at
    /// [`BATCH_INPUT_LEVEL`], image `b` in slot `b`, empty slots zero. Each ciphertext draws its randomness
    /// from its own ChaCha20 stream seeded from `rng`, so the work spreads over the cores.
    pub fn encrypt_batch<R: RngCore + CryptoRng>(&self, images: &[Vec<i64>], rng: &mut R) -> Result<Vec<Ciphertext>> {
        self.encrypt_slot_columns(images, BATCH_INPUT_CIPHERTEXTS, rng)
    }

    /// Decrypts a batch's result ciphertexts (one per class: `classes`, the model's
    /// [`QuantizedNet::classes`]) into the logits of its first `images` images.
    pub fn decrypt_batch(&self, cts: &[Ciphertext], classes: usize, images: usize) -> Result<Vec<Vec<i64>>> {
        check_classes(classes).map_err(|e| BfvError::Input(e.to_string()))?;
        self.decrypt_slot_columns(cts, classes, images)
    }

    /// The slot-per-sample encryption: `columns` ciphertexts at [`BATCH_INPUT_LEVEL`], value `k` of sample
    /// `b` in slot `b` of ciphertext `k`, each ciphertext with its own ChaCha20 stream seeded from `rng`.
    pub(crate) fn encrypt_slot_columns<R: RngCore + CryptoRng>(
        &self,
        samples: &[Vec<i64>],
        columns: usize,
        rng: &mut R,
    ) -> Result<Vec<Ciphertext>> {
        check_batch_size(samples.len())?;
        if let Some((i, x)) = samples.iter().enumerate().find(|(_, x)| x.len() != columns) {
            return Err(BfvError::Input(format!("sample {i} has {} values, expected {columns}", x.len())));
        }
        let seeds: Vec<[u8; 32]> = (0..columns)
            .map(|_| {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                s
            })
            .collect();
        let par = self.parameters().clone();
        seeds
            .into_par_iter()
            .enumerate()
            .map(|(k, seed)| {
                let mut slots = vec![0u64; BATCH_SLOTS];
                for (s, x) in slots.iter_mut().zip(samples) {
                    *s = to_mod(x[k], PLAINTEXT_MODULUS);
                }
                let pt = Plaintext::try_encode(&slots, Encoding::simd_at_level(BATCH_INPUT_LEVEL), &par)
                    .map_err(fhe_err("encode"))?;
                self.secret().try_encrypt(&pt, &mut ChaCha20Rng::from_seed(seed)).map_err(fhe_err("encrypt"))
            })
            .collect()
    }

    /// The slot-per-sample decryption: `columns` result ciphertexts at [`BATCH_OUTPUT_LEVEL`] into the
    /// values of the first `samples` samples.
    pub(crate) fn decrypt_slot_columns(
        &self,
        cts: &[Ciphertext],
        columns: usize,
        samples: usize,
    ) -> Result<Vec<Vec<i64>>> {
        check_batch_size(samples)?;
        if cts.len() != columns {
            return Err(BfvError::Input(format!("{} result ciphertexts, expected {columns}", cts.len())));
        }
        let values = cts
            .par_iter()
            .map(|ct| {
                let pt = self.secret().try_decrypt(ct).map_err(fhe_err("decrypt"))?;
                Vec::<u64>::try_decode(&pt, Encoding::simd_at_level(BATCH_OUTPUT_LEVEL)).map_err(fhe_err("decode"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((0..samples).map(|b| values.iter().map(|slots| from_mod(slots[b], PLAINTEXT_MODULUS)).collect()).collect())
    }
}

/// A batch holds 1 to [`BATCH_SLOTS`] images.
pub fn check_batch_size(images: usize) -> Result<()> {
    if (1..=BATCH_SLOTS).contains(&images) {
        Ok(())
    } else {
        Err(BfvError::Input(format!("a batch holds 1 to {BATCH_SLOTS} images, not {images}")))
    }
}

/// The plaintext holding `v` (mod `t`) in every slot at [`BATCH_INPUT_LEVEL`]: a bias added to a whole
/// batch.
pub(crate) fn slot_constant(v: i64) -> Result<Plaintext> {
    Plaintext::try_encode(
        &vec![to_mod(v, PLAINTEXT_MODULUS); BATCH_SLOTS],
        Encoding::simd_at_level(BATCH_INPUT_LEVEL),
        &parameters(),
    )
    .map_err(fhe_err("encode bias"))
}

/// The server side of the batch packing: the network's biases encoded once.
pub struct BatchEvaluator {
    net: QuantizedNet,
    conv_bias: Vec<Plaintext>,
    dense_bias: Vec<Plaintext>,
}

impl std::fmt::Debug for BatchEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchEvaluator").field("input_levels", &self.net.input_levels).finish_non_exhaustive()
    }
}

impl BatchEvaluator {
    /// Checks `net` and encodes its biases.
    pub fn new(net: &QuantizedNet) -> Result<BatchEvaluator> {
        net.validate()?;
        let constant = slot_constant;
        Ok(BatchEvaluator {
            net: net.clone(),
            conv_bias: net.conv_bias.iter().map(|&b| constant(b)).collect::<Result<_>>()?,
            dense_bias: net.dense_bias.iter().map(|&b| constant(b)).collect::<Result<_>>()?,
        })
    }

    /// The network it evaluates.
    pub fn net(&self) -> &QuantizedNet {
        &self.net
    }

    /// Evaluates the network on a batch: 784 input ciphertexts (two polynomials at [`BATCH_INPUT_LEVEL`], as
    /// [`crate::wire::decode_batch`] gives them) → one result ciphertext per class at [`BATCH_OUTPUT_LEVEL`], on all
    /// of rayon's threads. `progress(done, total)` is called from the worker threads after each of the
    /// `total` = 1,960 hidden values. Keys that pass the checks but do not fit give an error, not a panic.
    pub fn evaluate(
        &self,
        keys: &BatchKeys,
        inputs: &[Ciphertext],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<Ciphertext>> {
        self.evaluate_until(keys, inputs, progress, &AtomicBool::new(false))
    }

    /// [`BatchEvaluator::evaluate`] that gives up with [`BfvError::Stopped`] soon after `stop` is set (each
    /// worker looks before each hidden value: within about one ciphertext product).
    pub fn evaluate_until(
        &self,
        keys: &BatchKeys,
        inputs: &[Ciphertext],
        progress: &(dyn Fn(usize, usize) + Sync),
        stop: &AtomicBool,
    ) -> Result<Vec<Ciphertext>> {
        let net = &self.net;
        let layer = SquareLayer {
            inputs: BATCH_INPUT_CIPHERTEXTS,
            hidden: HIDDEN,
            outputs: net.classes(),
            pre_activation: &|h: usize, conv: &mut ScaledSum, inputs: &[Ciphertext]| {
                let (c, p) = (h / POSITIONS, h % POSITIONS);
                for (k, &w) in net.conv_weight[c * WINDOW..(c + 1) * WINDOW].iter().enumerate() {
                    if let Some(pixel) = patch_pixel(p, k) {
                        conv.add(&inputs[pixel], w);
                    }
                }
            },
            hidden_bias: &|h: usize| &self.conv_bias[h / POSITIONS],
            output_weight: &|j: usize, h: usize| net.dense_weight[j * HIDDEN + h],
            output_bias: &self.dense_bias,
        };
        layer.evaluate(keys, inputs, progress, stop)
    }
}

/// The one-square network shape both slot-per-sample evaluations share: `hidden` values, each an
/// integer-weighted sum of the `inputs` input ciphertexts plus a bias, squared (unrelinearised), and summed
/// with integer weights into `outputs` results, which alone are relinearised and switched to
/// [`BATCH_OUTPUT_LEVEL`].
pub(crate) struct SquareLayer<'a> {
    /// Input ciphertexts expected.
    pub inputs: usize,
    /// Hidden values.
    pub hidden: usize,
    /// Result ciphertexts.
    pub outputs: usize,
    /// Adds hidden value `h`'s weighted inputs (without bias) to the sum.
    pub pre_activation: &'a (dyn Fn(usize, &mut ScaledSum, &[Ciphertext]) + Sync),
    /// Hidden value `h`'s bias, encoded at [`BATCH_INPUT_LEVEL`].
    pub hidden_bias: &'a (dyn Fn(usize) -> &'a Plaintext + Sync),
    /// The weight of hidden value `h` in output `k`: `(k, h)`.
    pub output_weight: &'a (dyn Fn(usize, usize) -> i64 + Sync),
    /// The outputs' biases, encoded at [`BATCH_INPUT_LEVEL`].
    pub output_bias: &'a [Plaintext],
}

impl SquareLayer<'_> {
    /// Checks the inputs (count, fresh, at [`BATCH_INPUT_LEVEL`]) and evaluates on all of rayon's threads;
    /// `progress(done, hidden)` after each hidden value, [`BfvError::Stopped`] soon after `stop` is set.
    /// Keys that pass the checks but do not fit give an error, not a panic.
    pub fn evaluate(
        &self,
        keys: &BatchKeys,
        inputs: &[Ciphertext],
        progress: &(dyn Fn(usize, usize) + Sync),
        stop: &AtomicBool,
    ) -> Result<Vec<Ciphertext>> {
        if inputs.len() != self.inputs {
            return Err(BfvError::Input(format!("{} ciphertexts, expected {}", inputs.len(), self.inputs)));
        }
        let par = parameters();
        if let Some(k) = inputs
            .iter()
            .position(|ct| ct.len() != 2 || par.level_of_context(ct[0].ctx()).ok() != Some(BATCH_INPUT_LEVEL))
        {
            return Err(BfvError::Input(format!(
                "ciphertext {k} is not a fresh ciphertext at level {BATCH_INPUT_LEVEL}"
            )));
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.evaluate_inner(&par, keys, inputs, progress, stop)
        })) {
            Ok(r) => r,
            Err(_) => Err(BfvError::Fhe("batch evaluation failed (keys or ciphertexts do not fit together)".into())),
        }
    }

    fn evaluate_inner(
        &self,
        par: &Arc<BfvParameters>,
        keys: &BatchKeys,
        inputs: &[Ciphertext],
        progress: &(dyn Fn(usize, usize) + Sync),
        stop: &AtomicBool,
    ) -> Result<Vec<Ciphertext>> {
        let ctx = inputs[0][0].ctx().clone();
        let done = AtomicUsize::new(0);
        let empty = || (0..self.outputs).map(|_| ScaledSum::new(&ctx, 3)).collect::<Vec<_>>();
        // Each worker sums its share of the hidden values into its own accumulators (one share per thread:
        // the accumulators are megabytes), and the shares are added at the end.
        let share = self.hidden.div_ceil(rayon::current_num_threads().max(1));
        let sums = (0..self.hidden)
            .into_par_iter()
            .with_min_len(share)
            .try_fold(empty, |mut acc, h| -> Result<Vec<ScaledSum>> {
                if stop.load(Ordering::Relaxed) {
                    return Err(BfvError::Stopped);
                }
                // A hidden value no output reads (all its output weights zero, as in a pruned network)
                // costs nothing.
                if (0..self.outputs).all(|k| (self.output_weight)(k, h) == 0) {
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, self.hidden);
                    return Ok(acc);
                }
                let mut pre = ScaledSum::new(&ctx, 2);
                (self.pre_activation)(h, &mut pre, inputs);
                let mut s = pre.finish(par)?;
                s += (self.hidden_bias)(h);
                let square = &s * &s;
                for (k, a) in acc.iter_mut().enumerate() {
                    a.add(&square, (self.output_weight)(k, h));
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, self.hidden);
                Ok(acc)
            })
            .try_reduce(empty, |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    x.merge(y);
                }
                Ok(a)
            })?;
        sums.into_par_iter()
            .zip(self.output_bias)
            .map(|(sum, bias)| {
                let mut ct = sum.finish(par)?;
                keys.relin.relinearizes(&mut ct).map_err(fhe_err("relinearise"))?;
                ct += bias;
                ct.switch_to_level(BATCH_OUTPUT_LEVEL).map_err(fhe_err("modulus switch"))?;
                Ok(ct)
            })
            .collect()
    }
}

/// The input pixel that window position `k` of convolution output position `p` reads, or `None` in the
/// padding (the same rule as [`crate::network::im2col`]).
pub fn patch_pixel(p: usize, k: usize) -> Option<usize> {
    let (oy, ox) = (p / OUT, p % OUT);
    let (ky, kx) = (k / KERNEL, k % KERNEL);
    let y = (oy * STRIDE + ky).checked_sub(PAD)?;
    let x = (ox * STRIDE + kx).checked_sub(PAD)?;
    (y < IMAGE && x < IMAGE).then_some(y * IMAGE + x)
}

/// `Σ w_i · ct_i` for ciphertexts of the same shape and small signed integers `w_i`, accumulated on the
/// ciphertexts' NTT coefficients in `u64` and reduced modulo each prime only when the next term could
/// overflow. Multiplying a ciphertext by an integer multiplies its plaintext by it and its noise by `|w|`.
pub struct ScaledSum {
    ctx: Arc<fhe_math::rq::Context>,
    /// One vector per polynomial of the ciphertext: `[modulus][coefficient]`, flattened, so that
    /// [`ScaledSum::finish`] hands each to fhe.rs without a copy.
    acc: Vec<Vec<u64>>,
    /// Per modulus, an upper bound of every accumulated value.
    bound: Vec<u128>,
}

impl ScaledSum {
    /// An empty sum of ciphertexts with `parts` polynomials over `ctx`.
    pub fn new(ctx: &Arc<fhe_math::rq::Context>, parts: usize) -> ScaledSum {
        let moduli = ctx.moduli().len();
        ScaledSum { ctx: ctx.clone(), acc: vec![vec![0; moduli * RING_DEGREE]; parts], bound: vec![0; moduli] }
    }

    /// Adds `w · ct`. `ct` must have this sum's number of polynomials and context (checked).
    pub fn add(&mut self, ct: &Ciphertext, w: i64) {
        assert!(ct.len() == self.acc.len() && ct[0].ctx() == &self.ctx, "a ciphertext of another shape");
        if w == 0 {
            return;
        }
        let ctx = self.ctx.clone();
        for (m, &q) in ctx.moduli().iter().enumerate() {
            let scale = w.unsigned_abs() % q;
            // `w · c ≡ |w| · c` or `|w| · (q − c)` (mod q): both below `|w| · q`.
            let term_bound = u128::from(scale) * u128::from(q);
            let wide = term_bound > u128::from(u64::MAX) / 2;
            if wide || self.bound[m] + term_bound > u128::from(u64::MAX) {
                self.reduce(m);
            }
            for (acc, poly) in self.acc.iter_mut().zip(ct.iter()) {
                let coeffs = poly.coefficients();
                let row = coeffs.row(m);
                let src = row.as_slice().expect("fhe.rs coefficients are contiguous");
                let dst = &mut acc[m * RING_DEGREE..(m + 1) * RING_DEGREE];
                match (wide, w > 0) {
                    // A weight too large for lazy reduction: one modular product per coefficient.
                    (true, positive) => {
                        for (d, &c) in dst.iter_mut().zip(src) {
                            let c = if positive { c } else { (q - c) % q };
                            *d = ((u128::from(*d) + u128::from(scale) * u128::from(c)) % u128::from(q)) as u64;
                        }
                    }
                    (false, true) => {
                        for (d, &c) in dst.iter_mut().zip(src) {
                            *d += scale * c;
                        }
                    }
                    (false, false) => {
                        let offset = scale * q;
                        for (d, &c) in dst.iter_mut().zip(src) {
                            *d += offset - scale * c;
                        }
                    }
                }
            }
            self.bound[m] = if wide { u128::from(q) } else { self.bound[m] + term_bound };
        }
    }

    /// Adds another sum over the same context.
    pub fn merge(&mut self, mut other: ScaledSum) {
        for m in 0..self.bound.len() {
            if self.bound[m] + other.bound[m] > u128::from(u64::MAX) {
                self.reduce(m);
                other.reduce(m);
            }
            let range = m * RING_DEGREE..(m + 1) * RING_DEGREE;
            for (acc, theirs) in self.acc.iter_mut().zip(&other.acc) {
                for (d, &s) in acc[range.clone()].iter_mut().zip(&theirs[range.clone()]) {
                    *d += s;
                }
            }
            self.bound[m] += other.bound[m];
        }
    }

    fn reduce(&mut self, m: usize) {
        let q = self.ctx.moduli()[m];
        for acc in &mut self.acc {
            for v in &mut acc[m * RING_DEGREE..(m + 1) * RING_DEGREE] {
                *v %= q;
            }
        }
        self.bound[m] = u128::from(q);
    }

    /// The sum as a ciphertext (coefficients reduced into `[0, q)`).
    pub fn finish(mut self, par: &Arc<BfvParameters>) -> Result<Ciphertext> {
        let moduli = self.bound.len();
        for m in 0..moduli {
            self.reduce(m);
        }
        let polys = self
            .acc
            .into_iter()
            .map(|part| {
                let a = Array2::from_shape_vec((moduli, RING_DEGREE), part)
                    .map_err(|e| BfvError::Fhe(format!("accumulator shape: {e}")))?;
                Poly::try_convert_from(a, &self.ctx, false, Representation::Ntt)
                    .map_err(|e| BfvError::Fhe(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ciphertext::new(polys, par).map_err(fhe_err("ciphertext from sum"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::im2col;

    #[test]
    fn patch_pixels_follow_im2col() {
        let x: Vec<i64> = (0..784).map(|i| i as i64 + 1).collect();
        let patches = im2col(&x);
        for (k, patch) in patches.iter().enumerate() {
            for (p, &v) in patch.iter().enumerate() {
                assert_eq!(patch_pixel(p, k).map_or(0, |i| x[i]), v, "k {k} p {p}");
            }
        }
    }

    #[test]
    fn batch_sizes_outside_one_to_8192_are_refused() {
        assert!(check_batch_size(0).is_err());
        assert!(check_batch_size(1).is_ok());
        assert!(check_batch_size(BATCH_SLOTS).is_ok());
        assert!(check_batch_size(BATCH_SLOTS + 1).is_err());
    }
}
