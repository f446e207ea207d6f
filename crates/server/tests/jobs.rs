//! Training jobs through the real router: a job end to end (its decrypted losses and model equal plaintext
//! training with the same seed), progress events, cancellation, every limit's error, a restart with jobs on
//! disk, hostile uploads, and the server without training.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use futures_util::StreamExt;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tower::ServiceExt;

use more_enctrain::model_file::EncryptedModel;
use more_enctrain::owner::KeyOwner;
use more_enctrain::train::decrypt_model;
use more_enctrain::upload::{JobRequest, MEDIA_TYPE, loss_from_text};
use more_nn::Plain;
use more_nn::train::{Dataset, Loss, Net, fit};
use more_server::conn::ClientAddr;
use more_server::jobs::{Jobs, TrainingLimits};
use more_server::{EngineConfig, Limits, app};

use common::training::*;
use common::*;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("more-jobs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn small_limits() -> TrainingLimits {
    TrainingLimits { max_epochs: 50, ttl: Duration::from_secs(600), ..TrainingLimits::default() }
}

fn router_with(dir: &std::path::Path, limits: TrainingLimits) -> (Router, Arc<Jobs>) {
    let jobs = Jobs::open(dir, limits).unwrap();
    let state = state_with(
        EngineConfig { workers: 1, queue: 8, max_batch_samples: 4, ..EngineConfig::default() },
        Limits::default(),
    )
    .with_jobs(jobs.clone());
    (app(state), jobs)
}

