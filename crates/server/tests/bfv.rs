//! BFV endpoints over a real TCP socket with the shipped model: key upload, encrypted inference equal to the
//! integer network, the key store's limits (size, TTL, total memory), and 1,000 hostile requests (random,
//! truncated, oversized, foreign-parameter and wrong-level bytes) after which the server still answers; the
//! models directory with the angiogram classifier (two classes) and the WBC regression model.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL};
use more_bfv::wire::{decode_ciphertexts, encode_ciphertexts, encode_keys};
use more_bfv::{BfvModel, Client};
use more_server::bfv::{BfvLimits, BfvService, KEY_MEMORY_PER_BYTE};
use more_server::{EngineConfig, Limits, app};

use common::{Reply, request};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const OCTETS: &str = "application/octet-stream";

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-bfv-square.bfv.json")
}

async fn serve(limits: BfvLimits) -> SocketAddr {
    serve_with(limits, Limits::default()).await
}

async fn serve_with(limits: BfvLimits, requests: Limits) -> SocketAddr {
    let model = BfvModel::load(model_path()).unwrap();
    let service = BfvService::new(vec![model], limits).unwrap();
    let state = common::state_with(
        EngineConfig { workers: 1, queue: 8, max_batch_samples: 4, ..EngineConfig::default() },
        requests,
    )
    .with_bfv(service);
    // The key store's cap and the models' resident memory are part of the printed bound.
    assert!(state.memory_bound().bfv >= limits.key_memory, "{}", state.memory_bound());
    common::listen(state).await
}

fn json(r: &Reply) -> serde_json::Value {
    common::reply_json(r)
}

async fn upload(addr: SocketAddr, keys: &[u8]) -> Reply {
    request(addr, "POST", "/api/v1/bfv/keys", Some(OCTETS), keys, None).await
}

fn infer_path(key_id: &str) -> String {
    format!("/api/v1/bfv/models/mnist-bfv-square/infer?key_id={key_id}")
}

