//! Gradient checks of every layer's backward pass (plaintext, finite differences), the losses and
//! optimizers, and a short MNIST training run that must reach a sanity accuracy.

use ndarray::{Array, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use more_nn::train::{Dataset, Loss, Net, OptimizerConfig, TrainConfig, evaluate, fit};
use more_nn::{Algebra, ElementFunction, LayerSpec, Plain};

fn random(shape: &[usize], rng: &mut ChaCha8Rng, scale: f32) -> ArrayD<f32> {
    Array::from_shape_fn(IxDyn(shape), |_| rng.random_range(-scale..scale))
}

/// `L = Σ out ⊙ R` for a fixed random `R`: checks `∂L/∂θ` against central differences for sampled θ.
fn grad_check(input: &[usize], specs: &[LayerSpec], seed: u64) {
    let alg = Plain;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut net = Net::new(&alg, input, specs, &mut rng).unwrap();
    // Non-zero biases so every path is exercised.
    for p in net.params_mut() {
        if p.ndim() == 1 {
            *p = random(p.shape(), &mut rng, 0.2);
        }
    }
    let mut shape = vec![3];
    shape.extend_from_slice(input);
    let x = random(&shape, &mut rng, 1.0);
    let (out, tape) = net.forward(&alg, &x).unwrap();
    let r = random(out.shape(), &mut rng, 1.0);
    let grads = net.backward(&alg, tape, r.clone()).unwrap();
    let loss = |net: &Net<Plain>| -> f64 {
        let o = net.predict(&alg, &x).unwrap();
        o.iter().zip(r.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
    };
    let eps = 2e-3f32;
    for (pi, grad) in grads.iter().enumerate() {
        let len = net.params()[pi].len();
        for _ in 0..6 {
            let j = rng.random_range(0..len);
            let orig = net.params()[pi].as_slice().unwrap()[j];
            net.params_mut()[pi].as_slice_mut().unwrap()[j] = orig + eps;
            let up = loss(&net);
            net.params_mut()[pi].as_slice_mut().unwrap()[j] = orig - eps;
            let down = loss(&net);
            net.params_mut()[pi].as_slice_mut().unwrap()[j] = orig;
            let numeric = (up - down) / (2.0 * f64::from(eps));
            let analytic = f64::from(grad.as_slice().unwrap()[j]);
            assert!(
                (numeric - analytic).abs() <= 2e-2 * analytic.abs().max(1.0),
                "{specs:?}: param {pi}[{j}]: numeric {numeric} vs analytic {analytic}"
            );
        }
    }
}

fn conv(i: usize, o: usize, k: usize, stride: usize, padding: usize) -> LayerSpec {
    LayerSpec::Conv2d { in_channels: i, out_channels: o, kernel: [k, k], stride, padding }
}

#[test]
fn gradients_dense_and_activations() {
    for (s, function) in
        [ElementFunction::Square, ElementFunction::Relu, ElementFunction::Sigmoid, ElementFunction::Tanh]
            .into_iter()
            .enumerate()
    {
        let specs = [
            LayerSpec::Dense { inputs: 5, outputs: 7 },
            LayerSpec::Activation { function },
            LayerSpec::Dense { inputs: 7, outputs: 3 },
        ];
        grad_check(&[5], &specs, 10 + s as u64);
    }
}

#[test]
fn gradients_conv_with_stride_and_padding() {
    grad_check(&[2, 7, 7], &[conv(2, 3, 3, 2, 1), LayerSpec::Flatten, LayerSpec::Dense { inputs: 48, outputs: 2 }], 1);
    grad_check(&[1, 6, 6], &[conv(1, 2, 2, 1, 0), LayerSpec::Flatten, LayerSpec::Dense { inputs: 50, outputs: 2 }], 2);
}

#[test]
fn gradients_pooling() {
    for (s, pool) in
        [LayerSpec::AvgPool { size: 2, stride: 2 }, LayerSpec::MaxPool { size: 2, stride: 2 }].into_iter().enumerate()
    {
        let specs = [conv(1, 2, 3, 1, 1), pool, LayerSpec::Flatten, LayerSpec::Dense { inputs: 18, outputs: 2 }];
        grad_check(&[1, 6, 6], &specs, 20 + s as u64);
    }
}

#[test]
fn gradients_softmax() {
    grad_check(&[4], &[LayerSpec::Dense { inputs: 4, outputs: 5 }, LayerSpec::Softmax], 30);
}

#[test]
fn loss_gradients_match_their_values() {
    let alg = Plain;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let z = random(&[4, 3], &mut rng, 2.0);
    let mut y = ArrayD::zeros(IxDyn(&[4, 3]));
    for i in 0..4 {
        y[[i, i % 3]] = 1.0;
    }
    for loss in [Loss::CrossEntropy, Loss::Mse] {
        let g = loss.gradient(&alg, &z, &y).unwrap();
        // Loss::value is a sum over samples; the gradient is of the mean.
        let f = |z: &ArrayD<f32>| loss.value(z, &y).unwrap() / 4.0;
        for j in 0..12 {
            let mut up = z.clone();
            up.as_slice_mut().unwrap()[j] += 1e-2;
            let mut down = z.clone();
            down.as_slice_mut().unwrap()[j] -= 1e-2;
            let numeric = (f(&up) - f(&down)) / 2e-2;
            let analytic = f64::from(g.as_slice().unwrap()[j]);
            assert!((numeric - analytic).abs() < 1e-3, "{loss:?} [{j}]: {numeric} vs {analytic}");
        }
        let v = alg.sum_all(&loss.value_tensor(&alg, &z, &y).unwrap()).unwrap()[[0]];
        assert!((f64::from(v) - f(&z)).abs() < 1e-4, "{loss:?}: tensor value {v} vs {}", f(&z));
    }
}

#[test]
fn both_optimizers_reduce_a_quadratic() {
    let alg = Plain;
    for opt in [OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9 }, OptimizerConfig::adam(0.05)] {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = random(&[32, 4], &mut rng, 1.0);
        let w_true = random(&[4, 2], &mut rng, 1.0);
        let y = x
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .dot(&w_true.view().into_dimensionality::<ndarray::Ix2>().unwrap())
            .into_dyn();
        let mut net = Net::new(&alg, &[4], &[LayerSpec::Dense { inputs: 4, outputs: 2 }], &mut rng).unwrap();
        let data = Dataset::new(&alg, x, y).unwrap();
        let before = evaluate(&alg, &alg, &net, &data, Loss::Mse, 32).unwrap().0;
        let cfg = TrainConfig {
            epochs: 30,
            batch_size: 8,
            loss: Loss::Mse,
            optimizer: opt,
            classification: false,
            ..TrainConfig::default()
        };
        let h = fit(&alg, &alg, &mut net, &data, None, &cfg).unwrap();
        let after = evaluate(&alg, &alg, &net, &data, Loss::Mse, 32).unwrap().0;
        assert!(after < 0.01 * before, "{opt:?}: loss {before} -> {after}");
        assert_eq!(h.epochs.len(), 30);
    }
}

#[test]
fn short_mnist_training_reaches_a_sanity_accuracy() {
    // The shared data: env `MORE_DATA`, else `../shared/data` beside the repository.
    let dir = std::env::var_os("MORE_DATA").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
        std::path::PathBuf::from,
    );
    let train = more_nn::idx::load_mnist(&dir, "train").expect("MNIST must be in ../shared/data/mnist").take(3000);
    let test = more_nn::idx::load_mnist(&dir, "test").unwrap().take(1000);
    let alg = Plain;
    let to_data = |s: &more_nn::idx::ImageSet| Dataset::new(&alg, s.unit_inputs(), s.one_hot(10).into_dyn()).unwrap();
    let (train, test) = (to_data(&train), to_data(&test));
    let specs = [
        conv(1, 4, 5, 2, 2),
        LayerSpec::Activation { function: ElementFunction::Relu },
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 4 * 14 * 14, outputs: 10 },
    ];
    let mut net = Net::new(&alg, &[1, 28, 28], &specs, &mut ChaCha8Rng::seed_from_u64(7)).unwrap();
    let cfg =
        TrainConfig { epochs: 2, batch_size: 32, optimizer: OptimizerConfig::adam(3e-3), ..TrainConfig::default() };
    let h = fit(&alg, &alg, &mut net, &train, Some(&test), &cfg).unwrap();
    let acc = h.epochs.last().unwrap().val_accuracy.unwrap();
    assert!(acc > 0.85, "accuracy {acc}");
    // The trained net converts to an inference model computing the same outputs.
    let model = net.to_model(&alg, more_nn::ModelMeta::new("t", "mnist")).unwrap();
    let x = test.inputs.slice_axis(ndarray::Axis(0), (0..5).into()).to_owned();
    let a = model.forward_plain(x.view()).unwrap();
    let b = net.predict(&alg, &x).unwrap();
    assert!(a.iter().zip(b.iter()).all(|(p, q)| (p - q).abs() < 1e-4));
}

