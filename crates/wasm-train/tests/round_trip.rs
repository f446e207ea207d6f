//! The training page's flow without the browser: the owner's job body is decoded and trained on by the
//! trainer the server runs (ciphertexts only), the encrypted model decrypts to the model trained here on
//! plaintext, another key is refused, and the model's ciphertexts alone give its weights away.

use ndarray::ArrayD;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::CoeffTensor;
use more_enctrain::algebra::Encrypted;
use more_enctrain::train::Trainer;
use more_enctrain::upload::{JobRequest, decode_body};
use more_nn::{ModelMeta, Reveal};
use more_wasm_train::attack::ModelReadout;
use more_wasm_train::owner::TrainingOwner;
use more_wasm_train::plain::PlainTraining;

/// The server's view: it reveals nothing (zeros), as the real trainer does.
struct Blind;

impl Reveal<Encrypted> for Blind {
    fn reveal(&self, t: &CoeffTensor<f32>) -> more_nn::Result<ArrayD<f32>> {
        Ok(ArrayD::zeros(t.shape()))
    }
}

fn data(n: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..n * 7).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let y = x.chunks(7).flat_map(|r| (0..6).map(move |k| (r[k] * 0.5 - r[6] * 0.2).tanh())).collect();
    (x, y)
}

/// A training request as the page builds it.
fn request(json: &str) -> JobRequest {
    serde_json::from_str(json).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn encrypted_training_decrypts_to_the_plaintext_model() {
    let request = request(r#"{"network":"wbc-mlp","epochs":3,"batch_size":16,"lr":0.003,"seed":7}"#);
    let (x, y) = data(64);
    let key = SecretKey::generate(KeyOptions::default()).unwrap();
    let mut owner = TrainingOwner::with_key(key);
    let body = owner.encrypt_job(&request, &x, &y).unwrap();

    // The trainer: ciphertexts only.
    let up = decode_body(&body, &[7], 6).unwrap();
    let net = more_nn::networks::find_trainable("wbc-mlp").unwrap();
    let cfg = up.request.train_config(net.loss, net.classification);
    let mut trainer = Trainer::new(up.data.basis(), &[7], &net.layers, up.request.seed, &up.canaries).unwrap();
    trainer.fit(&Blind, &up.data, None, &cfg).unwrap();
    let encrypted = trainer.encrypted_model(ModelMeta::new("wbc-mlp", "regression")).unwrap().to_bytes().unwrap();

    let decrypted = owner.decrypt_model(&encrypted).unwrap();
    let mut plain = PlainTraining::start(request, &x, &y).unwrap();
    while plain.next_epoch().unwrap().is_some() {}
    let plain = plain.model().unwrap();
    // Rounding drift (the encrypted trainer's f64 coefficient algebra vs f32 plaintext, amplified by
    // Adam's early steps) stays in the low 1e-3.
    let d = max_diff(&decrypted.weights(), &plain.weights());
    assert!(d < 1e-2, "decrypted vs plaintext-trained weights differ by {d}");
    let (pd, pp) = (decrypted.predict(&x).unwrap(), plain.predict(&x).unwrap());
    assert!(max_diff(&pd, &pp) < 1e-2);

    // Another key's owner is refused by the canaries.
    let stranger = TrainingOwner::with_key(SecretKey::generate(KeyOptions::default()).unwrap());
    assert!(stranger.decrypt_model(&encrypted).unwrap_err().0.contains("canaries"));

    // The server reads the weights without the key: one candidate is the decrypted model.
    let readout = ModelReadout::read(&encrypted).unwrap();
    let w = decrypted.weights();
    let best = (0..2).map(|i| max_diff(&readout.candidate(i), &w)).fold(f32::INFINITY, f32::min);
    assert!(best < 1e-4, "closest candidate differs by {best}");
    assert!(readout.spread() < 1e-4);
    assert!(ModelReadout::read(&body).is_err());
}

#[test]
fn digits_are_classified_once_for_accuracy_and_agreement() {
    use more_wasm_train::mnist::MnistSamples;
    // The shared data: env `MORE_DATA`, else `../shared/data` beside the repository.
    let data = std::env::var_os("MORE_DATA").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
        std::path::PathBuf::from,
    );
    let set = more_nn::idx::load_mnist(data, "test").expect("MNIST in ../shared/data");
    let samples = MnistSamples::parse(&set.range_bytes(0, 64)).unwrap();
    let request = request(r#"{"network":"mnist-cnn-square","epochs":1,"batch_size":16,"lr":0.001,"seed":2}"#);
    let mut run = PlainTraining::start(request, &samples.inputs(), &samples.targets()).unwrap();
    while run.next_epoch().unwrap().is_some() {}
    let model = run.model().unwrap();
    let c = model.classify(&samples).unwrap();
    assert_eq!(c.classes().len(), 64);
    let right = c.classes().iter().zip(samples.labels()).filter(|(p, l)| **p == u32::from(*l)).count();
    assert_eq!(c.accuracy(), right as f64 / 64.0);
    assert_eq!(c.agreement(&c), 1.0);
    // Answers on another number of samples do not compare.
    let fewer = model.classify(&MnistSamples::parse(&set.range_bytes(0, 32)).unwrap()).unwrap();
    assert_eq!(c.agreement(&fewer), 0.0);
    assert_eq!(&c.classes()[..32], &fewer.classes()[..]);
}

#[test]
fn bad_requests_and_data_are_refused() {
    let mut owner = TrainingOwner::with_key(SecretKey::generate(KeyOptions::default()).unwrap());
    let (x, y) = data(8);
    let ok = request(r#"{"network":"wbc-mlp","epochs":1,"batch_size":4,"lr":0.01}"#);
    assert!(owner.encrypt_job(&ok, &x, &y).is_ok());
    let unknown = JobRequest { network: "nope".into(), ..ok.clone() };
    assert!(owner.encrypt_job(&unknown, &x, &y).unwrap_err().0.contains("unknown network"));
    assert!(owner.encrypt_job(&ok, &x[..14], &y).unwrap_err().0.contains("rows"));
    let mut nan = x.clone();
    nan[3] = f32::NAN;
    assert!(owner.encrypt_job(&ok, &nan, &y).unwrap_err().0.contains("non-finite"));
    assert!(owner.decrypt_loss("!!").is_err());
    assert!(owner.decrypt_model(b"MOREENCM").is_err());
}
