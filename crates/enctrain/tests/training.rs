//! Encrypted training steps decrypt to the plaintext steps, for every layer type and both optimizers;
//! the end-to-end trainer gives a usable decrypted model and a usable encrypted model; wrong keys are
//! detected.

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};

use more_core::{KeyOptions, SecretKey};
use more_enctrain::Error;
use more_enctrain::algebra::Encrypted;
use more_enctrain::owner::KeyOwner;
use more_enctrain::train::{EncryptionSetup, PlainData, TargetNoise, decrypt_model, encrypt_data, train_encrypted};
use more_nn::train::{Loss, Net, Optimizer, OptimizerConfig, TrainConfig, train_step};
use more_nn::{ElementFunction, LayerSpec, ModelMeta, Plain};

/// Largest |decrypted encrypted-run weight − plaintext-run weight| accepted after two steps (f32 planes,
/// key condition number ≤ 10, weights of order 0.1–1; measured: at most 1.4e-6).
const STEP_TOL: f32 = 2e-5;

fn act(function: ElementFunction) -> LayerSpec {
    LayerSpec::Activation { function }
}

fn conv(i: usize, o: usize, k: usize, stride: usize, padding: usize) -> LayerSpec {
    LayerSpec::Conv2d { in_channels: i, out_channels: o, kernel: [k, k], stride, padding }
}

/// Networks covering every layer type, with their input shape and loss.
fn networks() -> Vec<(&'static str, Vec<usize>, Vec<LayerSpec>, Loss)> {
    vec![
        (
            "dense-relu",
            vec![12],
            vec![
                LayerSpec::Dense { inputs: 12, outputs: 8 },
                act(ElementFunction::Relu),
                LayerSpec::Dense { inputs: 8, outputs: 4 },
            ],
            Loss::CrossEntropy,
        ),
        (
            "conv-relu-maxpool",
            vec![1, 8, 8],
            vec![
                conv(1, 3, 3, 1, 1),
                act(ElementFunction::Relu),
                LayerSpec::MaxPool { size: 2, stride: 2 },
                LayerSpec::Flatten,
                LayerSpec::Dense { inputs: 48, outputs: 4 },
            ],
            Loss::CrossEntropy,
        ),
        (
            "conv-square-avgpool-sigmoid-tanh-softmax",
            vec![2, 7, 7],
            vec![
                conv(2, 3, 3, 2, 1),
                act(ElementFunction::Square),
                LayerSpec::AvgPool { size: 2, stride: 1 },
                LayerSpec::Flatten,
                LayerSpec::Dense { inputs: 27, outputs: 6 },
                act(ElementFunction::Sigmoid),
                LayerSpec::Dense { inputs: 6, outputs: 5 },
                act(ElementFunction::Tanh),
                LayerSpec::Dense { inputs: 5, outputs: 4 },
                LayerSpec::Softmax,
            ],
            Loss::Mse,
        ),
        (
            "conv-relu-global-avgpool",
            vec![1, 6, 6],
            vec![
                conv(1, 4, 3, 1, 1),
                act(ElementFunction::Relu),
                LayerSpec::GlobalAvgPool,
                LayerSpec::Dense { inputs: 4, outputs: 4 },
            ],
            Loss::CrossEntropy,
        ),
    ]
}

fn one_hot(labels: &[usize], k: usize) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(&[labels.len(), k]), |i| f32::from(u8::from(labels[i[0]] == i[1])))
}

