//! Cost of plaintext vs encrypted training for an angiography-shaped task (synthetic 128x128 frames, two
//! imbalanced classes reweighted by resampling, a small CNN with stride-2 convolutions, average pooling
//! and ReLU), through the task API. `cargo run --release -p more-enctrain --example angio_cost [N] [EPOCHS]
//! [real]` — with `real`, the first N ARCADE training frames and the 200 validation frames from
//! `../shared/data/angio` (or `$MORE_DATA/angio`) instead of synthetic ones (pixels scaled to [0, 1]).

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::task::{Task, balanced_class_weights, class_counts, compare, mean_epoch_seconds, predict_plain};
use more_enctrain::train::{EncryptionSetup, PlainData};
use more_nn::ModelMeta;
use more_nn::train::{OptimizerConfig, TrainConfig, correct};

fn frames(n: usize, seed: u64) -> PlainData {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n0 = n * 5 / 8;
    let labels: Vec<usize> = (0..n).map(|i| usize::from(i >= n0)).collect();
    let x = ArrayD::from_shape_fn(IxDyn(&[n, 1, 128, 128]), |i| {
        let bright = (labels[i[0]] == 0) == (i[3] < 64);
        (if bright { 0.55 } else { 0.45 }) + rng.random_range(-0.3f32..0.3)
    });
    let y = ArrayD::from_shape_fn(IxDyn(&[n, 2]), |i| f32::from(u8::from(labels[i[0]] == i[1])));
    PlainData { inputs: x, targets: y }
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(256);
    let epochs = args.get(1).copied().unwrap_or(2);
    let specs = more_nn::networks::angio_cnn();
    let real = std::env::args().any(|a| a == "real");
    let (train, val) = if real {
        let dir = std::env::var("MORE_DATA")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data").into());
        let load = |split: &str, n: usize| {
            let s = more_nn::idx::load_angio(&dir, split).expect("angio data").take(n);
            PlainData { inputs: s.unit_inputs(), targets: s.one_hot(2).into_dyn() }
        };
        (load("train", n), load("val", usize::MAX))
    } else {
        (frames(n, 1), frames(n / 4, 2))
    };
    let train = train.reweighted(&balanced_class_weights(&train.targets).unwrap(), 1).unwrap();
    let task = Task {
        input_shape: vec![1, 128, 128],
        specs,
        train,
        val: Some(val.clone()),
        init_seed: 1,
        cfg: TrainConfig {
            epochs,
            batch_size: 32,
            optimizer: OptimizerConfig::Sgd { lr: 0.02, momentum: 0.9 },
            augment_shift: 4,
            ..TrainConfig::default()
        },
        setup: EncryptionSetup { chunk: 128, ..EncryptionSetup::default() },
    };
    let key = SecretKey::from_seed(3, KeyOptions::default()).unwrap();
    let c = compare(&task, &key, ModelMeta::new("p", "angio_cost"), ModelMeta::new("e", "angio_cost")).unwrap();
    // (accuracy, balanced accuracy) on the validation frames.
    let acc = |m| {
        let (o, _) = predict_plain(m, &val.inputs, 64).unwrap();
        let counts = class_counts(&val.targets).unwrap();
        let mut hits = [0usize; 2];
        for (row, t) in o.outer_iter().zip(val.targets.outer_iter()) {
            let c = usize::from(t[1] > t[0]);
            if usize::from(row[1] > row[0]) == c {
                hits[c] += 1;
            }
        }
        let balanced = (0..2).map(|c| hits[c] as f64 / counts[c].max(1) as f64).sum::<f64>() / 2.0;
        (correct(&o, &val.targets) as f64 / val.targets.shape()[0] as f64, balanced)
    };
    let (pa, pb) = acc(&c.plain.model);
    let (ea, eb) = acc(&c.encrypted.run.model);
    let (pw, ew) = (mean_epoch_seconds(&c.plain.history), mean_epoch_seconds(&c.encrypted.run.history));
    println!(
        "{} training frames (reweighted), {epochs} epochs: val acc (balanced) plain {:.2}% ({:.2}%), decrypted {:.2}% ({:.2}%), val classes {:?}; wall/epoch {pw:.1} s -> {ew:.1} s ({:.2}x); CPU/epoch {:.1} s -> {:.1} s ({:.2}x); encrypting {:.1} s",
        task.train.rows(),
        100.0 * pa,
        100.0 * pb,
        100.0 * ea,
        100.0 * eb,
        class_counts(&val.targets).unwrap(),
        ew / pw,
        c.plain.cpu_seconds_per_epoch,
        c.encrypted.cpu_seconds_per_epoch,
        c.encrypted.cpu_seconds_per_epoch / c.plain.cpu_seconds_per_epoch,
        c.encrypted.run.encrypt_seconds,
    );
}
