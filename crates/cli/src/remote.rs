//! Talking to a `more-server`, and the data owner's side of training on one (`more train <task> --encrypted
//! --server URL`).
//!
//! - [`call`] and [`upload`] send one request and turn the answer into a `Result`: a non-2xx status becomes
//!   an error with the server's JSON `message`, and a connection the server closed while a body was being
//!   uploaded (it answered early, e.g. 413, and hung up) is said plainly, with the reason the server gives
//!   when asked — never a bare socket error. `more classify --server` and `more challenge` use them too.
//! - [`Server`]: reads the server's training limits first (`GET /api/v1/training`) and refuses locally a
//!   job it would refuse, saying what to change; then encrypts the data set under the owner's key, posts
//!   it, follows the job's Server-Sent Events ([`follow`], reconnecting with `Last-Event-ID`), decrypting
//!   each epoch's encrypted loss, downloads the encrypted model and decrypts it. The server never sees the
//!   key or a plaintext value.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ndarray::{ArrayD, Axis};
use ureq::http::{Request, Response, StatusCode};
use ureq::{AsSendBody, Body};

use more_core::{KeyOptions, SecretKey};
use more_enctrain::model_file::EncryptedModel;
use more_enctrain::owner::KeyOwner;
use more_enctrain::train::{EncryptionSetup, decrypt_model};
use more_enctrain::upload::{JobRequest, MEDIA_TYPE, encode_body, loss_from_text};
use more_nn::Model;

use crate::files::{human_bytes, thousands};

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

/// An HTTP agent for a `more-server`: every status is an answer (turned into errors by [`call`] and
/// [`upload`]), connecting gives up after 10 s, the whole exchange after `timeout` if given.
pub fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(timeout)
        .build()
        .into()
}

/// Sends a request without a body (`GET`, or a `POST` without one) and returns the answer if its status is
/// 2xx, else an error `"{what}: {url} answered {status}: {the server's message}"`.
pub fn call(agent: &ureq::Agent, what: &str, request: Request<()>) -> Result<Response<Body>> {
    exchange(agent, what, request, 0, None)
}

/// Sends a request with a body, as [`call`]. If the connection breaks while the body is being sent — a
/// server that refuses a request early answers and closes without reading the rest — the error says so
/// with the body's size and URL, and with `explain()`'s reason if it finds one (it may ask the server).
pub fn upload(
    agent: &ureq::Agent,
    what: &str,
    request: Request<&[u8]>,
    explain: &dyn Fn() -> Option<String>,
) -> Result<Response<Body>> {
    let len = request.body().len();
    exchange(agent, what, request, len, Some(explain))
}

fn exchange(
    agent: &ureq::Agent,
    what: &str,
    request: Request<impl AsSendBody>,
    body_len: usize,
    explain: Option<&dyn Fn() -> Option<String>>,
) -> Result<Response<Body>> {
    let url = request.uri().to_string();
    let mut resp = match agent.run(request) {
        Ok(resp) => resp,
        Err(e) => return Err(transport_error(what, &url, e, body_len, explain)),
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    // An error answer is JSON `{"error", "message"}` from a more-server; read a bounded amount of it.
    let bytes = resp.body_mut().with_config().limit(1 << 20).read_to_vec().unwrap_or_default();
    Err(status_error(what, &url, resp.status(), &bytes))
}

/// The error for a non-2xx answer: the server's JSON `message`, else its text, else the status alone.
fn status_error(what: &str, url: &str, status: StatusCode, bytes: &[u8]) -> anyhow::Error {
    let message = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(bytes);
            text.trim().chars().take(300).collect()
        });
    if message.is_empty() {
        anyhow!("{what}: {url} answered {status}")
    } else {
        anyhow!("{what}: {url} answered {status}: {message}")
    }
}

