//! A class of 20 simulated students (`more-class-sim`) through nginx (the reference `deploy/nginx.conf`)
//! in front of two real `more-server` replicas sharing one real `redis-server` (`--state redis://…`),
//! with one replica restarted (SIGTERM, wait, start) when half the students are done. Every student loads
//! the lesson, breaks the challenge and answers it wrong then right, every 5th classifies an MNIST digit
//! under BFV, and each trains a small job on encrypted patients and checks the decrypted model against
//! the same training on plaintext. Fails on any lost request, job, answer (the teacher's list must hold
//! each student's two answers exactly once) or BFV key set. Skipped, with the reason printed, only when
//! `redis-server` or `nginx` is not installed (`scripts/setup.sh ops` installs both).

#![cfg(target_os = "linux")]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use more_class_sim::{Config, Hook};

const TOKEN: &str = "class-test-teacher-token-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn installed(tool: &str, version_flag: &str) -> bool {
    Command::new(tool).arg(version_flag).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /api/v1/health` answers 200 on `port`.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let head = format!("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(head.as_bytes()).is_err() {
        return false;
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw.starts_with(b"HTTP/1.1 200")
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx in the foreground, stopped with SIGTERM when dropped (its master then stops its workers; SIGKILL
/// would leave them running).
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A `more-server` replica on a fixed port with its own jobs directory, on the shared Redis.
struct Replica {
    port: u16,
    redis: String,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Replica {
    fn start(port: u16, redis: &str, dir: &Path) -> Replica {
        let mut r = Replica { port, redis: redis.to_string(), dir: dir.to_path_buf(), proc: None };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("replica-{}.log", self.port)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_more-server"))
            .args(["--addr", &format!("127.0.0.1:{}", self.port), "--models", "models", "--web", "."])
            .args(["--state", &self.redis, "--teacher-token", TOKEN, "--trusted-proxy", "127.0.0.1/32"])
            .arg("--jobs-dir")
            .arg(self.dir.join(format!("jobs-{}", self.port)))
            // One address for the whole class: room for its jobs and its BFV keys.
            .args(["--workers", "1", "--max-jobs", "1", "--max-jobs-per-client", "64", "--bfv-key-memory-mb", "512"])
            .env("RUST_LOG", "more_server=info")
            .current_dir(root())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting more-server");
        self.proc = Some(Proc(child));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !healthy(self.port) {
            assert!(Instant::now() < deadline, "replica {} did not become healthy", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, wait for the exit (killed after 30 s), start again and wait for health: what happened.
    fn restart(&mut self) -> String {
        let mut proc = self.proc.take().expect("running");
        let t0 = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &proc.0.id().to_string()]).status();
        let status = loop {
            if let Some(status) = proc.0.try_wait().unwrap() {
                break status.to_string();
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = proc.0.kill();
                break format!("still running 30 s after SIGTERM, killed ({})", proc.0.wait().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stopped = t0.elapsed();
        drop(proc);
        self.spawn();
        format!(
            "restarted 127.0.0.1:{}: SIGTERM -> {status} in {:.2} s, healthy again in {:.2} s",
            self.port,
            stopped.as_secs_f64(),
            (t0.elapsed() - stopped).as_secs_f64()
        )
    }
}

/// The reference nginx config with this run's listen port and upstreams.
fn nginx_config(listen: u16, upstreams: [u16; 2]) -> String {
    let reference = std::fs::read_to_string(root().join("deploy/nginx.conf")).unwrap();
    let config = reference
        .replace("listen 127.0.0.1:8080;", &format!("listen 127.0.0.1:{listen};"))
        .replace("server 127.0.0.1:8081 ", &format!("server 127.0.0.1:{} ", upstreams[0]))
        .replace("server 127.0.0.1:8082 ", &format!("server 127.0.0.1:{} ", upstreams[1]));
    assert_eq!(config.matches(&format!("127.0.0.1:{}", upstreams[1])).count(), 1, "deploy/nginx.conf changed");
    config
}

#[test]
fn a_class_of_20_through_nginx_and_two_replicas_with_a_restart_loses_nothing() {
    for (tool, flag) in [("redis-server", "--version"), ("nginx", "-v")] {
        if !installed(tool, flag) {
            println!("SKIPPED: {tool} is not installed (scripts/setup.sh ops installs it)");
            return;
        }
    }
    let t0 = Instant::now();
    let dir = std::env::temp_dir().join(format!("more-class-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lb/tmp")).unwrap();

    let redis_port = free_port();
    let _redis = Proc(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server"),
    );
    wait_listening(redis_port, "redis-server");
    let redis = format!("redis://127.0.0.1:{redis_port}/0");

    let (a, b, lb) = (free_port(), free_port(), free_port());
    let first = Arc::new(Mutex::new(Replica::start(a, &redis, &dir)));
    let _second = Replica::start(b, &redis, &dir);

    let prefix = dir.join("lb");
    std::fs::write(prefix.join("nginx.conf"), nginx_config(lb, [a, b])).unwrap();
    let _nginx = Nginx(
        Command::new("nginx")
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-p")
            .arg(format!("{}/", prefix.display()))
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx"),
    );
    wait_listening(lb, "nginx");
    let setup = t0.elapsed();

    let restart: Hook = {
        let first = Arc::clone(&first);
        Box::new(move || first.lock().unwrap().restart())
    };
    let config = Config {
        students: 20,
        concurrency: 4,
        bfv_every: 5,
        patients: 40,
        epochs: 5,
        ..Config::new(&format!("http://127.0.0.1:{lb}"), TOKEN)
    };
    let report = more_class_sim::run(&config, Some(restart)).expect("the class starts");
    print!("{}", report.table());
    println!("setup {:.1} s, total {:.1} s", setup.as_secs_f64(), t0.elapsed().as_secs_f64());

    let halfway = report.halfway.as_ref().expect("the replica was restarted half-way");
    assert!(halfway.note.contains("exit status: 0") && halfway.note.contains("healthy again"), "{}", halfway.note);
    assert!(report.routes["GET /web/learn.html"].count >= 20);
    let problems = report.problems();
    assert!(problems.is_empty(), "lost: {} (the table above has the details)", problems.join("; "));
    let _ = std::fs::remove_dir_all(&dir);
}
