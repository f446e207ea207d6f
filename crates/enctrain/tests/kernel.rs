//! The coefficient-form kernel against `more-core`: conversions, products, GEMM and lane functions
//! decrypt to the plaintext results; ciphertexts under another key and wrong keys are detected.

use ndarray::{Array2, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::owner::KeyOwner;
use more_enctrain::{Basis, CoeffTensor, Error};

fn random(shape: &[usize], rng: &mut ChaCha20Rng) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0..1.0))
}

fn max_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Owner, basis and an encrypted tensor in coefficient form (f64).
fn setup(seed: u64, x: &ArrayD<f64>) -> (KeyOwner, Basis, CoeffTensor<f64>) {
    let key = SecretKey::from_seed(seed, KeyOptions::default()).unwrap();
    let mut owner = KeyOwner::with_seed(key, seed + 1);
    let c = owner.encrypt_inputs(&x.view(), -1.0, 1.0).unwrap();
    let basis = Basis::from_ciphertexts(&c).unwrap();
    let t = CoeffTensor::from_encrypted(&c, basis).unwrap();
    (owner, basis, t)
}

#[test]
fn conversions_round_trip_and_decrypt() {
    for seed in 0..20 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let x = random(&[7, 5], &mut rng);
        let (owner, basis, t) = setup(seed, &x);
        // The key owner's decryption of the coefficient form is the message.
        assert!(max_diff(&owner.decrypt(&t), &x) < 1e-12, "seed {seed}");
        // Back to 4 planes: more-core decrypts it, and converting again gives the same coefficients.
        let planes = t.to_encrypted().unwrap();
        assert!(max_diff(&owner.key().decrypt_tensor(&planes), &x) < 1e-12);
        let again = CoeffTensor::from_encrypted(&planes, basis).unwrap();
        assert!(max_diff(again.alpha(), t.alpha()) < 1e-12 && max_diff(again.beta(), t.beta()) < 1e-12);
        // q > 0 and X̂² = q·I.
        let xh = basis.xhat;
        assert!(basis.q > 0.0);
        assert!((xh[0][0] * xh[0][0] + xh[0][1] * xh[1][0] - basis.q).abs() < 1e-12);
    }
}

#[test]
fn f32_conversions_within_tolerance() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let x = random(&[64], &mut rng).mapv(|v| v as f32);
    let key = SecretKey::from_seed(3, KeyOptions::default()).unwrap();
    let mut owner = KeyOwner::with_seed(key, 4);
    let c = owner.encrypt_inputs(&x.view(), -1.0, 1.0).unwrap();
    let t = CoeffTensor::from_encrypted(&c, Basis::from_ciphertexts(&c).unwrap()).unwrap();
    let d = owner.decrypt(&t);
    let err = d.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-5, "f32 error {err}");
}

#[test]
fn products_and_gemm_decrypt_to_plaintext() {
    for seed in 0..10 {
        let mut rng = ChaCha20Rng::seed_from_u64(100 + seed);
        let a = random(&[6, 9], &mut rng);
        let b = random(&[9, 4], &mut rng);
        let (owner, basis, ta) = setup(seed, &a);
        let mut owner2 = KeyOwner::with_seed(owner.key().clone(), 77);
        let cb = owner2.encrypt_inputs(&b.view(), -1.0, 1.0).unwrap();
        let tb = CoeffTensor::from_encrypted(&cb, basis).unwrap();
        let prod = ta.matmul(&tb).unwrap();
        let expect = a
            .clone()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .dot(&b.clone().into_dimensionality::<ndarray::Ix2>().unwrap());
        assert!(max_diff(&owner.decrypt(&prod), &expect.into_dyn()) < 1e-12);
        // Public-weight GEMM.
        let w: Array2<f64> = random(&[9, 3], &mut rng).into_dimensionality().unwrap();
        let pw = ta.matmul_public(w.view()).unwrap();
        let expect = a.clone().into_dimensionality::<ndarray::Ix2>().unwrap().dot(&w).into_dyn();
        assert!(max_diff(&owner.decrypt(&pw), &expect) < 1e-12);
        // Elementwise product, sums and the random lane follows the same arithmetic.
        let sq = ta.mul(&ta).unwrap();
        assert!(max_diff(&owner.decrypt(&sq), &a.mapv(|v| v * v)) < 1e-12);
        let r = owner.decrypt_noise(&ta);
        assert!(max_diff(&owner.decrypt_noise(&sq), &r.mapv(|v| v * v)) < 1e-12);
        let s = ta.add(&ta.scale(2.0)).unwrap().shift(0.5).sub(&ta).unwrap();
        assert!(max_diff(&owner.decrypt(&s), &a.mapv(|v| 2.0 * v + 0.5)) < 1e-12);
        let col = ta.sum_axis(0);
        assert!(max_diff(&owner.decrypt(&col), &a.sum_axis(ndarray::Axis(0))) < 1e-12);
    }
}

