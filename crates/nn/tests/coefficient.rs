//! The coefficient form (two planes `(α, β)` per value) against the four-plane form and plaintext: every
//! shipped model, keys up to and beyond the default condition-number bound, all-zero, constant and
//! plaintext-like inputs, nearly equal lanes, several keys in one batch, and hostile planes.
//!
//! Tolerances (decrypted outputs): both forms within `TOL_DEFAULT · (1 + max |plain output|)` of each other
//! and of plaintext for `κ ≤ 10` (the default bound; measured up to 3.4e-6), `TOL_LARGE_KAPPA` at
//! `κ = 100` (measured 2.4e-4) and, for the coefficient form vs plaintext, `TOL_HUGE_KAPPA` at `κ = 1000`
//! (measured 4.5e-3: the `f32` encryption, the conversion back and the decryption grow like `κ²`; the
//! layers in between do not see `κ`).

use std::path::PathBuf;

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use more_core::{EncryptedTensor, KeyOptions, NoiseRange, SecretKey};
use more_nn::coefficient::{self, Reference};
use more_nn::{EncryptedForm, Error, Model};

/// `κ ≤ 10`: both forms, relative to the output scale.
const TOL_DEFAULT: f32 = 2e-5;
/// Constant inputs under a key: the random lanes (uniform in `[−1, 1)`) run through the network too, so
/// rounding follows the size of *their* outputs, which the message's output scale does not bound.
const TOL_CONSTANT: f32 = 2e-4;
/// `κ = 100`.
const TOL_LARGE_KAPPA: f32 = 1e-3;
/// `κ = 1000`, coefficient form only.
const TOL_HUGE_KAPPA: f32 = 2e-2;

fn shipped() -> Vec<Model> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == more_nn::model::FILE_EXTENSION))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the shipped models are in models/");
    files.iter().map(|p| Model::load(p).unwrap()).collect()
}

fn inputs(model: &Model, n: usize, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    let mut shape = vec![n];
    shape.extend_from_slice(model.input_shape());
    ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.random_range(-1.0f32..2.0))
}

fn filled(model: &Model, n: usize, v: f32) -> ArrayD<f32> {
    let mut shape = vec![n];
    shape.extend_from_slice(model.input_shape());
    ArrayD::from_elem(IxDyn(&shape), v)
}

fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn scale(a: &ArrayD<f32>) -> f32 {
    1.0 + a.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Decrypted outputs of both forms for `x` under `key`, and the plaintext outputs.
fn both(model: &Model, key: &SecretKey, x: &ArrayD<f32>, rng: &mut ChaCha8Rng) -> [ArrayD<f32>; 3] {
    let enc = key.encrypt_tensor_with(&x.view(), rng).unwrap();
    let coef = model.forward_encrypted_in(&enc, EncryptedForm::Coefficients).unwrap();
    let four = model.forward_encrypted_in(&enc, EncryptedForm::FourPlanes).unwrap();
    assert_eq!(coef.shape(), four.shape());
    [key.decrypt_tensor(&coef), key.decrypt_tensor(&four), model.forward_plain(x.view()).unwrap()]
}

#[test]
fn default_form_is_coefficients() {
    assert_eq!(EncryptedForm::default(), EncryptedForm::Coefficients);
    let model = &shipped()[0];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = inputs(model, 2, &mut rng);
    let key = SecretKey::from_seed(1, KeyOptions::default()).unwrap();
    let enc = key.encrypt_tensor_with(&x.view(), &mut rng).unwrap();
    let a = model.forward_encrypted(&enc).unwrap();
    let b = model.forward_encrypted_in(&enc, EncryptedForm::Coefficients).unwrap();
    assert_eq!(a.data(), b.data());
    assert!(EncryptedForm::Coefficients.operation().is_some_and(|op| !op.ring_only));
    assert!(EncryptedForm::FourPlanes.operation().is_none());
}

#[test]
fn both_forms_agree_on_every_shipped_model_up_to_the_condition_bound() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for model in shipped() {
        let id = &model.meta().id;
        // 70 samples: more than one chunk of either form (32 and 16 samples).
        let x = inputs(&model, 70, &mut rng);
        for (kappa, tol) in [(1.0, TOL_DEFAULT), (3.0, TOL_DEFAULT), (10.0, TOL_DEFAULT), (100.0, TOL_LARGE_KAPPA)] {
            let key = SecretKey::with_condition_rng(kappa, NoiseRange::default(), &mut rng).unwrap();
            let [coef, four, plain] = both(&model, &key, &x, &mut rng);
            let s = scale(&plain);
            let (dc, df, dcf) = (max_abs_diff(&coef, &plain), max_abs_diff(&four, &plain), max_abs_diff(&coef, &four));
            assert!(dcf <= tol * s, "{id} κ={kappa}: forms differ by {dcf:e} (scale {s})");
            assert!(dc <= tol * s, "{id} κ={kappa}: coefficient form vs plaintext {dc:e}");
            assert!(df <= tol * s, "{id} κ={kappa}: four planes vs plaintext {df:e}");
        }
        // κ = 1000: the coefficient form alone (its layers do not see κ; only the conversions do).
        let key = SecretKey::with_condition_rng(1000.0, NoiseRange::default(), &mut rng).unwrap();
        let enc = key.encrypt_tensor_with(&x.view(), &mut rng).unwrap();
        let coef = key.decrypt_tensor(&model.forward_encrypted_in(&enc, EncryptedForm::Coefficients).unwrap());
        let plain = model.forward_plain(x.view()).unwrap();
        let d = max_abs_diff(&coef, &plain);
        assert!(d <= TOL_HUGE_KAPPA * scale(&plain), "{id} κ=1000: coefficient form vs plaintext {d:e}");
    }
}

