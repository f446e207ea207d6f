//! The `more-server` binary itself: startup errors are one clear line and a failing exit status; a normal
//! start prints the URL, answers, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn startup_errors_are_one_line() {
    for (args, wanted) in [
        (vec!["--models", "/nonexistent"], "cannot read model directory /nonexistent"),
        (vec!["--addr", "127.0.0.1:1", "--samples", "/nonexistent"], "reading samples from /nonexistent"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_more-server"))
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LOG", "off")
            .current_dir(root())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("more-server: error: ") && err.contains(wanted), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "no backtrace, no repeated cause: {err}");
    }
}

#[cfg(unix)]
#[test]
fn starts_answers_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_more-server"))
        .args(["--addr", "127.0.0.1:0", "--models", "models", "--jobs-dir"])
        .arg(std::env::temp_dir().join(format!("more-jobs-binary-{}", std::process::id())))
        .env("RUST_LOG", "off")
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("more-server listening on http://").expect(&line);
    let addr = url.trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(tcp, "GET /api/v1/health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "graceful shutdown exits 0");
}
