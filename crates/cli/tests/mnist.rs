//! End-to-end runs of `more train|eval|bench mnist` on small subsets, from the repository root.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn more(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_more")).args(args).current_dir(root()).output().expect("runs");
    assert!(out.status.success(), "more {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn shipped_relu_model_agrees_on_ciphertexts() {
    let text =
        more(&["eval", "mnist", "--model", "models/mnist-cnn-relu.morenn", "--encrypted", "--limit", "300", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["images"], 300);
    assert_eq!(v["argmax_agreement"], 300);
    assert!(v["max_logit_diff"].as_f64().unwrap() < 1e-3, "{v}");
    assert!(v["plain_accuracy"].as_f64().unwrap() > 0.97, "{v}");
    assert_eq!(v["plain_accuracy"], v["encrypted_accuracy"]);
}

#[test]
fn shipped_models_describe_themselves() {
    for (file, ring_only) in [("mnist-cnn-relu", false), ("mnist-cnn-square", true)] {
        let m = more_nn::Model::load(root().join(format!("models/{file}.morenn"))).unwrap();
        assert_eq!(m.meta().id, file);
        assert_eq!(m.input_shape(), &[1, 28, 28]);
        assert_eq!(m.output_len(), 10);
        assert_eq!(m.is_ring_only(), ring_only);
        assert!(m.meta().metrics["test_accuracy"] >= 0.99);
        assert_eq!(m.meta().metrics["argmax_agreement"], 10_000.0);
        assert!(m.meta().metrics["max_logit_diff"] < 1e-3);
        assert_eq!(m.meta().preprocessing.kind, "mnist-digit");
    }
}

#[test]
fn bench_json_has_the_documented_keys() {
    let text = more(&["bench", "mnist", "--json", "--seconds", "0.02"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "plain_us_per_image",
        "encrypted_us_per_image",
        "overhead_batch1",
        "overhead_batch64",
        "encrypt_us",
        "decrypt_us",
        "ciphertext_bytes",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert!(v["plain_us_per_image"]["batch64"].as_f64().unwrap() > 0.0);
    assert_eq!(v["ciphertext_bytes"], 8 + 4 * 4 + 4 * 784 * 4);
}

#[test]
fn train_writes_a_loadable_model() {
    let out = std::env::temp_dir().join(format!("more-cli-test-{}.morenn", std::process::id()));
    let text = more(&[
        "train",
        "mnist",
        "--arch",
        "square",
        "--epochs",
        "1",
        "--limit",
        "1200",
        "--validation",
        "200",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(text.contains("test accuracy"), "{text}");
    let m = more_nn::Model::load(&out).unwrap();
    assert_eq!(m.meta().training["seed"], "1");
    assert!(m.meta().metrics["test_accuracy"] > 0.5);
    std::fs::remove_file(out).unwrap();
}

#[test]
fn bad_model_files_are_clear_errors() {
    let bad = std::env::temp_dir().join(format!("more-cli-bad-{}.morenn", std::process::id()));
    std::fs::write(&bad, b"MORENN01 definitely not a model").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_more"))
        .args(["eval", "mnist", "--model", bad.to_str().unwrap(), "--limit", "5"])
        .current_dir(root())
        .output()
        .unwrap();
    std::fs::remove_file(&bad).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid model file") && err.contains("checksum"), "{err}");
}

/// A model for another task is refused before any data is read, in one line, with no backtrace even when
/// `RUST_BACKTRACE` is set.
#[test]
fn a_model_for_another_task_is_one_clear_line() {
    for (args, wanted) in [
        (["eval", "angio", "--model", "models/mnist-cnn-relu.morenn"], "angio needs input [1, 128, 128]"),
        (["eval", "mnist", "--model", "models/angio-cnn.morenn"], "mnist needs input [1, 28, 28]"),
        (["bench", "angio", "--model", "models/wbc-mlp.morenn"], "is the wbc model \"wbc-mlp\""),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_more"))
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .env("MORE_DATA", "/nonexistent")
            .current_dir(root())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(wanted), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn bench_bfv_batch_reports_every_figure_against_the_integer_network() {
    // The single-image packing on a few images (the batch packing's round trip is in crates/bfv/tests).
    let text = more(&["bench", "bfv", "--batch", "4", "--packing", "image", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "images",
        "accuracy",
        "argmax_agreement",
        "server_s",
        "client_encrypt_s",
        "client_decrypt_s",
        "ms_per_image_amortized",
        "upload_bytes",
        "download_bytes",
        "eval_key_bytes",
        "security_bits",
        "ring_degree",
        "plaintext_moduli",
        "more_server_s",
    ] {
        assert!(!v[key].is_null(), "no {key}: {v}");
    }
    assert_eq!((v["images"].as_u64(), v["packing"].as_str()), (Some(4), Some("image")));
    assert_eq!((v["argmax_agreement"].as_u64(), v["exact_logits"].as_u64()), (Some(4), Some(4)));
    assert_eq!(v["accuracy"], v["integer_accuracy"]);
    assert_eq!((v["security_bits"].as_u64(), v["ring_degree"].as_u64()), (Some(128), Some(8192)));
    assert_eq!(v["plaintext_moduli"], serde_json::json!([17_179_754_497u64]));
    assert_eq!(v["upload_bytes"].as_u64().unwrap() % 4, 0, "four images of equal messages: {v}");
}
