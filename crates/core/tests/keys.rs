//! Key generation, condition bounds, export/import, and that keys never print.

use more_core::{KeyOptions, NoiseRange, SecretKey, mat2};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[test]
fn generated_keys_respect_the_condition_bound() {
    for bound in [1.0, 2.0, 10.0, 100.0] {
        for seed in 0..200 {
            let k = SecretKey::from_seed(seed, KeyOptions { max_condition: bound, ..Default::default() }).unwrap();
            assert!(k.condition_number() <= bound * (1.0 + 1e-9), "{} > {bound}", k.condition_number());
            assert!((mat2::condition_number(&k.matrix()) - k.condition_number()).abs() < 1e-9 * bound);
        }
    }
}

#[test]
fn os_keys_differ() {
    let a = SecretKey::generate(KeyOptions::default()).unwrap();
    let b = SecretKey::generate(KeyOptions::default()).unwrap();
    assert_ne!(a.matrix(), b.matrix());
}

#[test]
fn exact_condition_keys() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for kappa in [1.0, 2.0, 10.0, 100.0, 1e4] {
        let k = SecretKey::with_condition_rng(kappa, NoiseRange::default(), &mut rng).unwrap();
        assert!((k.condition_number() / kappa - 1.0).abs() < 1e-9);
    }
}

#[test]
fn bad_keys_are_rejected() {
    let n = NoiseRange::default();
    assert!(SecretKey::from_matrix([[1.0, 2.0], [2.0, 4.0]], n, 100.0).is_err());
    assert!(SecretKey::from_matrix([[f64::NAN, 0.0], [0.0, 1.0]], n, 100.0).is_err());
    assert!(SecretKey::from_matrix([[1.0, 0.0], [0.0, 1e-3]], n, 100.0).is_err());
    assert!(SecretKey::from_matrix([[1.0, 0.0], [0.0, 1e-3]], n, 1e3).is_ok());
    assert!(NoiseRange::new(1.0, 1.0).is_err());
    assert!(NoiseRange::new(f64::NAN, 1.0).is_err());
    assert!(SecretKey::from_seed(1, KeyOptions { max_condition: 0.5, ..Default::default() }).is_err());
}

#[test]
fn export_import_round_trip() {
    let k = SecretKey::from_seed(9, KeyOptions::default()).unwrap();
    assert_eq!(SecretKey::from_bytes(&k.to_bytes()).unwrap(), k);
    assert_eq!(SecretKey::from_json(&k.to_json()).unwrap(), k);
    assert!(SecretKey::from_bytes(&k.to_bytes()[..40]).is_err());
    assert!(SecretKey::from_json("{\"version\":1}").is_err());
    let mut singular = k.to_bytes();
    singular[8..40].fill(0);
    assert!(SecretKey::from_bytes(&singular).is_err());
}

/// Found by fuzzing: `S` ≈ 8.9e-159 · [[0, 1], [1, 0]] is well conditioned (κ ≈ 1), but its determinant
/// (−7.8e-317) is subnormal, so decryption was off by 2.8e-8 — far outside the error model. Keys whose
/// scale would push the arithmetic into subnormal (or overflowing) numbers are refused; scaling a key by
/// any factor in range gives the same ciphertexts' decryptions.
#[test]
fn keys_of_extreme_scale_are_refused() {
    let s = [
        [3.890_076_646_293_630_6e-308, 8.854_494_587_495_591e-159],
        [8.854_494_587_438_971e-159, 3.771_718_334_665_638_4e-308],
    ];
    let noise = NoiseRange::new(3.890_076_646_321_847e-308, 1.000_000_305_473_811_6).unwrap();
    let e = SecretKey::from_matrix(s, noise, 1e6).unwrap_err().to_string();
    assert!(e.contains("largest matrix entry"), "{e}");
    for scale in [1e-99, 1.0, 1e99] {
        let k = SecretKey::from_matrix([[0.0, scale], [scale, 0.5 * scale]], NoiseRange::default(), 10.0).unwrap();
        let c = k.encrypt(0.5).unwrap();
        assert!((k.decrypt(&c) - 0.5).abs() < 1e-12, "scale {scale}");
    }
    assert!(SecretKey::from_matrix([[0.0, 1e-101], [1e-101, 0.0]], NoiseRange::default(), 10.0).is_err());
    assert!(SecretKey::from_matrix([[0.0, 1e101], [1e101, 0.0]], NoiseRange::default(), 10.0).is_err());
}

#[test]
fn key_is_not_in_debug_or_display() {
    for seed in 0..50 {
        let k = SecretKey::from_seed(seed, KeyOptions::default()).unwrap();
        let shown = format!("{k:?} {k} {k:#?}");
        for x in k.matrix().iter().flatten().chain(k.inverse_matrix().iter().flatten()) {
            for repr in [format!("{x}"), format!("{x:?}"), format!("{x:.4}"), format!("{x:e}")] {
                assert!(!shown.contains(&repr), "{repr} leaked in {shown}");
            }
        }
        assert!(shown.contains("condition_number"));
    }
}