#[test]
fn lane_functions_decrypt_to_plaintext() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let x = random(&[5, 10], &mut rng).mapv(|v| 3.0 * v);
    let (owner, _, t) = setup(9, &x);
    let relu = t.map_lanes(|v| v.max(0.0));
    assert!(max_diff(&owner.decrypt(&relu), &x.mapv(|v| v.max(0.0))) < 1e-12);
    let step = t.map_lanes(|v| if v > 0.0 { 1.0 } else { 0.0 });
    assert!(max_diff(&owner.decrypt(&step), &x.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 })) < 1e-12);
    let e = t.map_lanes(f64::exp);
    assert!(max_diff(&owner.decrypt(&e), &x.mapv(f64::exp)) < 1e-10);
    let sq = t.mul(&t).unwrap();
    let root = sq.map_lanes(f64::sqrt);
    assert!(max_diff(&owner.decrypt(&root), &x.mapv(f64::abs)) < 1e-10);
    let g = t.zip_lanes(&t, |z, g| if z > 0.0 { g } else { 0.0 }).unwrap();
    assert!(max_diff(&owner.decrypt(&g), &x.mapv(|v| v.max(0.0))) < 1e-12);
    // Softmax along the last axis, lane-wise.
    let sm = t
        .map_lane_arrays(|l| {
            let mut out = l.clone();
            for mut row in out.rows_mut() {
                let mx = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                row.mapv_inplace(|v| (v - mx).exp());
                let s = row.sum();
                row /= s;
            }
            out
        })
        .unwrap();
    let d = owner.decrypt(&sm);
    for (row, xr) in d.rows().into_iter().zip(x.rows()) {
        let mx = xr.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let e: Vec<f64> = xr.iter().map(|v| (v - mx).exp()).collect();
        let s: f64 = e.iter().sum();
        for (a, b) in row.iter().zip(&e) {
            assert!((a - b / s).abs() < 1e-12);
        }
    }
}

#[test]
fn another_keys_ciphertexts_are_rejected() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let x = random(&[32], &mut rng);
    let (_, basis, _) = setup(1, &x);
    let other = SecretKey::from_seed(2, KeyOptions::default()).unwrap();
    let mut owner2 = KeyOwner::with_seed(other, 5);
    let c = owner2.encrypt_inputs(&x.view(), -1.0, 1.0).unwrap();
    assert!(matches!(CoeffTensor::from_encrypted(&c, basis), Err(Error::NotInSpan { .. })));
}

#[test]
fn canaries_detect_a_wrong_key() {
    let key = SecretKey::from_seed(11, KeyOptions::default()).unwrap();
    let mut owner = KeyOwner::with_seed(key, 12);
    let canaries = owner.encrypt_canaries::<f32>().unwrap();
    let basis = Basis::from_ciphertexts(&canaries).unwrap();
    let t = CoeffTensor::from_encrypted(&canaries, basis).unwrap();
    owner.verify_canaries(&t).unwrap();
    for seed in 20..40 {
        let wrong = KeyOwner::new(SecretKey::from_seed(seed, KeyOptions::default()).unwrap());
        assert!(matches!(wrong.verify_canaries(&t), Err(Error::WrongKey(_))), "seed {seed}");
    }
}

#[test]
fn encrypted_model_file_round_trips_and_rejects_corruption() {
    use more_enctrain::model_file::EncryptedModel;
    let key = SecretKey::from_seed(21, KeyOptions::default()).unwrap();
    let mut owner = KeyOwner::with_seed(key, 22);
    let canaries = owner.encrypt_canaries::<f32>().unwrap();
    let basis = Basis::from_ciphertexts(&canaries).unwrap();
    let w = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| (i[0] as f32 - i[1] as f32) / 4.0);
    let cw = owner.encrypt_inputs(&w.view(), -1.0, 1.0).unwrap();
    let model = EncryptedModel {
        basis,
        canaries: CoeffTensor::from_encrypted(&canaries, basis).unwrap(),
        params: vec![CoeffTensor::from_encrypted(&cw, basis).unwrap()],
        spec: serde_json::json!({"layers": ["dense"]}),
    };
    let bytes = model.to_bytes().unwrap();
    let back = EncryptedModel::from_bytes(&bytes, 1 << 20).unwrap();
    owner.verify_canaries(&back.canaries).unwrap();
    let d = owner.decrypt(&back.params[0]);
    assert!(d.iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-5));
    assert_eq!(back.spec, model.spec);
    for cut in [0, 7, 30, bytes.len() - 1] {
        assert!(EncryptedModel::from_bytes(&bytes[..cut], 1 << 20).is_err());
    }
    let mut flipped = bytes.clone();
    flipped[3] ^= 1;
    assert!(EncryptedModel::from_bytes(&flipped, 1 << 20).is_err());
    assert!(EncryptedModel::from_bytes(&bytes, 100).is_err());
}
