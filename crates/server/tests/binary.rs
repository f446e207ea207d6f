//! The `more-server` binary itself: startup errors are one clear line and a failing exit status; a normal
//! start prints the URL, answers, and stops cleanly on SIGTERM.

mod common;

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

/// Starts the binary on a free port with jobs in `jobs`: (child, address).
fn start_with_jobs(jobs: &std::path::Path) -> (std::process::Child, String) {
    start_with(jobs, &[])
}

/// Starts the binary on a free port with jobs in `jobs` and extra flags: (child, address).
fn start_with(jobs: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    let jobs = jobs.to_str().unwrap();
    common::start_binary(&[&["--jobs-dir", jobs], extra].concat())
}

/// One HTTP/1.1 exchange: (status line, body).
fn http(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    tcp.write_all(body).unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or("").to_string(), rest.to_string())
}

/// An encrypted WBC training job of `n` rows and `epochs` epochs (batches of 8).
fn wbc_job(n: usize, epochs: usize) -> Vec<u8> {
    use more_enctrain::owner::KeyOwner;
    use more_enctrain::train::TargetNoise;
    use more_enctrain::upload::{JobRequest, OptimizerKind, encode_body};
    let x = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[n, 7]), |i| ((i[0] * 7 + i[1]) % 13) as f32 / 13.0);
    let y = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[n, 6]), |i| ((i[0] + i[1]) % 5) as f32 / 5.0);
    let key = more_core::SecretKey::from_seed(1, Default::default()).unwrap();
    let mut owner = KeyOwner::with_seed(key, 2);
    let cx = owner.encrypt_inputs(&x.view(), -2.0, 2.0).unwrap();
    let cy = owner.encrypt_targets(&y, TargetNoise::Uniform { lo: -1.0, hi: 1.0 }).unwrap();
    let c = owner.encrypt_canaries::<f32>().unwrap();
    let request = JobRequest {
        network: "wbc-mlp".into(),
        epochs,
        batch_size: 8,
        lr: 1e-3,
        lr_decay: 1.0,
        optimizer: OptimizerKind::Adam,
        seed: 1,
    };
    encode_body(&request, &cx, &cy, &c).unwrap()
}

