//! Class challenges end to end: the real `more-server` binary, a challenge created with the teacher's
//! token, solved by `scripts/solve-challenge.mjs` (its own attack code, only the documented endpoints),
//! the teacher's list read back; wrong tokens, oversized and malformed answers refused; the limits hold.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const TOKEN: &str = "test-teacher-token-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The server binary on a free port; killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> (Server, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_more-server"))
        .args(["--addr", "127.0.0.1:0", "--models", "models"])
        .args(extra)
        .env("RUST_LOG", "off")
        .env_remove("MORE_TEACHER_TOKEN")
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr =
        line.trim().strip_prefix("more-server listening on http://").expect(&line).trim_end_matches('/').to_string();
    lines.push(line.clone());
    // Then the memory bound, and the generated teacher token when none was given.
    let more = if extra.contains(&"--teacher-token") { 1 } else { 2 };
    for _ in 0..more {
        line.clear();
        out.read_line(&mut line).unwrap();
        lines.push(line.clone());
    }
    (Server { child, addr }, lines)
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut tcp = TcpStream::connect(addr).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).unwrap();
    let _ = tcp.write_all(body); // the server may answer (413) and close before reading it all
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // Answers here are small: un-chunk if needed.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    Reply { status, body }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn create(addr: &str) -> String {
    let r = http(addr, "POST", "/api/v1/challenges", &[("authorization", &bearer(TOKEN))], b"");
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

fn post_answer(addr: &str, id: &str, body: &serde_json::Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    http(addr, "POST", &format!("/api/v1/challenges/{id}/answers"), &[("content-type", "application/json")], &bytes)
}

#[test]
fn a_script_solves_a_challenge_through_the_api_and_the_teacher_sees_it() {
    let (server, _) = start(&["--teacher-token", TOKEN]);
    let addr = &server.addr;
    let id = create(addr);

    // A wrong answer first (all zeros), recorded as not correct.
    let info = http(addr, "GET", &format!("/api/v1/challenges/{id}"), &[], b"").json();
    let n = info["shape"][0].as_u64().unwrap() * info["shape"][1].as_u64().unwrap();
    let zeros = vec![0.0; n as usize];
    let r = post_answer(addr, &id, &serde_json::json!({"name": "Guesser", "answer": zeros}));
    assert_eq!((r.status, r.json()["correct"].as_bool()), (200, Some(false)), "{}", r.body);

    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(&node)
        .arg(root().join("scripts/solve-challenge.mjs"))
        .args(["--server", &format!("http://{addr}"), "--id", &id, "--name", "Ada <b>Lovelace</b>", "--token", TOKEN])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {node} (Node 18+ is needed for this test): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "the script failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("correct = true"), "{stdout}");
    assert!(stdout.contains("solved: Ada bLovelaceb at "), "the name is sanitised in the list: {stdout}");

    let list =
        http(addr, "GET", &format!("/api/v1/challenges/{id}/answers"), &[("authorization", &bearer(TOKEN))], b"");
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list["answers"].as_array().unwrap().len(), 2);
    assert_eq!(list["solved"].as_array().unwrap().len(), 1);
    // The phrase answer works too, case-insensitively.
    let phrase = list["phrase"].as_str().unwrap().to_lowercase();
    let r = post_answer(addr, &id, &serde_json::json!({"name": "Typist", "phrase": phrase}));
    assert_eq!(r.json()["correct"], true);
    let r = post_answer(addr, &id, &serde_json::json!({"name": "Typist", "phrase": "nope"}));
    assert_eq!(r.json()["correct"], false);
}

#[test]
fn wrong_tokens_and_bad_answers_are_refused() {
    let (server, _) = start(&["--teacher-token", TOKEN]);
    let addr = &server.addr;
    for auth in [None, Some("Bearer wrong-token-0123456789"), Some(&format!("Bearer {TOKEN}x")[..]), Some(TOKEN)] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = http(addr, "POST", "/api/v1/challenges", &headers, b"");
        assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("unauthorized")), "{auth:?}");
    }
    let id = create(addr);
    let r = http(addr, "GET", &format!("/api/v1/challenges/{id}/answers"), &[("authorization", "Bearer nope")], b"");
    assert_eq!(r.status, 401);
    let r = http(addr, "GET", "/api/v1/challenges/nope", &[], b"");
    assert_eq!(r.status, 404);

    let path = format!("/api/v1/challenges/{id}/answers");
    let json = [("content-type", "application/json")];
    // Oversized: refused from Content-Length alone.
    let big = format!("{{\"name\":\"x\",\"answer\":[{}0]}}", "0,".repeat(40_000));
    let r = http(addr, "POST", &path, &json, big.as_bytes());
    assert_eq!(r.status, 413, "{}", r.body);
    for (body, status, code) in [
        (&b"{\"name\":"[..], 400, "malformed"),
        (b"[1,2,3]", 400, "malformed"),
        (b"{\"name\":\"x\",\"answer\":[1,2],\"extra\":1}", 400, "malformed"),
        (b"{\"name\":\"x\",\"answer\":[1,2]}", 422, "wrong_length"),
        (b"{\"name\":\"<>\",\"answer\":[1,2]}", 422, "bad_name"),
        (b"{\"name\":\"x\"}", 422, "bad_answer"),
        (b"{\"name\":\"x\",\"answer\":[\"a\"]}", 400, "malformed"),
    ] {
        let r = http(addr, "POST", &path, &json, body);
        assert_eq!((r.status, r.json()["error"].as_str()), (status, Some(code)), "{}", String::from_utf8_lossy(body));
    }
    let r = http(addr, "POST", &path, &[("content-type", "text/plain")], b"{}");
    assert_eq!(r.status, 415);
    // Per-name bound: 20 answers, then 409.
    for i in 0..21 {
        let r = post_answer(addr, &id, &serde_json::json!({"name": "Repeat", "phrase": "AAAAA"}));
        assert_eq!(r.status, if i < 20 { 200 } else { 409 }, "answer {i}: {}", r.body);
    }
}

#[test]
fn a_generated_token_is_printed_and_the_number_of_challenges_is_bounded() {
    let (server, lines) = start(&["--max-challenges", "2"]);
    let token_line = lines.iter().find(|l| l.starts_with("teacher token")).expect("a token line");
    let token = token_line.trim().rsplit(' ').next().unwrap().to_string();
    assert_eq!(token.len(), 64, "{lines:?}");
    let addr = &server.addr;
    for i in 0..3 {
        let r = http(addr, "POST", "/api/v1/challenges", &[("authorization", &bearer(&token))], b"");
        assert_eq!(r.status, if i < 2 { 201 } else { 409 }, "{}", r.body);
    }
    // A too-short token given on the command line is a startup error.
    let out = Command::new(env!("CARGO_BIN_EXE_more-server"))
        .args(["--addr", "127.0.0.1:0", "--models", "models", "--teacher-token", "short"])
        .env("RUST_LOG", "off")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}
