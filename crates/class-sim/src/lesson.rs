//! What one student does, in the lesson's order, and what the class shares: the challenge's id, the BFV
//! model and test digits, the patients of the training job and the job trained here on plaintext.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{ArrayD, IxDyn};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use more_bfv::network::argmax;
use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL};
use more_bfv::wire::{decode_ciphertexts, encode_ciphertexts, encode_keys};
use more_bfv::{BfvModel, Client as BfvClient};
use more_core::attack::{self, DataPrior};
use more_core::{KeyOptions, SecretKey};
use more_enctrain::model_file::EncryptedModel;
use more_enctrain::owner::KeyOwner;
use more_enctrain::train::{EncryptionSetup, decrypt_model};
use more_enctrain::upload::{JobRequest, MEDIA_TYPE as JOB_MEDIA_TYPE, OptimizerKind, encode_body, loss_from_text};
use more_nn::Plain;
use more_nn::train::{Dataset, Loss, Net, fit};

use crate::events;
use crate::http::{Answer, Call, Client};

/// Largest difference allowed between an output of the decrypted model and of the same network trained
/// here on plaintext, in standardised units: the bound of the training page's round-trip test
/// (`crates/wasm-train/tests/round_trip.rs`: rounding drift of the encrypted trainer's `f64` algebra
/// against `f32` plaintext, amplified by Adam's early steps, stays in the low 1e-3; measured here up to
/// about 9e-4 after 6 epochs).
pub const MODEL_TOLERANCE: f32 = 1e-2;

/// Largest relative difference of an epoch's decrypted loss from the plaintext run's (the bound of the
/// server's round-trip test, `crates/server/tests/jobs.rs`).
pub const LOSS_TOLERANCE: f64 = 1e-3;

const OCTETS: &str = "application/octet-stream";
const JSON: &str = "application/json";

/// The training job every student submits, and its reference trained here.
#[derive(Debug)]
pub struct TrainingJob {
    /// The request (network, epochs, batch, seed…).
    pub request: JobRequest,
    /// Standardised patient parameters `[n, 7]`.
    pub x: ArrayD<f32>,
    /// Standardised outputs `[n, 6]`.
    pub y: ArrayD<f32>,
    /// The same request trained in this process on the plaintext.
    pub reference: more_nn::Model,
    /// Its loss per epoch.
    pub reference_losses: Vec<f64>,
}

impl TrainingJob {
    /// Simulates `patients` patients of the circulation model (seed 1, as the training page does by
    /// default), standardises them and trains the job's network on them here for reference.
    pub fn new(patients: usize, epochs: usize, batch_size: usize) -> anyhow::Result<TrainingJob> {
        let data = more_hemo::generate(patients, 1, &Default::default(), &|| {});
        anyhow::ensure!(data.len() >= 10, "only {} of {patients} simulated patients converged", data.len());
        let scaling = more_hemo::surrogate::Scaling::fit(&data);
        let n = data.len();
        let (np, no) = (more_hemo::N_PARAMS, more_hemo::N_OUTPUTS);
        let x = ArrayD::from_shape_vec(IxDyn(&[n, np]), scaling.inputs(&data))?;
        let y = ArrayD::from_shape_vec(IxDyn(&[n, no]), scaling.targets(&data))?;
        let request = JobRequest {
            network: "wbc-mlp".into(),
            epochs,
            batch_size,
            lr: 3e-3,
            lr_decay: 0.98,
            optimizer: OptimizerKind::Adam,
            seed: 1,
        };
        let cfg = request.train_config(Loss::Mse, false);
        let specs = more_nn::networks::wbc_mlp(np, 64, no);
        let mut net = Net::new(&Plain, &[np], &specs, &mut ChaCha8Rng::seed_from_u64(request.seed))?;
        let history = fit(&Plain, &Plain, &mut net, &Dataset::new(&Plain, x.clone(), y.clone())?, None, &cfg)?;
        let reference = net.to_model(&Plain, more_nn::ModelMeta::new("wbc-mlp-plain", "wbc"))?;
        let reference_losses = history.epochs.iter().map(|e| e.train_loss).collect();
        Ok(TrainingJob { request, x, y, reference, reference_losses })
    }
}

