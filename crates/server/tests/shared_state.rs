//! Shared state in Redis (`--state redis://…`): two server states on one real `redis-server` behave as
//! one server for class challenges and BFV keys, a new state on the same Redis (a restart) keeps them, and
//! a stopped Redis is answered 503 `state_unavailable` until it is back; the key store's cap, per-client
//! share and TTL hold across replicas. Skipped, with the reason printed, only when `redis-server` is not
//! installed (`scripts/setup.sh ops` installs it; CI has it).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL};
use more_bfv::wire::{decode_ciphertexts, encode_ciphertexts, encode_keys};
use more_bfv::{BfvModel, Client};
use more_server::bfv::{BfvLimits, BfvService, KEY_MEMORY_PER_BYTE};
use more_server::state_store::Redis;
use more_server::{ChallengeLimits, EngineConfig, Limits, TeacherToken, app};

use common::redis_server::RedisServer;
use common::{Reply, request};

const TOKEN: &str = "test-teacher-token-0123456789";
const OCTETS: &str = "application/octet-stream";

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-bfv-square.bfv.json")
}

/// A server (state and router on a loopback port) whose challenges and keys live in Redis at `url`.
async fn replica(url: &str) -> SocketAddr {
    replica_with(url, BfvLimits::default()).await
}

/// A server on Redis at `url` with these BFV limits.
async fn replica_with(url: &str, bfv: BfvLimits) -> SocketAddr {
    let redis = Redis::connect(url).await.unwrap();
    let service = BfvService::new(vec![BfvModel::load(model_path()).unwrap()], bfv).unwrap();
    let limits = ChallengeLimits { max_challenges: 2, max_answers_per_name: 3, ..ChallengeLimits::default() };
    let state = common::state_with(EngineConfig { workers: 1, queue: 8, ..EngineConfig::default() }, Limits::default())
        .with_shared_state(redis)
        .with_bfv(service)
        .with_challenges(TeacherToken::new(TOKEN).unwrap(), limits);
    // The bound counts this replica's cache of parsed keys, not the key store in Redis.
    assert_eq!(state.memory_bound().bfv, state.bfv().unwrap().memory_bound());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    addr
}

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON: {} {:?}", r.head, r.body))
}

/// One request with the teacher's token.
async fn teacher(addr: SocketAddr, method: &str, path: &str) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n")
        + &format!("Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    Reply { status: head[9..12].parse().unwrap(), head, body: raw[split + 4..].to_vec() }
}

async fn answer(addr: SocketAddr, id: &str, body: serde_json::Value) -> Reply {
    let path = format!("/api/v1/challenges/{id}/answers");
    request(addr, "POST", &path, Some("application/json"), &serde_json::to_vec(&body).unwrap(), None).await
}

fn infer_path(key_id: &str) -> String {
    format!("/api/v1/bfv/models/mnist-bfv-square/infer?key_id={key_id}")
}

