//! Batched BFV inference over a real TCP socket with the shipped model: a batch key uploaded to the same
//! key store, a batch of images submitted as a job, its progress polled, its result decrypted equal to the
//! integer network on every image; keys of the wrong kind, hostile messages, a full queue and a stopped
//! batch answered with clear errors, after which the server still works.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use more_bfv::wire::{BATCH_MAGIC, MAX_BATCH_BYTES, decode_batch_result, encode_batch, encode_batch_keys, encode_keys};
use more_bfv::{BfvModel, Client};
use more_server::bfv::{BfvLimits, BfvService};
use more_server::{EngineConfig, Limits};

use common::redis_server::RedisServer;
use common::{Reply, request};
use rand::{Rng, SeedableRng};

const OCTETS: &str = "application/octet-stream";

/// The shipped model pruned to its first `live` hidden values (the dense weights of the others zeroed):
/// the batch evaluation skips what no logit reads, so the tests of the server's plumbing take seconds, not
/// the 1,960 ciphertext products of the whole network (`crates/bfv/tests/batch.rs` runs those).
fn pruned(live: usize) -> BfvModel {
    pruned_file("mnist-bfv-square.bfv.json", live)
}

/// The bundled model `file` pruned to its first `live` hidden values, as [`pruned`].
fn pruned_file(file: &str, live: usize) -> BfvModel {
    let mut m = BfvModel::load(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models").join(file)).unwrap();
    let hidden = more_bfv::network::HIDDEN;
    for (i, w) in m.network.dense_weight.iter_mut().enumerate() {
        if i % hidden >= live {
            *w = 0;
        }
    }
    m
}

/// The model most tests serve: 98 of the 1,960 hidden values.
fn model() -> BfvModel {
    pruned(98)
}

async fn serve(limits: BfvLimits) -> SocketAddr {
    serve_on(limits, None).await
}

/// A server; with `redis`, a replica whose shared state (keys, batch records) lives there.
async fn serve_on(limits: BfvLimits, redis: Option<&str>) -> SocketAddr {
    serve_model(model(), limits, redis).await
}

async fn serve_model(model: BfvModel, limits: BfvLimits, redis: Option<&str>) -> SocketAddr {
    let service = BfvService::new(vec![model], limits).unwrap();
    let mut state =
        common::state_with(EngineConfig { workers: 1, queue: 8, ..EngineConfig::default() }, Limits::default())
            .with_bfv(service);
    if let Some(url) = redis {
        state = state.with_shared_state(more_server::state_store::Redis::connect(url).await.unwrap());
    }
    // The batches' messages and decoded ciphertexts are part of the printed bound.
    if limits.batches > 0 {
        assert!(state.memory_bound().bfv >= 4 * MAX_BATCH_BYTES, "{}", state.memory_bound());
    }
    common::listen(state).await
}

fn json(r: &Reply) -> serde_json::Value {
    common::reply_json(r)
}

async fn upload_keys(addr: SocketAddr, keys: &[u8]) -> String {
    let r = request(addr, "POST", "/api/v1/bfv/keys", Some(OCTETS), keys, None).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    json(&r)["key_id"].as_str().unwrap().to_string()
}

async fn submit(addr: SocketAddr, key_id: &str, body: &[u8]) -> Reply {
    submit_to(addr, "mnist-bfv-square", key_id, body).await
}

async fn submit_to(addr: SocketAddr, model: &str, key_id: &str, body: &[u8]) -> Reply {
    let path = format!("/api/v1/bfv/models/{model}/batches?key_id={key_id}");
    request(addr, "POST", &path, Some(OCTETS), body, None).await
}

/// Polls batch `id` until it is done (at most five minutes); its last status.
async fn finished(addr: SocketAddr, id: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let st = status(addr, id).await;
        match st["state"].as_str().unwrap() {
            "queued" | "running" => {}
            "done" => return st,
            other => panic!("batch {other}: {st}"),
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the batch did not finish: {st}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Digit-like images: a bright stroke on a dark background.
fn images(n: usize, seed: u64) -> Vec<Vec<i64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (a, b) = (rng.random_range(0..28usize), rng.random_range(1..4usize));
            (0..784usize).map(|i| if (i % 28).abs_diff(a) < b { rng.random_range(8..=15) } else { 0 }).collect()
        })
        .collect()
}

