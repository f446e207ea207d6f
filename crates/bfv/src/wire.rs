//! Size-limited messages for evaluation keys and ciphertexts.
//!
//! Both start with an 8-byte magic and the parameter [`fingerprint`]; every blob
//! is length-prefixed (`u32`, little-endian) and checked against a cap before fhe.rs parses it, and fhe.rs
//! parses inside `catch_unwind`, so hostile bytes give an error, never a panic or an allocation larger than
//! the message.
//!
//! ```text
//! keys:        "MBFVKEY1" | fingerprint u64 | 3 × (len u32 | bytes)      relinearisation, rotations at the
//!                                                                         input level, rotations at the dense level
//! ciphertexts: "MBFVCTX1" | fingerprint u64 | level u8 | count u16 | count × (len u32 | bytes)
//! batch keys:  "MBFVKEYB" | fingerprint u64 | (len u32 | bytes)                relinearisation at the batch level
//! batch:       "MBFVBAT1" | fingerprint u64 | level u8 | images u16 | count u16 | count × (len u32 | bytes)
//! ```
//!
//! A batch (the slot-per-image packing of [`crate::batch`]) carries 784 input ciphertexts or one result per
//! class (10 for the digits, 2 for the angiogram views); its `images` field says how many of the 8,192
//! slots hold images.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fhe::bfv::{Ciphertext, EvaluationKey, RelinearizationKey};
use fhe_traits::{DeserializeParametrized, Serialize};

use crate::batch::{BATCH_INPUT_CIPHERTEXTS, BATCH_INPUT_LEVEL, BATCH_OUTPUT_LEVEL, BatchKeys, check_batch_size};
use crate::network::check_classes;
use crate::params::{fingerprint, parameters};
// The keys are the scheme's (made by `Client::eval_keys`, used by `Evaluator::evaluate`); this module only
// frames them, and names them here too (`more_bfv::wire::EvalKeys`).
pub use crate::scheme::EvalKeys;
use crate::scheme::check_keys;
use crate::{BfvError, Result};

/// Magic of a key message.
pub const KEYS_MAGIC: &[u8; 8] = b"MBFVKEY1";
/// Magic of a ciphertext message.
pub const CIPHERTEXTS_MAGIC: &[u8; 8] = b"MBFVCTX1";
/// Largest key message accepted.
pub const MAX_KEYS_BYTES: usize = 8 << 20;
/// Largest single ciphertext accepted (a fresh input ciphertext is about 223 KB).
pub const MAX_CIPHERTEXT_BYTES: usize = 512 << 10;
/// Most ciphertexts in one message.
pub const MAX_CIPHERTEXTS: usize = 16;
/// Magic of a batch key message.
pub const BATCH_KEYS_MAGIC: &[u8; 8] = b"MBFVKEYB";
/// Magic of a batch of ciphertexts.
pub const BATCH_MAGIC: &[u8; 8] = b"MBFVBAT1";
/// Largest input ciphertext of a batch (a fresh one at the batch level is about 135 KB; a result, at a
/// lower level but without a seed, about 176 KB, is held to [`MAX_CIPHERTEXT_BYTES`]).
pub const MAX_BATCH_CIPHERTEXT_BYTES: usize = 160 << 10;
/// Largest batch message: 784 ciphertexts (about 106 MB).
pub const MAX_BATCH_BYTES: usize = BATCH_INPUT_CIPHERTEXTS * (MAX_BATCH_CIPHERTEXT_BYTES + 4) + 21;

