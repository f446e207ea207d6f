//! `more attack`: the attacks of `more_core::attack` measured on real encrypted data — the MNIST test set,
//! the angiography frames, and an encrypted model's weights and outputs.
//!
//! Every image gets its own fresh key (`κ(S)` uniform in `[1, max_condition]`, random lane uniform in
//! `[-1, 1)`) and is encrypted as the browser does it (`f32` planes, the model's normalisation). The attack
//! then sees only that image's ciphertexts: it estimates the eigenbasis, picks the data lane by how it looks,
//! and decrypts. An image counts as **recovered** when every pixel's 8-bit level (the nearest level to the
//! recovered value) equals the original byte. The error is reported relative to the pixel range, for `f32`
//! planes (what the wire carries) and for `f64` planes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use more_core::attack::{self, DataPrior, Lane};
use more_core::{EncryptedTensor, KeyOptions, Real, SecretKey};
use more_nn::Model;
use more_nn::idx::{self, ImageSet};
use ndarray::{ArrayD, Axis, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use crate::args::{DataArgs, JsonArgs};

/// Options of `more attack`.
#[derive(Debug, Clone, clap::Args)]
pub struct AttackArgs {
    #[command(flatten)]
    pub json: JsonArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Attack at most N images of each data set (default: all 10,000 MNIST test digits and 1,200 angiograms).
    #[arg(long)]
    pub n: Option<usize>,
    /// Model file whose encrypted weights and outputs to attack (default: the first models/mnist-*.morenn).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A model trained on encrypted data (`.moreenc`, from `more reproduce --save`): attack its
    /// still-encrypted weights, whose second lane is a real shadow model trained on the noise.
    #[arg(long)]
    pub encrypted_model: Option<PathBuf>,
    /// Seed for keys and random lanes (default: fresh from the operating system).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Largest condition number of the keys.
    #[arg(long, default_value_t = 10.0)]
    pub max_condition: f64,
}

/// The attack on one data set.
#[derive(Debug, Serialize)]
pub struct DatasetReport {
    /// `"mnist-test"` or `"angio-train+val"`.
    pub dataset: String,
    /// Images attacked.
    pub images: usize,
    /// `[height, width]`.
    pub size: [usize; 2],
    /// The plane type of the ciphertexts.
    pub dtype: &'static str,
    /// The normalised pixel range `[lo, hi]` (pixel `p` is encrypted as `lo + (hi − lo)·p/255`).
    pub pixel_range: [f64; 2],
    /// Images whose every 8-bit level was recovered exactly.
    pub recovered: usize,
    /// `recovered / images`.
    pub recovery_rate: f64,
    /// Largest |recovered − encrypted| over all pixels, relative to the pixel range (f32 planes).
    pub max_error: f64,
    /// The same with `f64` planes.
    pub max_error_f64: f64,
    /// The key owner's own decryption error on the same f32 planes, for comparison.
    pub owner_max_error: f64,
    /// Microseconds per image of the whole ciphertext-only attack (eigenbasis, lane choice, decryption),
    /// each image attacked on its own under its own key.
    pub us_per_image: f64,
    /// Microseconds per image when a data set shares one key: basis and lane from the first image, then
    /// every image decrypted.
    pub shared_key_us_per_image: f64,
    /// Images where the automatic lane choice picked the noise.
    pub wrong_lane: usize,
    /// Smallest and mean confidence of the lane choice.
    pub lane_confidence: [f64; 2],
    /// Fraction of pixels whose ink/background status the determinant test (no eigenbasis) got right.
    pub ink_mask_accuracy: f64,
}

/// The attack on an encrypted model.
#[derive(Debug, Serialize)]
pub struct ModelReport {
    /// Model file.
    pub model: String,
    /// Number of weights.
    pub weights: usize,
    /// Largest |recovered − true weight| relative to the largest |weight| (f32 planes).
    pub weights_max_error: f64,
    /// Whether the lane taken from one encrypted training image under the same key gave the real weights.
    pub lane_from_data_correct: bool,
    /// Whether choosing the candidate model (real lane or shadow lane) that classifies public test images
    /// better — a ciphertext-only choice — gave the real weights.
    pub lane_from_accuracy_correct: bool,
    /// Test accuracy of the real model and of the recovered one, on `accuracy_images` images.
    pub accuracy: [f64; 2],
    /// Images used for accuracy and for the output attack.
    pub accuracy_images: usize,
    /// Fraction of encrypted answers whose class the server read (argmax of the recovered logits equals
    /// the model's plaintext answer).
    pub answer_leak_rate: f64,
    /// Largest |recovered logit − plaintext logit|.
    pub logits_max_error: f64,
    /// Largest |owner's decrypted logit − plaintext logit| (the encrypted forward pass's own f32 error).
    pub owner_logits_max_error: f64,
    /// Microseconds for the weight attack (basis from all weights, both candidates).
    pub weights_attack_us: f64,
}

/// The attack on a model trained on encrypted data (both lanes are trained networks).
#[derive(Debug, Serialize)]
pub struct EncryptedModelReport {
    /// The `.moreenc` file.
    pub file: String,
    /// Number of encrypted weights.
    pub weights: usize,
    /// How far the weight ciphertexts are from one common eigenbasis (rounding-sized under one key).
    pub spread: f64,
    /// Test accuracy (on `accuracy_images` public digits) of the lane chosen as the model, and of the other
    /// lane (the shadow model trained on the noise).
    pub accuracy: [f64; 2],
    /// Images used for the accuracies.
    pub accuracy_images: usize,
    /// Largest |recovered − owner-decrypted weight| relative to the largest weight, when the owner's
    /// decrypted model (`<name>.morenn` next to the file) is present.
    pub weights_max_error: Option<f64>,
    /// Microseconds for the whole attack (basis, both candidates, their accuracies).
    pub attack_us: f64,
}

/// Everything `more attack` measured.
#[derive(Debug, Serialize)]
pub struct AttackReport {
    /// MNIST test digits.
    pub mnist: DatasetReport,
    /// Angiography frames (train + val).
    pub angio: Option<DatasetReport>,
    /// The model attack (absent without a model file).
    pub model: Option<ModelReport>,
    /// The attack on a model trained on encrypted data (with `--encrypted-model`).
    pub encrypted_model: Option<EncryptedModelReport>,
    /// Why a section is missing.
    pub notes: Vec<String>,
}

/// Runs `more attack`.
pub fn run(args: AttackArgs) -> Result<()> {
    let report = measure(&args)?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
    }
    Ok(())
}

