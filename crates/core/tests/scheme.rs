//! Property tests of the scheme: decryption inverts encryption and the homomorphic operations decrypt
//! to the plaintext operations, within stated error bounds.
//!
//! Error model: a ciphertext's entries are `O(κ·s)` with `s = max(|m|, |r|)`; storing them rounds each
//! by `ε·κ·s` and decryption multiplies by another `κ`, so every bound below has the form
//! `c · ε · κ² · s` (products: `s = s₁·s₂`), with `ε = 2⁻⁵³` (f64) or `2⁻²⁴` (f32).

use more_core::{Ciphertext, ElementFunction, KeyOptions, NoiseRange, SecretKey};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const EPS64: f64 = f64::EPSILON;
const EPS32: f64 = f32::EPSILON as f64;

fn key(seed: u64, kappa: f64, noise: NoiseRange) -> SecretKey {
    SecretKey::with_condition_rng(kappa, noise, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
}

fn kappa() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), 1.0..10.0, 10.0..100.0, Just(100.0), Just(1000.0)]
}

/// Values from 1e-6 to 1e6 in magnitude, and zero.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1.0..1.0f64,
        Just(0.0),
        (-6.0..6.0f64, any::<bool>()).prop_map(|(e, neg)| if neg { -(10f64.powf(e)) } else { 10f64.powf(e) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scalar_round_trip(seed in any::<u64>(), k in kappa(), m in value(), r in value()) {
        let key = key(seed, k, NoiseRange::default());
        let c = key.encrypt_lanes(m, r);
        let s = m.abs().max(r.abs());
        let bound = 16.0 * EPS64 * k * k * s;
        prop_assert!((key.decrypt(&c) - m).abs() <= bound, "m={m} r={r} κ={k} got {}", key.decrypt(&c));
        prop_assert!((key.decrypt_noise_lane(&c) - r).abs() <= bound);
        // trace and det are public and give the lanes away.
        prop_assert!((c.trace() - (m + r)).abs() <= bound * 4.0 + 1e-300);
    }

    #[test]
    fn scalar_add_mul(seed in any::<u64>(), k in kappa(), a in value(), b in value(), ra in value(), rb in value()) {
        let key = key(seed, k, NoiseRange::default());
        let (ca, cb) = (key.encrypt_lanes(a, ra), key.encrypt_lanes(b, rb));
        let (sa, sb) = (a.abs().max(ra.abs()), b.abs().max(rb.abs()));
        let add_bound = 32.0 * EPS64 * k * k * (sa + sb);
        prop_assert!((key.decrypt(&(ca + cb)) - (a + b)).abs() <= add_bound);
        prop_assert!((key.decrypt(&(ca - cb)) - (a - b)).abs() <= add_bound);
        let mul_bound = 64.0 * EPS64 * k * k * k * k * sa * sb;
        prop_assert!((key.decrypt(&(ca * cb)) - a * b).abs() <= mul_bound, "{} vs {}", key.decrypt(&(ca * cb)), a * b);
        prop_assert!((key.decrypt(&ca.scale(3.0)) - 3.0 * a).abs() <= 3.0 * add_bound);
        prop_assert!((key.decrypt(&ca.shift(2.5)) - (a + 2.5)).abs() <= add_bound + 8.0 * EPS64 * k * k * 2.5);
    }

    #[test]
    fn scalar_inverse(seed in any::<u64>(), k in 1.0..10.0f64, a in 0.1..10.0f64, r in 0.1..10.0f64, neg in any::<bool>()) {
        let key = key(seed, k, NoiseRange::default());
        let a = if neg { -a } else { a };
        let inv = key.encrypt_lanes(a, r).inverse().unwrap();
        prop_assert!((key.decrypt(&inv) - 1.0 / a).abs() <= 1e-11 * k.powi(4) * 100.0);
    }

    /// `f(C)` decrypts to `f(m)` within `1e-10·κ²·(1+|f|)` for lanes in [-10, 10], including `r = m + 1e-12`.
    #[test]
    fn scalar_functions(seed in any::<u64>(), k in 1.0..100.0f64, m in -10.0..10.0f64, dr in prop_oneof![Just(0.0), -1e-12..1e-12f64, -1e-6..1e-6f64, -5.0..5.0f64]) {
        let key = key(seed, k, NoiseRange::default());
        let c = key.encrypt_lanes(m, m + dr);
        for f in [ElementFunction::Exp, ElementFunction::Sigmoid, ElementFunction::Tanh, ElementFunction::Relu, ElementFunction::Abs, ElementFunction::Square] {
            let want = f.eval(m);
            let scale = f.eval(m).abs().max(f.eval(m + dr).abs()).max(1.0);
            let got = key.decrypt(&c.apply(f).unwrap());
            prop_assert!((got - want).abs() <= 1e-10 * k * k * scale * (1.0 + m.abs()), "{f:?} m={m} dr={dr} κ={k}: {got} vs {want}");
        }
    }

    /// The functions training uses on ciphertexts: `ln`, `√x`, `1/x` on positive lanes and `step` on lanes
    /// at least 0.1 from zero decrypt to the function of the message.
    #[test]
    fn scalar_training_functions(seed in any::<u64>(), k in 1.0..10.0f64, m in 0.5..10.0f64, r in 0.5..10.0f64, s in 0.1..10.0f64, neg in any::<bool>()) {
        let key = key(seed, k, NoiseRange::default());
        let c = key.encrypt_lanes(m, r);
        for f in [ElementFunction::Ln, ElementFunction::Sqrt, ElementFunction::Recip] {
            let want = f.eval(m);
            let got = key.decrypt(&c.apply(f).unwrap());
            prop_assert!((got - want).abs() <= 1e-10 * k * k * (1.0 + want.abs()) * (m + r), "{f:?} m={m} r={r}: {got} vs {want}");
        }
        let s = if neg { -s } else { s };
        let c = key.encrypt_lanes(s, r - 5.0);
        let got = key.decrypt(&c.apply(ElementFunction::Step).unwrap());
        let want = ElementFunction::Step.eval(s);
        prop_assert!((got - want).abs() <= 1e-10 * k * k * 100.0, "step s={s} r={r}: {got} vs {want}");
    }

    /// f32 tensors: round trip within `4·ε₃₂·κ²·s`; elementwise product within `16·ε₃₂·κ⁴·s₁s₂`; functions
    /// within `64·ε₃₂·κ²·(1+|m|)·max|f|` (plus a second-order term when lanes nearly coincide).
    #[test]
    fn tensor_f32_algebra(seed in any::<u64>(), k in 1.0..100.0f64, xs in prop::collection::vec(-4.0..4.0f64, 1..64), ys in prop::collection::vec(-4.0..4.0f64, 64)) {
        let noise = NoiseRange::new(-4.0, 4.0).unwrap();
        let key = key(seed, k, noise);
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 1);
        let n = xs.len();
        let x = ArrayD::from_shape_vec(IxDyn(&[n]), xs.iter().map(|&v| v as f32).collect()).unwrap();
        let y = ArrayD::from_shape_vec(IxDyn(&[n]), ys[..n].iter().map(|&v| v as f32).collect()).unwrap();
        let (cx, cy) = (key.encrypt_tensor_with(&x.view(), &mut rng).unwrap(), key.encrypt_tensor_with(&y.view(), &mut rng).unwrap());
        let s = 4.0;
        let dx = key.decrypt_tensor(&cx);
        for i in 0..n {
            prop_assert!(((dx[i] - x[i]) as f64).abs() <= 4.0 * EPS32 * k * k * s);
        }
        let sum = key.decrypt_tensor(&cx.add(&cy).unwrap());
        let prod = key.decrypt_tensor(&cx.mul(&cy).unwrap());
        for i in 0..n {
            prop_assert!(((sum[i] - (x[i] + y[i])) as f64).abs() <= 8.0 * EPS32 * k * k * s);
            prop_assert!(((prod[i] - x[i] * y[i]) as f64).abs() <= 16.0 * EPS32 * k.powi(4) * s * s);
        }
        for f in [ElementFunction::Relu, ElementFunction::Sigmoid, ElementFunction::Tanh, ElementFunction::Exp] {
            let fx = key.decrypt_tensor(&cx.apply(f).unwrap());
            for i in 0..n {
                let want = f.eval(x[i] as f64);
                let bound = 64.0 * EPS32 * k * k * s * (1.0 + 4f64.exp());
                prop_assert!((fx[i] as f64 - want).abs() <= bound, "{f:?} {} vs {want}", fx[i]);
            }
        }
    }

    /// f64 tensors with the message and the random lane nearly equal: no loss of accuracy.
    #[test]
    fn tensor_f64_near_equal_lanes(seed in any::<u64>(), k in 1.0..100.0f64, m in -3.0..3.0f64, gap in prop_oneof![Just(0.0), -1e-14..1e-14f64, -1e-8..1e-8f64]) {
        let key = key(seed, k, NoiseRange::default());
        let c = key.encrypt_lanes(m, m + gap);
        let t = more_core::EncryptedTensor::<f64>::from_planes([
            ArrayD::from_elem(IxDyn(&[1]), c.0[0][0]),
            ArrayD::from_elem(IxDyn(&[1]), c.0[0][1]),
            ArrayD::from_elem(IxDyn(&[1]), c.0[1][0]),
            ArrayD::from_elem(IxDyn(&[1]), c.0[1][1]),
        ]).unwrap();
        for f in [ElementFunction::Exp, ElementFunction::Sigmoid, ElementFunction::Tanh, ElementFunction::Relu] {
            let got = key.decrypt_tensor(&t.apply(f).unwrap())[0];
            prop_assert!((got - f.eval(m)).abs() <= 1e-11 * k * k * (1.0 + f.eval(m).abs()), "{f:?} {got} vs {}", f.eval(m));
        }
    }
}