#[tokio::test]
async fn a_job_trains_on_ciphertexts_like_plaintext_training_and_is_deleted_after_download() {
    let dir = temp_dir("e2e");
    let (router, _jobs) = router_with(&dir, small_limits());
    let info = send(&router, get("/api/v1/training")).await.json();
    assert_eq!(info["enabled"], true);
    assert!(info["networks"].as_array().unwrap().iter().any(|n| n["id"] == "wbc-mlp"));
    assert!(info["networks"].as_array().unwrap().iter().any(|n| n["id"] == "mnist-cnn-relu"));

    let (x, y) = plain_data(40, 1);
    let k = key(3);
    let req = job_request(3);
    let r = send(&router, post_job(body_for(&k, &req, &x, &y), 1)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["rows"], 40);

    let ev = events(&router, &id).await;
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"queued"));
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    // 40 rows in batches of 8, 3 epochs: 15 steps. A follower sees each step from the moment it connects
    // (consecutive steps in the log are coalesced before that), and always the last step of an epoch.
    let steps: Vec<&serde_json::Value> = ev.iter().filter(|(k, _)| k == "step").map(|(_, d)| d).collect();
    assert!((3..=15).contains(&steps.len()), "{kinds:?}");
    assert_eq!(steps.iter().filter(|d| d["step"] == 5).count(), 3, "{kinds:?}");
    let epochs: Vec<&serde_json::Value> = ev.iter().filter(|(k, _)| k == "epoch").map(|(_, d)| d).collect();
    assert_eq!(epochs.len(), 3);

    // The same training on plaintext: the decrypted losses and model match it.
    let cfg = req.train_config(Loss::Mse, false);
    let mut net =
        Net::new(&Plain, &[7], &more_nn::networks::wbc_mlp(7, 64, 6), &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
    let history =
        fit(&Plain, &Plain, &mut net, &Dataset::new(&Plain, x.clone(), y.clone()).unwrap(), None, &cfg).unwrap();
    for (e, h) in epochs.iter().zip(&history.epochs) {
        let loss = loss_from_text(&k, e["loss"].as_str().unwrap()).unwrap();
        assert!(
            (loss - h.train_loss).abs() <= 1e-3 * h.train_loss.max(1e-3),
            "epoch {}: {loss} vs {}",
            h.epoch,
            h.train_loss
        );
    }
    // The server only saw ciphertexts: with another key the loss decrypts to something else.
    let other = loss_from_text(&key(99), epochs[0]["loss"].as_str().unwrap()).unwrap();
    assert!((other - history.epochs[0].train_loss).abs() > 1e-3);

    let r = send(&router, get(&format!("/api/v1/jobs/{id}/model"))).await;
    assert_eq!(r.status, StatusCode::OK);
    let enc = EncryptedModel::from_bytes(&r.body, 1 << 30).unwrap();
    let model = decrypt_model(&KeyOwner::new(k.clone()), &enc).unwrap();
    let plain = net.to_model(&Plain, more_nn::ModelMeta::new("p", "wbc")).unwrap();
    let (a, b) = (model.forward_plain(x.view()).unwrap(), plain.forward_plain(x.view()).unwrap());
    let worst = a.iter().zip(b.iter()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "decrypted model differs from plaintext training by {worst}");
    assert!(decrypt_model(&KeyOwner::new(key(98)), &enc).is_err(), "the canaries refuse another key");

    // Downloaded once: the job and its files are gone.
    let r = send(&router, get(&format!("/api/v1/jobs/{id}/model"))).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::NOT_FOUND, "unknown_job"));
    assert!(!dir.join(&id).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn cancelling_a_training_job_stops_it_and_deletes_its_files() {
    let dir = temp_dir("cancel");
    let (router, _jobs) = router_with(&dir, small_limits());
    let (x, y) = plain_data(400, 2);
    let r = send(&router, post_job(body_for(&key(4), &job_request(50), &x, &y), 1)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.json()["id"].as_str().unwrap().to_string();
    wait_for(&router, &id, "running").await;
    let r = send(&router, Request::delete(format!("/api/v1/jobs/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send(&router, get(&format!("/api/v1/jobs/{id}"))).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::NOT_FOUND, "unknown_job"));
    let t = Instant::now();
    while dir.join(&id).exists() {
        assert!(t.elapsed() < Duration::from_secs(30), "the cancelled job's files stay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The training thread is free again: a new job trains.
    let (x, y) = plain_data(16, 3);
    let r = send(&router, post_job(body_for(&key(4), &job_request(1), &x, &y), 1)).await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(events(&router, &id).await.last().unwrap().0, "done");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_limit_is_refused_with_its_status_and_code() {
    let (x, y) = plain_data(16, 5);
    let k = key(5);
    let ok = body_for(&k, &job_request(1), &x, &y);

    // Upload size (announced and not announced).
    let dir = temp_dir("limits-size");
    let (router, _j) = router_with(&dir, TrainingLimits { max_upload_bytes: 1000, ..small_limits() });
    let r = send(&router, post_job(ok.clone(), 1)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"));
    let mut req = post_job(ok.clone(), 1);
    req.headers_mut().remove(header::CONTENT_LENGTH);
    let r = send(&router, req).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"));

    // Epochs, batch size, memory.
    let dir = temp_dir("limits-params");
    let (router, _j) =
        router_with(&dir, TrainingLimits { max_epochs: 5, max_memory_bytes: 200 << 10, ..small_limits() });
    let r = send(&router, post_job(body_for(&k, &job_request(6), &x, &y), 1)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "too_many_epochs"));
    let big_batch = JobRequest { batch_size: 10_000, ..job_request(1) };
    let r = send(&router, post_job(body_for(&k, &big_batch, &x, &y), 1)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_job"));
    let wide = JobRequest { batch_size: 100, ..job_request(1) };
    let r = send(&router, post_job(body_for(&k, &wide, &x, &y), 1)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "memory_limit"));

    // Jobs per client, and jobs held in total (jobs that wait for their download count).
    let dir = temp_dir("limits-jobs");
    let (router, _j) = router_with(&dir, TrainingLimits { max_jobs_per_client: 1, max_held_jobs: 2, ..small_limits() });
    assert_eq!(send(&router, post_job(ok.clone(), 1)).await.status, StatusCode::ACCEPTED);
    let r = send(&router, post_job(ok.clone(), 1)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "too_many_client_jobs"));
    assert_eq!(send(&router, post_job(ok.clone(), 2)).await.status, StatusCode::ACCEPTED);
    let r = send(&router, post_job(ok.clone(), 3)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "training_queue_full"));

    // Wall time: the job fails with its reason in the stream and the status; the model is refused.
    let dir = temp_dir("limits-wall");
    let (router, _j) = router_with(&dir, TrainingLimits { max_wall: Duration::ZERO, ..small_limits() });
    let id = send(&router, post_job(ok.clone(), 1)).await.json()["id"].as_str().unwrap().to_string();
    let ev = events(&router, &id).await;
    let (kind, data) = ev.last().unwrap();
    assert_eq!((kind.as_str(), data["error"].as_str()), ("failed", Some("wall_time")));
    let r = send(&router, get(&format!("/api/v1/jobs/{id}/model"))).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::CONFLICT, "job_failed"));
    // A failed job keeps its record (for the reason) but not its upload.
    assert!(dir.join(&id).join("job.json").is_file());
    assert!(!dir.join(&id).join("data.bin").exists(), "the failed job's upload is deleted at once");

    // Time to live: the job is deleted even if never downloaded.
    let dir = temp_dir("limits-ttl");
    let (router, _j) = router_with(&dir, TrainingLimits { ttl: Duration::from_secs(1), ..small_limits() });
    let id = send(&router, post_job(ok.clone(), 1)).await.json()["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    while send(&router, get(&format!("/api/v1/jobs/{id}"))).await.status == StatusCode::OK {
        assert!(t.elapsed() < Duration::from_secs(20), "the job outlives its time to live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!dir.join(&id).exists());
    for name in ["limits-size", "limits-params", "limits-jobs", "limits-wall", "limits-ttl"] {
        let _ = std::fs::remove_dir_all(temp_dir(name));
    }
}

#[tokio::test]
async fn after_a_restart_jobs_on_disk_train_again_or_are_reported_failed() {
    let dir = temp_dir("restart");
    let (router, jobs) = router_with(&dir, small_limits());
    let (x, y) = plain_data(24, 6);
    let k = key(6);
    let id = send(&router, post_job(body_for(&k, &job_request(2), &x, &y), 1)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = events_after(&router, &id, None).await;
    assert_eq!(before.last().unwrap().1, "done");
    // A follower cut by the restart holds the id of the last event it got.
    let held = before[before.len() - 2].0;
    drop((router, jobs));
    // As if the server had stopped during training: the record says "running", there is no model yet; and a
    // job whose record cannot be read.
    let record = dir.join(&id).join("job.json");
    let text = std::fs::read_to_string(&record).unwrap().replace("\"done\"", "\"running\"");
    std::fs::write(&record, text).unwrap();
    std::fs::remove_file(dir.join(&id).join("model.moreenc")).unwrap();
    let broken = "0123456789abcdef0123456789abcdef";
    std::fs::create_dir_all(dir.join(broken)).unwrap();
    std::fs::write(dir.join(broken).join("job.json"), b"{not json").unwrap();
    // A directory that is not a job's (its name is no job id): never loaded, served or deleted.
    std::fs::create_dir_all(dir.join("lost+found")).unwrap();

    let (router, _jobs) = router_with(&dir, small_limits());
    // Reconnecting with it, the follower gets the new run's events from `resumed` on: their ids are above
    // every id of the earlier run.
    let ev = events_after(&router, &id, Some(held)).await;
    let kinds: Vec<&str> = ev.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"resumed"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"));
    let r = send(&router, get(&format!("/api/v1/jobs/{id}/model"))).await;
    assert_eq!(r.status, StatusCode::OK);
    decrypt_model(&KeyOwner::new(k), &EncryptedModel::from_bytes(&r.body, 1 << 30).unwrap()).unwrap();

    let r = send(&router, get(&format!("/api/v1/jobs/{broken}"))).await;
    assert_eq!(r.json()["state"], "failed");
    assert_eq!(r.json()["error"]["error"], "lost");
    let ev = events(&router, broken).await;
    assert_eq!(ev.last().unwrap().0, "failed");
    for path in ["/api/v1/jobs/lost+found", "/api/v1/jobs/lost%2Bfound"] {
        assert_eq!(send(&router, get(path)).await.status, StatusCode::NOT_FOUND);
        let del = Request::delete(path).body(Body::empty()).unwrap();
        assert_eq!(send(&router, del).await.status, StatusCode::NOT_FOUND);
    }
    assert!(dir.join("lost+found").is_dir(), "left alone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn hostile_uploads_are_refused_without_harm() {
    use rand::Rng;
    let dir = temp_dir("hostile");
    let (router, _jobs) = router_with(&dir, small_limits());
    let (x, y) = plain_data(16, 7);
    let k = key(7);
    let ok = body_for(&k, &job_request(1), &x, &y);
    let header_end = ok.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut rng = ChaCha8Rng::seed_from_u64(8);

    let mut cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("empty", vec![], StatusCode::BAD_REQUEST),
        ("random bytes", (0..5000).map(|_| rng.random()).collect(), StatusCode::BAD_REQUEST),
        ("header only", ok[..header_end].to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        ("truncated", ok[..ok.len() - 7].to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        ("trailing bytes", [ok.clone(), vec![0; 3]].concat(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "unknown field",
            [b"{\"network\":\"wbc-mlp\",\"x\":1}\n".to_vec(), ok[header_end..].to_vec()].concat(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    // Random bytes after a valid header.
    cases.push((
        "random tensors",
        [ok[..header_end].to_vec(), (0..3000).map(|_| rng.random()).collect()].concat(),
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    // Wrong shapes: MNIST-shaped network with WBC data, and targets with the wrong width.
    let mnist = JobRequest { network: "mnist-cnn-relu".into(), ..job_request(1) };
    cases.push(("wrong input shape", body_for(&k, &mnist, &x, &y), StatusCode::UNPROCESSABLE_ENTITY));
    let y5 = y.select(ndarray::Axis(1), &[0, 1, 2, 3, 4]);
    cases.push(("wrong target shape", body_for(&k, &job_request(1), &x, &y5), StatusCode::UNPROCESSABLE_ENTITY));
    cases.push((
        "unknown network",
        body_for(&k, &JobRequest { network: "gpt".into(), ..job_request(1) }, &x, &y),
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    cases.push((
        "negative lr",
        body_for(&k, &JobRequest { lr: -1.0, ..job_request(1) }, &x, &y),
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    // A NaN in the first plane of the inputs.
    let mut nan = ok.clone();
    let first = header_end + 8 + 8 + 4 * 3;
    nan[first..first + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    cases.push(("NaN", nan, StatusCode::UNPROCESSABLE_ENTITY));
    // Targets under another key.
    let other = body_for(&key(8), &job_request(1), &x, &y);
    let split =
        |b: &[u8]| header_end + 8 + u64::from_le_bytes(b[header_end..header_end + 8].try_into().unwrap()) as usize;
    cases.push((
        "mixed keys",
        [ok[..split(&ok)].to_vec(), other[split(&other)..].to_vec()].concat(),
        StatusCode::UNPROCESSABLE_ENTITY,
    ));

    for (name, body, status) in cases {
        let r = send(&router, post_job(body, 1)).await;
        assert_eq!(r.status, status, "{name}: {:?}", String::from_utf8_lossy(&r.body));
        r.error();
    }
    let mut req = post_job(ok.clone(), 1);
    req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    assert_eq!(send(&router, req).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Nothing was stored, and a valid job still trains.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let id = send(&router, post_job(ok, 1)).await.json()["id"].as_str().unwrap().to_string();
    assert_eq!(events(&router, &id).await.last().unwrap().0, "done");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_training_the_job_routes_say_so() {
    let router = router();
    let info = send(&router, get("/api/v1/training")).await.json();
    assert_eq!(info["enabled"], false);
    let r = send(&router, post_job(vec![1, 2, 3], 1)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::NOT_FOUND, "training_disabled"));
    let r = send(&router, get("/api/v1/jobs/abc/events")).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::NOT_FOUND, "training_disabled"));
}

#[tokio::test]
async fn silent_uploads_neither_block_others_nor_outlive_their_deadline() {
    let dir = temp_dir("uploads");
    let jobs = Jobs::open(&dir, small_limits()).unwrap();
    // A request timeout of one second: a 64 MiB upload is given 1 s + 64 s at 1 MiB/s; one of 1 MiB, 2 s.
    let limits = Limits { request_timeout: Duration::from_secs(1), ..Limits::default() };
    let state = state_with(EngineConfig { workers: 1, queue: 8, ..EngineConfig::default() }, limits).with_jobs(jobs);
    let router = app(state);
    // More uploads than are checked at once, each sending one byte and then nothing.
    let mut slow = Vec::new();
    for _ in 0..more_server::jobs::CONCURRENT_UPLOADS + 2 {
        let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"M"))]);
        let never = first.chain(futures_util::stream::pending());
        let mut req = Request::post("/api/v1/jobs")
            .header(header::CONTENT_TYPE, MEDIA_TYPE)
            .header(header::CONTENT_LENGTH, 1 << 20)
            .body(Body::from_stream(never))
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(ClientAddr(SocketAddr::from(([10, 0, 0, 9], 1)))));
        let r = router.clone();
        slow.push(tokio::spawn(async move { r.oneshot(req).await }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (x, y) = plain_data(16, 9);
    let r = send(&router, post_job(body_for(&key(9), &job_request(1), &x, &y), 1)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "silent uploads hold no slot: {:?}", r.json());
    // Each silent upload ends at its deadline with 408, whatever it declared.
    let t = Instant::now();
    for task in slow {
        let res = task.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    }
    assert!(t.elapsed() < Duration::from_secs(70), "{:?}", t.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn event_streams_resume_after_last_event_id_and_steps_are_coalesced() {
    let dir = temp_dir("resume");
    let (router, _jobs) = router_with(&dir, small_limits());
    let (x, y) = plain_data(64, 11);
    // Batches of one row: 64 steps per epoch, 3 epochs.
    let mut req = job_request(3);
    req.batch_size = 1;
    let id =
        send(&router, post_job(body_for(&key(11), &req, &x, &y), 1)).await.json()["id"].as_str().unwrap().to_string();
    // Followed live, the stream delivers the steps as they happen (up to 192).
    let live = events_after(&router, &id, None).await;
    assert_eq!(live.last().map(|e| e.1.as_str()), Some("done"));
    // Replayed, the log keeps at most one step event between two other events: 3 epochs, 3 steps.
    let all = events_after(&router, &id, None).await;
    let kinds: Vec<&str> = all.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "epoch").count(), 3);
    let steps = kinds.iter().filter(|k| **k == "step").count();
    assert!(steps <= 4 && all.len() <= 10, "{kinds:?}");
    let non_steps = |v: &[(u64, String, String)]| v.iter().filter(|e| e.1 != "step").cloned().collect::<Vec<_>>();
    assert_eq!(non_steps(&live), non_steps(&all), "nothing else is dropped");
    let ids: Vec<u64> = all.iter().map(|(i, _, _)| *i).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    // Resuming after any event gives exactly the events after it, and after the last one nothing (the
    // stream ends at once instead of waiting).
    for cut in [0, all.len() / 2, all.len() - 1] {
        let rest = events_after(&router, &id, Some(ids[cut])).await;
        assert_eq!(rest, all[cut + 1..].to_vec(), "after id {}", ids[cut]);
    }
    let bad = Request::get(format!("/api/v1/jobs/{id}/events")).header("last-event-id", "x").body(Body::empty());
    let r = send(&router, bad.unwrap()).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::BAD_REQUEST, "bad_last_event_id"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The events of a job's stream after `last` (`Last-Event-ID`), as (id, kind, data).
async fn events_after(router: &Router, id: &str, last: Option<u64>) -> Vec<(u64, String, String)> {
    let mut req = Request::get(format!("/api/v1/jobs/{id}/events"));
    if let Some(l) = last {
        req = req.header("last-event-id", l.to_string());
    }
    let r = tokio::time::timeout(Duration::from_secs(120), send(router, req.body(Body::empty()).unwrap()))
        .await
        .expect("the stream ends");
    assert_eq!(r.status, StatusCode::OK);
    let mut out = Vec::new();
    let (mut kind, mut ev_id) = (String::new(), 0);
    for line in String::from_utf8(r.body.to_vec()).unwrap().lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = k.trim().to_string();
        } else if let Some(i) = line.strip_prefix("id:") {
            ev_id = i.trim().parse().unwrap();
        } else if let Some(d) = line.strip_prefix("data:") {
            out.push((ev_id, kind.clone(), d.trim().to_string()));
        }
    }
    out
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_from_a_trusted_proxy() {
    let dir = temp_dir("proxy");
    let jobs = Jobs::open(&dir, TrainingLimits { max_jobs_per_client: 1, ..small_limits() }).unwrap();
    let proxies = more_server::extract::TrustedProxies::parse("10.0.0.1").unwrap();
    let state = state_with(EngineConfig { workers: 1, queue: 8, ..EngineConfig::default() }, Limits::default())
        .with_jobs(jobs)
        .with_trusted_proxies(proxies);
    let router = app(state);
    let (x, y) = plain_data(8, 12);
    let body = body_for(&key(12), &job_request(1), &x, &y);
    let post = |peer: u8, forwarded: &str| {
        let mut req = post_job(body.clone(), peer);
        req.headers_mut().insert("x-forwarded-for", forwarded.parse().unwrap());
        req
    };
    // Through the trusted proxy (10.0.0.1): each forwarded address is its own client.
    assert_eq!(send(&router, post(1, "198.51.100.1")).await.status, StatusCode::ACCEPTED);
    let r = send(&router, post(1, "198.51.100.1")).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "too_many_client_jobs"));
    assert_eq!(send(&router, post(1, "198.51.100.2")).await.status, StatusCode::ACCEPTED);
    // From any other peer the header is not believed: the peer is the client.
    assert_eq!(send(&router, post(2, "198.51.100.3")).await.status, StatusCode::ACCEPTED);
    let r = send(&router, post(2, "198.51.100.4")).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "too_many_client_jobs"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The queue serves clients in turn: client A posts three jobs, then client B one; B's job is second in
/// line, not fourth, and every waiting job's stream tells its place (`queued` with `ahead`). A queue over its
/// byte bound refuses with 503 `training_queue_full`.
#[tokio::test]
async fn the_queue_serves_two_clients_fairly_and_tells_each_job_its_place() {
    let dir = temp_dir("fair");
    let (router, _jobs) = router_with(&dir, small_limits());
    // A first job of client 9 trains long enough for the others to queue behind it.
    let (bx, by) = plain_data(2000, 20);
    let blocker = send(&router, post_job(body_for(&key(20), &job_request(50), &bx, &by), 9)).await;
    assert_eq!(blocker.status, StatusCode::ACCEPTED);
    let blocker = blocker.json()["id"].as_str().unwrap().to_string();
    wait_for(&router, &blocker, "running").await;
    let (x, y) = plain_data(16, 21);
    let body = body_for(&key(21), &job_request(1), &x, &y);
    let mut ids = Vec::new();
    for client in [1, 1, 1, 2] {
        let r = send(&router, post_job(body.clone(), client)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.json());
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    // Places now: A1 0, B1 1, A2 2, A3 3 — read from each stream's last `queued` event.
    let mut places = Vec::new();
    for id in &ids {
        places.push(place(&router, id).await);
    }
    assert_eq!(places, [0, 2, 3, 1], "A1, A2, A3, B1");
    // Cancelling the training job lets the queue move (in that order: the unit tests of `jobs::queue` check
    // that jobs start in the order their places announce): all four train.
    let del = Request::delete(format!("/api/v1/jobs/{blocker}")).body(Body::empty()).unwrap();
    assert_eq!(send(&router, del).await.status, StatusCode::NO_CONTENT);
    for id in &ids {
        wait_for(&router, id, "done").await;
    }

    // A queue bound of one job's upload: the second waiting job is refused.
    let dir2 = temp_dir("fair-bound");
    let tight = TrainingLimits { max_queue_bytes: body.len() + 10, ..small_limits() };
    let (router2, _j2) = router_with(&dir2, tight);
    let blocker = send(&router2, post_job(body_for(&key(20), &job_request(50), &bx, &by), 9)).await;
    let blocker = blocker.json()["id"].as_str().unwrap().to_string();
    wait_for(&router2, &blocker, "running").await;
    assert_eq!(send(&router2, post_job(body.clone(), 1)).await.status, StatusCode::ACCEPTED);
    let r = send(&router2, post_job(body.clone(), 2)).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "training_queue_full"));
    let del = Request::delete(format!("/api/v1/jobs/{blocker}")).body(Body::empty()).unwrap();
    send(&router2, del).await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_retried_while_the_first_is_running_creates_one_job() {
    let dir = temp_dir("idempotent");
    let (router, _jobs) = router_with(&dir, small_limits());
    let (x, y) = plain_data(600, 30);
    let body = body_for(&key(30), &job_request(1), &x, &y);
    let keyed = |key: &str| {
        let mut req = post_job(body.clone(), 4);
        req.headers_mut().insert("idempotency-key", key.parse().unwrap());
        req
    };
    // Both at once: the second waits for the first's answer instead of creating a second job.
    let (one, two) = tokio::join!(send(&router, keyed("same")), send(&router, keyed("same")));
    assert_eq!((one.status, two.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(one.json()["id"], two.json()["id"]);
    let replays = [&one, &two].iter().filter(|r| r.headers.contains_key("idempotent-replayed")).count();
    assert_eq!(replays, 1);
    // Another key is another request.
    let three = send(&router, keyed("other")).await;
    assert_ne!(three.json()["id"], one.json()["id"]);
    let dirs = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(dirs, 2, "two jobs on disk");
    // A refusal that may pass (429: the client's limit) is not kept: the same key runs again later.
    let tight = temp_dir("idempotent-tight");
    let (router, _jobs) = router_with(&tight, TrainingLimits { max_jobs_per_client: 1, ..small_limits() });
    assert_eq!(send(&router, keyed("a")).await.status, StatusCode::ACCEPTED);
    let refused = send(&router, keyed("b")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!refused.headers.contains_key("idempotent-replayed"));
    assert_eq!(send(&router, keyed("b")).await.status, StatusCode::TOO_MANY_REQUESTS);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&tight);
}
