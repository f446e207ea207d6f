//! The memory bound holds at any worker count: the real `more-server` binary with 8 inference workers and
//! a 64 MiB budget, loaded over TCP with encrypted 128x128 angiogram frames (batches of 1 and 4 from 48
//! concurrent clients), keeps its peak resident set (`VmHWM`) below the bound it prints at start.
//!
//! Without the forward pass's memory in the budget, 8 workers each running a merged batch of 8 frames
//! would hold about 220 MB of im2col buffers and activations outside it; the bound here is about 165 MB
//! (110 MB for inference plus the BFV model's resident tables and a 1 MiB key store).

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use more_core::codec::MEDIA_TYPE;
use more_core::{KeyOptions, SecretKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Kills the server if the test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmHWM` (peak resident set) of a process, in bytes.
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .expect("VmHWM in /proc/PID/status");
    kb << 10
}

/// Encrypted random 128x128 frames, `n` per body.
fn frames(seed: u64, n: usize) -> Vec<u8> {
    let key = SecretKey::from_seed(seed, KeyOptions::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[n, 1, 128, 128]), |_| rng.random_range(0f32..1.0));
    more_core::encode(&key.encrypt_tensor::<f32>(&x.view()).unwrap())
}

/// One POST on a fresh connection; the status code.
async fn post(addr: &str, path: &str, body: &[u8]) -> u16 {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return 0 };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {MEDIA_TYPE}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // A refused request (503) is answered before its body is read and the connection closed: the write
    // may fail, the answer is still there to read.
    if s.write_all(head.as_bytes()).await.is_ok() {
        let _ = s.write_all(body).await;
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    std::str::from_utf8(raw.get(9..12).unwrap_or(b"000")).unwrap_or("0").parse().unwrap_or(0)
}

async fn get(addr: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_rss_stays_below_the_printed_bound_with_8_workers_under_angiogram_load() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_more-server"))
        .args(["--addr", "127.0.0.1:0", "--models", "models", "--workers", "8", "--memory-budget-mb", "64"])
        // Training off and a 1 MiB BFV key store, so the bound counts only what this load can use (the BFV
        // model's resident tables stay in it, and in the measured peak).
        .args(["--no-training", "--bfv-key-memory-mb", "1"])
        .args(["--max-connections", "128", "--max-batch-samples", "8", "--timeout-ms", "30000"])
        .env("RUST_LOG", "off")
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let server = Server(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("more-server listening on http://").expect(&line).trim_end_matches('/');
    let addr = addr.to_string();
    line.clear();
    out.read_line(&mut line).unwrap();
    // "more-server memory bound: 110.4 MiB = models ... + budget 64.0"
    let mib: f64 = line
        .strip_prefix("more-server memory bound: ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no bound printed: {line:?}"));
    let bound = (mib * (1 << 20) as f64) as usize;
    let health = get(&addr, "/api/v1/health").await;
    let reported: usize = health
        .split("\"bound_bytes\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no bound in /api/v1/health: {health}"));
    assert!(reported.abs_diff(bound) < 1 << 20, "printed {bound}, health {reported}");
    let idle = peak_rss(server.0.id());

    let bodies = Arc::new([frames(1, 1), frames(2, 4)]);
    let counts: Arc<[AtomicUsize; 4]> = Arc::new(Default::default()); // 200, 503, 429, other
    let deadline = Instant::now() + Duration::from_secs(8);
    let path = "/api/v1/models/angio-cnn/infer";
    let clients: Vec<_> = (0..48)
        .map(|i| {
            let (addr, bodies, counts) = (addr.clone(), Arc::clone(&bodies), Arc::clone(&counts));
            tokio::spawn(async move {
                let mut k = i;
                while Instant::now() < deadline {
                    let status = post(&addr, path, &bodies[k % 2]).await;
                    let slot = match status {
                        200 => 0,
                        503 => 1,
                        429 => 2,
                        _ => 3,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                    if slot != 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    k += 1;
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let peak = peak_rss(server.0.id());
    let [ok, busy, full, other] = [0, 1, 2, 3].map(|i| counts[i].load(Ordering::Relaxed));
    let mb = |b: usize| b as f64 / (1 << 20) as f64;
    eprintln!(
        "8 workers, angio-cnn: {ok} answered, {busy} 503, {full} 429, {other} other; VmHWM idle {:.1} MiB, \
         under load {:.1} MiB; bound {:.1} MiB",
        mb(idle),
        mb(peak),
        mb(bound)
    );
    assert_eq!(other, 0, "only 200, 503 and 429 are expected");
    assert!(ok >= 20, "the server must keep answering under load ({ok} answers)");
    assert!(peak <= bound, "peak RSS {:.1} MiB exceeds the printed bound {:.1} MiB", mb(peak), mb(bound));
    drop(server);
}
