//! `more bench bfv --batch N`: many MNIST test images classified under BFV at once, end to end (keys,
//! encryption, serialisation, the server's evaluation, decryption), with the amortized cost per image — the
//! figure the HomomorphicEncryption.org ML-inference benchmark compares.
//!
//! Large batches use the slot-per-image packing (`more_bfv::batch`: up to 8,192 images per set of
//! ciphertexts); below `BATCH_CROSSOVER` images, or with `--packing image`, each image goes through the
//! single-image packing, the images spread over the cores.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use clap::ValueEnum;
use rayon::prelude::*;

use more_bfv::batch::{BATCH_CROSSOVER, BATCH_SLOTS};
use more_bfv::network::argmax;
use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL, scheme_info};
use more_bfv::wire::{
    decode_batch, decode_batch_keys, decode_batch_result, decode_ciphertexts, decode_keys, encode_batch,
    encode_batch_keys, encode_batch_result, encode_ciphertexts, encode_keys,
};
use more_bfv::{BatchEvaluator, BfvModel, Client, Evaluator};
use more_core::{KeyOptions, SecretKey};
use ndarray::Axis;

use super::bfv::{eval_rows, simulate};
use crate::paths;
use crate::tasks::Task as _;

/// How `--batch` packs the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Packing {
    /// Slots below the crossover, else single images.
    Auto,
    /// One image per SIMD slot, up to 8,192 images per set of ciphertexts (throughput).
    Slots,
    /// The single-image packing, one image per set of 7 ciphertexts (latency).
    Image,
}

impl Packing {
    fn resolve(self, images: usize) -> Packing {
        match self {
            Packing::Auto if images >= BATCH_CROSSOVER => Packing::Slots,
            Packing::Auto => Packing::Image,
            p => p,
        }
    }
}

/// What one run measured (seconds are wall clock on all cores).
#[derive(Debug, Default)]
struct Totals {
    logits: Vec<Vec<i64>>,
    keygen_s: f64,
    client_encrypt_s: f64,
    server_s: f64,
    client_decrypt_s: f64,
    upload_bytes: usize,
    download_bytes: usize,
    eval_key_bytes: usize,
    batches: usize,
    /// With `--server`: what the server reported (its compute time per batch, peak resident set, bound).
    server: Option<serde_json::Value>,
}

/// What `more bench bfv --batch` is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct BatchBench<'a> {
    /// The model file (default: the bundled one).
    pub model: Option<&'a Path>,
    /// The data directory.
    pub data: Option<&'a Path>,
    /// Test images classified at once.
    pub images: usize,
    /// How they are packed.
    pub packing: Packing,
    /// One JSON line instead of text.
    pub json: bool,
    /// Store the figures in the model file's metrics (`batch_*`), where the server's model list and the
    /// walkthrough read them.
    pub record: bool,
    /// Send the batches to this `more-server` (its batch endpoint) instead of evaluating them in process.
    pub server: Option<&'a str>,
}