#[test]
fn all_zero_constant_and_plaintext_like_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for model in shipped() {
        let id = &model.meta().id;
        for v in [0.0f32, 0.5, -1.0, 3.0] {
            let x = filled(&model, 3, v);
            for kappa in [1.0, 10.0] {
                let key = SecretKey::with_condition_rng(kappa, NoiseRange::default(), &mut rng).unwrap();
                let [coef, four, plain] = both(&model, &key, &x, &mut rng);
                let s = scale(&plain);
                assert!(max_abs_diff(&coef, &four) <= TOL_CONSTANT * s, "{id} constant {v} κ={kappa}");
                assert!(max_abs_diff(&coef, &plain) <= TOL_CONSTANT * s, "{id} constant {v} κ={kappa}");
            }
            // The trivial, non-hiding encryption x·I (β = 0 everywhere): plaintext-like, J = diag(1, −1).
            let zeros = ArrayD::zeros(x.raw_dim());
            let planes = EncryptedTensor::from_planes([x.clone(), zeros.clone(), zeros, x.clone()]).unwrap();
            let (c, r) = coefficient::to_coefficients(&planes, 0..3).unwrap();
            assert!(r.iter().all(|r| *r == Reference::DIAGONAL));
            assert!(c[c.len() / 2..].iter().all(|&b| b == 0.0));
            let coef = model.forward_encrypted_in(&planes, EncryptedForm::Coefficients).unwrap();
            let four = model.forward_encrypted_in(&planes, EncryptedForm::FourPlanes).unwrap();
            let plain = model.forward_plain(x.view()).unwrap();
            let [c00, _, _, c11] = coef.plane_slices();
            let s = scale(&plain);
            for (i, (&p, (&a, &d))) in plain.iter().zip(c00.iter().zip(c11)).enumerate() {
                assert!((p - a).abs() <= TOL_DEFAULT * s && (p - d).abs() <= TOL_DEFAULT * s, "{id} {v} output {i}");
            }
            assert!(max_abs_diff(coef.data(), four.data()) <= TOL_DEFAULT * s, "{id} plaintext-like {v}");
        }
    }
}

#[test]
fn nearly_equal_lanes_and_several_keys_in_one_batch() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for model in shipped() {
        let id = &model.meta().id;
        let x = inputs(&model, 3, &mut rng);
        let per = x.len() / 3;
        // Sample 0: random lane equal to the message on every other value, and off by 1e-6 elsewhere;
        // sample 1: every lane equal to the message but one; sample 2: another key.
        let key = SecretKey::from_seed(5, KeyOptions::default()).unwrap();
        let other = SecretKey::from_seed(6, KeyOptions::default()).unwrap();
        let flat: Vec<f32> = x.iter().copied().collect();
        let mut planes: Vec<Vec<f32>> = (0..4).map(|_| Vec::with_capacity(flat.len())).collect();
        for (i, &m) in flat.iter().enumerate() {
            let (k, r) = match i / per {
                0 => (&key, if i % 2 == 0 { f64::from(m) } else { f64::from(m) + 1e-6 }),
                1 => (&key, if i % per == 7 { f64::from(m) - 0.5 } else { f64::from(m) }),
                _ => (&other, rng.random_range(-1.0..1.0)),
            };
            let [[c00, c01], [c10, c11]] = k.encrypt_lanes(f64::from(m), r).matrix();
            for (p, v) in planes.iter_mut().zip([c00, c01, c10, c11]) {
                p.push(v as f32);
            }
        }
        let shape = x.shape().to_vec();
        let planes: Vec<ArrayD<f32>> =
            planes.into_iter().map(|p| ArrayD::from_shape_vec(IxDyn(&shape), p).unwrap()).collect();
        let planes: [ArrayD<f32>; 4] = planes.try_into().unwrap();
        let enc = EncryptedTensor::from_planes(planes).unwrap();
        let coef = model.forward_encrypted_in(&enc, EncryptedForm::Coefficients).unwrap();
        let four = model.forward_encrypted_in(&enc, EncryptedForm::FourPlanes).unwrap();
        let plain = model.forward_plain(x.view()).unwrap();
        let s = scale(&plain);
        for (i, k) in [&key, &key, &other].into_iter().enumerate() {
            let rows = |t: &EncryptedTensor<f32>| {
                k.decrypt_tensor(t).slice_axis(ndarray::Axis(0), (i..i + 1).into()).to_owned()
            };
            let want = plain.slice_axis(ndarray::Axis(0), (i..i + 1).into()).to_owned();
            let (dc, df) = (max_abs_diff(&rows(&coef), &want), max_abs_diff(&rows(&four), &want));
            assert!(dc <= TOL_DEFAULT * s, "{id} sample {i}: coefficient form vs plaintext {dc:e}");
            assert!(df <= TOL_DEFAULT * s, "{id} sample {i}: four planes vs plaintext {df:e}");
        }
    }
}