/// A client, its key message and the input message of one test-like image.
fn client_case(seed: u64) -> (Client, Vec<u8>, Vec<i64>, Vec<u8>) {
    let mut rng = rand::rng();
    let client = Client::new(&mut rng);
    let keys = encode_keys(&client.eval_keys(&mut rng).unwrap());
    let mut img = ChaCha8Rng::seed_from_u64(seed);
    // A bright stroke on a dark background, like a digit.
    let x: Vec<i64> =
        (0..784usize).map(|i| if (i % 28).abs_diff(i / 28) < 3 { img.random_range(10..=15) } else { 0 }).collect();
    let input = encode_ciphertexts(&client.encrypt(&x, &mut rng).unwrap(), INPUT_LEVEL);
    (client, keys, x, input)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_infer_decrypt_and_the_model_list() {
    let addr = serve(BfvLimits::default()).await;
    let list = json(&request(addr, "GET", "/api/v1/models", None, b"", None).await);
    let bfv = list["models"].as_array().unwrap().iter().find(|m| m["scheme"] == "bfv").expect("a BFV model listed");
    assert_eq!(bfv["id"], "mnist-bfv-square");
    assert_eq!(bfv["bfv"]["ring_degree"], 8192);
    assert!(list["models"].as_array().unwrap().iter().any(|m| m["scheme"] == "more"));

    let (client, keys, x, input) = client_case(1);
    let r = upload(addr, &keys).await;
    assert_eq!(r.status, 201, "{}", r.head);
    let key_id = json(&r)["key_id"].as_str().unwrap().to_string();
    let r = request(addr, "POST", &infer_path(&key_id), Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 200, "{} {}", r.head, String::from_utf8_lossy(&r.body));
    let out = decode_ciphertexts(&r.body, 3, OUTPUT_LEVEL).unwrap();
    let model = BfvModel::load(model_path()).unwrap();
    assert_eq!(client.decrypt(&out, 10).unwrap(), model.network.forward(&x).0);

    let r = request(addr, "DELETE", &format!("/api/v1/bfv/keys/{key_id}"), None, b"", None).await;
    assert_eq!(r.status, 204);
    let r = request(addr, "POST", &infer_path(&key_id), Some(OCTETS), &input, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_key")), "{}", r.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_store_limits_size_ttl_and_memory() {
    let (_, keys, _, input) = client_case(2);
    // Room for two key sets, no share per client (one client may fill the store); a TTL of two seconds.
    let key_memory = 2 * keys.len() * KEY_MEMORY_PER_BYTE + 1000;
    let limits =
        BfvLimits { key_memory, key_ttl: Duration::from_secs(2), client_share: usize::MAX, ..BfvLimits::default() };
    let addr = serve(limits).await;
    let first = json(&upload(addr, &keys).await)["key_id"].as_str().unwrap().to_string();
    assert_eq!(upload(addr, &keys).await.status, 201);
    let full = upload(addr, &keys).await;
    assert_eq!((full.status, json(&full)["error"].as_str()), (503, Some("key_store_full")));
    // Announced bodies over the cap are refused before reading.
    let r = request(addr, "POST", "/api/v1/bfv/keys", Some(OCTETS), b"x", Some(limits.max_key_bytes + 1)).await;
    assert_eq!(r.status, 413);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = request(addr, "POST", &infer_path(&first), Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 404, "expired keys are gone");
    assert_eq!(upload(addr, &keys).await.status, 201, "expired keys free their memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_beyond_its_share_replaces_its_oldest_keys_and_failed_calls_do_not_refresh_them() {
    let (client, keys, x, input) = client_case(4);
    // Room for four key sets, one for each client; a TTL of three seconds.
    let key_memory = 4 * keys.len() * KEY_MEMORY_PER_BYTE + 1000;
    let limits =
        BfvLimits { key_memory, key_ttl: Duration::from_secs(3), client_share: key_memory / 4, ..BfvLimits::default() };
    let addr = serve(limits).await;
    let first = json(&upload(addr, &keys).await)["key_id"].as_str().unwrap().to_string();
    let second = json(&upload(addr, &keys).await)["key_id"].as_str().unwrap().to_string();
    let r = request(addr, "POST", &infer_path(&first), Some(OCTETS), &input, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_key")), "replaced by the second set");
    // Bad bodies sent with a key id do not keep the key alive: after its TTL it is gone.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = request(addr, "POST", &infer_path(&second), Some(OCTETS), b"not a ciphertext", None).await;
        assert!(r.status == 422 || r.status == 404, "{}", r.head);
    }
    let r = request(addr, "POST", &infer_path(&second), Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 404, "expired despite the failed calls");
    // A successful call does refresh it.
    let third = json(&upload(addr, &keys).await)["key_id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let r = request(addr, "POST", &infer_path(&third), Some(OCTETS), &input, None).await;
        assert_eq!(r.status, 200, "{}", r.head);
        let out = decode_ciphertexts(&r.body, 3, OUTPUT_LEVEL).unwrap();
        assert_eq!(client.decrypt(&out, 10).unwrap(), BfvModel::load(model_path()).unwrap().network.forward(&x).0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_bfv_models_keeps_no_keys() {
    let (_, keys, _, _) = client_case(5);
    let service = BfvService::new(Vec::new(), BfvLimits::default()).unwrap();
    assert_eq!(service.memory_bound(), 0);
    let state =
        common::state_with(EngineConfig { workers: 1, ..EngineConfig::default() }, Limits::default()).with_bfv(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    let r = upload(addr, &keys).await;
    assert_eq!(r.status, 404, "{}", r.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_evaluations_reserve_from_the_memory_budget() {
    let (_, keys, _, input) = client_case(3);
    // A budget of 16 MiB: a key upload reserves 4x its size (31 MB here), an evaluation 4x its body
    // plus 24 MiB of workspace; neither fits, and both are refused before the body is read.
    let addr = serve_with(BfvLimits::default(), Limits { memory_budget: 16 << 20, ..Limits::default() }).await;
    let r = upload(addr, &keys).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (503, Some("overloaded")), "{}", r.head);
    let r = request(addr, "POST", &infer_path("00"), Some(OCTETS), &input, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (404, Some("unknown_key")), "the key is checked first");
    // With room for both, the same requests go through.
    let addr = serve_with(BfvLimits::default(), Limits { memory_budget: 64 << 20, ..Limits::default() }).await;
    let r = upload(addr, &keys).await;
    assert_eq!(r.status, 201, "{}", r.head);
    let key_id = json(&r)["key_id"].as_str().unwrap().to_string();
    let r = request(addr, "POST", &infer_path(&key_id), Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 200, "{}", r.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn still_answers_after_1000_hostile_requests() {
    let addr = serve(BfvLimits::default()).await;
    let (client, keys, x, input) = client_case(3);
    let key_id = json(&upload(addr, &keys).await)["key_id"].as_str().unwrap().to_string();
    let ok_path = infer_path(&key_id);
    // Real messages that are wrong here: a result message (wrong level and count), foreign fingerprints.
    let mut rng = rand::rng();
    let wrong_level = encode_ciphertexts(&client.encrypt(&x, &mut rng).unwrap()[..3], INPUT_LEVEL);
    let mut foreign_keys = keys.clone();
    foreign_keys[9] ^= 0x40;
    let mut foreign_input = input.clone();
    foreign_input[12] ^= 0x01;
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for i in 0..1000 {
        let random = |rng: &mut ChaCha8Rng, max: usize| {
            let n = rng.random_range(0..max.max(1));
            (0..n).map(|_| rng.random()).collect::<Vec<u8>>()
        };
        let (path, ct, body, length): (String, Option<&str>, Vec<u8>, Option<usize>) = match i % 12 {
            0 => ("/api/v1/bfv/keys".into(), Some(OCTETS), random(&mut rng, 4096), None),
            1 => {
                let cut = rng.random_range(0..keys.len());
                ("/api/v1/bfv/keys".into(), Some(OCTETS), keys[..cut].to_vec(), None)
            }
            2 => ("/api/v1/bfv/keys".into(), Some(OCTETS), foreign_keys.clone(), None),
            3 => ("/api/v1/bfv/keys".into(), Some(OCTETS), vec![0u8; 16], Some(64 << 20)),
            4 => (ok_path.clone(), Some(OCTETS), random(&mut rng, 4096), None),
            5 => {
                let cut = rng.random_range(0..input.len());
                (ok_path.clone(), Some(OCTETS), input[..cut].to_vec(), None)
            }
            6 => (ok_path.clone(), Some(OCTETS), foreign_input.clone(), None),
            7 => (ok_path.clone(), Some(OCTETS), wrong_level.clone(), None),
            8 => (ok_path.clone(), Some(OCTETS), vec![7u8; 64], Some(1 << 30)),
            9 => (ok_path.clone(), Some("application/json"), input.clone(), None),
            10 => (infer_path("0123456789abcdef"), Some(OCTETS), input.clone(), None),
            _ if i < 240 => {
                // A real message with a few bytes changed inside its first ciphertext's framing or data.
                let mut body = input.clone();
                for _ in 0..4 {
                    let at = rng.random_range(0..200.min(body.len()));
                    body[at] = rng.random();
                }
                (ok_path.clone(), Some(OCTETS), body, None)
            }
            _ => (ok_path.clone(), Some(OCTETS), random(&mut rng, 40), None),
        };
        let r = request(addr, "POST", &path, ct, &body, length).await;
        if i % 12 == 11 && i < 240 {
            // Changed bytes may still parse (then the answer is garbage to the client, not an error).
            assert!(r.status == 200 || (400..500).contains(&r.status), "request {i}: {}", r.head);
        } else {
            assert!((400..500).contains(&r.status), "request {i}: {}", r.head);
            let v = json(&r);
            assert!(v["error"].is_string(), "request {i}: {v}");
        }
    }
    let r = request(addr, "POST", &ok_path, Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 200, "{}", r.head);
    let out = decode_ciphertexts(&r.body, 3, OUTPUT_LEVEL).unwrap();
    let model = BfvModel::load(model_path()).unwrap();
    assert_eq!(client.decrypt(&out, 10).unwrap(), model.network.forward(&x).0);
    assert_eq!(request(addr, "GET", "/api/v1/health", None, b"", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_key_uploads_waits_for_the_two_workers_instead_of_being_refused() {
    let (_, keys, _, _) = client_case(7);
    let addr = serve_with(BfvLimits::default(), Limits::default()).await;
    // Six at once (a class clicking together): two parse, four wait their turn; all are stored.
    let uploads: Vec<_> = (0..6).map(|_| upload(addr, &keys)).collect();
    let statuses: Vec<u16> = futures_util::future::join_all(uploads).await.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201; 6]);
}

/// The bundled models directory: the MNIST classifier and the WBC regression model, both served. A patient
/// encrypted one per slot under a batch key goes through `POST /api/v1/bfv/models/wbc-bfv-square/infer` and
/// decrypts to exactly the integer network's outputs; keys of the wrong kind and inputs at the wrong level
/// are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wbc_regression_model_is_served_from_the_models_directory() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let service = BfvService::load_dir(&dir, BfvLimits::default()).unwrap();
    assert_eq!(service.models().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["angio-bfv-square", "mnist-bfv-square"]);
    assert_eq!(service.regressions().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["wbc-bfv-square"]);
    let model = service.regressions().next().unwrap().clone();
    let state = common::state_with(EngineConfig { workers: 1, queue: 8, ..EngineConfig::default() }, Limits::default())
        .with_bfv(service);
    let addr = common::listen(state).await;
    let list = json(&request(addr, "GET", "/api/v1/models", None, b"", None).await);
    let entry = list["models"].as_array().unwrap().iter().find(|m| m["id"] == "wbc-bfv-square").expect("listed");
    assert_eq!((entry["task"].as_str(), entry["output_kind"].as_str()), (Some("wbc"), Some("regression")));
    assert_eq!((entry["keys_kind"].as_str(), entry["input_ciphertexts"].as_u64()), (Some("batch"), Some(7)));
    assert!(entry.get("network").is_none() && entry["scaling"]["input_scale"].as_f64().is_some());
    // The scaling a client reads: exactly these keys (the page depends on them), equal to the model's.
    let mut keys: Vec<&str> = entry["scaling"].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expect = [
        "input_min",
        "input_max",
        "input_mean",
        "input_std",
        "input_scale",
        "output_divisor",
        "output_limbs",
        "limb_bits",
        "output_scale",
        "output_offset",
    ];
    expect.sort_unstable();
    assert_eq!(keys, expect);
    let listed: more_bfv::RegressionScaling = serde_json::from_value(entry["scaling"].clone()).unwrap();
    assert_eq!(listed, model.network.scaling);

    let net = &model.network;
    let client = more_bfv::Client::from_seed([2; 32]);
    let mut rng = rand::rng();
    let keys = more_bfv::wire::encode_batch_keys(&client.batch_keys(&mut rng).unwrap());
    let key_id = json(&upload(addr, &keys).await)["key_id"].as_str().unwrap().to_string();
    // A patient in the middle of the parameter box.
    let raw: Vec<f64> = net.scaling.input_min.iter().zip(&net.scaling.input_max).map(|(a, b)| (a + b) / 2.0).collect();
    let x = net.scaling.quantize_input(&raw).unwrap();
    let level = more_bfv::batch::BATCH_INPUT_LEVEL;
    let body =
        encode_ciphertexts(&client.encrypt_samples(std::slice::from_ref(&x), net.inputs, &mut rng).unwrap(), level);
    let path = format!("/api/v1/bfv/models/wbc-bfv-square/infer?key_id={key_id}");
    let r = request(addr, "POST", &path, Some(OCTETS), &body, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let outs = net.result_ciphertexts();
    let cts = decode_ciphertexts(&r.body, outs, more_bfv::batch::BATCH_OUTPUT_LEVEL).unwrap();
    let got = client.decrypt_samples(&cts, outs, 1).unwrap();
    assert_eq!(got[0], net.forward(&x).0, "BFV equals the integer network");
    // Wrong level (single-image framing at level 0), single-image keys: refused.
    let wrong = encode_ciphertexts(&client.encrypt(&[0; 784], &mut rng).unwrap()[..net.inputs], INPUT_LEVEL);
    let r = request(addr, "POST", &path, Some(OCTETS), &wrong, None).await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (422, Some("invalid_bfv")));
    let single = encode_keys(&client.eval_keys(&mut rng).unwrap());
    let single_id = json(&upload(addr, &single).await)["key_id"].as_str().unwrap().to_string();
    let r = request(
        addr,
        "POST",
        &format!("/api/v1/bfv/models/wbc-bfv-square/infer?key_id={single_id}"),
        Some(OCTETS),
        &body,
        None,
    )
    .await;
    assert_eq!((r.status, json(&r)["error"].as_str()), (422, Some("wrong_keys")));
}

/// The angiogram classifier from the models directory: listed with its task, labels, input shape and one
/// result ciphertext (two classes); one validation frame, averaged to 28x28 as the page does, encrypted
/// under single-image keys, goes through `POST /api/v1/bfv/models/angio-bfv-square/infer` over TCP and
/// decrypts to exactly the integer network's two logits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_angiogram_classifier_is_listed_and_classifies_a_validation_frame() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let service = BfvService::load_dir(&dir, BfvLimits::default()).unwrap();
    let model = service.models().find(|m| m.id == "angio-bfv-square").expect("the angiogram model").clone();
    let state = common::state_with(EngineConfig { workers: 1, queue: 8, ..EngineConfig::default() }, Limits::default())
        .with_bfv(service);
    let addr = common::listen(state).await;
    let list = json(&request(addr, "GET", "/api/v1/models", None, b"", None).await);
    let entry = list["models"].as_array().unwrap().iter().find(|m| m["id"] == "angio-bfv-square").expect("listed");
    assert_eq!((entry["task"].as_str(), entry["scheme"].as_str()), (Some("angio"), Some("bfv")));
    assert_eq!(entry["labels"], serde_json::json!(["LCA", "RCA"]));
    assert_eq!(entry["input_shape"], serde_json::json!([1, 28, 28]));
    assert_eq!((entry["input_ciphertexts"].as_u64(), entry["output_ciphertexts"].as_u64()), (Some(7), Some(1)));
    assert_eq!(entry["keys_kind"].as_str(), Some("single-image"));
    assert_eq!(entry["batches_url"].as_str(), Some("/api/v1/bfv/models/angio-bfv-square/batches"));
    let mnist = list["models"].as_array().unwrap().iter().find(|m| m["id"] == "mnist-bfv-square").unwrap();
    assert_eq!(mnist["output_ciphertexts"].as_u64(), Some(3), "the digits keep their three");

    // Validation frame 0 as stored (128x128 grey levels), averaged to 28x28, pixels over 255.
    let data = std::env::var("MORE_DATA")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"), PathBuf::from);
    let val = more_nn::idx::load_angio(&data, "val").expect("angiography frames in ../shared/data/angio");
    let frame: Vec<f32> = val.images.index_axis(ndarray::Axis(0), 0).iter().map(|&p| f32::from(p)).collect();
    let pixels: Vec<f32> = more_imaging::angio_bfv_input(&frame).unwrap().iter().map(|v| v / 255.0).collect();
    let x = model.network.quantize_image(&pixels).unwrap();
    let (expect, _) = model.network.forward(&x);
    assert_eq!(more_bfv::network::argmax(&expect), usize::from(val.labels[0]), "the frame is classified right");

    let mut rng = rand::rng();
    let client = Client::new(&mut rng);
    let keys = encode_keys(&client.eval_keys(&mut rng).unwrap());
    let key_id = json(&upload(addr, &keys).await)["key_id"].as_str().unwrap().to_string();
    let input = encode_ciphertexts(&client.encrypt(&x, &mut rng).unwrap(), INPUT_LEVEL);
    let path = format!("/api/v1/bfv/models/angio-bfv-square/infer?key_id={key_id}");
    let r = request(addr, "POST", &path, Some(OCTETS), &input, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let out = decode_ciphertexts(&r.body, 1, OUTPUT_LEVEL).unwrap();
    assert_eq!(client.decrypt(&out, 2).unwrap(), expect, "BFV equals the integer network");
    // The answer holds one ciphertext, not the digits' three.
    assert!(decode_ciphertexts(&r.body, 3, OUTPUT_LEVEL).is_err());
}