/// The BFV part: the model (for the integer network the answer must equal) and MNIST test digits.
#[derive(Debug)]
pub struct BfvPart {
    /// The bundled `mnist-bfv-square` model.
    pub model: BfvModel,
    /// Test digits: pixels in `[0, 1]` and label.
    pub digits: Vec<(Vec<f32>, u8)>,
}

impl BfvPart {
    /// Loads the model file and the first `count` MNIST test digits of `data` (the directory holding
    /// `mnist/`).
    pub fn load(model: &std::path::Path, data: &std::path::Path, count: usize) -> anyhow::Result<BfvPart> {
        use anyhow::Context;
        let model = BfvModel::load(model).with_context(|| format!("loading {}", model.display()))?;
        let set = more_nn::idx::load_mnist(data, "test")
            .with_context(|| format!("MNIST test images in {}", data.display()))?;
        let digits = (0..count.min(set.labels.len()))
            .map(|i| {
                (
                    set.images.index_axis(ndarray::Axis(0), i).iter().map(|&p| f32::from(p) / 255.0).collect(),
                    set.labels[i],
                )
            })
            .collect();
        Ok(BfvPart { model, digits })
    }
}

/// Counts over the class.
#[derive(Debug, Default)]
pub struct Tally {
    /// Students who did every step without a failure.
    pub completed: AtomicUsize,
    /// Logical requests that failed (after the student's retries) or got a wrong answer.
    pub failed: AtomicUsize,
    /// Answers the server answered 200 to.
    pub answers_submitted: AtomicUsize,
    /// Answers whose verdict was not the expected one (a wrong answer judged right or the reverse).
    pub wrong_verdicts: AtomicUsize,
    /// Key sets uploaded (201).
    pub keys_uploaded: AtomicUsize,
    /// Key uploads whose classification answered 404.
    pub keys_lost: AtomicUsize,
    /// Digits classified under BFV whose decrypted logits equal the integer network's.
    pub bfv_exact: AtomicUsize,
    /// Of those, the class equal to the label.
    pub bfv_correct: AtomicUsize,
    /// Jobs answered 202.
    pub jobs_submitted: AtomicUsize,
    /// Jobs whose model was downloaded, decrypted and matched the reference.
    pub jobs_finished: AtomicUsize,
    /// Event streams reopened.
    pub reconnects: AtomicUsize,
    /// `resumed` events seen (a replica restarted with the job).
    pub resumed: AtomicUsize,
    /// Largest output difference of a decrypted model from the reference, as `f32` bits.
    pub worst_model_diff: AtomicUsize,
    /// The first errors, in words.
    pub errors: Mutex<Vec<String>>,
    /// Failures counted by kind (see [`failure_kind`]).
    pub kinds: Mutex<std::collections::BTreeMap<String, usize>>,
}

