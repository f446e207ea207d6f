//! `more import` on the committed ONNX fixtures (crates/onnx/fixtures): the imported model evaluates to the
//! reference runtime's accuracy on plaintext and encrypted, the task is found from the input shape, the
//! BFV quantization runs with its wrap-around check, and mistakes get an error that says what to change.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> String {
    root().join("crates/onnx/fixtures").join(format!("{name}.onnx")).display().to_string()
}

fn more(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_more")).args(args).current_dir(root()).output().expect("runs")
}

fn ok(args: &[&str]) -> String {
    let out = more(args);
    assert!(out.status.success(), "more {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn refused(args: &[&str]) -> String {
    let out = more(args);
    assert!(!out.status.success(), "more {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// A fresh directory under the target directory (removed first).
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn reference_accuracy(name: &str) -> f64 {
    let text = std::fs::read_to_string(root().join("crates/onnx/fixtures/fixtures.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = v["fixtures"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap();
    entry["reference_accuracy"].as_f64().unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_imported_scikit_learn_model_evaluates_to_the_reference_accuracy() {
    let dir = scratch("import-skl");
    let out = dir.join("skl.morenn");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "import",
        &fixture("skl-mlp-relu"),
        "--scale",
        "0.00392156862745098",
        "--mean",
        "0",
        "--std",
        "1",
        "--out",
        path(&out),
        "--json",
    ]))
    .unwrap();
    // The task comes from the flat [784] input; the label branch of skl2onnx is left out.
    assert_eq!(report["task"], "mnist");
    assert_eq!(report["input_shape"], serde_json::json!([784]));
    assert_eq!(report["output"], "probabilities");
    assert_eq!(report["bfv_evaluable"], false);
    let eval: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "mnist",
        "--model",
        path(&out),
        "--encrypted",
        "--limit",
        "1000",
        "--json",
        "--quiet",
    ]))
    .unwrap();
    let want = reference_accuracy("skl-mlp-relu");
    assert_eq!(eval["plain_accuracy"].as_f64().unwrap(), want);
    assert_eq!(eval["encrypted_accuracy"].as_f64().unwrap(), want);
    assert_eq!(eval["argmax_agreement"], 1000);
    // An existing output is kept unless --force.
    assert!(refused(&["import", &fixture("skl-mlp-relu"), "--out", path(&out)]).contains("--force"));
}

#[test]
fn a_network_in_the_bfv_layout_is_quantized_with_the_wrap_around_check() {
    let dir = scratch("import-bfv");
    let (model, bfv) = (dir.join("net.morenn"), dir.join("net.bfv.json"));
    let args = |levels: &str| {
        vec![
            "import".to_string(),
            fixture("torch-bfv"),
            "--out".into(),
            path(&model).into(),
            "--bfv-out".into(),
            path(&bfv).into(),
            "--bfv-levels".into(),
            levels.into(),
            "--force".into(),
        ]
    };
    // With the default levels a dense value of this network reaches t/2: refused, and says what to do.
    let default: Vec<String> = args("15,31,31");
    let e = refused(&default.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("t/2") && e.contains("--bfv-levels"), "{e}");
    let lower: Vec<String> = args("15,31,15");
    let text = ok(&lower.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(text.contains("BFV: quantized"), "{text}");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bfv).unwrap()).unwrap();
    assert_eq!(saved["id"], "torch-bfv-bfv", "the model id (the file name) with -bfv");
    assert!(saved["metrics"]["integer_test_accuracy"].as_f64().unwrap() > 0.9);
}

#[test]
fn mistakes_are_refused_with_what_to_change() {
    let dir = scratch("import-refusals");
    let out = dir.join("x.morenn");
    let o = path(&out);
    let e = refused(&["import", &fixture("torch-cnn"), "--task", "wbc", "--out", o]);
    assert!(e.contains("pick another --task"), "{e}");
    let e = refused(&["import", &fixture("torch-cnn"), "--bfv-out", path(&dir.join("y.json")), "--out", o]);
    assert!(e.contains("not BFV-evaluable: relu"), "{e}");
    assert!(!out.exists(), "nothing is written when the import is refused");
    let e = refused(&["import", "Cargo.toml", "--out", o]);
    assert!(e.contains("not an ONNX model"), "{e}");
    let e = refused(&["import", &fixture("torch-cnn"), "--std", "0", "--out", o]);
    assert!(e.contains("--std"), "{e}");
    let e = refused(&["import", &fixture("torch-mlp"), "--bfv-levels", "1,2", "--bfv-out", "z", "--out", o]);
    assert!(e.contains("not BFV-evaluable") || e.contains("three numbers"), "{e}");
}
