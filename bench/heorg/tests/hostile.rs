//! Hostile and damaged files given to the server executables (truncated, random, empty, oversized, missing,
//! of the wrong kind) and bad arguments: each gives an error that names the file and a non-zero exit, never
//! a panic; the undamaged files still work afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{TempRoot, mnist_test, run, run_ok, write_dataset};

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(len: usize, mut s: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Asserts a clean refusal: exit status 1, an error line mentioning `needle`, no panic.
fn refused(out: &Output, needle: &str, case: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{case}: expected exit 1, got {:?}\n{all}", out.status);
    assert!(!all.contains("panicked"), "{case}: panicked\n{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error:") && stderr.contains(needle), "{case}: error should mention {needle:?}\n{all}");
}

/// Replaces `path` by `bytes` for one server run and restores it.
fn with_file(root: &Path, path: &Path, bytes: Option<&[u8]>, stage: &str, needle: &str, case: &str) {
    let good = std::fs::read(path).unwrap();
    match bytes {
        Some(b) => std::fs::write(path, b).unwrap(),
        None => std::fs::remove_file(path).unwrap(),
    }
    let out = run(root, stage, &["0"]);
    std::fs::write(path, good).unwrap();
    refused(&out, needle, case);
}

#[test]
fn damaged_server_inputs_are_refused_with_a_clear_error() {
    let tmp = TempRoot::new("hostile");
    let root = tmp.path();
    let (images, labels) = mnist_test(7, 1);
    write_dataset(root, "single", &images, &labels);
    for stage in ["client_key_generation", "client_preprocess_input", "client_encode_encrypt_input"] {
        run_ok(root, stage, &["0"]);
    }
    run_ok(root, "server_preprocess_model", &[]);
    let io = root.join("io/single");
    let upload: PathBuf = io.join("ciphertexts_upload/image_0.bin");
    let keys: PathBuf = io.join("public_keys/eval_keys.bin");
    let model: PathBuf = root.join("io/model/network.bfv.json");
    let (good_upload, good_keys, good_model) =
        (std::fs::read(&upload).unwrap(), std::fs::read(&keys).unwrap(), std::fs::read(&model).unwrap());

    let compute = "server_encrypted_compute";
    for (case, bytes) in [
        ("truncated upload", good_upload[..good_upload.len() / 2].to_vec()),
        ("upload cut after the header", good_upload[..19].to_vec()),
        ("empty upload", Vec::new()),
        ("random upload", noise(good_upload.len(), 1)),
        ("keys as upload", good_keys.clone()),
        ("oversized upload", vec![0; 9 << 20]),
    ] {
        with_file(root, &upload, Some(&bytes), compute, "image_0.bin", case);
    }
    with_file(root, &upload, None, compute, "image_0.bin", "missing upload");
    for (case, bytes) in [
        ("truncated keys", good_keys[..good_keys.len() / 3].to_vec()),
        ("random keys", noise(good_keys.len(), 2)),
        ("upload as keys", good_upload.clone()),
    ] {
        with_file(root, &keys, Some(&bytes), compute, "eval_keys.bin", case);
    }
    with_file(root, &keys, None, compute, "eval_keys.bin", "missing keys");
    for (case, bytes) in
        [("truncated model", good_model[..good_model.len() - 8].to_vec()), ("random model", noise(good_model.len(), 3))]
    {
        with_file(root, &model, Some(&bytes), compute, "network.bfv.json", case);
    }
    // A ciphertext whose bytes are flipped inside the framing may parse; it must still not panic.
    let mut flipped = good_upload.clone();
    for i in (100..flipped.len()).step_by(997) {
        flipped[i] ^= 0x5a;
    }
    std::fs::write(&upload, &flipped).unwrap();
    let out = run(root, compute, &["0"]);
    assert!(!text(&out).contains("panicked"), "flipped bytes: panicked\n{}", text(&out));
    std::fs::write(&upload, &good_upload).unwrap();

    // Bad arguments.
    for args in [&[][..], &["4"], &["x"], &["0", "1"]] {
        let out = run(root, compute, args);
        refused(&out, if args.len() == 1 { "instance" } else { "usage" }, &format!("arguments {args:?}"));
    }

    // A hostile model file for server_preprocess_model.
    let bad_model = root.join("bad.bfv.json");
    for (case, bytes) in [("not JSON", b"{\"format\": 1".to_vec()), ("random", noise(5000, 4))] {
        std::fs::write(&bad_model, bytes).unwrap();
        let out = std::process::Command::new(common::exe("server_preprocess_model"))
            .current_dir(root)
            .env("HEORG_MODEL", &bad_model)
            .output()
            .unwrap();
        refused(&out, "bad.bfv.json", case);
    }
    assert_eq!(std::fs::read(&model).unwrap(), good_model, "a refused model leaves the preprocessed one alone");

    // The slot-per-image path (instance 2): its keys and batch files, damaged. Only the checks before the
    // evaluation run, so no batch needs to be encrypted.
    run_ok(root, "client_key_generation", &["2"]);
    let batch_io = root.join("io/medium");
    let batch_keys = batch_io.join("public_keys/batch_keys.bin");
    let batch_upload = batch_io.join("ciphertexts_upload/batch_0.bin");
    std::fs::create_dir_all(batch_upload.parent().unwrap()).unwrap();
    let good_batch_keys = std::fs::read(&batch_keys).unwrap();
    for (case, bytes) in [
        ("single-image file as a batch", good_upload.clone()),
        ("random batch", noise(100_000, 5)),
        ("batch header only", good_upload[..19].to_vec()),
    ] {
        std::fs::write(&batch_upload, bytes).unwrap();
        let out = run(root, compute, &["2"]);
        refused(&out, "batch_0.bin", case);
    }
    for (case, bytes) in [
        ("truncated batch keys", good_batch_keys[..good_batch_keys.len() / 2].to_vec()),
        ("single-image keys as batch keys", good_keys.clone()),
    ] {
        std::fs::write(&batch_keys, bytes).unwrap();
        let out = run(root, compute, &["2"]);
        refused(&out, "batch_keys.bin", case);
    }

    // The undamaged files still work.
    run_ok(root, compute, &["0"]);
    run_ok(root, "client_decrypt_decode", &["0"]);
    run_ok(root, "client_postprocess", &["0"]);
}