async fn status(addr: SocketAddr, id: &str) -> serde_json::Value {
    let r = request(addr, "GET", &format!("/api/v1/bfv/batches/{id}"), None, b"", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_through_the_server_equals_the_integer_network() {
    let addr = serve(BfvLimits { batch_threads: 2, ..BfvLimits::default() }).await;
    let list = json(&request(addr, "GET", "/api/v1/models", None, b"", None).await);
    let entry = list["models"].as_array().unwrap().iter().find(|m| m["scheme"] == "bfv").unwrap();
    assert_eq!(entry["batches_url"], "/api/v1/bfv/models/mnist-bfv-square/batches");
    assert_eq!(entry["batch_slots"], 8192);

    let client = Client::from_seed([5; 32]);
    let mut rng = rand::rng();
    let key_id = upload_keys(addr, &encode_batch_keys(&client.batch_keys(&mut rng).unwrap())).await;
    let xs = images(25, 1);
    let body = encode_batch(&client.encrypt_batch(&xs, &mut rng).unwrap(), xs.len());

    // Keys of the other kind are refused on both paths.
    let single_id = upload_keys(addr, &encode_keys(&client.eval_keys(&mut rng).unwrap())).await;
    let r = submit(addr, &single_id, &body).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (422, Some("wrong_keys")));
    let path = format!("/api/v1/bfv/models/mnist-bfv-square/infer?key_id={key_id}");
    let r = request(addr, "POST", &path, Some(OCTETS), b"whatever", None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (422, Some("wrong_keys")));

    let r = submit(addr, &key_id, &body).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let accepted = json(&r);
    let id = accepted["batch_id"].as_str().unwrap().to_string();
    assert!(r.head.to_ascii_lowercase().contains(&format!("location: /api/v1/bfv/batches/{id}")));
    assert_eq!((accepted["images"].as_u64(), accepted["total"].as_u64()), (Some(25), Some(1960)));
    // The result is refused until the batch is done; progress only grows.
    let early = request(addr, "GET", &format!("/api/v1/bfv/batches/{id}/result"), None, b"", None).await;
    assert_eq!((early.status, json(&early)["error"].as_str()), (409, Some("batch_not_done")));
    let started = Instant::now();
    let mut last = 0;
    let final_status = loop {
        let st = status(addr, &id).await;
        let done = st["done"].as_u64().unwrap();
        assert!(done >= last, "progress went back: {st}");
        last = done;
        match st["state"].as_str().unwrap() {
            "queued" | "running" => {}
            "done" => break st,
            other => panic!("batch {other}: {st}"),
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the batch did not finish: {st}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(final_status["done"], 1960);
    assert!(final_status["compute_s"].as_f64().unwrap() > 0.0);
    let r = request(addr, "GET", &format!("/api/v1/bfv/batches/{id}/result"), None, b"", None).await;
    assert_eq!(r.status, 200);
    let (count, out) = decode_batch_result(&r.body, 10).unwrap();
    let net = model().network;
    let expect: Vec<Vec<i64>> = xs.iter().map(|x| net.forward(x).0).collect();
    assert_eq!(client.decrypt_batch(&out, 10, count).unwrap(), expect);

    // Deleted: gone.
    let r = request(addr, "DELETE", &format!("/api/v1/bfv/batches/{id}"), None, b"", None).await;
    assert_eq!(r.status, 204);
    let r = request(addr, "GET", &format!("/api/v1/bfv/batches/{id}"), None, b"", None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_batch")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_batches_a_full_queue_and_a_stopped_batch() {
    // The whole network: a batch runs for tens of seconds on one thread, so a stop is seen as one.
    let addr =
        serve_model(pruned(1960), BfvLimits { batches: 1, batch_threads: 1, ..BfvLimits::default() }, None).await;
    let client = Client::from_seed([6; 32]);
    let mut rng = rand::rng();
    let key_id = upload_keys(addr, &encode_batch_keys(&client.batch_keys(&mut rng).unwrap())).await;
    let xs = images(3, 2);
    let good = encode_batch(&client.encrypt_batch(&xs, &mut rng).unwrap(), xs.len());

    // Refused before anything waits: the path, the query, the media type, the size, the header.
    let path = "/api/v1/bfv/models/nope/batches?key_id=x";
    let r = request(addr, "POST", path, Some(OCTETS), &good, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_model")));
    let r = request(addr, "POST", "/api/v1/bfv/models/mnist-bfv-square/batches", Some(OCTETS), &good, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (400, Some("missing_key_id")));
    let r = submit(addr, "0123", &good).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_key")));
    let path = format!("/api/v1/bfv/models/mnist-bfv-square/batches?key_id={key_id}");
    let r = request(addr, "POST", &path, Some("application/json"), &good, None).await;
    assert_eq!(r.status, 415);
    let r = request(addr, "POST", &path, Some(OCTETS), b"", Some(MAX_BATCH_BYTES + 1)).await;
    assert_eq!(r.status, 413);
    let mut hostile: Vec<Vec<u8>> = vec![Vec::new(), b"MBFVBAT1".to_vec(), good[..20].to_vec()];
    let mut rng_bytes = rand::rngs::StdRng::seed_from_u64(3);
    hostile.extend((0..20).map(|_| (0..rng_bytes.random_range(0..4096)).map(|_| rng_bytes.random::<u8>()).collect()));
    for images in [0u16, 8193] {
        let mut b = good.clone();
        b[17..19].copy_from_slice(&images.to_le_bytes());
        hostile.push(b);
    }
    let mut wrong_count = good.clone();
    wrong_count[19..21].copy_from_slice(&10u16.to_le_bytes());
    hostile.push(wrong_count);
    for body in &hostile {
        let r = submit(addr, &key_id, body).await;
        assert!(
            matches!(r.status, 400 | 422),
            "{} for {} bytes: {}",
            r.status,
            body.len(),
            String::from_utf8_lossy(&r.body)
        );
    }

    // A valid header over broken ciphertexts is accepted, then fails with the decoder's error.
    let mut broken = good[..21].to_vec();
    broken.extend(std::iter::repeat_n([4u8, 0, 0, 0, 1, 2, 3, 4], 784).flatten());
    assert!(broken.starts_with(BATCH_MAGIC));
    let r = submit(addr, &key_id, &broken).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let failed = json(&r)["batch_id"].as_str().unwrap().to_string();
    let st = loop {
        let st = status(addr, &failed).await;
        if st["state"] != "queued" && st["state"] != "running" {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((st["state"].as_str(), st["error"]["code"].as_str()), (Some("failed"), Some("invalid_bfv")), "{st}");
    let r = request(addr, "GET", &format!("/api/v1/bfv/batches/{failed}/result"), None, b"", None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (422, Some("invalid_bfv")));

    // One batch at a time: a second is refused while the first runs; a DELETE stops the first soon.
    let r = submit(addr, &key_id, &good).await;
    assert_eq!(r.status, 202);
    let running = json(&r)["batch_id"].as_str().unwrap().to_string();
    let r = submit(addr, &key_id, &good).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("batch_queue_full")));
    let t0 = Instant::now();
    while status(addr, &running).await["done"].as_u64().unwrap() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(120), "the batch never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = request(addr, "DELETE", &format!("/api/v1/bfv/batches/{running}"), None, b"", None).await;
    assert_eq!(r.status, 204);
    // The place frees when the evaluation has stopped: a new batch is accepted within seconds (the whole
    // evaluation on one thread would take tens).
    let t0 = Instant::now();
    let next = loop {
        let r = submit(addr, &key_id, &good).await;
        if r.status == 202 {
            break json(&r)["batch_id"].as_str().unwrap().to_string();
        }
        assert_eq!(json(&r)["error"], "batch_queue_full");
        assert!(t0.elapsed() < Duration::from_secs(5), "the deleted batch did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let r = request(addr, "DELETE", &format!("/api/v1/bfv/batches/{next}"), None, b"", None).await;
    assert_eq!(r.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_on_one_replica_is_seen_stopped_and_fetched_through_another() {
    let Some(server) = RedisServer::start() else { return };
    let limits = BfvLimits { batches: 1, batch_threads: 2, ..BfvLimits::default() };
    let (a, b) = (serve_on(limits, Some(&server.url)).await, serve_on(limits, Some(&server.url)).await);
    let client = Client::from_seed([7; 32]);
    let mut rng = rand::rng();
    // Keys uploaded through B are known to A (the key store is shared).
    let key_id = upload_keys(b, &encode_batch_keys(&client.batch_keys(&mut rng).unwrap())).await;
    let xs = images(3, 3);
    let body = encode_batch(&client.encrypt_batch(&xs, &mut rng).unwrap(), xs.len());

    // Submitted to A, stopped through B while it runs: A's place frees within seconds.
    let r = submit(a, &key_id, &body).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let first = json(&r)["batch_id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    while status(b, &first).await["done"].as_u64().unwrap() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "B never saw A's progress");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = request(b, "DELETE", &format!("/api/v1/bfv/batches/{first}"), None, b"", None).await;
    assert_eq!(r.status, 204);
    let t0 = Instant::now();
    let id = loop {
        let r = submit(a, &key_id, &body).await;
        if r.status == 202 {
            break json(&r)["batch_id"].as_str().unwrap().to_string();
        }
        assert_eq!(json(&r)["error"], "batch_queue_full");
        assert!(t0.elapsed() < Duration::from_secs(20), "the batch deleted through B did not stop on A");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Run on A to the end, followed and fetched through B.
    let t0 = Instant::now();
    loop {
        let st = status(b, &id).await;
        match st["state"].as_str().unwrap() {
            "queued" | "running" => {}
            "done" => break,
            other => panic!("batch {other}: {st}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "the batch did not finish: {st}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = request(b, "GET", &format!("/api/v1/bfv/batches/{id}/result"), None, b"", None).await;
    assert_eq!(r.status, 200);
    let (count, out) = decode_batch_result(&r.body, 10).unwrap();
    let net = model().network;
    assert_eq!(client.decrypt_batch(&out, 10, count).unwrap(), xs.iter().map(|x| net.forward(x).0).collect::<Vec<_>>());
    // Deleted through B: gone on A too.
    assert_eq!(request(b, "DELETE", &format!("/api/v1/bfv/batches/{id}"), None, b"", None).await.status, 204);
    let r = request(a, "GET", &format!("/api/v1/bfv/batches/{id}"), None, b"", None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_batch")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_results_are_bounded_and_batches_can_be_turned_off() {
    let client = Client::from_seed([8; 32]);
    let mut rng = rand::rng();
    let keys = encode_batch_keys(&client.batch_keys(&mut rng).unwrap());
    let xs = images(2, 4);
    let body = encode_batch(&client.encrypt_batch(&xs, &mut rng).unwrap(), xs.len());

    let off = serve(BfvLimits { batches: 0, ..BfvLimits::default() }).await;
    let key_id = upload_keys(off, &keys).await;
    let r = submit(off, &key_id, &body).await;
    assert_eq!(r.status, 404);
    assert!(json(&r)["message"].as_str().unwrap().contains("--bfv-batches 0"), "{}", json(&r));

    // One finished batch kept at most: the next waits until it is fetched and deleted.
    let addr = serve(BfvLimits { batches: 1, batch_results: 1, batch_threads: 2, ..BfvLimits::default() }).await;
    let key_id = upload_keys(addr, &keys).await;
    let r = submit(addr, &key_id, &body).await;
    assert_eq!(r.status, 202);
    let first = json(&r)["batch_id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    while status(addr, &first).await["state"] != "done" {
        assert!(t0.elapsed() < Duration::from_secs(120), "the batch did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = submit(addr, &key_id, &body).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("batch_results_full")));
    assert_eq!(request(addr, "DELETE", &format!("/api/v1/bfv/batches/{first}"), None, b"", None).await.status, 204);
    assert_eq!(submit(addr, &key_id, &body).await.status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_deleted_while_it_waits_gives_its_place_back() {
    let limits = BfvLimits { batches: 2, batch_threads: 1, ..BfvLimits::default() };
    let addr = serve_model(pruned(1960), limits, None).await;
    let client = Client::from_seed([9; 32]);
    let mut rng = rand::rng();
    let key_id = upload_keys(addr, &encode_batch_keys(&client.batch_keys(&mut rng).unwrap())).await;
    let xs = images(2, 5);
    let body = encode_batch(&client.encrypt_batch(&xs, &mut rng).unwrap(), xs.len());
    let submitted = |addr| {
        let (key_id, body) = (key_id.clone(), body.clone());
        async move {
            let r = submit(addr, &key_id, &body).await;
            assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
            json(&r)["batch_id"].as_str().unwrap().to_string()
        }
    };
    // A runs (the whole network on one thread: tens of seconds), B waits behind it; both places taken.
    let (a, b) = (submitted(addr).await, submitted(addr).await);
    assert_eq!(status(addr, &b).await["state"], "queued");
    assert_eq!(json(&submit(addr, &key_id, &body).await)["error"], "batch_queue_full");
    // B deleted while it waits, then A while it runs: both places come back once A has stopped and B's turn
    // has passed, so two new batches are accepted within seconds.
    for id in [&b, &a] {
        assert_eq!(request(addr, "DELETE", &format!("/api/v1/bfv/batches/{id}"), None, b"", None).await.status, 204);
    }
    let t0 = Instant::now();
    let mut accepted = Vec::new();
    while accepted.len() < 2 {
        let r = submit(addr, &key_id, &body).await;
        if r.status == 202 {
            accepted.push(json(&r)["batch_id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(json(&r)["error"], "batch_queue_full");
            assert!(t0.elapsed() < Duration::from_secs(10), "the places of the deleted batches did not come back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for id in &accepted {
        assert_eq!(request(addr, "DELETE", &format!("/api/v1/bfv/batches/{id}"), None, b"", None).await.status, 204);
    }
}

/// The angiogram classifier's batches: two classes, so the result holds two ciphertexts (one per class),
/// read with the model's class count and decrypted equal to the integer network on every image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_for_the_two_class_angiogram_model_returns_one_result_per_class() {
    let model = pruned_file("angio-bfv-square.bfv.json", 98);
    let net = model.network.clone();
    assert_eq!(net.classes(), 2);
    let addr = serve_model(model, BfvLimits { batch_threads: 2, ..BfvLimits::default() }, None).await;
    let client = Client::from_seed([6; 32]);
    let mut rng = rand::rng();
    let key_id = upload_keys(addr, &encode_batch_keys(&client.batch_keys(&mut rng).unwrap())).await;
    // Frame-like inputs: bright over most of the image, unlike digits.
    let mut draw = rand::rngs::StdRng::seed_from_u64(3);
    let xs: Vec<Vec<i64>> = (0..6).map(|_| (0..784).map(|_| draw.random_range(4..=15)).collect()).collect();
    let body = encode_batch(&client.encrypt_batch(&xs, &mut rng).unwrap(), xs.len());
    let r = submit_to(addr, "angio-bfv-square", &key_id, &body).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = json(&r)["batch_id"].as_str().unwrap().to_string();
    assert_eq!(finished(addr, &id).await["done"], 1960);
    let r = request(addr, "GET", &format!("/api/v1/bfv/batches/{id}/result"), None, b"", None).await;
    assert_eq!(r.status, 200);
    assert!(decode_batch_result(&r.body, 10).is_err(), "two results, not the digits' ten");
    let (count, out) = decode_batch_result(&r.body, 2).unwrap();
    let expect: Vec<Vec<i64>> = xs.iter().map(|x| net.forward(x).0).collect();
    assert_eq!(client.decrypt_batch(&out, 2, count).unwrap(), expect);
}
