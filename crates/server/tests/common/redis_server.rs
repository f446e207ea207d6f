//! A real `redis-server` for the tests of shared state.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a free loopback port, without persistence; killed when dropped.
pub struct RedisServer {
    child: Child,
    /// Its URL (`redis://127.0.0.1:PORT/0`).
    pub url: String,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// Starts one, or `None` (with the reason printed) if `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
            println!("SKIPPED: redis-server is not installed (scripts/setup.sh ops installs it)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Some(Self::start_on(&port.to_string()))
    }

    /// Starts one on this port.
    pub fn start_on(port: &str) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, url: format!("redis://127.0.0.1:{port}/0") }
    }
}
