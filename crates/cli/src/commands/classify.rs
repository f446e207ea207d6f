//! `more classify`: classify PNG or JPEG files the way the browser does — decode, preprocess as the
//! model's metadata says (`more-imaging`, the same code the page runs in wasm), encrypt under a fresh key,
//! run the model on the ciphertext, decrypt.
//!
//! - `--model F`: the model file runs here, and the answer is checked against plaintext inference.
//! - `--server URL --model-id ID`: this command is the data owner and `more-server` the untrusted party: the
//!   metadata comes from `GET /api/v1/models`, the ciphertext goes to `POST /api/v1/models/{id}/infer`, the
//!   key never leaves this process (plain HTTP: a server on this machine or a trusted network).

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::{ArrayD, IxDyn};
use serde::Serialize;

use more_core::codec::MEDIA_TYPE;
use more_core::{KeyOptions, SecretKey};
use more_imaging::{GrayImage, Normalization, decode_image, preprocess};
use more_nn::{Algebra, Model, ModelMeta, OutputKind, Plain};

use crate::remote;

/// Arguments of `more classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Model file (an image model: preprocessing `mnist-digit` or `angio-frame`), run in this process.
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub model: Option<PathBuf>,
    /// A running `more-server` (e.g. `http://127.0.0.1:8080`) that runs the model on the ciphertexts.
    #[arg(long, requires = "model_id")]
    pub server: Option<String>,
    /// The server's model id (see `GET /api/v1/models`), with `--server`.
    #[arg(long)]
    pub model_id: Option<String>,
    /// PNG or JPEG files (any size up to 8192 pixels per side; digits light-on-dark or dark-on-light).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print one JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// The answer for one image.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// The file.
    pub file: String,
    /// Its width and height.
    pub size: [usize; 2],
    /// Predicted label (from the decrypted output).
    pub label: String,
    /// Probability of every label (softmax of the decrypted logits).
    pub probabilities: Vec<f32>,
    /// The plaintext model's label for the same input (local model only).
    pub plaintext_label: Option<String>,
    /// Largest |decrypted output − plaintext output| (local model only).
    pub max_abs_diff: Option<f32>,
    /// Milliseconds: decode + preprocess, encrypt, encrypted forward pass (locally, or the HTTP round trip),
    /// decrypt.
    pub ms: [f64; 4],
    /// The server's `Server-Timing` header (with `--server`).
    pub server_timing: Option<String>,
}

/// Where the model runs.
enum Engine {
    /// A model file, in this process.
    Local(Model),
    /// A `more-server`: its infer URL, the largest body it takes for the model, and an HTTP agent.
    Remote { meta: ModelMeta, url: String, max_body: Option<u64>, agent: ureq::Agent },
}

impl Engine {
    fn meta(&self) -> &ModelMeta {
        match self {
            Engine::Local(m) => m.meta(),
            Engine::Remote { meta, .. } => meta,
        }
    }

    fn connect(server: &str, id: &str) -> Result<Engine> {
        let agent = remote::agent(Some(std::time::Duration::from_secs(60)));
        let base = server.trim_end_matches('/');
        let list = format!("{base}/api/v1/models");
        let resp = remote::call(&agent, "reading the model list", ureq::http::Request::get(&list).body(())?)?;
        let body = remote::read_json(resp, &list)?;
        let models = body["models"].as_array().context("the model list has no \"models\"")?;
        let Some(m) = models.iter().find(|m| m["id"] == id) else {
            let ids: Vec<&str> = models.iter().filter_map(|m| m["id"].as_str()).collect();
            bail!("the server has no model {id:?} (it lists: {})", ids.join(", "));
        };
        let meta: ModelMeta = serde_json::from_value(m.clone()).context("the model's metadata")?;
        let url = format!("{base}/api/v1/models/{}/infer", id);
        Ok(Engine::Remote { meta, url, max_body: m["max_body_bytes"].as_u64(), agent })
    }
}

