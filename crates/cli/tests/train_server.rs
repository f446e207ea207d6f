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
    serve_with(Some((dir, more_server::jobs::TrainingLimits::default())))
}

/// A `more-server` on a free local port, training within these limits (jobs in the directory), or not
/// training at all.
fn serve_with(jobs: Option<(&std::path::Path, more_server::jobs::TrainingLimits)>) -> String {
    use more_server::jobs::Jobs;
    use more_server::{AppState, EngineConfig, Limits, Registry, app};
    let mut state = AppState::new(
        Registry::new(),
        EngineConfig { workers: 1, queue: 8, max_batch_samples: 4, ..EngineConfig::default() },
        Limits::default(),
    );
    if let Some((dir, limits)) = jobs {
        state = state.with_jobs(Jobs::open(dir, limits).unwrap());
    }
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
    // The decrypted model's file is named on stderr (stdout carries the JSON).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("wrote {} (", out_file.display())), "{err}");
    // Without --encrypted, --server is refused.
    let out = more(&["train", "wbc", "--server", &url]);
    assert!(!out.status.success());

    // The model file exists now: the same command is refused before any work, and --force overwrites it.
    let args = [
        "train",
        "wbc",
        "--encrypted",
        "--server",
        &url,
        "--samples",
        "30",
        "--epochs",
        "1",
        "--json",
        "--out",
        out_file.to_str().unwrap(),
    ];
    let out = more(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("already exists; pass --out PATH"), "{err}");
    let before = std::fs::read(&out_file).unwrap();
    let out = more(&[&args[..], &["--force"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(&out_file).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A job the server would refuse is refused here first, saying what to change: epochs and batch size over
/// its limits, an upload over its size limit (with how many patients fit), a server that does not train.
#[test]
fn the_servers_limits_are_read_before_uploading() {
    let dir = std::env::temp_dir().join(format!("more-cli-train-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = more_server::jobs::TrainingLimits {
        max_upload_bytes: 8_000,
        max_epochs: 2,
        max_batch_size: 16,
        ..more_server::jobs::TrainingLimits::default()
    };
    let url = serve_with(Some((&dir.join("jobs"), limits)));
    let out_file = dir.join("wbc.morenn");
    let run = |extra: &[&str]| {
        let base = ["train", "wbc", "--encrypted", "--server", &url, "--out", out_file.to_str().unwrap()];
        let out = more(&[&base[..], extra].concat());
        assert!(!out.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let err = run(&["--samples", "40", "--epochs", "3"]);
    assert!(err.contains(&format!("{url} trains 2 epochs at most (asked 3); pass --epochs 2 or fewer")), "{err}");
    let err = run(&["--samples", "40", "--epochs", "2", "--batch-size", "32"]);
    assert!(err.contains("pass --batch-size 16 or smaller"), "{err}");
    let err = run(&["--samples", "200", "--epochs", "2", "--batch-size", "8"]);
    assert!(
        err.contains(
            "training patients at most with this server's 7.8 KiB upload limit (this upload: 160 training patients,"
        ) && err.contains("pass --samples"),
        "{err}"
    );
    // The count it suggests fits.
    let samples: String =
        err.split("pass --samples ").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    let out = more(&[
        "train",
        "wbc",
        "--encrypted",
        "--server",
        &url,
        "--samples",
        &samples,
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--out",
        out_file.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "--samples {samples}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("wrote {}", out_file.display())));

    let off = serve_with(None);
    let other = dir.join("off.morenn");
    let out = more(&["train", "wbc", "--encrypted", "--server", &off, "--out", other.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not train: its training jobs are turned off"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
