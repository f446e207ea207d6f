//! The provided (default) methods of `Algebra` agree with `Plain`'s overrides: an algebra implementing only
//! the required primitives trains a network with every layer type to the same weights.

use ndarray::{Array, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use more_nn::train::{Loss, Net, Optimizer, OptimizerConfig, train_step};
use more_nn::{Algebra, ElementFunction, LayerSpec, Plain, Result};

/// Only the required methods, delegated to `Plain`: every provided method runs its default.
struct Minimal;

impl Algebra for Minimal {
    type Tensor = ArrayD<f32>;
    fn shape(&self, t: &ArrayD<f32>) -> Vec<usize> {
        Plain.shape(t)
    }
    fn public(&self, v: ArrayD<f32>) -> Result<ArrayD<f32>> {
        Plain.public(v)
    }
    fn reshape(&self, t: &ArrayD<f32>, s: &[usize]) -> Result<ArrayD<f32>> {
        Plain.reshape(t, s)
    }
    fn select_rows(&self, t: &ArrayD<f32>, r: &[usize]) -> Result<ArrayD<f32>> {
        Plain.select_rows(t, r)
    }
    fn gather(&self, t: &ArrayD<f32>, i: &[usize], s: &[usize]) -> Result<ArrayD<f32>> {
        Plain.gather(t, i, s)
    }
    fn scatter_add(&self, t: &ArrayD<f32>, i: &[usize], s: &[usize]) -> Result<ArrayD<f32>> {
        Plain.scatter_add(t, i, s)
    }
    fn add(&self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Plain.add(a, b)
    }
    fn sub(&self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Plain.sub(a, b)
    }
    fn mul(&self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Plain.mul(a, b)
    }
    fn scale(&self, a: &ArrayD<f32>, s: f32) -> Result<ArrayD<f32>> {
        Plain.scale(a, s)
    }
    fn shift(&self, a: &ArrayD<f32>, s: f32) -> Result<ArrayD<f32>> {
        Plain.shift(a, s)
    }
    fn matmul(&self, a: &ArrayD<f32>, ta: bool, b: &ArrayD<f32>, tb: bool) -> Result<ArrayD<f32>> {
        Plain.matmul(a, ta, b, tb)
    }
    fn map(&self, a: &ArrayD<f32>, f: ElementFunction) -> Result<ArrayD<f32>> {
        Plain.map(a, f)
    }
}

fn random(shape: &[usize], rng: &mut ChaCha8Rng, scale: f32) -> ArrayD<f32> {
    Array::from_shape_fn(IxDyn(shape), |_| rng.random_range(-scale..scale))
}

#[test]
fn default_methods_train_like_plain() {
    let specs = [
        LayerSpec::Conv2d { in_channels: 1, out_channels: 3, kernel: [3, 3], stride: 1, padding: 1 },
        LayerSpec::Activation { function: ElementFunction::Relu },
        LayerSpec::MaxPool { size: 2, stride: 2 },
        LayerSpec::Conv2d { in_channels: 3, out_channels: 2, kernel: [2, 2], stride: 1, padding: 0 },
        LayerSpec::Activation { function: ElementFunction::Tanh },
        LayerSpec::AvgPool { size: 2, stride: 1 },
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 2 * 2 * 2, outputs: 6 },
        LayerSpec::Activation { function: ElementFunction::Sigmoid },
        LayerSpec::Dense { inputs: 6, outputs: 4 },
        LayerSpec::Activation { function: ElementFunction::Square },
        LayerSpec::Softmax,
    ];
    for opt in [OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9 }, OptimizerConfig::adam(0.01)] {
        for loss in [Loss::CrossEntropy, Loss::Mse] {
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let mut a = Net::new(&Plain, &[1, 8, 8], &specs, &mut rng).unwrap();
            let mut b = Net::from_params(
                &Minimal,
                &[1, 8, 8],
                &specs,
                a.to_model(&Plain, more_nn::ModelMeta::new("t", "t"))
                    .unwrap()
                    .layers()
                    .iter()
                    .map(more_nn::Layer::params)
                    .collect(),
            )
            .unwrap();
            let (mut oa, mut ob) = (Optimizer::new(opt), Optimizer::new(opt));
            for _ in 0..3 {
                let x = random(&[5, 1, 8, 8], &mut rng, 1.0);
                let y = random(&[5, 4], &mut rng, 1.0).mapv(f32::abs);
                let out_a = train_step(&Plain, &mut a, &mut oa, loss, &x, &y).unwrap();
                let out_b = train_step(&Minimal, &mut b, &mut ob, loss, &x, &y).unwrap();
                assert!(out_a.iter().zip(out_b.iter()).all(|(p, q)| (p - q).abs() < 1e-5));
            }
            for (pa, pb) in a.params().into_iter().zip(b.params()) {
                let d = pa.iter().zip(pb.iter()).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
                assert!(d < 1e-4, "{opt:?} {loss:?}: parameters differ by {d}");
            }
        }
    }
}