/// Bytes Redis uses for a key (`MEMORY USAGE`, samples every element).
async fn usage(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query_async(&mut c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_challenges_and_bfv_keys_through_redis() {
    let Some(server) = RedisServer::start() else { return };
    let url = server.url.clone();
    let t0 = Instant::now();
    let (a, b) = (replica(&url).await, replica(&url).await);

    // A challenge created on A is read and answered on B, and listed on A with each answer once.
    let created = teacher(a, "POST", "/api/v1/challenges").await;
    assert_eq!(created.status, 201, "{}", created.head);
    let id = json(&created)["id"].as_str().unwrap().to_string();
    let info = request(b, "GET", &format!("/api/v1/challenges/{id}"), None, b"", None).await;
    assert_eq!(info.status, 200, "{}", info.head);
    assert_eq!(json(&info)["shape"], serde_json::json!([18, 62]));
    let ct_a = request(a, "GET", &format!("/api/v1/challenges/{id}/ciphertext"), None, b"", None).await;
    let ct_b = request(b, "GET", &format!("/api/v1/challenges/{id}/ciphertext"), None, b"", None).await;
    assert_eq!((ct_a.status, ct_b.status), (200, 200));
    assert_eq!(ct_a.body, ct_b.body);
    let r = answer(b, &id, serde_json::json!({"name": "Ada", "answer": vec![0.0; 18 * 62]})).await;
    assert_eq!((r.status, json(&r)["correct"].as_bool()), (200, Some(false)), "{}", r.head);
    let phrase = json(&teacher(a, "GET", &format!("/api/v1/challenges/{id}/answers")).await)["phrase"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let r = answer(b, &id, serde_json::json!({"name": "Ada", "phrase": phrase})).await;
    assert_eq!(json(&r)["correct"], true, "{}", r.head);
    let list = teacher(a, "GET", &format!("/api/v1/challenges/{id}/answers")).await;
    assert_eq!(list.status, 200);
    let list = json(&list);
    let answers = list["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "{list}");
    assert_eq!((answers[0]["correct"].as_bool(), answers[1]["correct"].as_bool()), (Some(false), Some(true)));
    assert_eq!(answers[1]["kind"], "phrase");
    assert_eq!(list["solved"].as_array().unwrap().len(), 1);
    assert_eq!(list["solved"][0]["name"], "Ada");
    // The per-name bound (3 here) counts answers on every replica: Ada's third goes, her fourth is refused.
    assert_eq!(answer(a, &id, serde_json::json!({"name": "Ada", "phrase": "x"})).await.status, 200);
    let r = answer(b, &id, serde_json::json!({"name": "Ada", "phrase": "x"})).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (409, Some("limit_reached")));
    // --max-challenges (2 here) holds across replicas: one more on B, then the third is refused on A.
    assert_eq!(teacher(b, "POST", "/api/v1/challenges").await.status, 201);
    let r = teacher(a, "POST", "/api/v1/challenges").await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (409, Some("limit_reached")), "{}", r.head);
    let challenge_bytes = usage(&url, &format!("more:challenge:{id}")).await;

    // BFV keys uploaded to A evaluate on B; deleted on B, they are unknown on A (which had parsed them).
    let mut rng = rand::rng();
    let client = Client::new(&mut rng);
    let keys = encode_keys(&client.eval_keys(&mut rng).unwrap());
    let x: Vec<i64> = (0..784usize).map(|i| if (i % 28).abs_diff(i / 28) < 3 { 12 } else { 0 }).collect();
    let input = encode_ciphertexts(&client.encrypt(&x, &mut rng).unwrap(), INPUT_LEVEL);
    let expected = BfvModel::load(model_path()).unwrap().network.forward(&x).0;
    let upload = |addr| request(addr, "POST", "/api/v1/bfv/keys", Some(OCTETS), &keys, None);
    let r = upload(a).await;
    assert_eq!(r.status, 201, "{}", r.head);
    let key_id = json(&r)["key_id"].as_str().unwrap().to_string();
    let key_bytes = usage(&url, &format!("more:bfv:key:{key_id}")).await;
    println!("redis: key set of {} B takes {key_bytes} B", keys.len());
    let started = Instant::now();
    let r = request(b, "POST", &infer_path(&key_id), Some(OCTETS), &input, None).await;
    let miss = started.elapsed();
    assert_eq!(r.status, 200, "{} {}", r.head, String::from_utf8_lossy(&r.body));
    assert_eq!(client.decrypt(&decode_ciphertexts(&r.body, 3, OUTPUT_LEVEL).unwrap(), 10).unwrap(), expected);
    let started = Instant::now();
    let r = request(b, "POST", &infer_path(&key_id), Some(OCTETS), &input, None).await;
    let hit = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.head);
    println!("evaluation on B: {miss:?} with the keys fetched and parsed, {hit:?} with them cached");
    assert_eq!(request(a, "POST", &infer_path(&key_id), Some(OCTETS), &input, None).await.status, 200);
    let r = request(b, "DELETE", &format!("/api/v1/bfv/keys/{key_id}"), None, b"", None).await;
    assert_eq!(r.status, 204);
    let r = request(a, "POST", &infer_path(&key_id), Some(OCTETS), &input, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_key")), "{}", r.head);
    let r = request(a, "DELETE", &format!("/api/v1/bfv/keys/{key_id}"), None, b"", None).await;
    assert_eq!(r.status, 404);

    // A restart: a new state on the same Redis keeps the challenges, their answers and the keys.
    let kept = json(&upload(a).await)["key_id"].as_str().unwrap().to_string();
    let c = replica(&url).await;
    let list = json(&teacher(c, "GET", &format!("/api/v1/challenges/{id}/answers")).await);
    assert_eq!(list["answers"].as_array().unwrap().len(), 3, "{list}");
    let r = request(c, "POST", &infer_path(&kept), Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(client.decrypt(&decode_ciphertexts(&r.body, 3, OUTPUT_LEVEL).unwrap(), 10).unwrap(), expected);

    // What an answer takes in Redis: 20 more, under 20 names (an entry of the list and of the name counts).
    let before = usage(&url, &format!("more:challenge:{id}:answers")).await
        + usage(&url, &format!("more:challenge:{id}:names")).await;
    for i in 0..20 {
        let r = answer(c, &id, serde_json::json!({"name": format!("Student {i:02}"), "phrase": "ABCDE"})).await;
        assert_eq!(r.status, 200);
    }
    let after = usage(&url, &format!("more:challenge:{id}:answers")).await
        + usage(&url, &format!("more:challenge:{id}:names")).await;
    println!(
        "redis: challenge {challenge_bytes} B (ciphertext {} B), {} B per answer",
        ct_a.body.len(),
        (after - before) / 20
    );

    // Redis stopped: what needs it is answered 503 state_unavailable (JSON, Retry-After); the rest works.
    drop(server);
    let started = Instant::now();
    for (addr, method, path) in [
        (b, "GET", format!("/api/v1/challenges/{id}")),
        (c, "GET", format!("/api/v1/challenges/{id}/ciphertext")),
        (b, "DELETE", format!("/api/v1/bfv/keys/{kept}")),
    ] {
        let r = request(addr, method, &path, None, b"", None).await;
        assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("state_unavailable")), "{path}: {}", r.head);
        assert!(r.head.to_ascii_lowercase().contains("retry-after: 1"), "{}", r.head);
    }
    let r = teacher(a, "POST", "/api/v1/challenges").await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("state_unavailable")), "{}", r.head);
    let r = answer(a, &id, serde_json::json!({"name": "Bo", "phrase": "x"})).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("state_unavailable")), "{}", r.head);
    let r = request(c, "POST", &infer_path(&kept), Some(OCTETS), &input, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("state_unavailable")), "{}", r.head);
    let r = upload(b).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("state_unavailable")), "{}", r.head);
    println!("with Redis stopped, 7 requests answered 503 in {:?}", started.elapsed());
    assert_eq!(request(a, "GET", "/api/v1/health", None, b"", None).await.status, 200);

    // Redis back (empty, on the same port): the replicas reconnect on their own and answer from it again.
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    let _again = RedisServer::start_on(&port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(b, "GET", &format!("/api/v1/challenges/{id}"), None, b"", None).await;
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.head);
        assert!(Instant::now() < deadline, "no reconnection within 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(teacher(b, "POST", "/api/v1/challenges").await.status, 201);
    println!("total {:?}", t0.elapsed());
}

