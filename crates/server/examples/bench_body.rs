//! Writes one encrypted request body for the load test (`bench/load.sh`), and checks an answer.
//!
//! ```text
//! cargo run --release -p more-server --example bench_body -- write OUT.bin [MODEL_FILE] [INDEX]
//! cargo run --release -p more-server --example bench_body -- check ANSWER.bin [MODEL_FILE] [INDEX]
//! cargo run --release -p more-server --example bench_body -- job OUT.bin ROWS EPOCHS BATCH
//! cargo run --release -p more-server --example bench_body -- bfv-keys OUT.bin
//! ```
//! `job` writes an encrypted WBC-shaped training job (synthetic rows, `wbc-mlp`), `bfv-keys` a BFV
//! evaluation-key message from a fresh client (for the hostile-client test, `bench/hostile.sh`).
//! The image is MNIST test image `INDEX` (default 0) from `$MORE_DATA/mnist` (default `../shared/data`), or
//! for an angiography model (task `angio`) val frame `INDEX` from `$MORE_DATA/angio`, normalised as the
//! model's metadata says and encrypted under a key from a fixed seed, so `check` can decrypt the server's
//! answer and compare it with the label and the plaintext model.

use anyhow::{Context, bail};
use more_core::{KeyOptions, SecretKey};
use more_nn::Model;
use more_nn::metrics::argmax;
use ndarray::{ArrayD, Axis, IxDyn};

const SEED: u64 = 0x5eed;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, file) = match (args.first(), args.get(1)) {
        (Some(m), Some(f)) => (m.as_str(), f.as_str()),
        _ => bail!(
            "usage: bench_body write|check FILE [MODEL_FILE] [INDEX] | job FILE ROWS EPOCHS BATCH | bfv-keys FILE"
        ),
    };
    if mode == "job" {
        let number = |i: usize| -> anyhow::Result<usize> {
            args.get(i).context("job FILE ROWS EPOCHS BATCH")?.parse().context("a whole number")
        };
        let body = job_body(number(2)?, number(3)?, number(4)?)?;
        std::fs::write(file, &body)?;
        println!("wrote {file}: a wbc-mlp training job, {} bytes", body.len());
        return Ok(());
    }
    if mode == "bfv-keys" {
        let mut rng = rand::rng();
        let client = more_bfv::Client::new(&mut rng);
        let keys = more_bfv::wire::encode_keys(&client.eval_keys(&mut rng)?);
        std::fs::write(file, &keys)?;
        println!("wrote {file}: BFV evaluation keys, {} bytes", keys.len());
        return Ok(());
    }
    let model_path = args.get(2).map_or("models/mnist-cnn-relu.morenn", String::as_str);
    let index: usize = args.get(3).map_or(Ok(0), |s| s.parse()).context("INDEX")?;
    let model = Model::load(model_path).with_context(|| format!("loading {model_path}"))?;
    let data = std::env::var("MORE_DATA").unwrap_or_else(|_| "../shared/data".into());
    let (images, labels) = if model.meta().task == "angio" {
        let set = more_nn::idx::load_angio(std::path::Path::new(&data), "val")?;
        (set.images.into_dyn(), ndarray::Array1::from(set.labels).into_dyn())
    } else {
        let images = more_nn::idx::read_idx(format!("{data}/mnist/t10k-images-idx3-ubyte.gz"))?;
        let labels = more_nn::idx::read_idx(format!("{data}/mnist/t10k-labels-idx1-ubyte.gz"))?;
        (images, labels)
    };
    if index >= labels.len() {
        bail!("INDEX {index} is out of range ({} images)", labels.len());
    }
    let mut x: Vec<f32> = images.index_axis(Axis(0), index).iter().map(|&p| f32::from(p)).collect();
    model.meta().preprocessing.normalize(&mut x)?;
    let x = ArrayD::from_shape_vec(IxDyn(model.input_shape()), x)?;
    let key = SecretKey::from_seed(SEED, KeyOptions::default())?;
    let label = labels[[index]];
    match mode {
        "write" => {
            let ct = key.encrypt_tensor::<f32>(&x.view())?;
            std::fs::write(file, more_core::encode(&ct))?;
            println!("wrote {file}: {} image {index} (label {label}) for {}", model.meta().task, model.meta().id);
        }
        "check" => {
            let bytes = std::fs::read(file)?;
            let answer = key.decrypt_tensor(&more_core::decode::<f32>(&bytes, 1 << 20)?);
            let plain = model.forward_plain(x.insert_axis(Axis(0)).view())?;
            let diff = answer.iter().zip(plain.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let predicted = argmax(answer.iter());
            println!("decrypted answer: class {predicted} (label {label}), max |encrypted - plaintext| = {diff:.2e}");
            if diff > 1e-3 || predicted != argmax(plain.iter()) {
                bail!("the decrypted answer does not match the plaintext model");
            }
        }
        _ => bail!("mode must be write or check"),
    }
    Ok(())
}

/// An encrypted `wbc-mlp` training job of `rows` synthetic rows.
fn job_body(rows: usize, epochs: usize, batch_size: usize) -> anyhow::Result<Vec<u8>> {
    use more_enctrain::owner::KeyOwner;
    use more_enctrain::train::TargetNoise;
    use more_enctrain::upload::{JobRequest, OptimizerKind, encode_body};
    let x = ArrayD::from_shape_fn(IxDyn(&[rows, 7]), |i| ((i[0] * 7 + i[1]) % 13) as f32 / 13.0);
    let y = ArrayD::from_shape_fn(IxDyn(&[rows, 6]), |i| ((i[0] + i[1]) % 5) as f32 / 5.0);
    let mut owner = KeyOwner::new(SecretKey::from_seed(SEED, KeyOptions::default())?);
    let cx = owner.encrypt_inputs(&x.view(), -2.0, 2.0)?;
    let cy = owner.encrypt_targets(&y, TargetNoise::Uniform { lo: -1.0, hi: 1.0 })?;
    let canaries = owner.encrypt_canaries::<f32>()?;
    let request = JobRequest {
        network: "wbc-mlp".into(),
        epochs,
        batch_size,
        lr: 1e-3,
        lr_decay: 1.0,
        optimizer: OptimizerKind::Adam,
        seed: 1,
    };
    Ok(encode_body(&request, &cx, &cy, &canaries)?)
}
