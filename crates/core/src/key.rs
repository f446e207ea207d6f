//! Secret keys: an invertible 2x2 matrix `S` and the range the random lane is drawn from.

use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mat2::{self, Mat2};

/// Default bound on `κ(S)`: decryption error grows like `κ(S)² · ε · max(|m|, |r|)`.
pub const DEFAULT_MAX_CONDITION: f64 = 10.0;

/// Hard upper bound accepted for any key (beyond it `f32` planes lose every digit).
pub const ABSOLUTE_MAX_CONDITION: f64 = 1.0e6;

/// Smallest accepted largest entry of `S` (its scale; generated keys have entries of order 1).
pub const MIN_SCALE: f64 = 1e-100;

/// Largest accepted largest entry of `S`.
pub const MAX_SCALE: f64 = 1e100;

/// The interval the random lane `r` of every ciphertext is drawn from, uniformly and independently.
///
/// It should match the scale of the data (e.g. the pixel range) so that `r` neither dominates the
/// rounding error of `m` nor overflows through a network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseRange {
    /// Lower end (inclusive).
    pub lo: f64,
    /// Upper end (exclusive).
    pub hi: f64,
}

impl NoiseRange {
    /// A checked range: finite, `lo < hi`, and bounded by `1e6` in magnitude.
    pub fn new(lo: f64, hi: f64) -> Result<Self> {
        if !(lo.is_finite() && hi.is_finite()) || lo >= hi || lo.abs() > 1e6 || hi.abs() > 1e6 {
            return Err(Error::InvalidKeyOptions(format!(
                "noise range [{lo}, {hi}) must be finite, non-empty and within ±1e6"
            )));
        }
        Ok(Self { lo, hi })
    }

    /// Draws one value.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        rng.random_range(self.lo..self.hi)
    }
}

impl Default for NoiseRange {
    /// `[-1, 1)`: the scale of normalised inputs.
    fn default() -> Self {
        Self { lo: -1.0, hi: 1.0 }
    }
}

/// Options for key generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyOptions {
    /// Keys are drawn with `κ(S)` uniform in `[1, max_condition]`.
    pub max_condition: f64,
    /// Range of the random lane.
    pub noise: NoiseRange,
}

impl Default for KeyOptions {
    fn default() -> Self {
        Self { max_condition: DEFAULT_MAX_CONDITION, noise: NoiseRange::default() }
    }
}

