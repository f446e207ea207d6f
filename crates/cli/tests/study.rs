//! `more reproduce wbc --runs K` end to end on a small simulated data set: the study's JSON carries both
//! sides' summaries, the paired difference and a verdict, the SVG is drawn, and a second invocation with
//! `--resume` keeps the finished runs instead of training them again.

use std::path::PathBuf;
use std::process::{Command, Output};

fn more(args: &[&str]) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_more")).args(args).current_dir(root).output().expect("runs")
}

#[test]
fn wbc_study_reports_statistics_and_resumes() {
    let dir = std::env::temp_dir().join(format!("more-cli-study-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let study = dir.join("runs");
    let svg = dir.join("study.svg");
    let (study_s, svg_s) = (study.to_str().unwrap(), svg.to_str().unwrap());
    let args = [
        "reproduce",
        "wbc",
        "--runs",
        "2",
        "--drift-kappas",
        "3",
        "--n-train",
        "120",
        "--n-test",
        "40",
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--resume",
        study_s,
        "--svg",
        svg_s,
        "--json",
    ];
    let out = more(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("[1/3] run-01, seed 1") && err.contains("[3/3] kappa-3, seed 1"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["runs"], 2);
    assert_eq!(report["seeds"], serde_json::json!([1, 2]));
    let mre = &report["metrics"][0];
    assert_eq!(mre["name"], "mean relative error (6 outputs)");
    for side in ["plain", "encrypted"] {
        assert_eq!(mre[side]["n"], 2);
        assert!(mre[side]["mean"].as_f64().unwrap() > 0.0);
    }
    let d = &mre["paired_difference"];
    assert!(d["ci95_low"].as_f64().unwrap() <= d["ci95_high"].as_f64().unwrap());
    assert!(mre["verdict"]["text"].as_str().unwrap().contains("seed-to-seed"));
    // The drift run used a key with κ = 3, and every run recorded its drift per epoch.
    let runs = report["run_details"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert!((runs[2]["key_condition"].as_f64().unwrap() - 3.0).abs() < 1e-6);
    for r in runs {
        assert_eq!(r["weight_drift"].as_array().unwrap().len(), 3, "{r}");
    }
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<circle"));

    // Resuming keeps all three runs and reproduces the same statistics.
    let out = more(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("finished earlier, kept").count(), 3, "{err}");
    assert!(!err.contains("training both sides"), "{err}");
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["metrics"][0]["paired_difference"], report["metrics"][0]["paired_difference"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