/// Runs an fhe.rs parser on untrusted bytes: its errors and panics both become [`BfvError::Wire`].
fn parse<T>(what: &str, f: impl FnOnce() -> std::result::Result<T, fhe::Error>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(BfvError::Wire(format!("{what}: {e}"))),
        Err(_) => Err(BfvError::Wire(format!("{what}: malformed"))),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(BfvError::Wire(format!("truncated: {what} needs {n} bytes, {} left", self.bytes.len())));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u32(&mut self, what: &str) -> Result<usize> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")) as usize)
    }

    fn blob(&mut self, what: &str, cap: usize) -> Result<&'a [u8]> {
        let n = self.u32(what)?;
        if n > cap {
            return Err(BfvError::Wire(format!("{what}: {n} bytes, at most {cap} accepted")));
        }
        self.take(n, what)
    }

    fn header(&mut self, magic: &[u8; 8], total_cap: usize) -> Result<()> {
        if self.bytes.len() > total_cap {
            return Err(BfvError::Wire(format!("{} bytes, at most {total_cap} accepted", self.bytes.len())));
        }
        if self.take(8, "magic")? != magic {
            return Err(BfvError::Wire(format!("not a {} message", String::from_utf8_lossy(magic))));
        }
        let fp = u64::from_le_bytes(self.take(8, "fingerprint")?.try_into().expect("8 bytes"));
        if fp != fingerprint() {
            return Err(BfvError::Parameters(format!(
                "made for parameters {fp:016x}; this server uses {:016x}",
                fingerprint()
            )));
        }
        Ok(())
    }
}

fn put_blob(out: &mut Vec<u8>, blob: &[u8]) {
    out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    out.extend_from_slice(blob);
}

/// Encodes the evaluation keys.
pub fn encode_keys(keys: &EvalKeys) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 << 20);
    out.extend_from_slice(KEYS_MAGIC);
    out.extend_from_slice(&fingerprint().to_le_bytes());
    put_blob(&mut out, &keys.relin.to_bytes());
    put_blob(&mut out, &keys.input_rotations.to_bytes());
    put_blob(&mut out, &keys.dense_rotations.to_bytes());
    out
}

/// Decodes and checks evaluation keys: size, magic, parameters, then that each key supports exactly the
/// operations the network needs.
pub fn decode_keys(bytes: &[u8]) -> Result<EvalKeys> {
    let mut r = Reader { bytes };
    r.header(KEYS_MAGIC, MAX_KEYS_BYTES)?;
    let par = parameters();
    let relin_bytes = r.blob("relinearisation key", MAX_KEYS_BYTES)?;
    let input_bytes = r.blob("input-level rotation keys", MAX_KEYS_BYTES)?;
    let dense_bytes = r.blob("dense-level rotation keys", MAX_KEYS_BYTES)?;
    if !r.bytes.is_empty() {
        return Err(BfvError::Wire(format!("{} trailing bytes", r.bytes.len())));
    }
    let relin = parse("relinearisation key", || RelinearizationKey::from_bytes(relin_bytes, &par))?;
    let input_rotations = parse("input-level rotation keys", || EvaluationKey::from_bytes(input_bytes, &par))?;
    let dense_rotations = parse("dense-level rotation keys", || EvaluationKey::from_bytes(dense_bytes, &par))?;
    let keys = EvalKeys { relin, input_rotations, dense_rotations };
    check_keys(&keys)?;
    Ok(keys)
}

/// Encodes ciphertexts that are all at `level`.
pub fn encode_ciphertexts(cts: &[Ciphertext], level: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(cts.len() * 230_000 + 32);
    out.extend_from_slice(CIPHERTEXTS_MAGIC);
    out.extend_from_slice(&fingerprint().to_le_bytes());
    out.push(level as u8);
    out.extend_from_slice(&(cts.len() as u16).to_le_bytes());
    for ct in cts {
        put_blob(&mut out, &ct.to_bytes());
    }
    out
}

/// Decodes exactly `count` ciphertexts of two polynomials at `level`.
pub fn decode_ciphertexts(bytes: &[u8], count: usize, level: usize) -> Result<Vec<Ciphertext>> {
    let mut r = Reader { bytes };
    r.header(CIPHERTEXTS_MAGIC, MAX_CIPHERTEXTS * (MAX_CIPHERTEXT_BYTES + 4) + 19)?;
    let got_level = r.take(1, "level")?[0] as usize;
    let got_count = u16::from_le_bytes(r.take(2, "count")?.try_into().expect("2 bytes")) as usize;
    if got_level != level || got_count != count {
        return Err(BfvError::Wire(format!(
            "{got_count} ciphertexts at level {got_level}; expected {count} at level {level}"
        )));
    }
    let blobs = (0..count).map(|_| r.blob("ciphertext", MAX_CIPHERTEXT_BYTES)).collect::<Result<Vec<_>>>()?;
    if !r.bytes.is_empty() {
        return Err(BfvError::Wire(format!("{} trailing bytes", r.bytes.len())));
    }
    blobs.into_iter().map(|blob| parse_ciphertext(blob, level)).collect()
}

