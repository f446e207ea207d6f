//! `more challenge`: a teacher creates a class challenge on a real `more-server` and reads the answers;
//! a wrong token is a clear one-line error.

use std::path::PathBuf;
use std::process::{Command, Output};

const TOKEN: &str = "cli-test-teacher-token-42";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn more(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_more"))
        .args(args)
        .env_remove("MORE_TEACHER_TOKEN")
        .current_dir(root())
        .output()
        .expect("runs")
}

/// A real `more-server` with challenges on a free local port, in this process.
fn serve() -> String {
    use more_server::{AppState, ChallengeLimits, EngineConfig, Limits, Registry, TeacherToken, app};
    let registry = Registry::load_dir(root().join("models")).unwrap();
    let state = AppState::new(
        registry,
        EngineConfig { workers: 1, queue: 8, max_batch_samples: 1, ..EngineConfig::default() },
        Limits::default(),
    )
    .with_challenges(TeacherToken::new(TOKEN).unwrap(), ChallengeLimits::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || rt.block_on(async move { axum::serve(listener, app(state)).await.unwrap() }));
    format!("http://{addr}")
}

#[test]
fn a_teacher_creates_a_challenge_and_reads_its_answers() {
    let url = serve();
    let out = more(&["challenge", "new", "--server", &url, "--token", TOKEN]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = text.lines().next().and_then(|l| l.strip_prefix("challenge ")).expect(&text).to_string();
    assert_eq!(id.len(), 12, "{text}");
    assert!(text.contains(&format!("{url}/api/v1/challenges/{id}/ciphertext")), "{text}");

    let out = Command::new(env!("CARGO_BIN_EXE_more"))
        .args(["challenge", "answers", "--server", &url, "--id", &id])
        .env("MORE_TEACHER_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("0 solved, 0 answers"), "{text}");

    let out = more(&["challenge", "new", "--server", &url, "--token", "wrong-token-1234567"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && err.contains("wrong teacher token"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
