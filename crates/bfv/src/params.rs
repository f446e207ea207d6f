//! The one BFV parameter set this crate uses, where its security figure comes from, and a fingerprint that
//! every key and ciphertext message carries so that bytes made for other parameters are refused before any
//! work.

use std::sync::{Arc, OnceLock};

use fhe::bfv::{BfvParameters, BfvParametersBuilder};
use serde::{Deserialize, Serialize};

use crate::{BfvError, Result};

/// Ring degree `N` (the cyclotomic ring `Z[X]/(X^N + 1)`); SIMD packing gives `N` slots, as 2 rows of `N/2`.
pub const RING_DEGREE: usize = 8192;

/// The ciphertext modulus `q` as a product of NTT-friendly primes (the fhe.rs defaults for `N = 8192`):
/// 43 + 43 + 44 + 44 + 44 = 218 bits.
pub const MODULI: [u64; 5] = [0x7fffffd8001, 0x7fffffc8001, 0xfffffffc001, 0xffffff6c001, 0xfffffebc001];

/// Plaintext modulus `t`: the largest prime below `2^34` with `t ≡ 1 (mod 2N)`, so that SIMD encoding
/// exists. Every value the network computes is an integer in `(−t/2, t/2)` (checked over all test images).
pub const PLAINTEXT_MODULUS: u64 = 17_179_754_497;

/// Claimed classical security in bits.
pub const SECURITY_BITS: u32 = 128;

/// Where [`SECURITY_BITS`] comes from.
pub const SECURITY_SOURCE: &str = "HomomorphicEncryption.org Security Standard (Albrecht et al., 2018), \
     Table 1 (ternary/uniform secret, error width 3.2): N = 8192 allows log2 q <= 218 for 128-bit classical \
     security; here log2 q = 218. fhe.rs samples the secret and the errors from a centred binomial of \
     variance 10 (width ~3.2 for the errors, a wider secret than ternary)";

/// Ciphertext level of the fresh input ciphertexts (all moduli).
pub const INPUT_LEVEL: usize = 0;

/// Level the server switches to after the square: the last two moduli dropped (log2 q = 130), which shrinks
/// the dense layer's ciphertexts and its Galois keys.
pub const DENSE_LEVEL: usize = 2;

/// Level of the result ciphertexts sent back: one more modulus dropped (log2 q = 86).
pub const OUTPUT_LEVEL: usize = 3;

/// A description of the parameters for metadata, JSON and documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemeInfo {
    /// `"bfv"`.
    pub scheme: String,
    /// The library that implements it.
    pub library: String,
    /// `N`.
    pub ring_degree: usize,
    /// `log2 q`, rounded up.
    pub ciphertext_modulus_bits: u32,
    /// The primes whose product is `q`.
    pub moduli: Vec<u64>,
    /// `t`.
    pub plaintext_modulus: u64,
    /// Claimed classical security.
    pub security_bits: u32,
    /// The table row it comes from.
    pub security_source: String,
    /// [`fingerprint`] in hex.
    pub fingerprint: String,
}

/// The parameter set, shared (building it precomputes NTT tables).
pub fn parameters() -> Arc<BfvParameters> {
    static PARAMS: OnceLock<Arc<BfvParameters>> = OnceLock::new();
    PARAMS
        .get_or_init(|| {
            BfvParametersBuilder::new()
                .set_degree(RING_DEGREE)
                .set_plaintext_modulus(PLAINTEXT_MODULUS)
                .set_moduli(&MODULI)
                .build_arc()
                .expect("the constant BFV parameters are valid (checked by the tests)")
        })
        .clone()
}

/// `log2 q` rounded up to whole bits per modulus, summed.
pub fn ciphertext_modulus_bits() -> u32 {
    MODULI.iter().map(|m| 64 - m.leading_zeros()).sum()
}

/// A 64-bit FNV-1a hash of `N`, the moduli and `t`: names the parameter set on the wire. Not a MAC — it only
/// catches keys and ciphertexts made for other parameters.
pub fn fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(RING_DEGREE as u64);
    for m in MODULI {
        eat(m);
    }
    eat(PLAINTEXT_MODULUS);
    h
}

/// The parameters as [`SchemeInfo`].
pub fn scheme_info() -> SchemeInfo {
    SchemeInfo {
        scheme: "bfv".into(),
        library: "fhe.rs 0.1.1".into(),
        ring_degree: RING_DEGREE,
        ciphertext_modulus_bits: ciphertext_modulus_bits(),
        moduli: MODULI.to_vec(),
        plaintext_modulus: PLAINTEXT_MODULUS,
        security_bits: SECURITY_BITS,
        security_source: SECURITY_SOURCE.into(),
        fingerprint: format!("{:016x}", fingerprint()),
    }
}

/// Checks that `info` describes exactly this crate's parameters.
pub fn check_scheme(info: &SchemeInfo) -> Result<()> {
    let ours = scheme_info();
    if info.scheme != ours.scheme
        || info.ring_degree != ours.ring_degree
        || info.moduli != ours.moduli
        || info.plaintext_modulus != ours.plaintext_modulus
    {
        return Err(BfvError::Parameters(format!(
            "made for {} N={} t={} moduli {:?}; this build uses N={} t={} moduli {:?}",
            info.scheme,
            info.ring_degree,
            info.plaintext_modulus,
            info.moduli,
            ours.ring_degree,
            ours.plaintext_modulus,
            ours.moduli
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_build_and_match_the_constants() {
        let p = parameters();
        assert_eq!(p.degree(), RING_DEGREE);
        assert_eq!(p.plaintext(), PLAINTEXT_MODULUS);
        assert_eq!(p.moduli(), &MODULI);
        assert_eq!(ciphertext_modulus_bits(), 218);
        assert_eq!(PLAINTEXT_MODULUS % (2 * RING_DEGREE as u64), 1);
        assert!(p.max_level() >= OUTPUT_LEVEL);
    }

    #[test]
    fn scheme_check_refuses_other_parameters() {
        let mut info = scheme_info();
        check_scheme(&info).unwrap();
        info.plaintext_modulus = 65537;
        assert!(matches!(check_scheme(&info), Err(BfvError::Parameters(_))));
    }
}