/// Whether Redis holds the key set `id`.
async fn held(url: &str, id: &str) -> bool {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("EXISTS").arg(format!("more:bfv:key:{id}")).query_async(&mut c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_stores_cap_share_and_ttl_hold_across_replicas() {
    let Some(server) = RedisServer::start() else { return };
    let url = server.url.clone();
    let mut rng = rand::rng();
    let client = Client::new(&mut rng);
    let keys = encode_keys(&client.eval_keys(&mut rng).unwrap());
    let x: Vec<i64> = (0..784usize).map(|i| if i % 29 == 0 { 9 } else { 0 }).collect();
    let input = encode_ciphertexts(&client.encrypt(&x, &mut rng).unwrap(), INPUT_LEVEL);
    let cost = keys.len() * KEY_MEMORY_PER_BYTE;
    let upload = |addr| request(addr, "POST", "/api/v1/bfv/keys", Some(OCTETS), &keys, None);
    let id_of = |r: &Reply| json(r)["key_id"].as_str().unwrap_or_else(|| panic!("{}", r.head)).to_string();

    // A share of one set per client (every request here comes from the same client): an upload through B
    // replaces the set uploaded through A.
    let limits = BfvLimits { key_memory: 4 * cost + 1000, client_share: cost + 500, ..BfvLimits::default() };
    let (a, b) = (replica_with(&url, limits).await, replica_with(&url, limits).await);
    let first = id_of(&upload(a).await);
    let second = id_of(&upload(b).await);
    assert!(!held(&url, &first).await && held(&url, &second).await, "the older set is replaced");
    let r = request(a, "POST", &infer_path(&first), Some(OCTETS), &input, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_key")));
    assert_eq!(request(b, "DELETE", &format!("/api/v1/bfv/keys/{second}"), None, b"", None).await.status, 204);

    // A cap of two sets in all, no share, a TTL of eight seconds: the third upload, on either replica, is
    // refused; a successful evaluation keeps a set alive, an unused one expires and frees its room.
    let ttl = Duration::from_secs(8);
    let limits =
        BfvLimits { key_memory: 2 * cost + 1000, client_share: usize::MAX, key_ttl: ttl, ..BfvLimits::default() };
    let (a, b) = (replica_with(&url, limits).await, replica_with(&url, limits).await);
    let used = id_of(&upload(a).await);
    let unused = id_of(&upload(b).await);
    let unused_at = Instant::now();
    let r = upload(a).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("key_store_full")), "{}", r.head);
    assert_eq!(upload(b).await.status, 503);
    // Used through B a second later (it then lives `ttl` from the end of the evaluation, at least a second
    // longer than `unused`, however slow the evaluation is).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = request(b, "POST", &infer_path(&used), Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 200, "{}", r.head);
    // Past the unused set's expiry (and the used one's, had the evaluation not restarted its TTL).
    tokio::time::sleep((unused_at + ttl + Duration::from_millis(400)).saturating_duration_since(Instant::now())).await;
    assert!(held(&url, &used).await, "refreshed by the evaluation");
    assert!(!held(&url, &unused).await, "expired");
    let r = request(a, "POST", &infer_path(&unused), Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(upload(a).await.status, 201, "the expired set's room is free again");
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/0");
    assert!(Redis::connect(&url).await.is_err());
    let out = Command::new(env!("CARGO_BIN_EXE_more-server"))
        .args(["--addr", "127.0.0.1:0", "--models", "models", "--state", &url, "--no-training"])
        .env("RUST_LOG", "off")
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("more-server: error: --state {url}: cannot connect: ")), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(more_server::state_store::StateUrl::parse("http://x").is_err());
    assert_eq!(more_server::state_store::StateUrl::parse("memory"), Ok(more_server::state_store::StateUrl::Embedded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_creates_nothing_twice_on_either_replica() {
    let Some(server) = RedisServer::start() else { return };
    let url = server.url.clone();
    let (a, b) = (replica(&url).await, replica(&url).await);
    let auth = format!("Bearer {TOKEN}");
    let replayed = |r: &Reply| r.head.to_ascii_lowercase().contains("idempotent-replayed: true");

    // A challenge created through A and retried through B (as nginx does when A fails): one challenge.
    let create = |addr, key: &'static str| {
        let auth = auth.clone();
        async move {
            let headers = [("Authorization", auth.as_str()), ("Idempotency-Key", key)];
            common::request_with(addr, "POST", "/api/v1/challenges", None, b"", None, &headers).await
        }
    };
    let first = create(a, "challenge-1").await;
    let retry = create(b, "challenge-1").await;
    assert_eq!((first.status, retry.status), (201, 201), "{}", retry.head);
    assert!(!replayed(&first) && replayed(&retry), "{}", retry.head);
    let id = json(&first)["id"].as_str().unwrap().to_string();
    assert_eq!(json(&retry)["id"], id);
    // The bound is two challenges: the retry took no place.
    assert_eq!(create(a, "challenge-2").await.status, 201);
    assert_eq!(create(b, "challenge-3").await.status, 409);

    // An answer posted through A and retried through B is recorded once.
    let path = format!("/api/v1/challenges/{id}/answers");
    let body = serde_json::to_vec(&serde_json::json!({"name": "Ada", "phrase": "NOT IT"})).unwrap();
    for addr in [a, b] {
        let headers = [("Idempotency-Key", "answer-1")];
        let r = common::request_with(addr, "POST", &path, Some("application/json"), &body, None, &headers).await;
        assert_eq!(r.status, 200, "{}", r.head);
    }
    let list = json(&teacher(b, "GET", &format!("/api/v1/challenges/{id}/answers")).await);
    assert_eq!(list["answers"].as_array().unwrap().len(), 1, "{list}");

    // A BFV key set uploaded through A and retried through B: one set, one id.
    let mut rng = rand::rng();
    let keys = encode_keys(&Client::new(&mut rng).eval_keys(&mut rng).unwrap());
    let mut ids = Vec::new();
    for addr in [a, b] {
        let headers = [("Idempotency-Key", "keys-1")];
        let r = common::request_with(addr, "POST", "/api/v1/bfv/keys", Some(OCTETS), &keys, None, &headers).await;
        assert_eq!(r.status, 201, "{}", r.head);
        ids.push(json(&r)["key_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let sets: Vec<String> = redis::cmd("KEYS").arg("more:bfv:key:*").query_async(&mut c).await.unwrap();
    assert_eq!(sets.len(), 1, "{sets:?}");

    // A key that is not a short visible ASCII token is refused before anything runs.
    let long = "k".repeat(200);
    for bad in ["has space", long.as_str()] {
        let headers = [("Idempotency-Key", bad)];
        let r = common::request_with(a, "POST", &path, Some("application/json"), &body, None, &headers).await;
        assert_eq!((r.status, json(&r)["error"].as_str()), (400, Some("bad_idempotency_key")), "{}", r.head);
    }
}
