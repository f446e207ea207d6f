//! The data owner's side of training on a `more-server` (`more train <task> --encrypted --server URL`):
//! encrypts the data set under a fresh key, posts it as a training job, follows the job's Server-Sent
//! Events (decrypting each epoch's encrypted loss), downloads the encrypted model and decrypts it. The
//! server never sees the key or a plaintext value.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ndarray::ArrayD;

use more_core::SecretKey;
use more_enctrain::model_file::EncryptedModel;
use more_enctrain::owner::KeyOwner;
use more_enctrain::train::{EncryptionSetup, decrypt_model};
use more_enctrain::upload::{JobRequest, MEDIA_TYPE, encode_body, loss_from_text};
use more_nn::Model;

/// What a remote training run produced.
#[derive(Debug)]
pub struct RemoteRun {
    /// The decrypted model.
    pub model: Model,
    /// The decrypted training loss of each epoch.
    pub epoch_losses: Vec<f64>,
    /// The server's wall time per epoch, seconds.
    pub epoch_seconds: Vec<f64>,
    /// Bytes uploaded.
    pub upload_bytes: usize,
    /// Bytes of the encrypted model downloaded.
    pub model_bytes: usize,
    /// Seconds spent encrypting.
    pub encrypt_seconds: f64,
    /// Seconds from the start of encryption to the decrypted model.
    pub seconds: f64,
}

fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(timeout).build().into()
}

fn read_body(resp: &mut ureq::http::Response<ureq::Body>, limit: u64) -> Result<Vec<u8>> {
    resp.body_mut().with_config().limit(limit).read_to_vec().context("reading the server's answer")
}

fn check(status: ureq::http::StatusCode, bytes: &[u8], what: &str) -> Result<()> {
    if status.is_success() {
        return Ok(());
    }
    let msg = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
    bail!("{what}: the server answered {status}: {msg}")
}

/// Trains `request`'s network on the server at `base` with `inputs` and `targets` encrypted under `key`
/// (`setup`'s noise), printing each epoch's decrypted loss unless `quiet`.
pub fn train(
    base: &str,
    key: &SecretKey,
    request: &JobRequest,
    inputs: &ArrayD<f32>,
    targets: &ArrayD<f32>,
    setup: &EncryptionSetup,
    quiet: bool,
) -> Result<RemoteRun> {
    let base = base.trim_end_matches('/');
    let clock = Instant::now();
    let mut owner = KeyOwner::new(key.clone());
    let cx = owner.encrypt_inputs(&inputs.view(), setup.input_noise.0, setup.input_noise.1)?;
    let cy = owner.encrypt_targets(targets, setup.targets)?;
    let canaries = owner.encrypt_canaries::<f32>()?;
    let body = encode_body(request, &cx, &cy, &canaries)?;
    drop((cx, cy));
    let encrypt_seconds = clock.elapsed().as_secs_f64();
    let upload_bytes = body.len();

    let short = agent(Some(Duration::from_secs(600)));
    let url = format!("{base}/api/v1/jobs");
    let mut resp = short
        .post(&url)
        .header("content-type", MEDIA_TYPE)
        .send(&body[..])
        .with_context(|| format!("cannot reach {url}"))?;
    drop(body);
    let bytes = read_body(&mut resp, 1 << 20)?;
    check(resp.status(), &bytes, "posting the training job")?;
    let job: serde_json::Value = serde_json::from_slice(&bytes).context("the job answer is not JSON")?;
    let events_url = format!("{base}{}", job["events_url"].as_str().context("no events_url")?);
    let model_url = format!("{base}{}", job["model_url"].as_str().context("no model_url")?);
    if !quiet {
        eprintln!("job {} queued on {base} ({upload_bytes} bytes uploaded)", job["id"].as_str().unwrap_or("?"));
    }

    let mut resp = agent(None).get(&events_url).call().with_context(|| format!("cannot reach {events_url}"))?;
    if !resp.status().is_success() {
        let bytes = read_body(&mut resp, 1 << 20)?;
        check(resp.status(), &bytes, "following the job")?;
    }
    let (mut epoch_losses, mut epoch_seconds) = (Vec::new(), Vec::new());
    let mut kind = String::new();
    let mut finished = false;
    for line in std::io::BufReader::new(resp.body_mut().as_reader()).lines() {
        let line = line.context("reading the job's events")?;
        if let Some(k) = line.strip_prefix("event:") {
            kind = k.trim().to_string();
            continue;
        }
        let Some(data) = line.strip_prefix("data:") else { continue };
        let data: serde_json::Value = serde_json::from_str(data.trim()).context("an event is not JSON")?;
        match kind.as_str() {
            "epoch" => {
                let loss = loss_from_text(key, data["loss"].as_str().context("epoch event without loss")?)?;
                let secs = data["seconds"].as_f64().unwrap_or(0.0);
                epoch_losses.push(loss);
                epoch_seconds.push(secs);
                if !quiet {
                    eprintln!(
                        "epoch {}/{}: loss {loss:.5} (decrypted here; {secs:.2} s on the server)",
                        data["epoch"], data["epochs"]
                    );
                }
            }
            "resumed" => {
                epoch_losses.clear();
                epoch_seconds.clear();
                if !quiet {
                    eprintln!("the server restarted: training starts again");
                }
            }
            "done" => {
                finished = true;
                break;
            }
            "failed" => bail!("training failed on the server ({}): {}", data["error"], data["message"]),
            "cancelled" => bail!("the job was cancelled on the server"),
            _ => {}
        }
    }
    if !finished {
        bail!("the server closed the event stream before the job was done");
    }
    let mut resp = short.get(&model_url).call().with_context(|| format!("cannot reach {model_url}"))?;
    let bytes = read_body(&mut resp, 1 << 30)?;
    check(resp.status(), &bytes, "downloading the model")?;
    let encrypted = EncryptedModel::from_bytes(&bytes, 1 << 30)?;
    let model = decrypt_model(&owner, &encrypted)?;
    Ok(RemoteRun {
        model,
        epoch_losses,
        epoch_seconds,
        upload_bytes,
        model_bytes: bytes.len(),
        encrypt_seconds,
        seconds: clock.elapsed().as_secs_f64(),
    })
}