#[test]
fn non_finite_results_are_errors() {
    let key = SecretKey::from_seed(1, KeyOptions::default()).unwrap();
    let c = key.encrypt_lanes(800.0, 0.5);
    assert!(c.apply(ElementFunction::Exp).is_err());
    let x = ArrayD::from_elem(IxDyn(&[3]), 800.0f64);
    let t = key.encrypt_tensor(&x.view()).unwrap();
    assert!(matches!(t.apply(ElementFunction::Exp), Err(more_core::Error::NonFinite { .. })));
    assert!(key.encrypt(f64::NAN).is_err());
    let bad = ArrayD::from_elem(IxDyn(&[2]), f32::INFINITY);
    assert!(matches!(key.encrypt_tensor(&bad.view()), Err(more_core::Error::NonFinitePlaintext { .. })));
    // a zero lane has no inverse
    assert!(key.encrypt_lanes(0.0, 0.7).inverse().is_err());
    // a rotation has complex eigenvalues: not a ciphertext
    let rot = Ciphertext([[0.0, -1.0], [1.0, 0.0]]);
    assert!(matches!(rot.apply(ElementFunction::Relu), Err(more_core::Error::NotACiphertext { .. })));
}

#[test]
fn wrong_shapes_are_errors() {
    let key = SecretKey::from_seed(2, KeyOptions::default()).unwrap();
    let a = key.encrypt_slice(&[1.0f32, 2.0]).unwrap();
    let b = key.encrypt_slice(&[1.0f32, 2.0, 3.0]).unwrap();
    assert!(matches!(a.add(&b), Err(more_core::Error::ShapeMismatch { .. })));
    assert!(a.mul(&b).is_err());
    assert!(a.clone().reshape(&[3]).is_err());
    assert_eq!(a.reshape(&[2, 1]).unwrap().shape(), &[2, 1]);
    assert!(key.encrypt_slice::<f32>(&[]).is_err());
}