#[test]
fn one_encrypted_step_decrypts_to_the_plaintext_step() {
    let optimizers =
        [("sgd+momentum", OptimizerConfig::Sgd { lr: 0.05, momentum: 0.9 }), ("adam", OptimizerConfig::adam(1e-2))];
    for (seed, (name, shape, specs, loss)) in networks().into_iter().enumerate() {
        let seed = seed as u64;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let n = 6;
        let mut full = vec![n];
        full.extend(&shape);
        let x = ArrayD::from_shape_fn(IxDyn(&full), |_| rng.random_range(0.0f32..1.0));
        let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..4)).collect();
        let y = one_hot(&labels, 4);
        let key = SecretKey::from_seed(100 + seed, KeyOptions::default()).unwrap();
        let mut owner = KeyOwner::with_seed(key, seed);
        let data = PlainData { inputs: x.clone(), targets: y.clone() };
        let enc = encrypt_data(&mut owner, &data, &EncryptionSetup::default(), None).unwrap();
        let alg = Encrypted::new(enc.basis());
        for (oname, opt) in optimizers {
            let mut plain = Net::new(&Plain, &shape, &specs, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            let mut encn = Net::new(&alg, &shape, &specs, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            let mut po = Optimizer::new(opt);
            let mut eo = Optimizer::new(opt);
            for step in 1..=2 {
                let out_p = train_step(&Plain, &mut plain, &mut po, loss, &x, &y).unwrap();
                let out_e = train_step(&alg, &mut encn, &mut eo, loss, &enc.inputs, &enc.targets).unwrap();
                let d = owner.decrypt(&out_e);
                let err = d.iter().zip(&out_p).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(err < STEP_TOL, "{name} {oname}: outputs differ by {err}");
                // After each single step (the first: plain gradient step; the second: with momentum /
                // Adam's moments) the decrypted weights are the plaintext step's weights.
                for (pe, pp) in encn.params().into_iter().zip(plain.params()) {
                    let d = owner.decrypt(pe);
                    let err = d.iter().zip(pp).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                    assert!(err < STEP_TOL, "{name} {oname} step {step}: weights differ by {err}");
                }
            }
            let mut worst = 0.0f32;
            let mut moved = 0.0f32;
            for (pe, pp) in encn.params().into_iter().zip(plain.params()) {
                let d = owner.decrypt(pe);
                worst = d.iter().zip(pp).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
                // The noise lane is a real, different training run: the lanes must not coincide.
                let r = owner.decrypt_noise(pe);
                moved = r.iter().zip(&d).map(|(a, b)| (a - b).abs()).fold(moved, f32::max);
            }
            eprintln!("{name} {oname}: max weight difference {worst:.2e}, max lane gap {moved:.2e}");
            assert!(worst < STEP_TOL, "{name} {oname}: weights differ by {worst}");
            assert!(moved > 1e-4, "{name} {oname}: the shadow model did not train");
        }
    }
}

/// Two Gaussian blobs per class in 16 dimensions: learnable in a few epochs.
fn blobs(n: usize, seed: u64) -> PlainData {
    let mut crng = ChaCha20Rng::seed_from_u64(77);
    let centres: Vec<Vec<f32>> = (0..3).map(|_| (0..16).map(|_| crng.random_range(0.0..1.0)).collect()).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..3)).collect();
    let x = ArrayD::from_shape_fn(IxDyn(&[n, 16]), |i| {
        (centres[labels[i[0]]][i[1]] + rng.random_range(-0.25..0.25)).clamp(0.0, 1.0)
    });
    PlainData { inputs: x, targets: one_hot(&labels, 3) }
}

#[test]
fn end_to_end_training_decrypted_and_encrypted_models() {
    let specs = vec![
        LayerSpec::Dense { inputs: 16, outputs: 12 },
        act(ElementFunction::Relu),
        LayerSpec::Dense { inputs: 12, outputs: 3 },
    ];
    let train = blobs(300, 1);
    let val = blobs(100, 2);
    let cfg = TrainConfig {
        epochs: 4,
        batch_size: 16,
        optimizer: OptimizerConfig::adam(1e-2),
        patience: Some(3),
        ..TrainConfig::default()
    };
    let key = SecretKey::from_seed(9, KeyOptions::default()).unwrap();
    let run = train_encrypted(
        &key,
        &train,
        Some(&val),
        &[16],
        &specs,
        3,
        &cfg,
        ModelMeta::new("blobs", "test"),
        &EncryptionSetup::default(),
    )
    .unwrap();
    assert!(!run.history.epochs.is_empty());
    let best = &run.history.epochs[run.history.best_epoch - 1];
    assert!(best.val_accuracy.unwrap() > 0.9, "{:?}", run.history);

    // The decrypted model is an ordinary model: plaintext accuracy on the validation data.
    let out = run.model.forward_plain(val.inputs.view()).unwrap();
    let right = more_nn::train::correct(&out, &val.targets);
    assert!(right as f64 / 100.0 > 0.9);
    // It survives its file format.
    let back = more_nn::Model::from_bytes(&run.model.to_bytes()).unwrap();
    assert_eq!(back.forward_plain(val.inputs.view()).unwrap(), out);

    // The still-encrypted model: encrypted inference for fresh data under the same key decrypts to the
    // decrypted model's outputs — also after a round trip through its file.
    let file =
        more_enctrain::model_file::EncryptedModel::from_bytes(&run.encrypted.to_bytes().unwrap(), 1 << 24).unwrap();
    let mut owner = KeyOwner::new(key.clone());
    let cx = owner.encrypt_inputs(&val.inputs.view(), 0.0, 1.0).unwrap();
    let enc_out = owner.decrypt(&file.predict(&cx).unwrap());
    let diff = enc_out.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "encrypted inference differs by {diff}");
    // (The file stores 4 f32 planes; converting back rounds, so equality is up to 1e-4.)
    let model2 = decrypt_model(&owner, &file).unwrap();
    let out2 = model2.forward_plain(val.inputs.view()).unwrap();
    assert!(out2.iter().zip(&out).all(|(a, b)| (a - b).abs() < 1e-4));

    // Wrong key: decryption is refused, not silently wrong; data under another key is rejected.
    let other = KeyOwner::new(SecretKey::from_seed(10, KeyOptions::default()).unwrap());
    assert!(matches!(decrypt_model(&other, &file), Err(Error::WrongKey(_))));
    // What the refusal prevents: the wrong key's raw decryption of the weights is garbage, not a
    // slightly-off model.
    let garbage = file.params.iter().map(|p| {
        let (w, right) = (other.decrypt(p), owner.decrypt(p));
        w.iter().zip(&right).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
    });
    let worst = garbage.fold(0.0f32, f32::max);
    eprintln!("wrong key: weights off by up to {worst:.3}");
    assert!(worst > 0.05, "a wrong key decrypted the weights to within {worst}");
    let mut other = other;
    let bad = other.encrypt_inputs(&val.inputs.view(), 0.0, 1.0).unwrap();
    assert!(matches!(file.predict(&bad), Err(Error::NotInSpan { .. })));
}