/// The error for a request that got no answer, in words: which URL, what happened, and for a broken
/// upload how many bytes were being sent and (from `explain`) why.
fn transport_error(
    what: &str,
    url: &str,
    e: ureq::Error,
    body_len: usize,
    explain: Option<&dyn Fn() -> Option<String>>,
) -> anyhow::Error {
    use std::io::ErrorKind;
    match e {
        // Nothing was sent: no server there.
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            ) =>
        {
            anyhow!("{what}: cannot reach {url} ({})", io_reason(&io))
        }
        ureq::Error::Io(io) if body_len > 0 => {
            let size = human_bytes(body_len as u64);
            match explain.and_then(|f| f()) {
                Some(why) => anyhow!("{what}: {url} closed the connection while {size} were being uploaded: {why}"),
                None => anyhow!(
                    "{what}: {url} closed the connection while {size} were being uploaded, without an answer \
                     (the socket reported: {})",
                    io_reason(&io)
                ),
            }
        }
        ureq::Error::Io(io) => anyhow!("{what}: the connection to {url} failed ({})", io_reason(&io)),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => anyhow!("{what}: cannot reach {url} ({e})"),
        ureq::Error::Timeout(t) => anyhow!("{what}: {url} did not answer in time ({t})"),
        other => anyhow!("{what}: {url}: {other}"),
    }
}

/// An I/O error in words: `connection refused`, `broken pipe`, … (its kind, lower case).
fn io_reason(e: &std::io::Error) -> String {
    let kind = e.kind().to_string();
    if kind == "other error" { e.to_string() } else { kind }
}

/// Reads a 2xx answer's body (at most `limit` bytes).
pub fn read_body(resp: &mut Response<Body>, limit: u64, url: &str) -> Result<Vec<u8>> {
    resp.body_mut().with_config().limit(limit).read_to_vec().map_err(|e| anyhow!("reading the answer of {url}: {e}"))
}

/// Reads a 2xx answer as JSON.
pub fn read_json(mut resp: Response<Body>, url: &str) -> Result<serde_json::Value> {
    let bytes = read_body(&mut resp, 16 << 20, url)?;
    serde_json::from_slice(&bytes).with_context(|| format!("{url} did not answer JSON"))
}

/// What `GET /api/v1/training` says about a server's training jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingLimits {
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// Most epochs a job may ask for.
    pub max_epochs: usize,
    /// Largest mini-batch.
    pub max_batch_size: usize,
    /// The networks the server trains (ids).
    pub networks: Vec<String>,
}

/// Reads the training limits of the server at `base`; an error if it does not train.
pub fn training_limits(agent: &ureq::Agent, base: &str) -> Result<TrainingLimits> {
    let url = format!("{base}/api/v1/training");
    let request = Request::get(&url).body(())?;
    let info = read_json(call(agent, "reading the server's training limits", request)?, &url)?;
    if info["enabled"] != serde_json::Value::Bool(true) {
        bail!("{base} does not train: its training jobs are turned off (more-server --no-training)");
    }
    let limits = &info["limits"];
    let number = |name: &str| limits[name].as_u64().with_context(|| format!("{url}: the answer has no limits.{name}"));
    Ok(TrainingLimits {
        max_upload_bytes: number("max_upload_bytes")?,
        max_epochs: usize::try_from(number("max_epochs")?)?,
        max_batch_size: usize::try_from(number("max_batch_size")?)?,
        networks: info["networks"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["id"].as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
    })
}

impl TrainingLimits {
    /// An error saying what to change if the server would refuse `request` (its network, epochs or batch
    /// size), before any data is read or encrypted.
    pub fn check(&self, base: &str, request: &JobRequest) -> Result<()> {
        if !self.networks.is_empty() && !self.networks.contains(&request.network) {
            bail!("{base} does not train {}; it trains {}", request.network, self.networks.join(", "));
        }
        if request.epochs > self.max_epochs {
            bail!(
                "{base} trains {} epochs at most (asked {}); pass --epochs {} or fewer",
                self.max_epochs,
                request.epochs,
                self.max_epochs
            );
        }
        if request.batch_size > self.max_batch_size {
            bail!(
                "{base} takes mini-batches of {} rows at most (asked {}); pass --batch-size {} or smaller",
                self.max_batch_size,
                request.batch_size,
                self.max_batch_size
            );
        }
        Ok(())
    }

    /// An error saying how many rows fit if an upload of `rows` rows of `body.size(rows)` bytes exceeds
    /// the server's upload limit: `4,000 digits at most with this server's 64 MiB upload limit (this
    /// upload: 55,000 digits, 462.3 MiB); pass --limit 4000`.
    pub fn check_upload(&self, body: &BodySize, rows: usize, words: &Rows<'_>) -> Result<()> {
        let size = body.size(rows);
        if size <= self.max_upload_bytes {
            return Ok(());
        }
        let limit = human_bytes(self.max_upload_bytes);
        let this = format!("this upload: {} {}, {}", thousands(rows as u64), words.noun, human_bytes(size));
        match body.rows_within(self.max_upload_bytes) {
            0 => bail!("not even one of the {} fits this server's {limit} upload limit ({this})", words.noun),
            fit => bail!(
                "{} {} at most with this server's {limit} upload limit ({this}); {}",
                thousands(fit as u64),
                words.noun,
                (words.fewer)(fit)
            ),
        }
    }
}

/// How a task names its rows and how to send fewer, for the upload-limit error.
pub struct Rows<'a> {
    /// What a row is, plural (`digits`, `training patients`).
    pub noun: &'a str,
    /// What to pass to send at most this many rows (`pass --limit 4000`).
    pub fewer: &'a dyn Fn(usize) -> String,
}