/// `more bench bfv --batch N [--packing P] [--json] [--record]`.
pub fn bench(args: BatchBench<'_>) -> Result<()> {
    let BatchBench { model: model_path, data: data_dir, images: batch, packing, json, record, server } = args;
    ensure!(!(record && server.is_some()), "--record stores figures measured in process: drop --server");
    ensure!(batch > 0, "--batch must be at least 1");
    let path = model_path.map_or_else(|| paths::bundled(paths::BFV_MODEL), Path::to_path_buf);
    let mut model = BfvModel::load(&path)?;
    let mnist = crate::tasks::mnist::Mnist.bfv().expect("the digits have a BFV classifier");
    let (images, labels) = eval_rows(&mnist, data_dir, Some(batch))?;
    let n = labels.len();
    ensure!(n == batch, "--batch {batch}: the test set has {n} images");
    let net = &model.network;
    let quantized = images.iter().map(|img| net.quantize_image(img)).collect::<Result<Vec<_>, _>>()?;
    let (int_correct, int_logits, _) = simulate(net, &images, &labels)?;
    let packing = packing.resolve(n);
    ensure!(
        !record || packing == Packing::Slots,
        "--record stores the batch packing's figures: use --packing slots or at least {BATCH_CROSSOVER} images"
    );
    let started = Instant::now();
    let t = match (packing, server) {
        (Packing::Slots, Some(url)) => remote::run(url, &model.id, net.classes(), &quantized, json)?,
        (_, Some(_)) => bail!("--server sends batches (the slot packing): use at least {BATCH_CROSSOVER} images"),
        (Packing::Slots, None) => run_slots(net, &quantized, json)?,
        _ => run_images(net, &quantized)?,
    };
    let end_to_end_s = started.elapsed().as_secs_f64();
    let more = more_baseline(data_dir, n, &labels)?;
    let correct = t.logits.iter().zip(&labels).filter(|(l, y)| argmax(l) == **y as usize).count();
    let agree = t.logits.iter().zip(&int_logits).filter(|(a, b)| argmax(a) == argmax(b)).count();
    let exact = t.logits.iter().zip(&int_logits).filter(|(a, b)| a == b).count();
    let info = scheme_info();
    if record {
        let figures = [
            ("batch_images", n as f64),
            ("batch_accuracy", correct as f64 / n as f64),
            ("batch_argmax_agreement", agree as f64),
            ("batch_server_s", t.server_s),
            ("batch_ms_per_image_amortized", t.server_s * 1e3 / n as f64),
            ("batch_end_to_end_s", end_to_end_s),
            ("batch_client_encrypt_s", t.client_encrypt_s),
            ("batch_client_decrypt_s", t.client_decrypt_s),
            ("batch_eval_key_bytes", t.eval_key_bytes as f64),
            ("batch_upload_bytes", t.upload_bytes as f64),
            ("batch_download_bytes", t.download_bytes as f64),
            ("batch_threads", rayon::current_num_threads() as f64),
            ("batch_more_server_s", more.server_s),
            ("batch_more_accuracy", more.accuracy),
        ];
        model.metrics.extend(figures.map(|(k, v)| (k.to_string(), v)));
        model.save(&path)?;
        eprintln!("recorded the batch figures in {}", path.display());
    }
    let mut out = serde_json::json!({
        "task": "bfv",
        "model": model.id,
        "images": n,
        "packing": if packing == Packing::Slots { "slots" } else { "image" },
        "batches": t.batches,
        "accuracy": correct as f64 / n as f64,
        "integer_accuracy": int_correct as f64 / n as f64,
        "argmax_agreement": agree,
        "exact_logits": exact,
        "server_s": t.server_s,
        "client_keygen_s": t.keygen_s,
        "client_encrypt_s": t.client_encrypt_s,
        "client_decrypt_s": t.client_decrypt_s,
        "end_to_end_s": end_to_end_s,
        "ms_per_image_amortized": t.server_s * 1e3 / n as f64,
        "end_to_end_ms_per_image": end_to_end_s * 1e3 / n as f64,
        "upload_bytes": t.upload_bytes,
        "download_bytes": t.download_bytes,
        "eval_key_bytes": t.eval_key_bytes,
        "peak_rss_bytes": peak_rss_bytes(),
        "threads": rayon::current_num_threads(),
        "security_bits": info.security_bits,
        "ring_degree": info.ring_degree,
        "ciphertext_modulus_bits": info.ciphertext_modulus_bits,
        "plaintext_moduli": [info.plaintext_modulus],
        "more_model": MORE_BASELINE,
        "more_accuracy": more.accuracy,
        "more_server_s": more.server_s,
        "more_ms_per_image": more.server_s * 1e3 / n as f64,
        "bfv_over_more_server_time": t.server_s / more.server_s,
    });
    if let Some(server) = &t.server {
        out["server"] = server.clone();
    }
    if json {
        println!("{out}");
    } else {
        if let Some(server) = &t.server {
            println!("the server: {server}");
        }
        println!(
            "{}: {n} images under BFV ({} packing, {} batch(es)), {:.2}% correct (integer network {:.2}%), same \
             argmax {agree} / {n}, identical logits {exact} / {n}\n  server {:.2} s ({:.3} ms / image \
             amortized), client: keys {:.2} s, encrypt {:.2} s, decrypt {:.2} s; end to end {:.2} s\n  upload {} \
             MB, download {} MB, evaluation keys {} MB; {}-bit security, N = {}\n  MORE ({MORE_BASELINE}) on the \
             same images: server {:.3} s ({:.4} ms / image), {:.2}% correct; BFV takes {:.0}x its server time",
            model.id,
            out["packing"].as_str().unwrap_or_default(),
            t.batches,
            100.0 * correct as f64 / n as f64,
            100.0 * int_correct as f64 / n as f64,
            t.server_s,
            t.server_s * 1e3 / n as f64,
            t.keygen_s,
            t.client_encrypt_s,
            t.client_decrypt_s,
            end_to_end_s,
            mb(t.upload_bytes),
            mb(t.download_bytes),
            mb(t.eval_key_bytes),
            info.security_bits,
            info.ring_degree,
            more.server_s,
            more.server_s * 1e3 / n as f64,
            100.0 * more.accuracy,
            t.server_s / more.server_s
        );
    }
    Ok(())
}