#[test]
fn regression_targets_and_mixed_keys() {
    let key = SecretKey::from_seed(4, KeyOptions::default()).unwrap();
    let mut owner = KeyOwner::with_seed(key, 4);
    let data = PlainData {
        inputs: ArrayD::from_shape_fn(IxDyn(&[10, 3]), |i| (i[0] + i[1]) as f32 / 12.0),
        targets: ArrayD::from_shape_fn(IxDyn(&[10, 2]), |i| i[0] as f32 - 4.5 * i[1] as f32),
    };
    let setup = EncryptionSetup { targets: TargetNoise::Uniform { lo: -5.0, hi: 10.0 }, ..EncryptionSetup::default() };
    let enc = encrypt_data(&mut owner, &data, &setup, None).unwrap();
    let back = owner.decrypt(&enc.targets);
    assert!(back.iter().zip(&data.targets).all(|(a, b)| (a - b).abs() < 1e-4));
    // Validation data under another key cannot join the training basis.
    let mut other = KeyOwner::with_seed(SecretKey::from_seed(5, KeyOptions::default()).unwrap(), 5);
    assert!(encrypt_data(&mut other, &data, &setup, Some(enc.basis())).is_err());
}

#[test]
fn regression_training_matches_plaintext_training() {
    use more_nn::train::{Dataset, fit};
    // y = x·A + noise-free offset: an MSE regression like the WBC surrogate's.
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let a = ArrayD::from_shape_fn(IxDyn(&[6, 2]), |_| rng.random_range(-1.0f32..1.0));
    let make = |n: usize, rng: &mut ChaCha20Rng| {
        let x = ArrayD::from_shape_fn(IxDyn(&[n, 6]), |_| rng.random_range(-1.0f32..1.0));
        let x2: ndarray::ArrayView2<f32> = x.view().into_dimensionality().unwrap();
        let a2: ndarray::ArrayView2<f32> = a.view().into_dimensionality().unwrap();
        let y = (x2.dot(&a2) + 0.5).into_dyn();
        PlainData { inputs: x, targets: y }
    };
    let train = make(256, &mut rng);
    let specs = vec![
        LayerSpec::Dense { inputs: 6, outputs: 8 },
        act(ElementFunction::Tanh),
        LayerSpec::Dense { inputs: 8, outputs: 2 },
    ];
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 32,
        loss: Loss::Mse,
        optimizer: OptimizerConfig::Sgd { lr: 0.05, momentum: 0.9 },
        classification: false,
        ..TrainConfig::default()
    };
    let setup = EncryptionSetup {
        input_noise: (-1.0, 1.0),
        targets: TargetNoise::Uniform { lo: -2.0, hi: 2.0 },
        ..EncryptionSetup::default()
    };
    let key = SecretKey::from_seed(32, KeyOptions::default()).unwrap();
    let run =
        train_encrypted(&key, &train, None, &[6], &specs, 5, &cfg, ModelMeta::new("reg", "test"), &setup).unwrap();
    let mut net = Net::new(&Plain, &[6], &specs, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    let data = Dataset::new(&Plain, train.inputs.clone(), train.targets.clone()).unwrap();
    let hist = fit(&Plain, &Plain, &mut net, &data, None, &cfg).unwrap();
    // Same losses epoch by epoch (the encrypted ones as revealed to the key owner) ...
    for (e, p) in run.history.epochs.iter().zip(&hist.epochs) {
        assert!(
            (e.train_loss - p.train_loss).abs() < 1e-4 * p.train_loss.max(1.0),
            "{} vs {}",
            e.train_loss,
            p.train_loss
        );
    }
    assert!(hist.epochs.last().unwrap().train_loss < hist.epochs[0].train_loss);
    // ... and the same model.
    let plain_model = net.to_model(&Plain, ModelMeta::new("reg", "test")).unwrap();
    let a = run.model.forward_plain(train.inputs.view()).unwrap();
    let b = plain_model.forward_plain(train.inputs.view()).unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "decrypted and plaintext models differ by {diff}");
}