/// The size of an upload body as a function of its rows: `first` bytes with one row, `per_row` more for
/// each further row (the header, the canaries and the tensors' headers do not grow with the rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySize {
    /// Bytes of a body with one row.
    pub first: u64,
    /// Bytes each further row adds.
    pub per_row: u64,
}

impl BodySize {
    /// Measures it by encoding one and two rows of `inputs` and `targets` under a throwaway key (sizes do
    /// not depend on the key).
    pub fn measure(
        request: &JobRequest,
        inputs: &ArrayD<f32>,
        targets: &ArrayD<f32>,
        setup: &EncryptionSetup,
    ) -> Result<BodySize> {
        let mut owner = KeyOwner::new(SecretKey::generate(KeyOptions::default())?);
        let canaries = owner.encrypt_canaries::<f32>()?;
        let mut size = |rows: usize| -> Result<u64> {
            let x = inputs.slice_axis(Axis(0), (0..rows).into());
            let y = targets.slice_axis(Axis(0), (0..rows).into()).to_owned();
            let cx = owner.encrypt_inputs(&x, setup.input_noise.0, setup.input_noise.1)?;
            let cy = owner.encrypt_targets(&y, setup.targets)?;
            Ok(encode_body(request, &cx, &cy, &canaries)?.len() as u64)
        };
        let first = size(1)?;
        let per_row = if inputs.shape()[0] >= 2 { size(2)? - first } else { 0 };
        Ok(BodySize { first, per_row })
    }

    /// Bytes of a body with `rows` rows.
    pub fn size(&self, rows: usize) -> u64 {
        self.first + self.per_row * (rows.max(1) as u64 - 1)
    }

    /// The most rows whose body fits in `limit` bytes (0 if not even one does).
    pub fn rows_within(&self, limit: u64) -> usize {
        match limit.checked_sub(self.first) {
            None => 0,
            Some(_) if self.per_row == 0 => usize::MAX,
            Some(room) => usize::try_from(room / self.per_row + 1).unwrap_or(usize::MAX),
        }
    }
}

/// A `more-server` that trains, with its limits read.
#[derive(Debug)]
pub struct Server {
    base: String,
    limits: TrainingLimits,
}

impl Server {
    /// Reads the training limits of the server at `url` and checks `request` against them: call it before
    /// reading or simulating the data, so that a job the server would refuse fails at once.
    pub fn connect(url: &str, request: &JobRequest) -> Result<Server> {
        let base = url.trim_end_matches('/').to_string();
        let limits = training_limits(&agent(Some(Duration::from_secs(60))), &base)?;
        limits.check(&base, request)?;
        Ok(Server { base, limits })
    }

