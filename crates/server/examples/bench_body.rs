//! Writes one encrypted request body for the load test (`bench/load.sh`), and checks an answer.
//!
//! ```text
//! cargo run --release -p more-server --example bench_body -- write OUT.bin [MODEL_FILE] [INDEX]
//! cargo run --release -p more-server --example bench_body -- check ANSWER.bin [MODEL_FILE] [INDEX]
//! ```
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
        _ => bail!("usage: bench_body write|check FILE [MODEL_FILE] [INDEX]"),
    };
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
