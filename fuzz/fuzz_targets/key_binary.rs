//! Binary key import (`MOREKEY1`, more-core): arbitrary bytes never panic; an accepted key round-trips and
//! decrypts what it encrypts within the documented error bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use more_core::SecretKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = SecretKey::from_bytes(data) {
        assert_eq!(key.to_bytes(), data, "an imported key exports to the same bytes");
        let json = SecretKey::from_json(&key.to_json()).expect("an accepted key's JSON imports");
        assert_eq!(json.to_bytes(), key.to_bytes());
        let x = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[3]), vec![0.5f64, -2.0, 7.25]).unwrap();
        let c = key.encrypt_tensor::<f64>(&x.view()).expect("encrypts");
        let back = key.decrypt_tensor(&c);
        // The documented error model (more-core `key`): decryption error grows like κ(S)² · ε · max(|m|, |r|);
        // import accepts κ up to 1e6, where a few digits of an f64 are left.
        let kappa = key.condition_number();
        let noise = key.noise().lo.abs().max(key.noise().hi.abs());
        for (a, b) in back.iter().zip(x.iter()) {
            let tolerance = 64.0 * kappa * kappa * f64::EPSILON * (b.abs().max(noise) + 1.0);
            assert!((a - b).abs() <= tolerance, "{a} vs {b} (κ = {kappa}, tolerance {tolerance})");
        }
    }
});