/// Largest accepted file, bytes.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Runs `more classify`.
pub fn run(args: ClassifyArgs) -> Result<()> {
    let engine = match (&args.model, &args.server, &args.model_id) {
        (Some(file), None, _) => Engine::Local(Model::load(file)?),
        (None, Some(server), Some(id)) => Engine::connect(server, id)?,
        _ => bail!("give either --model FILE, or --server URL with --model-id ID"),
    };
    let meta = engine.meta();
    let pre = &meta.preprocessing;
    if !matches!(pre.kind.as_str(), "mnist-digit" | "angio-frame") {
        bail!(
            "model {} does not take images (its preprocessing is {:?}; image models use \"mnist-digit\" or \"angio-frame\")",
            meta.id,
            pre.kind
        );
    }
    let norm = pre.normalization().context("the model's normalisation")?;
    let mut answers = Vec::new();
    let mut failed = 0;
    for path in &args.images {
        match classify(&engine, &norm, path) {
            Ok(a) => {
                if !args.json {
                    let p = a.probabilities.iter().copied().fold(0.0, f32::max);
                    let check = match (&a.plaintext_label, a.max_abs_diff) {
                        (Some(l), Some(d)) => format!("plaintext {l}, max |diff| {d:.1e}; "),
                        _ => String::new(),
                    };
                    let place =
                        if matches!(engine, Engine::Local(_)) { "encrypted forward" } else { "server round trip" };
                    println!(
                        "{}: {} (p = {p:.3}; {}x{}; {check}{:.1} ms {place})",
                        a.file, a.label, a.size[0], a.size[1], a.ms[2]
                    );
                }
                answers.push(a);
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e:#}", path.display());
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
    }
    if failed > 0 {
        bail!("{failed} of {} images could not be classified", args.images.len());
    }
    Ok(())
}

fn classify(engine: &Engine, norm: &Normalization, path: &Path) -> Result<Answer> {
    let meta = engine.meta();
    let t0 = Instant::now();
    let image = decode(path)?;
    let size = [image.width(), image.height()];
    let x = preprocess(&meta.preprocessing.kind, &image, meta.preprocessing.resize, norm)?;
    let mut shape = vec![1];
    shape.extend_from_slice(&meta.input_shape);
    let x = ArrayD::from_shape_vec(IxDyn(&shape), x)
        .with_context(|| format!("the preprocessed image does not fit the model's input {:?}", meta.input_shape))?;
    let t1 = Instant::now();
    let key = SecretKey::generate(KeyOptions::default())?;
    let enc = key.encrypt_tensor(&x.view())?;
    let t2 = Instant::now();
    let (out, server_timing) = match engine {
        Engine::Local(model) => (model.forward_encrypted(&enc)?, None),
        Engine::Remote { url, agent, max_body, .. } => remote_infer(agent, url, *max_body, &more_core::encode(&enc))?,
    };
    let t3 = Instant::now();
    let dec = key.decrypt_tensor(&out);
    let t4 = Instant::now();
    let name = |v: &ArrayD<f32>| {
        let i = crate::metrics::argmax(v);
        meta.labels.get(i).cloned().unwrap_or_else(|| i.to_string())
    };
    let (plaintext_label, max_abs_diff) = match engine {
        Engine::Local(model) => {
            let plain = model.forward_plain(x.view())?;
            let diff = dec.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            (Some(name(&plain)), Some(diff))
        }
        Engine::Remote { .. } => (None, None),
    };
    let probabilities = match meta.output_kind {
        OutputKind::Probabilities => dec.iter().copied().collect(),
        // One row `[1, classes]`: the max-subtracted softmax the plaintext trainer uses.
        _ => Plain.softmax_rows(&dec)?.iter().copied().collect(),
    };
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    Ok(Answer {
        file: path.display().to_string(),
        size,
        label: name(&dec),
        probabilities,
        plaintext_label,
        max_abs_diff,
        ms: [ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4)],
        server_timing,
    })
}

/// `POST`s one wire-format ciphertext and decodes the encrypted answer; a server error is reported with the
/// server's own message, a connection closed during the upload with the model's body limit if the
/// ciphertext is over it.
fn remote_infer(
    agent: &ureq::Agent,
    url: &str,
    max_body: Option<u64>,
    body: &[u8],
) -> Result<(more_core::EncryptedTensor<f32>, Option<String>)> {
    let request =
        ureq::http::Request::post(url).header("content-type", MEDIA_TYPE).header("accept", MEDIA_TYPE).body(body)?;
    let explain = || {
        max_body
            .filter(|&limit| body.len() as u64 > limit)
            .map(|limit| format!("the ciphertext is over the server's limit of {limit} bytes for this model"))
    };
    let mut resp = remote::upload(agent, "classifying on the server", request, &explain)?;
    let timing = resp.headers().get("server-timing").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = remote::read_body(&mut resp, 16 << 20, url)?;
    let out = more_core::decode::<f32>(&bytes, 16 << 20).context("the server's answer is not a wire-format tensor")?;
    Ok((out, timing))
}

/// Reads a PNG or JPEG file (at most 64 MiB) and decodes it with `more-imaging` (which refuses images over
/// 8192 pixels per side before decoding their pixels).
pub fn decode(path: &Path) -> Result<GrayImage> {
    let file = std::fs::File::open(path).context("cannot open")?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_FILE_BYTES {
        bail!("the file is too large ({len} bytes; at most {MAX_FILE_BYTES})");
    }
    let mut bytes = Vec::with_capacity(len as usize);
    BufReader::new(file).take(MAX_FILE_BYTES).read_to_end(&mut bytes).context("cannot read")?;
    Ok(decode_image(&bytes)?)
}
