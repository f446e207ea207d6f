//! `GET /metrics` scraped by a real Prometheus server (Debian's `prometheus` package, installed by
//! `scripts/setup.sh`): the test serves the router on 127.0.0.1, starts Prometheus with a generated config
//! scraping it every second, and queries Prometheus' HTTP API for the server's metrics.
//!
//! The test installs nothing: without a `prometheus` binary (`$PROMETHEUS`, else on `PATH`) it fails with
//! the command that installs one.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use more_core::codec::MEDIA_TYPE;
use more_core::{KeyOptions, SecretKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::*;

struct Prometheus {
    child: Child,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn prometheus_binary() -> PathBuf {
    if let Ok(p) = std::env::var("PROMETHEUS") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "the Prometheus server is not installed: run `scripts/setup.sh ops` (apt-get install prometheus) \
             or set PROMETHEUS=/path/to/prometheus"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on `addr` (HTTP/1.0); status and body.
async fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n").as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head[9..12].parse().unwrap(), head.to_string(), body.to_string())
}

/// The first sample's value of an instant query, if Prometheus has one yet.
async fn query(prom: SocketAddr, q: &str) -> Option<f64> {
    let encoded: String = q
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let Ok(mut s) = tokio::net::TcpStream::connect(prom).await else { return None };
    let req = format!("GET /api/v1/query?query={encoded} HTTP/1.0\r\nHost: {prom}\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.ok()?;
    let body = raw.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    assert_eq!(v["status"], "success", "{q}: {body}");
    v["data"]["result"].get(0)?["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics() {
    let binary = prometheus_binary();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router()).await.unwrap() });

    // Some traffic: health, an inference, an unknown model.
    assert_eq!(get(addr, "/api/v1/health", "").await.0, 200);
    let key = SecretKey::from_seed(5, KeyOptions::default()).unwrap();
    let body = more_core::encode(&key.encrypt_tensor::<f32>(&input(&INPUT, 5).view()).unwrap());
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/models/{ID}/infer HTTP/1.0\r\nHost: {addr}\r\nContent-Type: {MEDIA_TYPE}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    assert!(raw.starts_with(b"HTTP/1.0 200") || raw.starts_with(b"HTTP/1.1 200"));
    assert_eq!(get(addr, "/api/v1/models/nope/infer", "").await.0, 405);

    // The text itself, in both negotiated formats.
    let (status, head, text) = get(addr, "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    for name in [
        "more_http_requests_total{",
        "more_http_request_duration_seconds_bucket{",
        "more_inference_batch_samples_count{model=\"test-cnn-relu\"} 1",
        "more_inference_queue_depth ",
        "more_inference_requests_in_flight ",
        "more_memory_budget_in_use_bytes ",
        "more_models_loaded 1",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let (_, head, _) = get(addr, "/metrics", "Accept: application/openmetrics-text; version=1.0.0\r\n").await;
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{head}");

    let dir = std::env::temp_dir().join(format!("more-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: more\n    \
         static_configs:\n      - targets: ['{addr}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let _prom = Prometheus { child, dir };

    // Wait for a successful scrape (Prometheus starts in a few seconds, then scrapes every second).
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = loop {
        if let Some(v) = query(prom_addr, "up{job=\"more\"}").await {
            break v;
        }
        assert!(Instant::now() < deadline, "Prometheus did not scrape the server within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(up, 1.0, "the scrape failed (up = {up})");
    let models = query(prom_addr, "more_models_loaded").await.expect("more_models_loaded scraped");
    assert_eq!(models, 1.0);
    let inferences = query(
        prom_addr,
        "sum(more_http_requests_total{route=\"/api/v1/models/{id}/infer\",method=\"POST\",status=\"200\"})",
    )
    .await
    .expect("the inference counted");
    assert!(inferences >= 1.0, "{inferences}");
    let passes = query(prom_addr, "sum(more_inference_batch_samples_count)").await.expect("batch histogram");
    assert!(passes >= 1.0, "{passes}");
    let budget = query(prom_addr, "more_memory_budget_bytes").await.expect("budget gauge");
    assert!(budget > 0.0);
}
