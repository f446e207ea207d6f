//! [`ElementFunction`]: the elementwise functions of the whole project, in one place.
//!
//! The same enum names a function everywhere: an activation layer in a model file (`"relu"`), a
//! function applied to a ciphertext ([`crate::Ciphertext::apply`], [`crate::EncryptedTensor::apply`]),
//! and a lanewise operation of a training algebra (`more_nn::Algebra::map`). Each variant says whether
//! it is computed on ciphertexts with ring operations only or uses the 2x2 structure.

use serde::{Deserialize, Serialize};

use crate::real::Real;

/// The logistic function `1/(1 + e⁻ˣ)`, evaluated without overflow: for `x < 0` as `eˣ/(1 + eˣ)`.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// An elementwise function. The serialised names (`"square"`, `"relu"`, ...) are part of the model file
/// format and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ElementFunction {
    /// `x²` — computed as `C·C`: **ring-only** (valid in any homomorphic scheme; CryptoNets).
    Square,
    /// `max(x, 0)` — spectral formula: **uses the 2x2 structure** (the eigen-decomposition).
    Relu,
    /// ReLU's derivative: `1` if `x > 0`, else `0` — spectral formula (not analytic): uses the 2x2
    /// structure.
    Step,
    /// `|x|` — spectral formula (not analytic): uses the 2x2 structure. Max pooling uses it through
    /// `max(a, b) = (a + b + |a − b|)/2`.
    Abs,
    /// `1/(1 + e⁻ˣ)` — uses the 2x2 structure. (Its derivative `s(1 − s)` is then ring-only.)
    Sigmoid,
    /// `tanh x` — uses the 2x2 structure. (Its derivative `1 − t²` is then ring-only.)
    Tanh,
    /// `eˣ` — uses the 2x2 structure (softmax).
    Exp,
    /// `ln x` for `x > 0` — uses the 2x2 structure (the cross-entropy value).
    Ln,
    /// `√x` for `x ≥ 0` (negative values count as 0) — uses the 2x2 structure (Adam).
    Sqrt,
    /// `1/x` — on a ciphertext this is the inverse matrix `C⁻¹`; classed as using the 2x2 structure
    /// because it divides by `det C = m·r`, which leaks.
    Recip,
}

impl ElementFunction {
    /// Every function, in declaration order.
    pub const ALL: [ElementFunction; 10] = [
        Self::Square,
        Self::Relu,
        Self::Step,
        Self::Abs,
        Self::Sigmoid,
        Self::Tanh,
        Self::Exp,
        Self::Ln,
        Self::Sqrt,
        Self::Recip,
    ];

    /// Whether it is computed on ciphertexts with ring operations only (`+`, `·`), and so would also run
    /// in a scheme that hides the plaintext.
    pub fn is_ring_only(self) -> bool {
        matches!(self, Self::Square)
    }

    /// Its name, as serialised (`"relu"`, `"exp"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Square => "square",
            Self::Relu => "relu",
            Self::Step => "step",
            Self::Abs => "abs",
            Self::Sigmoid => "sigmoid",
            Self::Tanh => "tanh",
            Self::Exp => "exp",
            Self::Ln => "ln",
            Self::Sqrt => "sqrt",
            Self::Recip => "recip",
        }
    }

    /// The function on a real number in `f64` (the reference; the logistic function without overflow).
    #[inline]
    pub fn eval(self, x: f64) -> f64 {
        self.eval_with(x, sigmoid)
    }

    /// The function on an `f32`, as plaintext layers and `f32` training lanes compute it.
    #[inline]
    pub fn eval_f32(self, x: f32) -> f32 {
        // `f32` lanes have always used the direct logistic formula (not `sigmoid`'s two branches); its
        // rounding is part of their results, which must stay the same to the bit.
        self.eval_with(x, |x| 1.0 / (1.0 + (-x).exp()))
    }

    /// The formula of each function, once for both precisions. The two precisions compute the logistic
    /// function differently (see [`ElementFunction::eval`] and [`ElementFunction::eval_f32`]), so the caller
    /// passes it in; every other arm is the same operation on `f32` or `f64`.
    #[inline]
    fn eval_with<F: Real>(self, x: F, sigmoid: impl Fn(F) -> F) -> F {
        let (zero, one) = (F::zero(), F::one());
        match self {
            Self::Square => x * x,
            Self::Relu => x.max(zero),
            Self::Step => {
                if x > zero {
                    one
                } else {
                    zero
                }
            }
            Self::Abs => x.abs(),
            Self::Sigmoid => sigmoid(x),
            Self::Tanh => x.tanh(),
            Self::Exp => x.exp(),
            Self::Ln => x.ln(),
            Self::Sqrt => x.max(zero).sqrt(),
            Self::Recip => one / x,
        }
    }

    /// `(f′(x), f‴(x))` for the smooth functions; `None` for `Relu`, `Step` and `Abs`.
    pub(crate) fn derivatives_1_3(self, x: f64) -> Option<(f64, f64)> {
        Some(match self {
            Self::Square => (2.0 * x, 0.0),
            Self::Exp => {
                let e = x.exp();
                (e, e)
            }
            Self::Sigmoid => {
                let s = sigmoid(x);
                let d1 = s * (1.0 - s);
                (d1, d1 * (1.0 - 6.0 * s + 6.0 * s * s))
            }
            Self::Tanh => {
                let t = x.tanh();
                let d1 = 1.0 - t * t;
                (d1, -2.0 * d1 * (1.0 - 3.0 * t * t))
            }
            Self::Ln => (1.0 / x, 2.0 / (x * x * x)),
            Self::Sqrt => {
                let s = x.sqrt();
                (0.5 / s, 0.375 / (x * x * s))
            }
            Self::Recip => {
                let x2 = x * x;
                (-1.0 / x2, -6.0 / (x2 * x2))
            }
            Self::Relu | Self::Step | Self::Abs => return None,
        })
    }
}

impl std::fmt::Display for ElementFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