/// A failure's kind: its message up to the second `": "`, decimal numbers replaced by `…` — e.g.
/// `the BFV key upload: 502 (expected 201)`, `following the job: GET /api/v1/jobs/{id}/events answered 404`.
pub fn failure_kind(message: &str) -> String {
    let cut = message.match_indices(": ").nth(1).map_or(message.len(), |(at, _)| at);
    message[..cut]
        .split(' ')
        .map(|w| if w.contains('.') && w.chars().any(|c| c.is_ascii_digit()) { "…" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Tally {
    fn fail(&self, student: usize, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.kinds.lock().unwrap().entry(failure_kind(&what)).or_default() += 1;
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 50 {
            errors.push(format!("student {student}: {what}"));
        }
    }
}

/// What the students share.
#[derive(Debug)]
pub struct Class {
    /// The HTTP client (one pool for the class: they all come from one address).
    pub client: Client,
    /// The challenge the teacher created.
    pub challenge: String,
    /// The training job.
    pub job: TrainingJob,
    /// The BFV part (for every `bfv_every`-th student).
    pub bfv: Option<BfvPart>,
    /// Every `bfv_every`-th student (from the first) classifies a digit under BFV; 0: none.
    pub bfv_every: usize,
    /// Counts.
    pub tally: Tally,
}

fn expect(tally: &Tally, student: usize, what: &str, r: Result<Answer, String>, status: u16) -> Option<Answer> {
    match r {
        Ok(a) if a.status == status => Some(a),
        Ok(a) => {
            tally.fail(student, format!("{what}: {} (expected {status})", a.describe()));
            None
        }
        Err(e) => {
            tally.fail(student, format!("{what}: {e}"));
            None
        }
    }
}

/// The name student `i` gives.
pub fn student_name(i: usize) -> String {
    format!("Student {i:03}")
}

impl Class {
    /// Student `i` does the lesson; `true` if every step went as it should.
    pub fn student(&self, i: usize) -> bool {
        let before = self.tally.failed.load(Ordering::Relaxed);
        self.lesson_page(i);
        self.challenge(i);
        if self.bfv_every > 0 && i % self.bfv_every == 0 {
            self.classify_bfv(i);
        }
        self.train(i);
        let ok = self.tally.failed.load(Ordering::Relaxed) == before;
        if ok {
            self.tally.completed.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn lesson_page(&self, i: usize) {
        let r = self.client.send(&Call::get("GET /web/learn.html", "/web/learn.html"));
        let page = expect(&self.tally, i, "the lesson page", r, 200);
        if page.is_some_and(|a| !String::from_utf8_lossy(&a.body).contains("Learn MORE by breaking it")) {
            self.tally.fail(i, "the lesson page is not the lesson".into());
        }
    }

    /// Reads the challenge, breaks the ciphertext (the shared-eigenbasis attack of `more_core::attack`),
    /// answers once wrong (the negative image) and once right.
    fn challenge(&self, i: usize) {
        let t = &self.tally;
        let id = &self.challenge;
        let r = self.client.send(&Call::get("GET /api/v1/challenges/{id}", format!("/api/v1/challenges/{id}")));
        let Some(info) = expect(t, i, "the challenge", r, 200).map(|a| a.json()) else { return };
        let shape: Vec<usize> =
            info["shape"].as_array().into_iter().flatten().filter_map(|v| v.as_u64()).map(|v| v as usize).collect();
        let (Some(url), &[rows, cols]) = (info["ciphertext_url"].as_str(), &shape[..]) else {
            t.fail(i, format!("the challenge's description lacks a shape or ciphertext_url: {info}"));
            return;
        };
        let r = self.client.send(&Call::get("GET /api/v1/challenges/{id}/ciphertext", url));
        let Some(ct) = expect(t, i, "the challenge's ciphertext", r, 200) else { return };
        let image = match more_core::decode::<f64>(&ct.body, 1 << 20).map_err(|e| e.to_string()).and_then(|ct| {
            let prior = DataPrior::image_8bit(0.0, 1.0, rows, cols);
            let rec = attack::ciphertext_only(&[&ct], &prior).map_err(|e| e.to_string())?;
            Ok(rec.decrypt_snapped(&ct, &prior))
        }) {
            Ok(image) => image,
            Err(e) => {
                t.fail(i, format!("breaking the challenge: {e}"));
                return;
            }
        };
        let right: Vec<f64> = image.iter().copied().collect();
        let wrong: Vec<f64> = right.iter().map(|v| 1.0 - v).collect();
        let path = format!("/api/v1/challenges/{id}/answers");
        for (answer, correct) in [(wrong, false), (right, true)] {
            let body = serde_json::to_vec(&serde_json::json!({"name": student_name(i), "answer": answer})).unwrap();
            let r = self.client.send(&Call::post("POST /api/v1/challenges/{id}/answers", path.clone(), JSON, &body));
            let Some(a) = expect(t, i, "an answer", r, 200) else { continue };
            t.answers_submitted.fetch_add(1, Ordering::Relaxed);
            if a.json()["correct"].as_bool() != Some(correct) {
                t.wrong_verdicts.fetch_add(1, Ordering::Relaxed);
                t.fail(i, format!("the {} answer was judged {}", if correct { "right" } else { "wrong" }, a.json()));
            }
        }
    }

    /// Generates BFV keys, uploads them, classifies one test digit, decrypts and checks the logits against
    /// the integer network run here; then deletes the keys. Keys the server forgot (404) are counted and
    /// uploaded once more, as the page does.
    fn classify_bfv(&self, i: usize) {
        let t = &self.tally;
        let Some(bfv) = &self.bfv else { return };
        let (pixels, label) = &bfv.digits[i % bfv.digits.len()];
        let mut rng = rand::rng();
        let client = BfvClient::new(&mut rng);
        let prepared = bfv.model.network.quantize_image(pixels).and_then(|x| {
            let keys = encode_keys(&client.eval_keys(&mut rng)?);
            let input = encode_ciphertexts(&client.encrypt(&x, &mut rng)?, INPUT_LEVEL);
            Ok((x, keys, input))
        });
        let (x, keys, input) = match prepared {
            Ok(p) => p,
            Err(e) => {
                t.fail(i, format!("BFV keys or encryption: {e}"));
                return;
            }
        };
        let model_id = &bfv.model.id;
        for upload in 0..2 {
            let r = self.client.send(&Call::post("POST /api/v1/bfv/keys", "/api/v1/bfv/keys", OCTETS, &keys));
            let Some(a) = expect(t, i, "the BFV key upload", r, 201) else { return };
            t.keys_uploaded.fetch_add(1, Ordering::Relaxed);
            let Some(key_id) = a.json()["key_id"].as_str().map(str::to_string) else {
                t.fail(i, "the key upload's answer has no key_id".into());
                return;
            };
            let path = format!("/api/v1/bfv/models/{model_id}/infer?key_id={key_id}");
            let r = self.client.send(&Call::post("POST /api/v1/bfv/models/{id}/infer", path, OCTETS, &input));
            match r {
                Ok(a) if a.status == 404 => {
                    t.keys_lost.fetch_add(1, Ordering::Relaxed);
                    if upload == 1 {
                        t.fail(i, format!("BFV keys lost twice: {}", a.describe()));
                    }
                    continue;
                }
                r => {
                    let Some(a) = expect(t, i, "the BFV classification", r, 200) else { return };
                    let classes = bfv.model.network.classes();
                    let results = more_bfv::layout::output_ciphertexts(classes);
                    let logits = decode_ciphertexts(&a.body, results, OUTPUT_LEVEL)
                        .and_then(|cts| client.decrypt(&cts, classes));
                    match logits {
                        Ok(l) if l == bfv.model.network.forward(&x).0 => {
                            t.bfv_exact.fetch_add(1, Ordering::Relaxed);
                            if argmax(&l) == usize::from(*label) {
                                t.bfv_correct.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(l) => t.fail(i, format!("BFV logits {l:?} differ from the integer network's")),
                        Err(e) => t.fail(i, format!("decrypting the BFV answer: {e}")),
                    }
                }
            }
            let r = self.client.send(&Call {
                route: "DELETE /api/v1/bfv/keys/{id}",
                method: "DELETE",
                path: format!("/api/v1/bfv/keys/{key_id}"),
                body: None,
                bearer: None,
            });
            expect(t, i, "deleting the BFV keys", r, 204);
            return;
        }
    }

    /// Encrypts the patients under a fresh key, submits the job, follows its events (decrypting each
    /// epoch's loss), downloads and decrypts the model and checks it against the reference.
    fn train(&self, i: usize) {
        let t = &self.tally;
        let job = &self.job;
        let body = (|| -> anyhow::Result<(KeyOwner, Vec<u8>)> {
            let mut owner = KeyOwner::new(SecretKey::generate(KeyOptions::default())?);
            let setup = EncryptionSetup::standardised_regression();
            let cx = owner.encrypt_inputs(&job.x.view(), setup.input_noise.0, setup.input_noise.1)?;
            let cy = owner.encrypt_targets(&job.y, setup.targets)?;
            let canaries = owner.encrypt_canaries::<f32>()?;
            let body = encode_body(&job.request, &cx, &cy, &canaries)?;
            Ok((owner, body))
        })();
        let (owner, body) = match body {
            Ok(b) => b,
            Err(e) => {
                t.fail(i, format!("encrypting the training data: {e:#}"));
                return;
            }
        };
        let r = self.client.send(&Call::post("POST /api/v1/jobs", "/api/v1/jobs", JOB_MEDIA_TYPE, &body));
        let Some(a) = expect(t, i, "submitting the training job", r, 202) else { return };
        t.jobs_submitted.fetch_add(1, Ordering::Relaxed);
        let info = a.json();
        let (Some(events), Some(model)) = (info["events_url"].as_str(), info["model_url"].as_str()) else {
            t.fail(i, format!("the job's answer lacks events_url or model_url: {info}"));
            return;
        };
        let mut losses = Vec::new();
        let followed = events::follow(&self.client, events, 10, |e| match e.kind.as_str() {
            "epoch" => {
                let data: serde_json::Value = serde_json::from_str(&e.data).map_err(|e| e.to_string())?;
                let text = data["loss"].as_str().ok_or("an epoch event without a loss")?;
                losses.push(loss_from_text(owner.key(), text).map_err(|e| e.to_string())?);
                Ok(false)
            }
            "resumed" => {
                t.resumed.fetch_add(1, Ordering::Relaxed);
                losses.clear();
                Ok(false)
            }
            "done" => Ok(true),
            "failed" | "cancelled" => Err(format!("the job ended {}: {}", e.kind, e.data)),
            _ => Ok(false),
        });
        match followed {
            Ok(f) => {
                t.reconnects.fetch_add(f.reconnects, Ordering::Relaxed);
            }
            Err(e) => {
                t.fail(i, format!("following the job: {e}"));
                return;
            }
        }
        let r = self.client.send(&Call::get("GET /api/v1/jobs/{id}/model", model));
        let Some(a) = expect(t, i, "downloading the model", r, 200) else { return };
        let checked = (|| -> anyhow::Result<f32> {
            let model = decrypt_model(&owner, &EncryptedModel::from_bytes(&a.body, 64 << 20)?)?;
            let (p, q) = (model.forward_plain(job.x.view())?, job.reference.forward_plain(job.x.view())?);
            let worst = p.iter().zip(q.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            anyhow::ensure!(worst < MODEL_TOLERANCE, "the decrypted model differs from the reference by {worst}");
            anyhow::ensure!(losses.len() == job.reference_losses.len(), "{} epoch losses", losses.len());
            for (e, (l, r)) in losses.iter().zip(&job.reference_losses).enumerate() {
                anyhow::ensure!(
                    (l - r).abs() <= LOSS_TOLERANCE * r.max(1e-3),
                    "epoch {}: decrypted loss {l} vs {r} here",
                    e + 1
                );
            }
            Ok(worst)
        })();
        match checked {
            Ok(worst) => {
                t.jobs_finished.fetch_add(1, Ordering::Relaxed);
                t.worst_model_diff.fetch_max(worst.to_bits() as usize, Ordering::Relaxed);
            }
            Err(e) => t.fail(i, format!("the trained model: {e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::failure_kind;

    #[test]
    fn failure_kinds_drop_details() {
        assert_eq!(failure_kind("the BFV key upload: 502 (expected 201)"), "the BFV key upload: 502 (expected 201)");
        assert_eq!(
            failure_kind("following the job: lost the job's events: the stream broke (reset)"),
            "following the job: lost the job's events"
        );
        assert_eq!(
            failure_kind("the trained model: the decrypted model differs from the reference by 0.0123"),
            "the trained model: the decrypted model differs from the reference by …"
        );
    }
}