/// Slow and silent clients against the real binary with a 2-second idle timeout: ten sockets that send only
/// the headers of a chunked key upload hold no memory budget, so inference keeps answering 200; and a job's
/// event stream that carries no event for three idle timeouts (the job waits behind another) stays open on
/// its heartbeats and delivers the job's end.
#[cfg(unix)]
#[test]
fn silent_clients_starve_nothing_and_event_streams_outlast_the_idle_timeout() {
    use more_enctrain::upload::MEDIA_TYPE;
    use std::time::{Duration, Instant};

    let jobs = std::env::temp_dir().join(format!("more-jobs-idle-binary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&jobs);
    let (mut child, addr) = start_with(&jobs, &["--idle-timeout-s", "2", "--timeout-ms", "20000"]);
    let mut silent = Vec::new();
    for _ in 0..10 {
        let mut tcp = TcpStream::connect(&addr).unwrap();
        write!(
            tcp,
            "POST /api/v1/bfv/keys HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        .unwrap();
        silent.push(tcp);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (status, health) = http(&addr, "GET", "/api/v1/health", "text/plain", b"");
    assert!(status.contains("200"), "{status}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["memory"]["budget_in_use_bytes"], 0, "headers alone reserve nothing: {health}");
    let key = more_core::SecretKey::from_seed(3, Default::default()).unwrap();
    let x = ndarray::ArrayD::<f32>::from_elem(ndarray::IxDyn(&[1, 28, 28]), 0.5);
    let body = more_core::encode(&key.encrypt_tensor::<f32>(&x.view()).unwrap());
    let (status, _) = http(&addr, "POST", "/api/v1/models/mnist-cnn-relu/infer", more_core::codec::MEDIA_TYPE, &body);
    assert!(status.contains("200"), "inference beside silent uploads: {status}");
    drop(silent);

    // A long job trains; a second one waits in the queue, its stream silent but for heartbeats.
    let (status, long) = http(&addr, "POST", "/api/v1/jobs", MEDIA_TYPE, &wbc_job(2000, 200));
    assert!(status.contains("202"), "{status}: {long}");
    let long: serde_json::Value = serde_json::from_str(&long).unwrap();
    let (status, short) = http(&addr, "POST", "/api/v1/jobs", MEDIA_TYPE, &wbc_job(16, 1));
    assert!(status.contains("202"), "{status}: {short}");
    let short: serde_json::Value = serde_json::from_str(&short).unwrap();
    let mut tcp = TcpStream::connect(&addr).unwrap();
    write!(tcp, "GET {} HTTP/1.1\r\nhost: {addr}\r\n\r\n", short["events_url"].as_str().unwrap()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(tcp);
    let (t, mut heartbeats, mut kinds) = (Instant::now(), 0, Vec::new());
    let mut deleted = false;
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream was cut after {:?}: {kinds:?}", t.elapsed());
        if line.starts_with(':') {
            heartbeats += 1;
        } else if let Some(k) = line.strip_prefix("event:") {
            kinds.push(k.trim().to_string());
            if kinds.last().is_some_and(|k| k == "done") {
                break;
            }
        }
        if !deleted && t.elapsed() > Duration::from_secs(6) {
            // Three idle timeouts without an event: let the queued job train.
            let (status, _) = http(&addr, "DELETE", long["status_url"].as_str().unwrap(), "text/plain", b"");
            assert!(status.contains("204"), "{status}");
            deleted = true;
        }
    }
    assert!(deleted && heartbeats >= 6, "{heartbeats} heartbeats, {kinds:?}");
    assert_eq!(kinds.first().map(String::as_str), Some("queued"));
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&jobs);
}

#[cfg(unix)]
#[test]
fn a_job_killed_with_the_server_trains_again_after_the_restart() {
    use more_enctrain::upload::MEDIA_TYPE;

    let jobs = std::env::temp_dir().join(format!("more-jobs-restart-binary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&jobs);
    let (mut child, addr) = start_with_jobs(&jobs);
    // A job long enough to be killed while it trains.
    let body = wbc_job(2000, 200);
    let (status, answer) = http(&addr, "POST", "/api/v1/jobs", MEDIA_TYPE, &body);
    assert!(status.contains("202"), "{status}: {answer}");
    let job: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let record = jobs.join(&id).join("job.json");
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&record).unwrap_or_default().contains("\"running\"") {
        assert!(t.elapsed() < std::time::Duration::from_secs(60), "the job never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The restarted server knows the job and trains it again; the stream says so first.
    let (mut child, addr) = start_with_jobs(&jobs);
    let (status, answer) = http(&addr, "GET", &format!("/api/v1/jobs/{id}"), "text/plain", b"");
    assert!(status.contains("200"), "{status}: {answer}");
    let job: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(job["state"] == "queued" || job["state"] == "running", "{job}");
    let mut tcp = TcpStream::connect(&addr).unwrap();
    write!(tcp, "GET /api/v1/jobs/{id}/events HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(tcp);
    let mut first_event = String::new();
    while !first_event.starts_with("event:") {
        first_event.clear();
        assert!(reader.read_line(&mut first_event).unwrap() > 0, "the stream ended");
    }
    assert_eq!(first_event.trim(), "event: resumed");
    // Cancelled, it is gone with its files.
    let (status, _) = http(&addr, "DELETE", &format!("/api/v1/jobs/{id}"), "text/plain", b"");
    assert!(status.contains("204"), "{status}");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&jobs);
}

/// The log names routes by their pattern, never the job ids in their paths (bearer capabilities); and the
/// server speaks HTTP/1.1 only: an HTTP/2 prior-knowledge preface (h2c) gets no HTTP/2 session.
#[cfg(unix)]
#[test]
fn logs_carry_no_capability_ids_and_h2c_is_not_spoken() {
    use more_enctrain::upload::MEDIA_TYPE;

    let jobs = std::env::temp_dir().join(format!("more-jobs-logs-binary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&jobs);
    let log = jobs.with_extension("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_more-server"))
        .args(["--addr", "127.0.0.1:0", "--models", "models", "--log-json", "--jobs-dir"])
        .arg(&jobs)
        .env("RUST_LOG", "more_server=debug,tower_http=debug")
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("more-server listening on http://").expect(&line).trim_end_matches('/');

    let (status, answer) = http(addr, "POST", "/api/v1/jobs", MEDIA_TYPE, &wbc_job(16, 1));
    assert!(status.contains("202"), "{status}: {answer}");
    let id = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["id"].as_str().unwrap().to_string();
    for (method, path) in [
        ("GET", format!("/api/v1/jobs/{id}")),
        ("GET", format!("/api/v1/jobs/{id}/events")),
        ("DELETE", format!("/api/v1/jobs/{id}")),
        ("GET", format!("/api/v1/jobs/{id}")),
    ] {
        http(addr, method, &path, "text/plain", b"");
    }

    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply);
    assert!(
        reply.is_empty() || reply.starts_with(b"HTTP/1.1 4"),
        "an h2c preface got {:?}",
        &reply[..reply.len().min(40)]
    );

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("/api/v1/jobs/{id}"), "requests are logged by their route");
    assert!(!text.contains(&id), "a job id reached the log");
    let _ = std::fs::remove_dir_all(&jobs);
    let _ = std::fs::remove_file(&log);
}