#[test]
fn fit_plain_trains_a_regression_model_with_early_stopping() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = random(&[200, 3], &mut rng, 1.0);
    let y = x.map_axis(ndarray::Axis(1), |r| r[0] * 0.5 - r[1] * r[2]).insert_axis(ndarray::Axis(1)).into_dyn();
    let split = |a: &ArrayD<f32>, r: std::ops::Range<usize>| a.slice_axis(ndarray::Axis(0), r.into()).to_owned();
    let specs = [
        LayerSpec::Dense { inputs: 3, outputs: 16 },
        LayerSpec::Activation { function: ElementFunction::Tanh },
        LayerSpec::Dense { inputs: 16, outputs: 1 },
    ];
    let cfg = TrainConfig {
        epochs: 200,
        batch_size: 16,
        loss: Loss::Mse,
        optimizer: OptimizerConfig::adam(1e-2),
        classification: false,
        patience: Some(10),
        ..TrainConfig::default()
    };
    let (model, h) = more_nn::train::fit_plain(
        &[3],
        &specs,
        (split(&x, 0..160), split(&y, 0..160)),
        Some((split(&x, 160..200), split(&y, 160..200))),
        &cfg,
        3,
        more_nn::ModelMeta::new("reg", "test"),
    )
    .unwrap();
    let best = h.epochs[h.best_epoch - 1].val_loss.unwrap();
    assert!(best < 0.01, "validation MSE {best}");
    assert!(h.epochs.len() < 200 && h.stopped_early, "early stopping never triggered");
    let pred = model.forward_plain(split(&x, 160..200).view()).unwrap();
    let mse = pred.iter().zip(split(&y, 160..200).iter()).map(|(p, t)| f64::from((p - t).powi(2))).sum::<f64>() / 40.0;
    assert!((mse - best).abs() < 1e-4, "model {mse} vs history {best}");
}