/// Runs every measurement.
pub fn measure(args: &AttackArgs) -> Result<AttackReport> {
    let data = args.data.dir();
    let mut rng = match args.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_os_rng(),
    };
    let opts = KeyOptions { max_condition: args.max_condition, ..KeyOptions::default() };
    let mut notes = Vec::new();
    let model_path = args.model.clone().or_else(|| find_model("mnist"));

    let mnist = idx::load_mnist(&data, "test")
        .with_context(|| format!("MNIST test set in {} (use --data DIR)", data.display()))?;
    let mnist = args.n.map_or(mnist.clone(), |n| mnist.take(n));
    let (mean, std) = normalisation(model_path.as_deref(), (0.1307, 0.3081));
    let mnist_report = attack_dataset("mnist-test", &mnist, mean, std, opts, &mut rng)?;

    let angio_report = match load_angio(&data) {
        Ok(set) => {
            let set = args.n.map_or(set.clone(), |n| set.take(n));
            let (mean, std) = normalisation(find_model("angio").as_deref(), (0.0, 1.0));
            Some(attack_dataset("angio-train+val", &set, mean, std, opts, &mut rng)?)
        }
        Err(e) => {
            notes.push(format!("angiograms skipped: {e:#}"));
            None
        }
    };

    let model_report = match &model_path {
        Some(p) => Some(attack_model(p, &mnist, opts, &mut rng)?),
        None => {
            notes.push("model attack skipped: no models/mnist-*.morenn (use --model FILE)".into());
            None
        }
    };
    let encrypted_model = match &args.encrypted_model {
        Some(p) => Some(attack_encrypted_model(p, &mnist)?),
        None => None,
    };
    Ok(AttackReport { mnist: mnist_report, angio: angio_report, model: model_report, encrypted_model, notes })
}

