//! The two sides: the client (key generation, encryption, decryption — the secret key never leaves it) and
//! the server's evaluation of the network on ciphertexts with the client's public evaluation keys.
//!
//! All operations are BFV ring operations (fhe.rs): additions, products by plaintexts, one ciphertext
//! product, relinearisation, modulus switching and Galois automorphisms (slot rotations). None looks inside a
//! ciphertext; there is no 2x2 structure here to read.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use fhe::bfv::{
    BfvParameters, Ciphertext, Encoding, EvaluationKey, EvaluationKeyBuilder, Plaintext, RelinearizationKey, SecretKey,
};
use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::layout::{
    self, DENSE_ROTATIONS, HALF_ROW_ROTATION, INPUT_CIPHERTEXTS, from_mod, logit_position, output_ciphertexts,
};
use crate::network::{QuantizedNet, check_classes};
use crate::params::{DENSE_LEVEL, INPUT_LEVEL, OUTPUT_LEVEL, PLAINTEXT_MODULUS, parameters};
use crate::{BfvError, Result};

pub(crate) fn fhe_err(what: &str) -> impl Fn(fhe::Error) -> BfvError + '_ {
    move |e| BfvError::Fhe(format!("{what}: {e}"))
}

/// The client: holds the secret key.
pub struct Client {
    par: Arc<BfvParameters>,
    sk: SecretKey,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client { secret key hidden }")
    }
}

