//! The BFV key and ciphertext messages (more-bfv `wire`): what a client uploads to `POST /api/v1/bfv/keys`
//! and to BFV inference. Arbitrary bytes never panic past `decode_keys` / `decode_ciphertexts` and never
//! allocate far beyond the message (libFuzzer's RSS and malloc limits); a refusal is an `Err`. Ciphertexts
//! that decode encode to a message that decodes to the same ciphertexts and encodes to the same bytes again.
//!
//! Byte 0 picks the mode, the rest is the message:
//! - 0: a ciphertext message as it is, decoded with the count and level its own header announces and with
//!   the server's (`INPUT_CIPHERTEXTS` at `INPUT_LEVEL`);
//! - 1: a key message as it is;
//! - 2: ciphertext blobs, each `len u32 | bytes`, the lengths repaired (cut to what is left) and framed
//!   with a valid magic, fingerprint, count and level (byte 1 of the rest), so mutations inside fhe.rs's
//!   protobuf reach its parser;
//! - 3: the three key blobs, repaired and framed the same way;
//! - 4: a batch message or a key message of either kind as it is (`batch_images`, `decode_batch`,
//!   `decode_batch_result`, `decode_any_keys`);
//! - 5: up to 10 ciphertext blobs, repaired and framed as a batch result (level 3, the image count from
//!   the rest) and read for as many classes, so mutations reach fhe.rs's parser through the batch framing.
//!
//! more-bfv runs fhe.rs's parsers inside `catch_unwind`, so a panic inside fhe.rs is, by design, an error;
//! libFuzzer's panic hook would abort on it anyway, so this target's hook lets panics located in fhe.rs
//! pass (each new location is logged once as `fhe.rs panic caught`) and hands every other one to
//! libFuzzer's hook, which aborts. Valid key sets are megabytes (`MAX_KEYS_BYTES` is 8 MiB), so the seeds
//! hold keys and ciphertexts at the last level (one modulus, about 45 KB each), made offline by
//! `examples/seeds.rs`; BFV key generation never runs here.
#![no_main]

use std::collections::HashSet;
use std::sync::{Mutex, Once};

use libfuzzer_sys::fuzz_target;
use more_bfv::layout::INPUT_CIPHERTEXTS;
use more_bfv::params::{INPUT_LEVEL, fingerprint};
use more_bfv::wire::{
    BATCH_MAGIC, CIPHERTEXTS_MAGIC, KEYS_MAGIC, batch_images, decode_any_keys, decode_batch, decode_batch_result,
    decode_ciphertexts, decode_keys, encode_batch_result, encode_ciphertexts, encode_keys,
};

/// Lets panics inside fhe.rs (caught by more-bfv) pass; any other panic goes to libFuzzer's hook (abort).
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let libfuzzer_hook = std::panic::take_hook();
        let seen: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            if at.contains("/fhe-0.") || at.contains("/fhe-math-0.") || at.contains("/fhe-util-0.") {
                if seen.lock().map(|mut s| s.insert(at.clone())).unwrap_or(false) {
                    eprintln!("fhe.rs panic caught by more-bfv at {at}: {}", payload(info));
                }
            } else {
                libfuzzer_hook(info);
            }
        }));
    });
}

fn payload(info: &std::panic::PanicHookInfo<'_>) -> String {
    let p = info.payload();
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

/// Splits `rest` into length-prefixed blobs, cutting each length to what is left.
fn repaired_blobs(mut rest: &[u8], max: usize) -> Vec<&[u8]> {
    let mut blobs = Vec::new();
    while blobs.len() < max && rest.len() >= 4 {
        let n = (u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize).min(rest.len() - 4);
        blobs.push(&rest[4..4 + n]);
        rest = &rest[4 + n..];
    }
    blobs
}

fn frame(magic: &[u8; 8], extra: &[u8], blobs: &[&[u8]]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&fingerprint().to_le_bytes());
    out.extend_from_slice(extra);
    for b in blobs {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

fn check_ciphertexts(msg: &[u8], count: usize, level: usize) {
    if let Ok(cts) = decode_ciphertexts(msg, count, level) {
        assert_eq!(cts.len(), count);
        let bytes = encode_ciphertexts(&cts, level);
        let again = decode_ciphertexts(&bytes, count, level).expect("encoded ciphertexts decode");
        assert!(again == cts, "decode, encode, decode changed the ciphertexts");
        assert_eq!(encode_ciphertexts(&again, level), bytes, "the encoding is not stable");
    }
}

fn check_keys(msg: &[u8]) {
    if let Ok(keys) = decode_keys(msg) {
        // Only a complete key set gets here (megabytes; not among the seeds).
        let bytes = encode_keys(&keys);
        let again = decode_keys(&bytes).expect("encoded keys decode");
        assert_eq!(encode_keys(&again), bytes, "the key encoding is not stable");
    }
}

/// A batch result read for a model of `classes` classes decodes, encodes and decodes to the same.
fn check_batch_result(msg: &[u8], classes: usize) {
    if let Ok((images, cts)) = decode_batch_result(msg, classes) {
        assert_eq!(cts.len(), classes, "one result per class");
        let bytes = encode_batch_result(&cts, images);
        let (again_images, again) = decode_batch_result(&bytes, classes).expect("an encoded batch result decodes");
        assert!(again_images == images && again == cts, "decode, encode, decode changed the batch result");
    }
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 6 {
        0 => {
            // The header's own count and level (if it has them), and the server's expectation.
            if rest.len() >= 19 {
                let level = rest[16] as usize;
                let count = u16::from_le_bytes([rest[17], rest[18]]) as usize;
                check_ciphertexts(rest, count, level);
            }
            check_ciphertexts(rest, INPUT_CIPHERTEXTS, INPUT_LEVEL);
        }
        1 => check_keys(rest),
        2 => {
            let Some((&level, rest)) = rest.split_first() else { return };
            let blobs = repaired_blobs(rest, more_bfv::wire::MAX_CIPHERTEXTS + 1);
            let level = level % 6;
            let mut extra = vec![level];
            extra.extend_from_slice(&(blobs.len() as u16).to_le_bytes());
            check_ciphertexts(&frame(CIPHERTEXTS_MAGIC, &extra, &blobs), blobs.len(), level as usize);
        }
        3 => check_keys(&frame(KEYS_MAGIC, &[], &repaired_blobs(rest, 3))),
        4 => {
            let images = batch_images(rest);
            let batch = decode_batch(rest);
            if let Ok((n, cts)) = &batch {
                assert_eq!(images.ok(), Some(*n), "the header and the whole message disagree");
                assert_eq!(cts.len(), more_bfv::batch::BATCH_INPUT_CIPHERTEXTS);
            }
            // The digits' and the angiogram views' class counts.
            check_batch_result(rest, 10);
            check_batch_result(rest, 2);
            let _ = decode_any_keys(rest);
        }
        _ => {
            let Some((&images, rest)) = rest.split_first() else { return };
            let blobs = repaired_blobs(rest, 10);
            let mut extra = vec![3u8];
            extra.extend_from_slice(&u16::from(images).to_le_bytes());
            extra.extend_from_slice(&(blobs.len() as u16).to_le_bytes());
            check_batch_result(&frame(BATCH_MAGIC, &extra, &blobs), blobs.len());
        }
    }
});