/// Parses one ciphertext of two polynomials and checks its level.
fn parse_ciphertext(blob: &[u8], level: usize) -> Result<Ciphertext> {
    let par = parameters();
    let ct = parse("ciphertext", || Ciphertext::from_bytes(blob, &par))?;
    if ct.len() != 2 {
        return Err(BfvError::Wire(format!("a ciphertext of {} polynomials; expected 2", ct.len())));
    }
    let ct_level = parse("ciphertext", || par.level_of_context(ct[0].ctx()))?;
    if ct_level != level {
        return Err(BfvError::Wire(format!("a ciphertext at level {ct_level}; expected {level}")));
    }
    Ok(ct)
}

/// Encodes the batch key.
pub fn encode_batch_keys(keys: &BatchKeys) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 << 20);
    out.extend_from_slice(BATCH_KEYS_MAGIC);
    out.extend_from_slice(&fingerprint().to_le_bytes());
    put_blob(&mut out, &keys.relin.to_bytes());
    out
}

/// Decodes the batch key and checks that it relinearises ciphertexts at the batch level.
pub fn decode_batch_keys(bytes: &[u8]) -> Result<BatchKeys> {
    let mut r = Reader { bytes };
    r.header(BATCH_KEYS_MAGIC, MAX_KEYS_BYTES)?;
    let relin_bytes = r.blob("relinearisation key", MAX_KEYS_BYTES)?;
    if !r.bytes.is_empty() {
        return Err(BfvError::Wire(format!("{} trailing bytes", r.bytes.len())));
    }
    let par = parameters();
    let relin = parse("relinearisation key", || RelinearizationKey::from_bytes(relin_bytes, &par))?;
    // Relinearise a zero product at the batch level: a key made for another level is refused here rather
    // than after the evaluation's work.
    let probe = parse("relinearisation key", || {
        let ctx = par.context_at_level(BATCH_INPUT_LEVEL)?;
        let zero = fhe_math::rq::Poly::zero(ctx, fhe_math::rq::Representation::Ntt);
        let mut ct = Ciphertext::new(vec![zero.clone(), zero.clone(), zero], &par)?;
        relin.relinearizes(&mut ct)
    });
    probe.map_err(|e| BfvError::Wire(format!("not a key for the batch level {BATCH_INPUT_LEVEL}: {e}")))?;
    Ok(BatchKeys { relin })
}

/// Either kind of key message, as one store holds them.
#[derive(Debug)]
pub enum Keys {
    /// The single-image packing's keys ([`decode_keys`]).
    Single(Box<EvalKeys>),
    /// The batch packing's key ([`decode_batch_keys`]).
    Batch(BatchKeys),
}

impl Keys {
    /// What these keys are for, in words.
    pub fn kind(&self) -> &'static str {
        match self {
            Keys::Single(_) => "single-image",
            Keys::Batch(_) => "batch",
        }
    }
}

/// Decodes a key message of either kind, told apart by its magic.
pub fn decode_any_keys(bytes: &[u8]) -> Result<Keys> {
    if bytes.starts_with(BATCH_KEYS_MAGIC) {
        decode_batch_keys(bytes).map(Keys::Batch)
    } else {
        decode_keys(bytes).map(|k| Keys::Single(Box::new(k)))
    }
}

fn encode_batch_at(cts: &[Ciphertext], images: usize, level: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(cts.len() * 140_000 + 32);
    out.extend_from_slice(BATCH_MAGIC);
    out.extend_from_slice(&fingerprint().to_le_bytes());
    out.push(level as u8);
    out.extend_from_slice(&(images as u16).to_le_bytes());
    out.extend_from_slice(&(cts.len() as u16).to_le_bytes());
    for ct in cts {
        put_blob(&mut out, &ct.to_bytes());
    }
    out
}