fn load_angio(data: &Path) -> Result<ImageSet> {
    let a = idx::load_angio(data, "train")?;
    let b = idx::load_angio(data, "val")?;
    let images = ndarray::concatenate(Axis(0), &[a.images.view(), b.images.view()])?;
    Ok(ImageSet { images, labels: [a.labels, b.labels].concat() })
}

/// The first `models/{task}-*.morenn` (sorted), if any.
fn find_model(task: &str) -> Option<PathBuf> {
    let dir = crate::paths::built_models_dir();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(&format!("{task}-")) && name.ends_with(&format!(".{}", more_nn::model::FILE_EXTENSION))
        })
        .collect();
    found.sort();
    // Shown as `models/<file>` (relative to the repository root).
    found
        .into_iter()
        .next()
        .and_then(|p| Some(crate::paths::bundled(p.file_name()?.to_str()?)).filter(|r| r.exists()).or(Some(p)))
}

/// `(mean, std)` of the model's preprocessing (first channel), or the default.
fn normalisation(model: Option<&Path>, default: (f64, f64)) -> (f64, f64) {
    model
        .and_then(|p| Model::load(p).ok())
        .and_then(|m| {
            let p = &m.meta().preprocessing;
            let (mean, std) = (*p.mean.first()?, *p.std.first()?);
            (std > 0.0).then_some((f64::from(mean), f64::from(std)))
        })
        .unwrap_or(default)
}

/// Pixel `p` → `(p/255 − mean)/std`, as the browser encrypts it.
fn normalise(px: &[u8], mean: f64, std: f64) -> Vec<f64> {
    px.iter().map(|&p| (f64::from(p) / 255.0 - mean) / std).collect()
}