impl Client {
    /// A fresh secret key from `rng` (a CSPRNG: `rand::rng()` natively, `crypto.getRandomValues` in wasm).
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R) -> Client {
        let par = parameters();
        let sk = SecretKey::random(&par, rng);
        Client { par, sk }
    }

    /// The secret key derived from a 32-byte secret seed (a ChaCha20 stream): a client that stores its
    /// key as a file stores the seed. The seed must come from a CSPRNG and stays as secret as the key.
    pub fn from_seed(seed: [u8; 32]) -> Client {
        Client::new(&mut ChaCha20Rng::from_seed(seed))
    }

    pub(crate) fn secret(&self) -> &SecretKey {
        &self.sk
    }

    pub(crate) fn parameters(&self) -> &Arc<BfvParameters> {
        &self.par
    }

    /// The evaluation keys the server needs (public): relinearisation, the two rotations that gather the
    /// convolution's blocks, the eleven rotate-and-sum rotations at the dense level.
    pub fn eval_keys<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<EvalKeys> {
        let relin = RelinearizationKey::new(&self.sk, rng).map_err(fhe_err("relinearisation key"))?;
        let mut input =
            EvaluationKeyBuilder::new_leveled(&self.sk, INPUT_LEVEL, INPUT_LEVEL).map_err(fhe_err("rotation keys"))?;
        input.enable_row_rotation().map_err(fhe_err("row rotation key"))?;
        input.enable_column_rotation(HALF_ROW_ROTATION).map_err(fhe_err("column rotation key"))?;
        let input_rotations = input.build(rng).map_err(fhe_err("rotation keys"))?;
        let mut dense =
            EvaluationKeyBuilder::new_leveled(&self.sk, DENSE_LEVEL, DENSE_LEVEL).map_err(fhe_err("rotation keys"))?;
        for r in DENSE_ROTATIONS {
            dense.enable_column_rotation(r).map_err(fhe_err("column rotation key"))?;
        }
        let dense_rotations = dense.build(rng).map_err(fhe_err("rotation keys"))?;
        Ok(EvalKeys { relin, input_rotations, dense_rotations })
    }

    /// Encrypts one quantized image in the im2col layout ([`layout::input_slots`]): 7 ciphertexts.
    pub fn encrypt<R: RngCore + CryptoRng>(&self, x: &[i64], rng: &mut R) -> Result<Vec<Ciphertext>> {
        if x.len() != crate::network::IMAGE * crate::network::IMAGE {
            return Err(BfvError::Input(format!("{} input values, expected 784", x.len())));
        }
        layout::input_slots(x, PLAINTEXT_MODULUS)
            .iter()
            .map(|slots| {
                let pt = Plaintext::try_encode(slots, Encoding::simd_at_level(INPUT_LEVEL), &self.par)
                    .map_err(fhe_err("encode"))?;
                self.sk.try_encrypt(&pt, rng).map_err(fhe_err("encrypt"))
            })
            .collect()
    }

    /// Decrypts the result ciphertexts of a network with `classes` classes (the model's
    /// [`QuantizedNet::classes`]; [`output_ciphertexts`] of them) into its logits.
    pub fn decrypt(&self, cts: &[Ciphertext], classes: usize) -> Result<Vec<i64>> {
        check_classes(classes).map_err(|e| BfvError::Input(e.to_string()))?;
        let expected = output_ciphertexts(classes);
        if cts.len() != expected {
            return Err(BfvError::Input(format!(
                "{} result ciphertexts, expected {expected} for {classes} classes",
                cts.len()
            )));
        }
        let slots = cts
            .iter()
            .map(|ct| {
                let pt = self.sk.try_decrypt(ct).map_err(fhe_err("decrypt"))?;
                Vec::<u64>::try_decode(&pt, Encoding::simd_at_level(OUTPUT_LEVEL)).map_err(fhe_err("decode"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((0..classes)
            .map(|j| {
                let (c, s) = logit_position(j);
                from_mod(slots[c][s], PLAINTEXT_MODULUS)
            })
            .collect())
    }

    /// The secret key's serialised bytes — only so that tests can check they never leave the client.
    pub fn secret_key_bytes(&self) -> Vec<u8> {
        fhe_traits::Serialize::to_bytes(&self.sk)
    }
}

/// The evaluation keys a client uploads: public, but large. [`Client::eval_keys`] makes them, [`check_keys`]
/// checks them and [`Evaluator::evaluate`] uses them.
#[derive(Debug)]
pub struct EvalKeys {
    /// Relinearisation key (after the square).
    pub relin: RelinearizationKey,
    /// Row rotation and column rotation by 2048, for ciphertexts at the input level.
    pub input_rotations: EvaluationKey,
    /// Column rotations by 1, 2, …, 1024 for ciphertexts at the dense level.
    pub dense_rotations: EvaluationKey,
}

/// Checks that uploaded keys support every operation [`Evaluator::evaluate`] performs.
pub fn check_keys(keys: &EvalKeys) -> Result<()> {
    let ok = keys.input_rotations.supports_row_rotation()
        && keys.input_rotations.supports_column_rotation_by(HALF_ROW_ROTATION)
        && DENSE_ROTATIONS.iter().all(|&r| keys.dense_rotations.supports_column_rotation_by(r));
    if ok { Ok(()) } else { Err(BfvError::Wire("the evaluation keys lack a rotation the network needs".into())) }
}

/// The server side: the network's weights encoded once as plaintexts in the packing of [`layout`].
pub struct Evaluator {
    net: QuantizedNet,
    conv: Vec<Plaintext>,
    conv_bias: Plaintext,
    dense: Vec<Plaintext>,
    dense_bias: Vec<Plaintext>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").field("input_levels", &self.net.input_levels).finish_non_exhaustive()
    }
}

impl Evaluator {
    /// Encodes the weights of `net`.
    pub fn new(net: &QuantizedNet) -> Result<Evaluator> {
        net.validate()?;
        let par = parameters();
        let t = PLAINTEXT_MODULUS;
        let enc = |slots: Vec<u64>, level: usize| {
            Plaintext::try_encode(&slots, Encoding::simd_at_level(level), &par).map_err(fhe_err("encode weights"))
        };
        Ok(Evaluator {
            net: net.clone(),
            conv: (0..INPUT_CIPHERTEXTS)
                .map(|i| enc(layout::conv_weight_slots(net, i, t), INPUT_LEVEL))
                .collect::<Result<_>>()?,
            conv_bias: enc(layout::conv_bias_slots(net, t), INPUT_LEVEL)?,
            dense: (0..output_ciphertexts(net.classes()))
                .map(|r| enc(layout::dense_weight_slots(net, r, t), DENSE_LEVEL))
                .collect::<Result<_>>()?,
            dense_bias: (0..output_ciphertexts(net.classes()))
                .map(|r| enc(layout::dense_bias_slots(net, r, t), DENSE_LEVEL))
                .collect::<Result<_>>()?,
        })
    }

    /// The network it evaluates.
    pub fn net(&self) -> &QuantizedNet {
        &self.net
    }

    /// Evaluates the network on the 7 input ciphertexts; returns its [`output_ciphertexts`] result
    /// ciphertexts (3 for ten classes, 1 for two) at [`OUTPUT_LEVEL`]. Inputs come from [`crate::wire::decode_ciphertexts`] (two polynomials, input
    /// level); a failure inside fhe.rs (e.g. keys that pass the checks but do not match) is an error, not a
    /// panic.
    pub fn evaluate(&self, keys: &EvalKeys, inputs: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
        if inputs.len() != INPUT_CIPHERTEXTS {
            return Err(BfvError::Input(format!("{} ciphertexts, expected {INPUT_CIPHERTEXTS}", inputs.len())));
        }
        match catch_unwind(AssertUnwindSafe(|| self.evaluate_inner(keys, inputs))) {
            Ok(r) => r,
            Err(_) => Err(BfvError::Fhe("evaluation failed (keys or ciphertexts do not fit together)".into())),
        }
    }

    fn evaluate_inner(&self, keys: &EvalKeys, inputs: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
        // Convolution: 7 ct×pt, then gather the four blocks (two rotations).
        let mut s = &inputs[0] * &self.conv[0];
        for (ct, w) in inputs.iter().zip(&self.conv).skip(1) {
            s += &(ct * w);
        }
        let r = keys.input_rotations.rotates_columns_by(&s, HALF_ROW_ROTATION).map_err(fhe_err("rotate"))?;
        s += &r;
        let r = keys.input_rotations.rotates_rows(&s).map_err(fhe_err("rotate rows"))?;
        s += &r;
        s += &self.conv_bias;
        // Square: one ct×ct and a relinearisation; then drop two moduli.
        let mut sq = &s * &s;
        keys.relin.relinearizes(&mut sq).map_err(fhe_err("relinearise"))?;
        sq.switch_to_level(DENSE_LEVEL).map_err(fhe_err("modulus switch"))?;
        // Dense: per round one ct×pt and a rotate-and-sum over a block.
        (0..self.dense.len())
            .map(|round| {
                let mut p = &sq * &self.dense[round];
                for rot in DENSE_ROTATIONS {
                    let r = keys.dense_rotations.rotates_columns_by(&p, rot).map_err(fhe_err("rotate"))?;
                    p += &r;
                }
                p += &self.dense_bias[round];
                p.switch_to_level(OUTPUT_LEVEL).map_err(fhe_err("modulus switch"))?;
                Ok(p)
            })
            .collect()
    }
}
