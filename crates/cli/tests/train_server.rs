//! `more train wbc --encrypted --server URL`: the CLI as the data owner against a real `more-server` with
//! training jobs, in this process.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn more(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_more")).args(args).current_dir(root()).output().expect("runs")
}

/// A `more-server` that trains, on a free local port; jobs in `dir`.
fn serve(dir: &std::path::Path) -> String {
    use more_server::jobs::{Jobs, TrainingLimits};
    use more_server::{AppState, EngineConfig, Limits, Registry, app};
    let state = AppState::new(
        Registry::new(),
        EngineConfig { workers: 1, queue: 8, max_batch_samples: 4, ..EngineConfig::default() },
        Limits::default(),
    )
    .with_jobs(Jobs::open(dir, TrainingLimits::default()).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || rt.block_on(async move { axum::serve(listener, app(state)).await.unwrap() }));
    format!("http://{addr}")
}

#[test]
fn wbc_trained_on_the_server_matches_local_plaintext_training() {
    let dir = std::env::temp_dir().join(format!("more-cli-train-server-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = serve(&dir.join("jobs"));
    let out_file = dir.join("wbc.morenn");
    let out = more(&[
        "train",
        "wbc",
        "--encrypted",
        "--server",
        &url,
        "--samples",
        "60",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--json",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(
        (j["train_samples"].as_u64(), j["test_samples"].as_u64(), j["epochs"].as_u64()),
        (Some(48), Some(12), Some(3))
    );
    let (p, e) = (j["plaintext_mre"].as_f64().unwrap(), j["encrypted_mre"].as_f64().unwrap());
    assert!(p.is_finite() && (p - e).abs() <= 0.01 * p, "plaintext MRE {p} vs encrypted {e}");
    assert!(j["upload_bytes"].as_u64().unwrap() > 48 * 13 * 16, "{j}");
    assert!(j["seconds"].as_f64().unwrap() > 0.0);
    let (lp, le) = (j["plaintext_final_loss"].as_f64().unwrap(), j["encrypted_final_loss"].as_f64().unwrap());
    assert!((lp - le).abs() <= 1e-3 * lp, "decrypted loss {le} vs plaintext {lp}");
    // The decrypted model is saved, and the server deleted the job after the download.
    assert!(out_file.is_file());
    assert_eq!(std::fs::read_dir(dir.join("jobs")).unwrap().count(), 0);
    // Without --encrypted, --server is refused.
    let out = more(&["train", "wbc", "--server", &url]);
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