fn attack_dataset(
    name: &str,
    set: &ImageSet,
    mean: f64,
    std: f64,
    opts: KeyOptions,
    rng: &mut ChaCha20Rng,
) -> Result<DatasetReport> {
    let (n, h, w) = set.images.dim();
    if n == 0 {
        bail!("{name}: no images");
    }
    let (lo, hi) = ((0.0 - mean) / std, (1.0 - mean) / std);
    let range = hi - lo;
    let prior = DataPrior::image_8bit(lo, hi, h, w);
    let flat = set.images.as_standard_layout();
    let flat = flat.as_slice().context("image layout")?;

    let (mut recovered, mut wrong_lane) = (0usize, 0usize);
    let (mut max_error, mut max_error_f64, mut owner_max_error) = (0.0f64, 0.0f64, 0.0f64);
    let (mut conf_min, mut conf_sum) = (1.0f64, 0.0f64);
    let (mut ink_right, mut attack_secs) = (0usize, 0.0f64);
    for px in flat.chunks_exact(h * w) {
        let key = SecretKey::generate_with_rng(opts, rng)?;
        let x = normalise(px, mean, std);
        // f32 planes, as on the wire.
        let x32 = tensor(x.iter().map(|&v| v as f32).collect(), h, w);
        let t = key.encrypt_tensor_with(&x32.view(), rng)?;
        let start = Instant::now();
        let rec = attack::ciphertext_only(&[&t], &prior)?;
        let got = rec.decrypt(&t);
        attack_secs += start.elapsed().as_secs_f64();

        let truth = x32.mapv(f64::from);
        let err = max_abs_diff(&got, &truth) / range;
        max_error = max_error.max(err);
        let levels_ok = got.iter().zip(px).all(|(&v, &p)| level(v, lo, range) == i64::from(p));
        recovered += usize::from(levels_ok);
        let noise_err = max_abs_diff(&rec.noise(&t), &truth) / range;
        wrong_lane += usize::from(noise_err < err);
        conf_min = conf_min.min(rec.verdict.confidence);
        conf_sum += rec.verdict.confidence;
        owner_max_error = owner_max_error.max(max_abs_diff(&key.decrypt_tensor(&t).mapv(f64::from), &truth) / range);
        let mask = attack::ink_mask(&t, lo, attack::DEFAULT_REL_TOL);
        ink_right += mask.iter().zip(px).filter(|&(&ink, &p)| ink == (p != 0)).count();

        // f64 planes.
        let x64 = tensor(x.clone(), h, w);
        let t64 = key.encrypt_tensor_with(&x64.view(), rng)?;
        let rec64 = attack::ciphertext_only(&[&t64], &prior)?;
        max_error_f64 = max_error_f64.max(max_abs_diff(&rec64.decrypt(&t64), &x64) / range);
    }

    // One key for the whole data set: basis and lane from the first image, then decrypt every image.
    let key = SecretKey::generate_with_rng(opts, rng)?;
    let cts: Vec<EncryptedTensor<f32>> = flat
        .chunks_exact(h * w)
        .map(|px| {
            key.encrypt_tensor_with(
                &tensor(normalise(px, mean, std).iter().map(|&v| v as f32).collect(), h, w).view(),
                rng,
            )
        })
        .collect::<std::result::Result<_, _>>()?;
    let start = Instant::now();
    let rec = attack::ciphertext_only(&[&cts[0]], &prior)?;
    let mut shared_ok = 0usize;
    for (t, px) in cts.iter().zip(flat.chunks_exact(h * w)) {
        let got = rec.decrypt(t);
        shared_ok += usize::from(got.iter().zip(px).all(|(&v, &p)| level(v, lo, range) == i64::from(p)));
    }
    let shared_secs = start.elapsed().as_secs_f64();
    if shared_ok != n {
        eprintln!("warning: {name}: shared-key attack recovered {shared_ok} of {n} images");
    }

    Ok(DatasetReport {
        dataset: name.into(),
        images: n,
        size: [h, w],
        dtype: "f32",
        pixel_range: [lo, hi],
        recovered,
        recovery_rate: recovered as f64 / n as f64,
        max_error,
        max_error_f64,
        owner_max_error,
        us_per_image: attack_secs * 1e6 / n as f64,
        shared_key_us_per_image: shared_secs * 1e6 / n as f64,
        wrong_lane,
        lane_confidence: [conf_min, conf_sum / n as f64],
        ink_mask_accuracy: ink_right as f64 / (n * h * w) as f64,
    })
}

fn tensor<F: Real>(v: Vec<F>, h: usize, w: usize) -> ArrayD<F> {
    ArrayD::from_shape_vec(IxDyn(&[h, w]), v).expect("h·w values")
}

fn level(v: f64, lo: f64, range: f64) -> i64 {
    ((v - lo) / range * 255.0).round() as i64
}

