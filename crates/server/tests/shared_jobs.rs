//! Training jobs in Redis (`--state redis://…`): two replicas on one real `redis-server` serve every job —
//! posted on one, followed, downloaded or deleted on the other, trained by whichever takes it from the
//! shared fair queue — and a job whose replica dies while training it is trained by another (`resumed`),
//! once. Skipped, with the reason printed, only when `redis-server` is not installed.

mod common;

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use more_enctrain::model_file::EncryptedModel;
use more_enctrain::owner::KeyOwner;
use more_enctrain::train::decrypt_model;
use more_enctrain::upload::loss_from_text;
use more_nn::Plain;
use more_nn::train::{Dataset, Loss, Net, fit};
use more_server::jobs::{Jobs, TrainingLimits};
use more_server::state_store::Redis;
use more_server::{EngineConfig, Limits, app};

use common::redis_server::RedisServer;
use common::training::*;
use common::{get, send};

fn limits() -> TrainingLimits {
    TrainingLimits { max_epochs: 50, ttl: Duration::from_secs(600), ..TrainingLimits::default() }
}

/// A replica (router in process) whose jobs live in Redis at `url`, training one job at a time.
async fn replica(url: &str) -> (Router, Arc<Jobs>) {
    let redis = Redis::connect(url).await.unwrap();
    let jobs = Jobs::open_shared(redis.clone(), limits()).unwrap();
    let state = common::state_with(EngineConfig { workers: 1, queue: 8, ..EngineConfig::default() }, Limits::default())
        .with_shared_state(redis)
        .with_jobs(jobs.clone());
    // Waiting jobs and event logs are held by Redis: the replica's bound counts uploads being checked and
    // the job it trains, nothing per held job.
    assert_eq!(jobs.memory_bound(), {
        let l = limits();
        jobs.upload_budget().total() + l.max_upload_bytes + l.max_memory_bytes
    });
    (app(state), jobs)
}

fn delete(id: &str) -> Request<Body> {
    Request::delete(format!("/api/v1/jobs/{id}")).body(Body::empty()).unwrap()
}

/// Bytes Redis uses for a key (`MEMORY USAGE`, every element sampled; 0 if there is no such key).
async fn usage(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let n: Option<i64> =
        redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query_async(&mut c).await.unwrap();
    n.unwrap_or(0)
}

