//! Attack 4: known-plaintext key recovery from a single pair `(m, C)`.
//!
//! `C − m·I = (r − m)·(I − P)` has rank one, and `trace C − 2m = r − m` is its scale, so
//! `P = I − (C − m·I)/(trace C − 2m)`: the projector of the message lane, i.e. the key's eigenbasis with
//! its orientation known. Its range and kernel are the columns of `S` up to scale — all decryption needs.
//! [`recover_key`] returns an equivalent [`SecretKey`] that decrypts every ciphertext under the original
//! key (and encrypts new ones the key owner will accept).
//!
//! Precision: the division is by the lane gap `r − m`; it fails cleanly when the pair's lanes are equal
//! (`C = m·I` reveals nothing).

use crate::attack::basis::{Eigenbasis, Lane};
use crate::attack::error::{AttackError, Result};
use crate::cipher::Ciphertext;
use crate::key::{NoiseRange, SecretKey};

/// The eigenbasis, oriented so that [`Lane::First`] is the message, from one known pair.
///
/// Fails with [`AttackError::EqualLanes`] when `C = m·I` up to rounding, and with [`AttackError::Input`]
/// when `m` is not an eigenvalue of `C` (the pair does not match).
pub fn known_plaintext_basis(c: &Ciphertext, m: f64) -> Result<Eigenbasis> {
    let q = c.shift(-m).0;
    let gap = c.trace() - 2.0 * m;
    let norm2: f64 = q.iter().flatten().map(|x| x * x).sum();
    let scale2: f64 = c.0.iter().flatten().map(|x| x * x).sum::<f64>() + m * m;
    if norm2.is_nan() || norm2 <= 1e-24 * scale2 || gap == 0.0 {
        return Err(AttackError::EqualLanes("known-plaintext key recovery"));
    }
    let det = q[0][0] * q[1][1] - q[0][1] * q[1][0];
    if det.abs() > 1e-4 * norm2 {
        return Err(AttackError::Input(format!(
            "{m} is not the plaintext of this ciphertext (det(C − m·I) = {det:e})"
        )));
    }
    let p = [[1.0 - q[0][0] / gap, -q[0][1] / gap], [-q[1][0] / gap, 1.0 - q[1][1] / gap]];
    Ok(Eigenbasis::from_projector(p))
}

/// An equivalent secret key from one known pair `(m, C)`; its own encryptions draw from `noise`.
pub fn recover_key(c: &Ciphertext, m: f64, noise: NoiseRange) -> Result<SecretKey> {
    known_plaintext_basis(c, m)?.key(Lane::First, noise)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyOptions, SecretKey};

    #[test]
    fn recovered_key_decrypts_other_ciphertexts() {
        let key = SecretKey::from_seed(31, KeyOptions::default()).unwrap();
        let stolen = recover_key(&key.encrypt(0.25).unwrap(), 0.25, NoiseRange::default()).unwrap();
        for m in [-3.0, 0.0, 0.5, 7.0] {
            assert!((stolen.decrypt(&key.encrypt(m).unwrap()) - m).abs() < 1e-12);
        }
        assert!(recover_key(&key.encrypt_lanes(0.5, 0.5), 0.5, NoiseRange::default()).is_err());
        assert!(recover_key(&key.encrypt_lanes(0.5, -0.5), 0.1, NoiseRange::default()).is_err());
    }
}