#[test]
fn hostile_planes_are_refused_with_a_clear_error() {
    let model = shipped().into_iter().find(|m| m.meta().id == "mnist-cnn-relu").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let x = inputs(&model, 2, &mut rng);
    let key = SecretKey::from_seed(8, KeyOptions::default()).unwrap();
    let other = SecretKey::from_seed(9, KeyOptions::default()).unwrap();
    let good = key.encrypt_tensor_with(&x.view(), &mut rng).unwrap();
    let run = |t: &EncryptedTensor<f32>| model.forward_encrypted_in(t, EncryptedForm::Coefficients);

    // Half of sample 1 under another key.
    let foreign = other.encrypt_tensor_with(&x.view(), &mut rng).unwrap();
    let mut mixed = good.clone();
    let per = x.len() / 2;
    {
        let src: Vec<f32> = foreign.data().iter().copied().collect();
        let mut d = mixed.data_mut();
        let dst = d.as_slice_mut().unwrap();
        for p in 0..4 {
            let base = p * 2 * per + per;
            dst[base..base + per / 2].copy_from_slice(&src[base..base + per / 2]);
        }
    }
    match run(&mixed) {
        Err(Error::NotOneKey { sample: 1, .. }) => {}
        other => panic!("mixed keys: {other:?}"),
    }

    // Random planes.
    let noise = ArrayD::from_shape_simple_fn(IxDyn(good.data().shape()), || rng.random_range(-1.0f32..1.0));
    let e = run(&EncryptedTensor::from_data(noise).unwrap()).unwrap_err();
    assert!(matches!(e, Error::NotOneKey { .. } | Error::NotACiphertext(_)), "{e}");

    // A rotation in every element (complex eigenvalues).
    let mut rot = ArrayD::zeros(IxDyn(good.data().shape()));
    {
        let d = rot.as_slice_mut().unwrap();
        let n = d.len() / 4;
        d[n..2 * n].fill(1.0);
        d[2 * n..3 * n].fill(-1.0);
    }
    let e = run(&EncryptedTensor::from_data(rot).unwrap()).unwrap_err();
    assert!(matches!(e, Error::NotACiphertext(_)), "{e}");
    assert!(e.to_string().contains("coefficient form"), "{e}");

    // NaN and infinity, in the reference element and elsewhere.
    for (i, v) in [(0usize, f32::NAN), (5, f32::INFINITY), (per + 3, f32::NEG_INFINITY)] {
        let mut bad = good.clone();
        bad.data_mut().as_slice_mut().unwrap()[i] = v;
        let e = run(&bad).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e}");
    }

    // Wrong shape.
    assert!(matches!(run(&key.encrypt_slice(&[0.5f32; 7]).unwrap()), Err(Error::Shape { .. })));
}

/// Planes of huge but finite values overflow inside the network; the overflow must be refused in both
/// forms, not hidden by a later ReLU or max pooling (`max(NaN, 0) = 0`) into a finite, bias-only answer.
#[test]
fn overflow_inside_the_network_is_refused_in_both_forms() {
    for model in shipped() {
        let mut shape = vec![4, 1];
        shape.extend_from_slice(model.input_shape());
        let huge = EncryptedTensor::from_data(ArrayD::from_elem(IxDyn(&shape), 3e38f32)).unwrap();
        for form in [EncryptedForm::Coefficients, EncryptedForm::FourPlanes] {
            let got = model.forward_encrypted_in(&huge, form);
            assert!(
                matches!(got, Err(Error::NonFinite(_) | Error::NotACiphertext(_) | Error::NotOneKey { .. })),
                "{} {form:?}: {:?}",
                model.meta().id,
                got.map(|t| t.data().iter().take(4).copied().collect::<Vec<_>>())
            );
        }
    }
}