/// A MORE secret key: `S`, its inverse, and the noise range of the random lane.
///
/// Encryption of `m` is `S · diag(m, r) · S⁻¹` with a fresh random `r`; decryption is
/// `(S⁻¹ · C · S)[0][0]`. Internally the key is kept as the two projectors `P = s₀ t₀ᵀ` and
/// `Q = s₁ t₁ᵀ` (columns `sᵢ` of `S`, rows `tᵢ` of `S⁻¹`), so `C = m·P + r·Q` and
/// `m = t₀ · C · s₀`.
///
/// `Debug` and `Display` never show the matrix.
#[derive(Clone, PartialEq)]
pub struct SecretKey {
    s: Mat2,
    s_inv: Mat2,
    noise: NoiseRange,
    condition: f64,
}

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG (`crypto.getRandomValues` in a browser).
    pub fn generate(options: KeyOptions) -> Result<Self> {
        let mut rng = ChaCha20Rng::from_os_rng();
        Self::generate_with_rng(options, &mut rng)
    }

    /// A reproducible key for tests and experiments. **Not secret**: anyone with the seed has the key.
    pub fn from_seed(seed: u64, options: KeyOptions) -> Result<Self> {
        Self::generate_with_rng(options, &mut ChaCha20Rng::seed_from_u64(seed))
    }

    /// A key drawn from `rng`: `S = σ · R(θ₁) · diag(1, 1/κ) · R(θ₂)` (with a random reflection), with
    /// `θ` uniform, `κ` uniform in `[1, max_condition]` and `σ` log-uniform in `[1/2, 2]`.
    pub fn generate_with_rng<R: Rng + ?Sized>(options: KeyOptions, rng: &mut R) -> Result<Self> {
        check_max_condition(options.max_condition)?;
        let kappa = if options.max_condition > 1.0 { rng.random_range(1.0..=options.max_condition) } else { 1.0 };
        Self::with_condition_rng(kappa, options.noise, rng)
    }

    /// A key with condition number exactly `kappa` (up to rounding), random otherwise. Used to study
    /// how precision degrades with `κ(S)`.
    pub fn with_condition_rng<R: Rng + ?Sized>(kappa: f64, noise: NoiseRange, rng: &mut R) -> Result<Self> {
        check_max_condition(kappa)?;
        let t = std::f64::consts::TAU;
        let (a, b) = (rng.random_range(0.0..t), rng.random_range(0.0..t));
        let sigma = 2f64.powf(rng.random_range(-1.0..=1.0));
        let reflect = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
        let d = [[sigma, 0.0], [0.0, reflect * sigma / kappa]];
        let s = mat2::mul(&mat2::mul(&mat2::rotation(a), &d), &mat2::rotation(b));
        Self::from_matrix_checked(s, noise, ABSOLUTE_MAX_CONDITION)
    }

    /// A key from an explicit matrix `S`, rejecting singular or non-finite matrices and
    /// `κ(S) > max_condition` (at most [`ABSOLUTE_MAX_CONDITION`]).
    pub fn from_matrix(s: Mat2, noise: NoiseRange, max_condition: f64) -> Result<Self> {
        check_max_condition(max_condition)?;
        Self::from_matrix_checked(s, noise, max_condition)
    }

    fn from_matrix_checked(s: Mat2, noise: NoiseRange, max_condition: f64) -> Result<Self> {
        NoiseRange::new(noise.lo, noise.hi).map_err(|e| Error::InvalidKey(e.to_string()))?;
        if !mat2::is_finite(&s) {
            return Err(Error::InvalidKey("matrix has non-finite entries".into()));
        }
        // `S` and `c·S` are the same key, so only its shape matters; an extreme scale would only push `det S`
        // and the products of encryption into subnormal numbers, where `f64` loses its precision.
        let scale = s.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        if !(MIN_SCALE..=MAX_SCALE).contains(&scale) {
            return Err(Error::InvalidKey(format!(
                "the largest matrix entry is {scale:e}; it must lie between {MIN_SCALE:e} and {MAX_SCALE:e}"
            )));
        }
        let condition = mat2::condition_number(&s);
        if !condition.is_finite() {
            return Err(Error::InvalidKey("matrix is singular".into()));
        }
        if condition > max_condition * (1.0 + 1e-9) {
            return Err(Error::InvalidKey(format!(
                "condition number {condition:.3} exceeds the bound {max_condition}"
            )));
        }
        let s_inv = mat2::inverse(&s).ok_or_else(|| Error::InvalidKey("matrix is singular".into()))?;
        Ok(Self { s, s_inv, noise, condition })
    }

    /// `κ(S)`, the 2-norm condition number of the key matrix.
    pub fn condition_number(&self) -> f64 {
        self.condition
    }

    /// The range the random lane is drawn from.
    pub fn noise(&self) -> NoiseRange {
        self.noise
    }

    /// The key matrix `S`. Only the key owner has it; handle with care.
    pub fn matrix(&self) -> Mat2 {
        self.s
    }

    /// `S⁻¹`.
    pub fn inverse_matrix(&self) -> Mat2 {
        self.s_inv
    }

    /// Projector onto the message lane, `P = S e₀ e₀ᵀ S⁻¹`: `C = m·P + r·(I − P)`.
    #[inline]
    pub fn message_projector(&self) -> Mat2 {
        let (s, t) = (&self.s, &self.s_inv);
        [[s[0][0] * t[0][0], s[0][0] * t[0][1]], [s[1][0] * t[0][0], s[1][0] * t[0][1]]]
    }

    /// Weights `w` with `m = Σ w[i][j] · C[i][j]`: `w[i][j] = (S⁻¹)[0][i] · S[j][0]`.
    #[inline]
    pub fn decryption_weights(&self) -> Mat2 {
        let (s, t) = (&self.s, &self.s_inv);
        [[t[0][0] * s[0][0], t[0][0] * s[1][0]], [t[0][1] * s[0][0], t[0][1] * s[1][0]]]
    }

    /// Weights `w` with `r = Σ w[i][j] · C[i][j]` (the random lane; for studying the shadow model).
    #[inline]
    pub fn noise_lane_weights(&self) -> Mat2 {
        let (s, t) = (&self.s, &self.s_inv);
        [[t[1][0] * s[0][1], t[1][0] * s[1][1]], [t[1][1] * s[0][1], t[1][1] * s[1][1]]]
    }

    /// Serialises the key for export by its owner: 8-byte magic `MOREKEY1`, then `S` row-major and the
    /// noise range `lo, hi`, as six little-endian `f64` (56 bytes in all).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_BYTES);
        out.extend_from_slice(KEY_MAGIC);
        for x in self.s.iter().flatten().chain([&self.noise.lo, &self.noise.hi]) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Parses [`SecretKey::to_bytes`] output, re-validating the matrix.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != KEY_BYTES || &bytes[..8] != KEY_MAGIC {
            return Err(Error::Malformed(format!(
                "a key is {KEY_BYTES} bytes starting with \"MOREKEY1\" (got {} bytes)",
                bytes.len()
            )));
        }
        let mut v = [0f64; 6];
        for (i, x) in v.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8 + 8 * i..16 + 8 * i]);
            *x = f64::from_le_bytes(b);
        }
        Self::from_matrix_checked(
            [[v[0], v[1]], [v[2], v[3]]],
            NoiseRange { lo: v[4], hi: v[5] },
            ABSOLUTE_MAX_CONDITION,
        )
    }

    /// The key as JSON text (`{"version":1,"s":[[..],[..]],"noise":{"lo":..,"hi":..}}`), for export.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&KeyFile { version: 1, s: self.s, noise: self.noise }).expect("key serialises")
    }

    /// Parses [`SecretKey::to_json`] output, re-validating the matrix.
    pub fn from_json(text: &str) -> Result<Self> {
        let file: KeyFile = serde_json::from_str(text).map_err(|e| Error::Malformed(format!("key JSON: {e}")))?;
        if file.version != 1 {
            return Err(Error::Malformed(format!("unsupported key version {}", file.version)));
        }
        Self::from_matrix_checked(file.s, file.noise, ABSOLUTE_MAX_CONDITION)
    }
}

const KEY_MAGIC: &[u8; 8] = b"MOREKEY1";
const KEY_BYTES: usize = 8 + 6 * 8;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    s: Mat2,
    noise: NoiseRange,
}

fn check_max_condition(k: f64) -> Result<()> {
    if !(1.0..=ABSOLUTE_MAX_CONDITION).contains(&k) {
        return Err(Error::InvalidKeyOptions(format!("condition bound {k} must be in [1, {ABSOLUTE_MAX_CONDITION}]")));
    }
    Ok(())
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("condition_number", &self.condition)
            .field("noise", &self.noise)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MORE secret key (κ = {:.3}, matrix hidden)", self.condition)
    }
}