    /// Trains `request`'s network on the server with `inputs` and `targets` encrypted under `key`
    /// (`setup`'s noise), printing each epoch's decrypted loss unless `quiet`. An upload over the server's
    /// limit is refused before the data are encrypted, naming how many `rows` fit.
    #[allow(clippy::too_many_arguments)]
    pub fn train(
        &self,
        key: &SecretKey,
        request: &JobRequest,
        inputs: &ArrayD<f32>,
        targets: &ArrayD<f32>,
        setup: &EncryptionSetup,
        rows: &Rows<'_>,
        quiet: bool,
    ) -> Result<RemoteRun> {
        let base = &self.base;
        let n = inputs.shape()[0];
        let estimate = BodySize::measure(request, inputs, targets, setup)?;
        self.limits.check_upload(&estimate, n, rows)?;

        let clock = Instant::now();
        let mut owner = KeyOwner::new(key.clone());
        let cx = owner.encrypt_inputs(&inputs.view(), setup.input_noise.0, setup.input_noise.1)?;
        let cy = owner.encrypt_targets(targets, setup.targets)?;
        let canaries = owner.encrypt_canaries::<f32>()?;
        let body = encode_body(request, &cx, &cy, &canaries)?;
        drop((cx, cy));
        let encrypt_seconds = clock.elapsed().as_secs_f64();
        let upload_bytes = body.len();
        // The estimate is exact (the wire format is linear in the rows); check the real body all the same.
        if upload_bytes as u64 > self.limits.max_upload_bytes {
            bail!(
                "the upload ({}) is over the {} limit of {base}; send fewer {}",
                human_bytes(upload_bytes as u64),
                human_bytes(self.limits.max_upload_bytes),
                rows.noun
            );
        }

        let short = agent(Some(Duration::from_secs(600)));
        let url = format!("{base}/api/v1/jobs");
        // One key per job: a balancer that resends the upload to another replica creates no second job.
        let request = Request::post(&url)
            .header("content-type", MEDIA_TYPE)
            .header("idempotency-key", format!("{:032x}", rand::random::<u128>()))
            .body(&body[..])?;
        let explain = || explain_upload(base, upload_bytes);
        let resp = upload(&short, "posting the training job", request, &explain)?;
        drop(body);
        let job = read_json(resp, &url)?;
        let events_url = format!("{base}{}", job["events_url"].as_str().context("the job answer has no events_url")?);
        let model_url = format!("{base}{}", job["model_url"].as_str().context("the job answer has no model_url")?);
        if !quiet {
            eprintln!(
                "job {} queued on {base} ({} bytes uploaded)",
                job["id"].as_str().unwrap_or("?"),
                thousands(upload_bytes as u64)
            );
        }

        let (mut epoch_losses, mut epoch_seconds) = (Vec::new(), Vec::new());
        follow(&events_agent(), &events_url, &Retry::default(), quiet, |event| {
            let data = || -> Result<serde_json::Value> {
                serde_json::from_str(&event.data).with_context(|| format!("a {} event is not JSON", event.kind))
            };
            match event.kind.as_str() {
                "epoch" => {
                    let data = data()?;
                    let loss = loss_from_text(key, data["loss"].as_str().context("an epoch event without loss")?)?;
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
                "done" => return Ok(Flow::Done),
                "failed" => {
                    let data = data()?;
                    bail!("training failed on the server ({}): {}", data["error"], data["message"])
                }
                "cancelled" => bail!("the job was cancelled on the server"),
                // `queued`, `step` and kinds this client does not know.
                _ => {}
            }
            Ok(Flow::Continue)
        })?;

        let mut resp = call(&short, "downloading the model", Request::get(&model_url).body(())?)?;
        let bytes = read_body(&mut resp, 1 << 30, &model_url)?;
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
}

/// Why the server at `base` may have closed the connection during an upload of `bytes`: asks its limits
/// again (they may have changed since they were read).
fn explain_upload(base: &str, bytes: usize) -> Option<String> {
    let limits = training_limits(&agent(Some(Duration::from_secs(10))), base);
    match limits {
        Ok(l) if bytes as u64 > l.max_upload_bytes => {
            Some(format!("the upload is over the server's {} limit; send fewer rows", human_bytes(l.max_upload_bytes)))
        }
        Ok(_) => None,
        Err(e) => Some(format!("{e:#}")),
    }
}

/// The agent of an event stream: no overall timeout (a job trains for minutes), but a read that waits 60 s
/// for a byte gives up — the server sends a heartbeat every 15 s — so a dead connection is reconnected.
fn events_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its `id:`, if it had a numeric one.
    pub id: Option<u64>,
    /// Its `event:` kind (`message` if none).
    pub kind: String,
    /// Its `data:` lines, joined by newlines.
    pub data: String,
}

/// What the handler of [`follow`] wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More events.
    Continue,
    /// The last one came: stop following.
    Done,
}

/// How often and how long [`follow`] tries to reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in a row without a new event before giving up.
    pub attempts: u32,
    /// Wait before the first attempt; doubled for each next one, up to `max_delay`.
    pub first_delay: Duration,
    /// Longest wait between attempts.
    pub max_delay: Duration,
}

impl Default for Retry {
    /// 10 attempts over about a minute: 1, 2, 4, then 8 s apart.
    fn default() -> Self {
        Retry { attempts: 10, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(8) }
    }
}