fn decode_batch_at(bytes: &[u8], count: usize, level: usize, cap: usize) -> Result<(usize, Vec<Ciphertext>)> {
    let mut r = Reader { bytes };
    r.header(BATCH_MAGIC, MAX_BATCH_BYTES)?;
    let got_level = r.take(1, "level")?[0] as usize;
    let images = u16::from_le_bytes(r.take(2, "images")?.try_into().expect("2 bytes")) as usize;
    let got_count = u16::from_le_bytes(r.take(2, "count")?.try_into().expect("2 bytes")) as usize;
    if got_level != level || got_count != count {
        return Err(BfvError::Wire(format!(
            "a batch of {got_count} ciphertexts at level {got_level}; expected {count} at level {level}"
        )));
    }
    check_batch_size(images).map_err(|e| BfvError::Wire(e.to_string()))?;
    let blobs = (0..count).map(|_| r.blob("ciphertext", cap)).collect::<Result<Vec<_>>>()?;
    if !r.bytes.is_empty() {
        return Err(BfvError::Wire(format!("{} trailing bytes", r.bytes.len())));
    }
    let cts = blobs.into_iter().map(|blob| parse_ciphertext(blob, level)).collect::<Result<Vec<_>>>()?;
    Ok((images, cts))
}

/// The number of images a batch of input ciphertexts says it holds, from its header alone (magic,
/// parameters, level, counts): a cheap check before the batch waits its turn; [`decode_batch`] checks the rest.
pub fn batch_images(bytes: &[u8]) -> Result<usize> {
    let mut r = Reader { bytes };
    r.header(BATCH_MAGIC, MAX_BATCH_BYTES)?;
    let level = r.take(1, "level")?[0] as usize;
    let images = u16::from_le_bytes(r.take(2, "images")?.try_into().expect("2 bytes")) as usize;
    let count = u16::from_le_bytes(r.take(2, "count")?.try_into().expect("2 bytes")) as usize;
    if level != BATCH_INPUT_LEVEL || count != BATCH_INPUT_CIPHERTEXTS {
        return Err(BfvError::Wire(format!(
            "a batch of {count} ciphertexts at level {level}; expected {BATCH_INPUT_CIPHERTEXTS} at level \
             {BATCH_INPUT_LEVEL}"
        )));
    }
    check_batch_size(images).map_err(|e| BfvError::Wire(e.to_string()))?;
    Ok(images)
}

/// Encodes a batch's 784 input ciphertexts holding `images` images.
pub fn encode_batch(cts: &[Ciphertext], images: usize) -> Vec<u8> {
    encode_batch_at(cts, images, BATCH_INPUT_LEVEL)
}

/// Decodes a batch of input ciphertexts: the number of images and exactly 784 ciphertexts of two
/// polynomials at the batch level.
pub fn decode_batch(bytes: &[u8]) -> Result<(usize, Vec<Ciphertext>)> {
    decode_batch_at(bytes, BATCH_INPUT_CIPHERTEXTS, BATCH_INPUT_LEVEL, MAX_BATCH_CIPHERTEXT_BYTES)
}

/// Encodes a batch's result ciphertexts (one per class).
pub fn encode_batch_result(cts: &[Ciphertext], images: usize) -> Vec<u8> {
    encode_batch_at(cts, images, BATCH_OUTPUT_LEVEL)
}

/// Decodes the result of a batch for a model with `classes` classes: the number of images and exactly
/// `classes` result ciphertexts.
pub fn decode_batch_result(bytes: &[u8], classes: usize) -> Result<(usize, Vec<Ciphertext>)> {
    check_classes(classes).map_err(|e| BfvError::Input(e.to_string()))?;
    decode_batch_at(bytes, classes, BATCH_OUTPUT_LEVEL, MAX_CIPHERTEXT_BYTES)
}