fn max_abs_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn attack_model(path: &Path, test: &ImageSet, opts: KeyOptions, rng: &mut ChaCha20Rng) -> Result<ModelReport> {
    let model = Model::load(path).with_context(|| format!("model file {}", path.display()))?;
    let pre = &model.meta().preprocessing;
    let (mean, std) = (pre.mean.first().copied().unwrap_or(0.0), pre.std.first().copied().unwrap_or(1.0));
    let scale = if pre.scale > 0.0 { pre.scale } else { 1.0 / 255.0 };
    let n_eval = test.len().min(500);
    let eval = test.take(n_eval);
    let inputs = eval.inputs(&more_imaging::Normalization::new(scale, vec![mean], vec![std])?)?;
    let (lo, hi) =
        ((0.0 - f64::from(mean)) / f64::from(std), (f64::from(scale) * 255.0 - f64::from(mean)) / f64::from(std));

    // The weights, encrypted under the data owner's key (as training on encrypted data leaves them).
    let key = SecretKey::generate_with_rng(opts, rng)?;
    let params: Vec<Vec<ArrayD<f32>>> = model.layers().iter().map(|l| l.params()).collect();
    let enc: Vec<EncryptedTensor<f32>> = params
        .iter()
        .flatten()
        .map(|p| key.encrypt_tensor_with(&p.view(), rng))
        .collect::<std::result::Result<_, _>>()?;
    let weights: usize = enc.iter().map(EncryptedTensor::len).sum();
    let wmax = params.iter().flatten().flat_map(|p| p.iter()).fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));

    // (a) Ciphertext-only on the weights: basis from all of them, then pick the candidate model that
    // classifies public data better.
    let start = Instant::now();
    let refs: Vec<&EncryptedTensor<f32>> = enc.iter().collect();
    let basis = attack::Eigenbasis::estimate(&refs)?;
    let mut best: Option<(f64, Lane, Model)> = None;
    for lane in [Lane::First, Lane::Second] {
        let candidate = rebuild(&model, &enc, |t| basis.lane(t, lane))?;
        let acc = accuracy(&candidate, &inputs, &eval.labels)?;
        if best.as_ref().is_none_or(|(a, _, _)| acc > *a) {
            best = Some((acc, lane, candidate));
        }
    }
    let weights_attack_us = start.elapsed().as_secs_f64() * 1e6;
    let (acc_recovered, lane, _) = best.context("no candidate")?;
    let truth_lane_err = |lane: Lane| -> f64 {
        enc.iter()
            .zip(params.iter().flatten())
            .map(|(t, p)| max_abs_diff(&basis.lane(t, lane), &p.mapv(f64::from)))
            .fold(0.0, f64::max)
    };
    let lane_from_accuracy_correct = truth_lane_err(lane) < truth_lane_err(lane.other());
    let weights_max_error = truth_lane_err(lane) / wmax.max(f64::MIN_POSITIVE);

    // (b) The lane from one encrypted input image under the same key.
    let img: ArrayD<f32> = inputs.index_axis(Axis(0), 0).to_owned();
    let img_t = key.encrypt_tensor_with(&img.view(), rng)?;
    let (h, w) = (img.shape()[img.ndim() - 2], img.shape()[img.ndim() - 1]);
    let rec = attack::ciphertext_only(&[&img_t], &DataPrior::image_8bit(lo, hi, h, w))?;
    let w0 = rec.decrypt(&enc[0]);
    let lane_from_data_correct = max_abs_diff(&w0, &params[first_with_params(&params)][0].mapv(f64::from))
        < max_abs_diff(&rec.noise(&enc[0]), &params[first_with_params(&params)][0].mapv(f64::from));

    // Outputs: the model runs on encrypted inputs; the server reads the answers.
    let x = key.encrypt_tensor_with(&inputs.view(), rng)?;
    let y = model.forward_encrypted(&x)?;
    let plain = model.forward_plain(inputs.view())?;
    let rec = attack::ciphertext_only(&[&x], &DataPrior::image_8bit(lo, hi, h, w))?;
    let leak = attack::leak_outputs(&rec.basis, Lane::First, &y)?;
    let truth = more_nn::metrics::predictions(&plain);
    let answer_leak_rate =
        leak.argmax.iter().zip(&truth).filter(|(a, b)| a == b).count() as f64 / truth.len().max(1) as f64;
    let logits_max_error = max_abs_diff(&leak.values.into_dyn(), &plain.mapv(f64::from));
    let owner_logits_max_error = max_abs_diff(&key.decrypt_tensor(&y).mapv(f64::from), &plain.mapv(f64::from));

    Ok(ModelReport {
        model: path.display().to_string(),
        weights,
        weights_max_error,
        lane_from_data_correct,
        lane_from_accuracy_correct,
        accuracy: [accuracy(&model, &inputs, &eval.labels)?, acc_recovered],
        accuracy_images: n_eval,
        answer_leak_rate,
        logits_max_error,
        owner_logits_max_error,
        weights_attack_us,
    })
}