/// Why one connection to the event stream ended.
enum Ended {
    /// The handler said [`Flow::Done`].
    Done,
    /// Worth reconnecting: the connection failed or ended before the last event, or a 5xx answer.
    Lost(String),
}

/// Follows the Server-Sent Events at `url`, handing each to `handle` once, until it answers
/// [`Flow::Done`] or fails. When the stream ends before that or the connection fails, reconnects (printing
/// `reconnecting to the job's events (attempt k of n)` unless `quiet`) with `Last-Event-ID: <the last
/// id seen>`, so the server sends only later events; an event whose id is not above the last one seen is
/// skipped, for servers that replay. Ids may skip numbers. Comment lines (`:` heartbeats) are ignored.
/// A 4xx answer (e.g. the job is gone) is an error at once; `retry` bounds the attempts in a row that
/// bring no new event.
pub fn follow(
    agent: &ureq::Agent,
    url: &str,
    retry: &Retry,
    quiet: bool,
    mut handle: impl FnMut(&Event) -> Result<Flow>,
) -> Result<()> {
    let mut seen = Seen::default();
    let mut attempt = 0;
    let mut delay = retry.first_delay;
    loop {
        let before = seen.count;
        let reason = match stream_once(agent, url, &mut seen, &mut handle)? {
            Ended::Done => return Ok(()),
            Ended::Lost(reason) => reason,
        };
        if seen.count > before {
            // This connection brought news: the next failure starts a fresh series of attempts.
            attempt = 0;
            delay = retry.first_delay;
        }
        attempt += 1;
        if attempt > retry.attempts {
            bail!("lost the job's events at {url}: {reason} ({} attempts to reconnect failed)", retry.attempts);
        }
        if !quiet {
            eprintln!("{reason}; reconnecting to the job's events (attempt {attempt} of {})", retry.attempts);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(retry.max_delay);
    }
}

/// The events handled so far.
#[derive(Debug, Default)]
struct Seen {
    /// The last event id handled.
    last_id: Option<u64>,
    /// Events handled in all.
    count: usize,
}

/// One connection to the event stream: handles the events not seen yet.
fn stream_once(
    agent: &ureq::Agent,
    url: &str,
    seen: &mut Seen,
    handle: &mut impl FnMut(&Event) -> Result<Flow>,
) -> Result<Ended> {
    let mut request = Request::get(url).header("accept", "text/event-stream");
    if let Some(id) = seen.last_id {
        request = request.header("last-event-id", id.to_string());
    }
    let mut resp = match agent.run(request.body(())?) {
        Ok(resp) => resp,
        Err(e) => return Ok(Ended::Lost(format!("{:#}", transport_error("following the job", url, e, 0, None)))),
    };
    let status = resp.status();
    if !status.is_success() {
        let bytes = resp.body_mut().with_config().limit(1 << 20).read_to_vec().unwrap_or_default();
        let e = status_error("following the job", url, status, &bytes);
        return if status.is_server_error() { Ok(Ended::Lost(e.to_string())) } else { Err(e) };
    }
    // A server without ids replays from the start: skip as many events as were handled already.
    let mut replayed = if seen.last_id.is_none() { seen.count } else { 0 };
    let mut reader = std::io::BufReader::new(resp.into_body().into_reader());
    let mut pending = Event { id: None, kind: String::new(), data: String::new() };
    let mut has_data = false;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(Ended::Lost("the server closed the event stream before the job finished".into())),
            Ok(_) => {}
            Err(e) => return Ok(Ended::Lost(format!("the event stream broke ({})", io_reason(&e)))),
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            // A blank line ends an event.
            let event = std::mem::replace(&mut pending, Event { id: None, kind: String::new(), data: String::new() });
            if !std::mem::take(&mut has_data) {
                continue;
            }
            let event = Event { kind: if event.kind.is_empty() { "message".into() } else { event.kind }, ..event };
            let fresh = match (event.id, seen.last_id) {
                (Some(id), Some(last)) => id > last,
                (None, _) if replayed > 0 => {
                    replayed -= 1;
                    false
                }
                _ => true,
            };
            if !fresh {
                continue;
            }
            let flow = handle(&event)?;
            seen.count += 1;
            if event.id.is_some() {
                seen.last_id = event.id;
            }
            if flow == Flow::Done {
                return Ok(Ended::Done);
            }
            continue;
        }
        if text.starts_with(':') {
            // A comment: the server's heartbeat.
            continue;
        }
        let (field, value) = text.split_once(':').unwrap_or((text, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => pending.id = value.parse().ok(),
            "event" => pending.kind = value.to_string(),
            "data" => {
                if has_data {
                    pending.data.push('\n');
                }
                pending.data.push_str(value);
                has_data = true;
            }
            // `retry:` and unknown fields.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// Reads one request's head (up to the blank line) from `stream`.
    fn request_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap().to_ascii_lowercase()
    }

    const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";

    /// The stream is cut twice, once mid-event; each reconnection carries `Last-Event-ID` with the last id
    /// handled, replayed events are skipped, comments and unknown kinds pass, ids may skip numbers.
    #[test]
    fn follow_reconnects_with_last_event_id_and_handles_each_event_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/v1/jobs/j/events", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut heads = Vec::new();
            // 1: two events, then the connection closes without a final event.
            let (mut s, _) = listener.accept().unwrap();
            heads.push(request_head(&mut s));
            let body = ": heartbeat\n\nid: 0\nevent: queued\ndata: {\"rows\":3}\n\n\
                        id: 1\nevent: epoch\ndata: {\"epoch\":1}\n\n";
            s.write_all(format!("{SSE_HEAD}{body}").as_bytes()).unwrap();
            drop(s);
            // 2: replays event 1, then a coalesced step (id 4, skipping 2 and 3), a kind this client does
            // not know, and half an event when the connection breaks.
            let (mut s, _) = listener.accept().unwrap();
            heads.push(request_head(&mut s));
            let body = "id: 1\nevent: epoch\ndata: {\"epoch\":1}\n\n:\n\
                        id: 4\nevent: step\ndata: {\"step\":7}\n\n\
                        id: 5\nevent: novel\ndata: {}\n\n\
                        id: 6\nevent: epoch\ndata: {\"ep";
            s.write_all(format!("{SSE_HEAD}{body}").as_bytes()).unwrap();
            drop(s);
            // 3: a proxy's 502, then 4: the rest.
            let (mut s, _) = listener.accept().unwrap();
            heads.push(request_head(&mut s));
            s.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").unwrap();
            drop(s);
            let (mut s, _) = listener.accept().unwrap();
            heads.push(request_head(&mut s));
            let body = "id: 6\nevent: epoch\ndata: {\"epoch\":2}\n\nid: 7\nevent: done\ndata: {}\n\n";
            s.write_all(format!("{SSE_HEAD}{body}").as_bytes()).unwrap();
            heads
        });
        let retry = Retry { attempts: 3, first_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) };
        let mut events = Vec::new();
        follow(&events_agent(), &url, &retry, true, |e| {
            events.push((e.id, e.kind.clone(), e.data.clone()));
            Ok(if e.kind == "done" { Flow::Done } else { Flow::Continue })
        })
        .unwrap();
        let heads = server.join().unwrap();
        let kinds: Vec<(Option<u64>, &str)> = events.iter().map(|(id, k, _)| (*id, k.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (Some(0), "queued"),
                (Some(1), "epoch"),
                (Some(4), "step"),
                (Some(5), "novel"),
                (Some(6), "epoch"),
                (Some(7), "done")
            ]
        );
        assert_eq!(events[4].2, "{\"epoch\":2}");
        assert!(!heads[0].contains("last-event-id"), "{}", heads[0]);
        assert!(heads[1].contains("last-event-id: 1\r\n"), "{}", heads[1]);
        assert!(heads[2].contains("last-event-id: 5\r\n"), "{}", heads[2]);
        assert!(heads[3].contains("last-event-id: 5\r\n"), "{}", heads[3]);
    }

    /// Attempts that bring nothing new are bounded; a 4xx answer is final at once, with its message.
    #[test]
    fn follow_gives_up_and_reports_why() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            for _ in 0..3 {
                let (mut s, _) = listener.accept().unwrap();
                request_head(&mut s);
                s.write_all(format!("{SSE_HEAD}: only heartbeats\n\n").as_bytes()).unwrap();
            }
            let (mut s, _) = listener.accept().unwrap();
            request_head(&mut s);
            let body = r#"{"error":"not_found","message":"no job j (it may have been downloaded or expired)"}"#;
            let head = format!("HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\n\r\n", body.len());
            s.write_all(format!("{head}{body}").as_bytes()).unwrap();
        });
        let retry = Retry { attempts: 2, first_delay: Duration::from_millis(1), max_delay: Duration::from_millis(1) };
        let e = follow(&events_agent(), &url, &retry, true, |_| Ok(Flow::Continue)).unwrap_err().to_string();
        assert!(e.contains("before the job finished") && e.contains("2 attempts"), "{e}");
        let e = follow(&events_agent(), &url, &retry, true, |_| Ok(Flow::Continue)).unwrap_err().to_string();
        assert!(e.contains("404 Not Found: no job j"), "{e}");
        server.join().unwrap();
    }

    /// A server that answers 413 before reading an upload and closes: the error names the URL and the
    /// size, and gives the reason the server's limits show — never a bare socket error.
    #[test]
    fn a_closed_upload_is_explained() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            request_head(&mut s);
            let body = r#"{"error":"too_large","message":"request body of 33554432 bytes exceeds the limit of 1048576 bytes"}"#;
            let head = format!(
                "HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(format!("{head}{body}").as_bytes()).unwrap();
            drop(s);
            // The client asks for the limits to explain (or, if it read the 413, the test connects to end
            // this thread).
            let (mut s, _) = listener.accept().unwrap();
            if !request_head(&mut s).starts_with("get /api/v1/training ") {
                return;
            }
            let body = r#"{"enabled":true,"networks":[{"id":"wbc-mlp"}],"limits":{"max_upload_bytes":1048576,"max_epochs":200,"max_batch_size":512}}"#;
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
            s.write_all(format!("{head}{body}").as_bytes()).unwrap();
        });
        let body = vec![7u8; 32 << 20];
        let url = format!("{base}/api/v1/jobs");
        let request = Request::post(&url).header("content-type", MEDIA_TYPE).body(&body[..]).unwrap();
        let explain = || explain_upload(&base, body.len());
        let e = upload(&agent(Some(Duration::from_secs(30))), "posting the training job", request, &explain)
            .unwrap_err()
            .to_string();
        if !e.contains("closed the connection") {
            let _ = TcpStream::connect(base.trim_start_matches("http://"));
        }
        server.join().unwrap();
        // Either the server's answer arrived, or the broken upload is explained by its limits.
        assert!(
            e.contains("413 Payload Too Large: request body of")
                || e.contains(&format!("{url} closed the connection while 32 MiB were being uploaded: the upload is over the server's 1 MiB limit")),
            "{e}"
        );
        assert!(!e.to_lowercase().contains("io:"), "{e}");
    }

    #[test]
    fn body_size_counts_the_rows_that_fit() {
        let b = BodySize { first: 1000, per_row: 100 };
        assert_eq!((b.size(1), b.size(11)), (1000, 2000));
        assert_eq!((b.rows_within(999), b.rows_within(1000), b.rows_within(2099)), (0, 1, 11));
        let limits = TrainingLimits {
            max_upload_bytes: 64 << 20,
            max_epochs: 200,
            max_batch_size: 512,
            networks: vec!["mnist-cnn-relu".into()],
        };
        let digit = BodySize { first: 13_000, per_row: 12_700 };
        let fewer = |k: usize| format!("pass --limit {k}");
        let words = Rows { noun: "digits", fewer: &fewer };
        assert!(limits.check_upload(&digit, 3000, &words).is_ok());
        let e = limits.check_upload(&digit, 55_000, &words).unwrap_err().to_string();
        assert_eq!(
            e,
            "5,284 digits at most with this server's 64 MiB upload limit (this upload: 55,000 digits, 666.1 MiB); \
             pass --limit 5284"
        );
        let request = JobRequest {
            network: "mnist-cnn-relu".into(),
            epochs: 300,
            batch_size: 64,
            lr: 1e-3,
            lr_decay: 1.0,
            optimizer: more_enctrain::upload::OptimizerKind::Adam,
            seed: 1,
        };
        let e = limits.check("http://s", &request).unwrap_err().to_string();
        assert_eq!(e, "http://s trains 200 epochs at most (asked 300); pass --epochs 200 or fewer");
        let e = limits.check("http://s", &JobRequest { epochs: 3, batch_size: 1024, ..request.clone() }).unwrap_err();
        assert!(e.to_string().ends_with("pass --batch-size 512 or smaller"), "{e}");
        let e = limits.check("http://s", &JobRequest { network: "mnist-cnn-bfv-float".into(), ..request }).unwrap_err();
        assert_eq!(e.to_string(), "http://s does not train mnist-cnn-bfv-float; it trains mnist-cnn-relu");
    }
}