fn mb(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// The slot-per-image packing: batches of at most 8,192 images, as equal as possible.
fn run_slots(net: &more_bfv::QuantizedNet, images: &[Vec<i64>], quiet: bool) -> Result<Totals> {
    let mut rng = rand::rng();
    let mut t = Totals::default();
    let t0 = Instant::now();
    let client = Client::new(&mut rng);
    let key_bytes = encode_batch_keys(&client.batch_keys(&mut rng)?);
    t.keygen_s = t0.elapsed().as_secs_f64();
    t.eval_key_bytes = key_bytes.len();
    // Server side: keys as uploaded, the network's biases encoded once.
    let t0 = Instant::now();
    let keys = decode_batch_keys(&key_bytes)?;
    let ev = BatchEvaluator::new(net)?;
    t.server_s += t0.elapsed().as_secs_f64();
    t.batches = images.len().div_ceil(BATCH_SLOTS);
    let per = images.len().div_ceil(t.batches);
    for (b, chunk) in images.chunks(per).enumerate() {
        let t0 = Instant::now();
        let upload = encode_batch(&client.encrypt_batch(chunk, &mut rng)?, chunk.len());
        t.client_encrypt_s += t0.elapsed().as_secs_f64();
        t.upload_bytes += upload.len();
        let t0 = Instant::now();
        let (count, cts) = decode_batch(&upload)?;
        drop(upload);
        let last_tenth = AtomicUsize::new(0);
        let progress = |done: usize, total: usize| {
            let tenth = done * 10 / total;
            if !quiet && last_tenth.fetch_max(tenth, Ordering::Relaxed) < tenth {
                eprintln!("batch {} of {}: {}% of {total} hidden values", b + 1, t.batches, tenth * 10);
            }
        };
        let download = encode_batch_result(&ev.evaluate(&keys, &cts, &progress)?, count);
        drop(cts);
        t.server_s += t0.elapsed().as_secs_f64();
        t.download_bytes += download.len();
        let t0 = Instant::now();
        let classes = net.classes();
        let (count, out) = decode_batch_result(&download, classes)?;
        t.logits.extend(client.decrypt_batch(&out, classes, count)?);
        t.client_decrypt_s += t0.elapsed().as_secs_f64();
    }
    Ok(t)
}

/// The single-image packing, images in parallel: each phase timed over all images.
fn run_images(net: &more_bfv::QuantizedNet, images: &[Vec<i64>]) -> Result<Totals> {
    let mut rng = rand::rng();
    let mut t = Totals { batches: images.len(), ..Totals::default() };
    let t0 = Instant::now();
    let client = Client::new(&mut rng);
    let key_bytes = encode_keys(&client.eval_keys(&mut rng)?);
    t.keygen_s = t0.elapsed().as_secs_f64();
    t.eval_key_bytes = key_bytes.len();
    let t0 = Instant::now();
    let keys = decode_keys(&key_bytes)?;
    let ev = Evaluator::new(net)?;
    t.server_s += t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let uploads = images
        .par_iter()
        .map(|x| Ok(encode_ciphertexts(&client.encrypt(x, &mut rand::rng())?, INPUT_LEVEL)))
        .collect::<Result<Vec<_>>>()?;
    t.client_encrypt_s = t0.elapsed().as_secs_f64();
    t.upload_bytes = uploads.iter().map(Vec::len).sum();
    let t0 = Instant::now();
    let downloads = uploads
        .par_iter()
        .map(|u| {
            let cts = decode_ciphertexts(u, more_bfv::layout::INPUT_CIPHERTEXTS, INPUT_LEVEL)?;
            Ok(encode_ciphertexts(&ev.evaluate(&keys, &cts)?, OUTPUT_LEVEL))
        })
        .collect::<Result<Vec<_>>>()?;
    t.server_s += t0.elapsed().as_secs_f64();
    t.download_bytes = downloads.iter().map(Vec::len).sum();
    let t0 = Instant::now();
    let classes = net.classes();
    let results = more_bfv::layout::output_ciphertexts(classes);
    t.logits = downloads
        .par_iter()
        .map(|d| Ok(client.decrypt(&decode_ciphertexts(d, results, OUTPUT_LEVEL)?, classes)?))
        .collect::<Result<Vec<_>>>()?;
    t.client_decrypt_s = t0.elapsed().as_secs_f64();
    Ok(t)
}

/// The MORE network the batch figures are compared with: the bundled ring-only MNIST network (convolution,
/// square, dense — the same kinds of layers as the BFV network).
pub const MORE_BASELINE: &str = "mnist-cnn-square.morenn";

/// MORE on the same images.
struct MoreBaseline {
    /// Wall-clock seconds of the encrypted forward passes (batches of 64 on all cores).
    server_s: f64,
    accuracy: f64,
}

/// Runs [`MORE_BASELINE`] on the first `n` test images encrypted under a fresh key (OS CSPRNG), on all
/// cores, as the server would: the baseline of the same run.
fn more_baseline(data_dir: Option<&Path>, n: usize, labels: &[u8]) -> Result<MoreBaseline> {
    let test = crate::tasks::mnist::load(&paths::data_dir(data_dir), "test", Some(n))?;
    let model = crate::data::model_for_task(&paths::bundled(MORE_BASELINE), "mnist", &[1, 28, 28])?;
    let inputs = crate::data::inputs_for(&model, &test.inputs)?;
    let key = SecretKey::generate(KeyOptions::default())?;
    let encrypted =
        inputs.axis_chunks_iter(Axis(0), 64).map(|chunk| key.encrypt_tensor(&chunk)).collect::<Result<Vec<_>, _>>()?;
    let t0 = Instant::now();
    let outputs = encrypted.par_iter().map(|e| model.forward_encrypted(e)).collect::<Result<Vec<_>, _>>()?;
    let server_s = t0.elapsed().as_secs_f64();
    let mut correct = 0;
    let mut row = 0;
    for out in &outputs {
        let logits = key.decrypt_tensor(out);
        for scores in logits.outer_iter() {
            let best = scores.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
            correct += usize::from(best == labels[row] as usize);
            row += 1;
        }
    }
    Ok(MoreBaseline { server_s, accuracy: correct as f64 / n as f64 })
}

/// This process's peak resident set (`VmHWM` on Linux), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The batches sent to a `more-server`: the batch key uploaded once, each batch posted, followed to its
/// end, fetched and decrypted. `server_s` is the server's own compute time (`compute_s`); the answer also
/// carries the server's peak resident set and memory bound, read from its `/metrics` and `/api/v1/health`.
mod remote {
    use std::time::{Duration, Instant};

    use anyhow::{Context, Result, bail};
    use more_bfv::Client;
    use more_bfv::batch::BATCH_SLOTS;
    use more_bfv::wire::{decode_batch_result, encode_batch, encode_batch_keys};
    use ureq::http::Request;

    use super::Totals;
    use crate::remote::{agent, call, upload};

    const OCTETS: &str = "application/octet-stream";

    fn json_of(resp: ureq::http::Response<ureq::Body>) -> Result<serde_json::Value> {
        let mut resp = resp;
        Ok(serde_json::from_slice(&resp.body_mut().with_config().limit(1 << 20).read_to_vec()?)?)
    }

    /// Runs the batches of `images` on the server at `base` (e.g. `http://127.0.0.1:8080`) with its model
    /// `model` of `classes` classes.
    pub fn run(base: &str, model: &str, classes: usize, images: &[Vec<i64>], quiet: bool) -> Result<Totals> {
        let base = base.trim_end_matches('/');
        let http = agent(None);
        let mut rng = rand::rng();
        let mut t = Totals::default();
        let t0 = Instant::now();
        let client = Client::new(&mut rng);
        let keys = encode_batch_keys(&client.batch_keys(&mut rng)?);
        t.keygen_s = t0.elapsed().as_secs_f64();
        t.eval_key_bytes = keys.len();
        let req = Request::post(format!("{base}/api/v1/bfv/keys")).header("content-type", OCTETS).body(&keys[..])?;
        let key_id = json_of(upload(&http, "uploading the batch key", req, &|| None)?)?["key_id"]
            .as_str()
            .context("the server's answer has no key_id")?
            .to_string();
        t.batches = images.len().div_ceil(BATCH_SLOTS);
        let per = images.len().div_ceil(t.batches);
        let mut compute = Vec::new();
        for (b, chunk) in images.chunks(per).enumerate() {
            let t0 = Instant::now();
            let body = encode_batch(&client.encrypt_batch(chunk, &mut rng)?, chunk.len());
            t.client_encrypt_s += t0.elapsed().as_secs_f64();
            t.upload_bytes += body.len();
            let url = format!("{base}/api/v1/bfv/models/{model}/batches?key_id={key_id}");
            let req = Request::post(url).header("content-type", OCTETS).body(&body[..])?;
            let accepted = json_of(upload(&http, "submitting a batch", req, &|| None)?)?;
            drop(body);
            let id = accepted["batch_id"].as_str().context("the server's answer has no batch_id")?.to_string();
            let status_url = format!("{base}/api/v1/bfv/batches/{id}");
            let mut shown = 0;
            let status = loop {
                std::thread::sleep(Duration::from_millis(500));
                let st = json_of(call(&http, "reading the batch's status", Request::get(&status_url).body(())?)?)?;
                let done = st["done"].as_u64().unwrap_or(0);
                if !quiet && done * 10 / 1960 > shown {
                    shown = done * 10 / 1960;
                    eprintln!("batch {} of {} on the server: {}% of the hidden values", b + 1, t.batches, shown * 10);
                }
                match st["state"].as_str() {
                    Some("queued" | "running") => {}
                    Some("done") => break st,
                    _ => bail!("the server's batch {id} ended {}: {}", st["state"], st["error"]),
                }
            };
            compute.push(status["compute_s"].as_f64().unwrap_or(0.0));
            t.server_s += status["compute_s"].as_f64().unwrap_or(0.0);
            let mut resp =
                call(&http, "fetching the batch's result", Request::get(format!("{status_url}/result")).body(())?)?;
            let bytes = resp.body_mut().with_config().limit(8 << 20).read_to_vec()?;
            t.download_bytes += bytes.len();
            call(&http, "deleting the batch", Request::delete(&status_url).body(())?)?;
            let t0 = Instant::now();
            let (count, out) = decode_batch_result(&bytes, classes)?;
            t.logits.extend(client.decrypt_batch(&out, classes, count)?);
            t.client_decrypt_s += t0.elapsed().as_secs_f64();
        }
        let _ = call(
            &http,
            "deleting the batch key",
            Request::delete(format!("{base}/api/v1/bfv/keys/{key_id}")).body(())?,
        );
        let health = json_of(call(
            &http,
            "reading the server's health",
            Request::get(format!("{base}/api/v1/health")).body(())?,
        )?)?;
        let metrics = call(&http, "reading the server's metrics", Request::get(format!("{base}/metrics")).body(())?)?
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()?;
        let peak = metrics
            .lines()
            .find(|l| l.starts_with("more_process_resident_memory_peak_bytes "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok());
        t.server = Some(serde_json::json!({
            "url": base,
            "compute_s_per_batch": compute,
            "peak_rss_bytes": peak,
            "memory_bound_bytes": health["memory"]["bound_bytes"],
        }));
        Ok(t)
    }
}
