//! The task-generic API on an angiography-shaped task (strided convolution, average pooling, ReLU,
//! two imbalanced classes weighted by resampling): plaintext and encrypted training of the same task
//! in one run give the same model.

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::owner::KeyOwner;
use more_enctrain::task::{
    Task, balanced_class_weights, class_counts, compare, lane_maxima, predict_encrypted, predict_plain,
};
use more_enctrain::train::{EncryptionSetup, PlainData};
use more_nn::train::{Loss, OptimizerConfig, TrainConfig, correct};
use more_nn::{ElementFunction, LayerSpec, ModelMeta};

fn one_hot(labels: &[usize], k: usize) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(&[labels.len(), k]), |i| f32::from(u8::from(labels[i[0]] == i[1])))
}

/// 16x16 "frames": class 0 brighter on the left half, class 1 on the right; `n0`/`n1` rows.
fn frames(n0: usize, n1: usize, seed: u64) -> PlainData {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..n0 + n1).map(|i| usize::from(i >= n0)).collect();
    let x = ArrayD::from_shape_fn(IxDyn(&[n0 + n1, 1, 16, 16]), |i| {
        let left = i[3] < 8;
        let bright = (labels[i[0]] == 0) == left;
        (if bright { 0.6 } else { 0.3 }) + rng.random_range(-0.2f32..0.2)
    });
    PlainData { inputs: x, targets: one_hot(&labels, 2) }
}

#[test]
fn class_weights_by_resampling() {
    let data = frames(625, 375, 1);
    let w = balanced_class_weights(&data.targets).unwrap();
    assert!((w[0] - 0.8).abs() < 1e-12 && (w[1] - 1000.0 / 750.0).abs() < 1e-12, "{w:?}");
    let r = data.reweighted(&w, 7).unwrap();
    assert_eq!(class_counts(&r.targets).unwrap(), vec![625, 625]);
    assert_eq!(r.inputs.shape(), &[1250, 1, 16, 16]);
    // Weights 1 and 2.5: each class-1 row twice, half of them a third time.
    let r = frames(10, 4, 2).reweighted(&[1.0, 2.5], 7).unwrap();
    assert_eq!(class_counts(&r.targets).unwrap(), vec![10, 10]);
    assert!(frames(10, 4, 2).reweighted(&[1.0], 7).is_err());
    assert!(frames(10, 4, 2).reweighted(&[1.0, f64::NAN], 7).is_err());
}

#[test]
fn angio_shaped_task_trains_the_same_on_plaintext_and_encrypted_frames() {
    let train = frames(45, 27, 3);
    let train = train.reweighted(&balanced_class_weights(&train.targets).unwrap(), 1).unwrap();
    let val = frames(10, 10, 4);
    let specs = vec![
        LayerSpec::Conv2d { in_channels: 1, out_channels: 4, kernel: [3, 3], stride: 2, padding: 1 },
        LayerSpec::Activation { function: ElementFunction::Relu },
        LayerSpec::AvgPool { size: 2, stride: 2 },
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 64, outputs: 2 },
    ];
    let task = Task {
        input_shape: vec![1, 16, 16],
        specs,
        train,
        val: Some(val.clone()),
        init_seed: 5,
        cfg: TrainConfig {
            epochs: 2,
            batch_size: 12,
            loss: Loss::CrossEntropy,
            optimizer: OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9 },
            augment_shift: 1,
            patience: None,
            ..TrainConfig::default()
        },
        setup: EncryptionSetup::default(),
    };
    let key = SecretKey::from_seed(21, KeyOptions::default()).unwrap();
    let c = compare(&task, &key, ModelMeta::new("p", "test"), ModelMeta::new("e", "test")).unwrap();
    assert_eq!(c.plain.history.epochs.len(), c.encrypted.run.history.epochs.len());
    let (po, _) = predict_plain(&c.plain.model, &val.inputs, 8).unwrap();
    let (eo, _) = predict_plain(&c.encrypted.run.model, &val.inputs, 8).unwrap();
    let diff = po.iter().zip(&eo).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "decrypted and plaintext models' logits differ by {diff}");
    assert!(correct(&po, &val.targets) >= 18, "plaintext model did not learn: {po:?}");
    // The still-encrypted model serves encrypted inference under the same key.
    let mut owner = KeyOwner::new(key);
    let (io, _) = predict_encrypted(&mut owner, &c.encrypted.run.encrypted, &val.inputs, 8).unwrap();
    let diff = io.iter().zip(&eo).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "encrypted inference differs by {diff}");
    let (w, shadow) = lane_maxima(&owner, &c.encrypted.run.encrypted);
    assert!(w > 0.0 && shadow.is_finite());
}