async fn running_in_redis(url: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SCARD").arg("more:jobs:running").query_async(&mut c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_every_job_through_redis() {
    let Some(store) = RedisServer::start() else { return };
    let (a, _ja) = replica(&store.url).await;
    let (b, _jb) = replica(&store.url).await;

    // Posted on A; status, events and model on B.
    let (x, y) = plain_data(40, 1);
    let k = key(3);
    let req = job_request(3);
    let r = send(&a, post_job(body_for(&k, &req, &x, &y), 1)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(send(&b, get(&format!("/api/v1/jobs/{id}"))).await.json()["rows"], 40);
    let ev = events(&b, &id).await;
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"queued"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "started").count(), 1, "trained once: {kinds:?}");
    let epochs: Vec<&serde_json::Value> = ev.iter().filter(|(k, _)| k == "epoch").map(|(_, d)| d).collect();
    assert_eq!(epochs.len(), 3);
    let status = send(&a, get(&format!("/api/v1/jobs/{id}"))).await.json();
    assert_eq!((status["state"].as_str(), status["epochs_done"].as_u64()), (Some("done"), Some(3)));

    // The same training on plaintext: the decrypted losses and model match it.
    let cfg = req.train_config(Loss::Mse, false);
    let mut net =
        Net::new(&Plain, &[7], &more_nn::networks::wbc_mlp(7, 64, 6), &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
    let history =
        fit(&Plain, &Plain, &mut net, &Dataset::new(&Plain, x.clone(), y.clone()).unwrap(), None, &cfg).unwrap();
    for (e, h) in epochs.iter().zip(&history.epochs) {
        let loss = loss_from_text(&k, e["loss"].as_str().unwrap()).unwrap();
        assert!((loss - h.train_loss).abs() <= 1e-3 * h.train_loss.max(1e-3), "{loss} vs {}", h.train_loss);
    }
    let jk = format!("more:job:{id}");
    let (record, model, log) = (
        usage(&store.url, &jk).await,
        usage(&store.url, &format!("{jk}:model")).await,
        usage(&store.url, &format!("{jk}:events")).await,
    );
    println!("redis: a trained 40-row, 3-epoch job takes {record} B (hash) + {model} B (model) + {log} B (events)");
    let r = send(&b, get(&format!("/api/v1/jobs/{id}/model"))).await;
    assert_eq!(r.status, StatusCode::OK);
    let model = decrypt_model(&KeyOwner::new(k), &EncryptedModel::from_bytes(&r.body, 1 << 30).unwrap()).unwrap();
    let plain = net.to_model(&Plain, more_nn::ModelMeta::new("p", "wbc")).unwrap();
    let (p, q) = (model.forward_plain(x.view()).unwrap(), plain.forward_plain(x.view()).unwrap());
    let worst = p.iter().zip(q.iter()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "decrypted model differs from plaintext training by {worst}");
    // Handed over once, on either replica.
    let r = send(&a, get(&format!("/api/v1/jobs/{id}/model"))).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::NOT_FOUND, "unknown_job"));

    // The fair queue spans the replicas: two long jobs (clients 8 and 9) keep both replicas' training
    // threads busy; client 1 posts three jobs on A, client 2 one on B; their places alternate by client
    // whichever replica took them.
    let (bx, by) = plain_data(2000, 20);
    let mut blockers = Vec::new();
    for client in [8, 9] {
        let r = send(&a, post_job(body_for(&key(20), &job_request(50), &bx, &by), client)).await;
        blockers.push(r.json()["id"].as_str().unwrap().to_string());
        wait_for(&b, blockers.last().unwrap(), "running").await;
    }
    let (sx, sy) = plain_data(16, 21);
    let small = body_for(&key(21), &job_request(1), &sx, &sy);
    let mut ids = Vec::new();
    for (router, client) in [(&a, 1), (&a, 1), (&a, 1), (&b, 2)] {
        let r = send(router, post_job(small.clone(), client)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.json());
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let mut places = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        places.push(place(if i % 2 == 0 { &b } else { &a }, id).await);
    }
    assert_eq!(places, [0, 2, 3, 1], "A1, A2, A3, B1");
    let k = format!("more:job:{}", ids[0]);
    let (record, data, log) = (
        usage(&store.url, &k).await,
        usage(&store.url, &format!("{k}:data")).await,
        usage(&store.url, &format!("{k}:events")).await,
    );
    println!(
        "redis: a waiting job of {} upload bytes takes {record} B (hash) + {data} B (upload) + {log} B (events)",
        small.len()
    );
    // Deleting a waiting job (posted on A) through B moves the ones behind it up.
    assert_eq!(send(&b, delete(&ids[1])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(send(&a, get(&format!("/api/v1/jobs/{}", ids[1]))).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&a, delete(&ids[1])).await.status, StatusCode::NOT_FOUND);
    assert_eq!(place(&a, &ids[2]).await, 2);
    // Deleting the training jobs (on the replica that did not post them) stops their training.
    for blocker in &blockers {
        assert_eq!(send(&b, delete(blocker)).await.status, StatusCode::NO_CONTENT);
    }
    for id in [&ids[0], &ids[2], &ids[3]] {
        wait_for(&a, id, "done").await;
    }
    let t = Instant::now();
    while running_in_redis(&store.url).await > 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the deleted job's training did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A job posted on A and retried on B with the same Idempotency-Key (nginx retrying after A failed): one
    // job, the same answer.
    let keyed = || {
        let mut req = post_job(small.clone(), 3);
        req.headers_mut().insert("idempotency-key", "job-retry-1".parse().unwrap());
        req
    };
    let (first, retry) = (send(&a, keyed()).await, send(&b, keyed()).await);
    assert_eq!((first.status, retry.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first.json()["id"], retry.json()["id"]);
    assert_eq!(retry.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let client = redis::Client::open(store.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let held: usize = redis::cmd("ZCARD").arg("more:jobs").query_async(&mut c).await.unwrap();
    assert_eq!(held, 4, "three small jobs not yet downloaded and the keyed one");

    // The per-client bound counts the client's jobs on every replica.
    let tight = TrainingLimits { max_jobs_per_client: 1, ..limits() };
    let redis = Redis::connect(&store.url).await.unwrap();
    let jobs = Jobs::open_shared(redis.clone(), tight).unwrap();
    let c =
        app(common::state_with(EngineConfig::default(), Limits::default()).with_shared_state(redis).with_jobs(jobs));
    let r = send(&c, post_job(small.clone(), 1)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "too_many_client_jobs"));
}

/// A job's whole event stream from the server at `addr` (raw, until the job ends; at most two minutes).
async fn follow_to_the_end(addr: std::net::SocketAddr, id: &str) -> String {
    let path = format!("/api/v1/jobs/{id}/events");
    let r = tokio::time::timeout(Duration::from_secs(120), common::request(addr, "GET", &path, None, b"", None))
        .await
        .expect("the job ends");
    String::from_utf8_lossy(&r.body).to_string()
}

/// Starts the real binary on Redis at `url` (a free port): (child, address).
fn start_binary(url: &str) -> (Child, std::net::SocketAddr) {
    let (child, addr) = common::start_binary(&["--state", url]);
    (child, addr.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_outlives_the_replica_training_it() {
    let Some(store) = RedisServer::start() else { return };
    let (mut first, addr) = start_binary(&store.url);
    let (x, y) = plain_data(400, 5);
    let k = key(5);
    let req = job_request(20);
    let id = post_and_wait_for_training(addr, &body_for(&k, &req, &x, &y)).await;
    // The replica dies mid-training (no goodbye); another starts on the same Redis.
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut second, addr2) = start_binary(&store.url);
    let text = follow_to_the_end(addr2, &id).await;
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    let resumed = kinds.iter().position(|k| *k == "resumed").unwrap_or_else(|| panic!("no resumed event: {kinds:?}"));
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    assert_eq!(kinds[resumed..].iter().filter(|k| **k == "started").count(), 1, "{kinds:?}");
    let status = common::request(addr2, "GET", &format!("/api/v1/jobs/{id}"), None, b"", None).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&status.body).unwrap()["attempts"], 2);
    let r = common::request(addr2, "GET", &format!("/api/v1/jobs/{id}/model"), None, b"", None).await;
    assert_eq!(r.status, 200);
    let model = decrypt_model(&KeyOwner::new(k), &EncryptedModel::from_bytes(&r.body, 1 << 30).unwrap()).unwrap();
    // The same as one process training it from the start: the plaintext network with the same seed.
    let cfg = req.train_config(Loss::Mse, false);
    let mut net =
        Net::new(&Plain, &[7], &more_nn::networks::wbc_mlp(7, 64, 6), &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
    fit(&Plain, &Plain, &mut net, &Dataset::new(&Plain, x.clone(), y.clone()).unwrap(), None, &cfg).unwrap();
    let plain = net.to_model(&Plain, more_nn::ModelMeta::new("p", "wbc")).unwrap();
    let (p, q) = (model.forward_plain(x.view()).unwrap(), plain.forward_plain(x.view()).unwrap());
    let worst = p.iter().zip(q.iter()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-2, "decrypted model differs from plaintext training by {worst}");
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_with_sigterm_ends_its_streams_and_hands_its_job_over_at_once() {
    let Some(store) = RedisServer::start() else { return };
    let (mut first, addr) = start_binary(&store.url);
    let (x, y) = plain_data(400, 6);
    let k = key(6);
    let id = post_and_wait_for_training(addr, &body_for(&k, &job_request(30), &x, &y)).await;
    // A client follows the job on the replica that is about to stop.
    let path = format!("/api/v1/jobs/{id}/events");
    let stream = tokio::spawn(async move { common::request(addr, "GET", &path, None, b"", None).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut second, addr2) = start_binary(&store.url);
    let stopping = Instant::now();
    let term = Command::new("kill").args(["-TERM", &first.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || first.wait().unwrap()).await.unwrap();
    let stopped_in = stopping.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(stopped_in < Duration::from_secs(5), "the open event stream held the shutdown for {stopped_in:?}");
    let cut = tokio::time::timeout(Duration::from_secs(5), stream).await.expect("the stream ended").unwrap();
    assert!(String::from_utf8_lossy(&cut.body).contains("event: epoch"), "the stream carried events until the stop");
    // The other replica takes the job up within a sweep or two (not after the 10 s lease) and finishes it.
    let text = follow_to_the_end(addr2, &id).await;
    assert!(text.contains("event: resumed"), "{text}");
    assert!(text.contains("event: done"), "{text}");
    let status = common::request(addr2, "GET", &format!("/api/v1/jobs/{id}"), None, b"", None).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&status.body).unwrap()["attempts"], 2);
    println!(
        "SIGTERM: stopped in {stopped_in:?}, the job finished on the other replica {:?} after",
        stopping.elapsed()
    );
    second.kill().unwrap();
    second.wait().unwrap();
}