fn attack_encrypted_model(path: &Path, test: &ImageSet) -> Result<EncryptedModelReport> {
    let enc = more_enctrain::model_file::EncryptedModel::load(path)
        .with_context(|| format!("encrypted model file {}", path.display()))?;
    let spec = enc.net_spec()?;
    let tensors: Vec<EncryptedTensor<f32>> =
        enc.params.iter().map(|p| p.to_encrypted()).collect::<std::result::Result<_, _>>()?;
    let pre = &spec.meta.preprocessing;
    let (mean, std) = (pre.mean.first().copied().unwrap_or(0.0), pre.std.first().copied().unwrap_or(1.0));
    let scale = if pre.scale > 0.0 { pre.scale } else { 1.0 / 255.0 };
    let eval = test.take(test.len().min(500));
    let inputs = eval.inputs(&more_imaging::Normalization::new(scale, vec![mean], vec![std])?)?;

    let start = Instant::now();
    let refs: Vec<&EncryptedTensor<f32>> = tensors.iter().collect();
    let basis = attack::Eigenbasis::estimate(&refs)?;
    let mut candidates = Vec::new();
    for lane in [Lane::First, Lane::Second] {
        let params: Vec<ArrayD<f32>> = tensors.iter().map(|t| basis.lane(t, lane).mapv(|v| v as f32)).collect();
        let mut it = params.clone().into_iter();
        let mut layers = Vec::new();
        for l in &spec.layers {
            // Encrypted training keeps convolution kernels flattened (`[out, in·kh·kw]`): same order.
            let p = l
                .param_shapes()
                .into_iter()
                .map(|shape| {
                    let t = it.next().context("fewer parameters than the layers need")?;
                    Ok(t.into_shape_with_order(IxDyn(&shape))?)
                })
                .collect::<Result<Vec<ArrayD<f32>>>>()?;
            layers.push(l.build(p)?);
        }
        let model = Model::new(spec.meta.clone(), &spec.input_shape, layers)?;
        candidates.push((accuracy(&model, &inputs, &eval.labels)?, params));
    }
    let attack_us = start.elapsed().as_secs_f64() * 1e6;
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let weights: usize = tensors.iter().map(EncryptedTensor::len).sum();

    // The key owner's decryption, if saved next to it (`more reproduce --save`), as ground truth.
    let owner = path.with_extension(more_nn::model::FILE_EXTENSION);
    let weights_max_error = Model::load(&owner).ok().map(|m| {
        let truth: Vec<ArrayD<f32>> = m.layers().iter().flat_map(|l| l.params()).collect();
        let wmax = truth.iter().flat_map(|p| p.iter()).fold(0.0f64, |a, &v| a.max(f64::from(v).abs()));
        let err = truth
            .iter()
            .zip(&candidates[0].1)
            .map(|(t, r)| max_abs_diff(&t.mapv(f64::from), &r.mapv(f64::from)))
            .fold(0.0, f64::max);
        err / wmax.max(f64::MIN_POSITIVE)
    });
    Ok(EncryptedModelReport {
        file: path.display().to_string(),
        weights,
        spread: basis.spread(),
        accuracy: [candidates[0].0, candidates[1].0],
        accuracy_images: eval.len(),
        weights_max_error,
        attack_us,
    })
}

fn first_with_params(params: &[Vec<ArrayD<f32>>]) -> usize {
    params.iter().position(|p| !p.is_empty()).unwrap_or(0)
}

/// The model with every parameter replaced by `f(its ciphertext)`.
fn rebuild(
    model: &Model,
    enc: &[EncryptedTensor<f32>],
    f: impl Fn(&EncryptedTensor<f32>) -> ArrayD<f64>,
) -> Result<Model> {
    let mut it = enc.iter();
    let mut layers = Vec::new();
    for layer in model.layers() {
        let count = layer.params().len();
        let params: Vec<ArrayD<f32>> = (0..count)
            .map(|_| it.next().map(|t| f(t).mapv(|v| v as f32)).context("parameter count"))
            .collect::<Result<_>>()?;
        layers.push(layer.spec().build(params)?);
    }
    Ok(Model::new(model.meta().clone(), model.input_shape(), layers)?)
}

fn accuracy(model: &Model, inputs: &ArrayD<f32>, labels: &[u8]) -> Result<f64> {
    Ok(more_nn::metrics::label_accuracy(&model.forward_plain(inputs.view())?, labels))
}

fn print_tables(r: &AttackReport) {
    println!("Ciphertext-only attack (each image under its own fresh key; f32 planes as on the wire)");
    println!(
        "{:<16} {:>7} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10} {:>8}",
        "data set",
        "images",
        "recovered",
        "max err",
        "f64 err",
        "owner err",
        "µs/img",
        "µs/img*",
        "lane conf",
        "ink ok"
    );
    for d in std::iter::once(&r.mnist).chain(r.angio.as_ref()) {
        println!(
            "{:<16} {:>7} {:>9.2}% {:>10.2e} {:>10.2e} {:>10.2e} {:>9.1} {:>9.2} {:>10.3} {:>7.3}%",
            d.dataset,
            d.images,
            100.0 * d.recovery_rate,
            d.max_error,
            d.max_error_f64,
            d.owner_max_error,
            d.us_per_image,
            d.shared_key_us_per_image,
            d.lane_confidence[0],
            100.0 * d.ink_mask_accuracy
        );
    }
    println!("(errors relative to the pixel range; µs/img* = one key for the data set, basis from the first image;");
    println!(" lane conf = lowest confidence of the automatic lane choice; ink ok = determinant-only ink mask)");
    if let Some(m) = &r.model {
        println!();
        println!("Encrypted model {} ({} weights)", m.model, m.weights);
        println!(
            "  weights recovered, max error {:.2e} of the largest weight, in {:.0} µs",
            m.weights_max_error, m.weights_attack_us
        );
        println!(
            "  real vs shadow lane: by public-data accuracy {}, by one encrypted input {}",
            if m.lane_from_accuracy_correct { "correct" } else { "WRONG" },
            if m.lane_from_data_correct { "correct" } else { "WRONG" }
        );
        println!(
            "  accuracy on {} test digits: real {:.3}, recovered {:.3}",
            m.accuracy_images, m.accuracy[0], m.accuracy[1]
        );
        println!(
            "  encrypted answers read by the server: {:.2}% (max logit error {:.2e}; the key owner's: {:.2e})",
            100.0 * m.answer_leak_rate,
            m.logits_max_error,
            m.owner_logits_max_error
        );
    }
    if let Some(e) = &r.encrypted_model {
        println!();
        println!("Model trained on encrypted data {} ({} weights, basis spread {:.1e})", e.file, e.weights, e.spread);
        println!(
            "  both lanes recovered from the weight ciphertexts in {:.0} µs; accuracy on {} test digits: model lane {:.3}, shadow lane {:.3}",
            e.attack_us, e.accuracy_images, e.accuracy[0], e.accuracy[1]
        );
        if let Some(err) = e.weights_max_error {
            println!("  recovered weights vs the key owner's decryption: max error {err:.2e} of the largest weight");
        }
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real data sets (../shared/data, or MORE_DATA): every image recovered without the key.
    #[test]
    fn recovers_every_image_of_both_data_sets() {
        let args = AttackArgs {
            json: JsonArgs { json: true },
            data: DataArgs { data: None },
            n: Some(20),
            model: None,
            encrypted_model: None,
            seed: Some(5),
            max_condition: 10.0,
        };
        let r = measure(&args).expect("the data sets in ../shared/data (set MORE_DATA or --data)");
        assert_eq!((r.mnist.images, r.mnist.recovered, r.mnist.wrong_lane), (20, 20, 0));
        let angio = r.angio.expect("angiograms in ../shared/data/angio");
        assert_eq!((angio.images, angio.recovered, angio.wrong_lane), (20, 20, 0));
        assert!(r.mnist.max_error_f64 < 1e-6 && angio.max_error_f64 < 1e-6);
        if let Some(m) = r.model {
            assert!(m.lane_from_data_correct && m.answer_leak_rate == 1.0, "{m:?}");
        }
    }
}
