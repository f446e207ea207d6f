//! The project's networks as layer lists: the ones the `more` command trains and the bundled models use,
//! shared with examples, benchmarks and tests so no copy can drift from them.
//!
//! Each function returns the [`LayerSpec`]s to give `train::Net::new` with the matching input shape. On
//! ciphertexts, dense and convolution layers, average pooling, flatten and square are ring-only; ReLU and
//! tanh use the spectral formula (the 2x2 structure).

use crate::{ElementFunction, LayerSpec};

/// Input shape of the MNIST networks: one 28x28 channel.
pub const MNIST_INPUT: [usize; 3] = [1, 28, 28];
/// Input shape of the angiography network: one 128x128 channel.
pub const ANGIO_INPUT: [usize; 3] = [1, 128, 128];

fn conv(in_channels: usize, out_channels: usize, kernel: usize, stride: usize, padding: usize) -> LayerSpec {
    LayerSpec::Conv2d { in_channels, out_channels, kernel: [kernel, kernel], stride, padding }
}

fn act(function: ElementFunction) -> LayerSpec {
    LayerSpec::Activation { function }
}

/// `mnist-cnn-relu`: two strided convolutions and two dense layers with ReLU (242k multiply-adds). ReLU
/// uses the 2x2 structure on ciphertexts.
pub fn mnist_cnn_relu() -> Vec<LayerSpec> {
    vec![
        conv(1, 16, 5, 2, 2), // 16x14x14
        act(ElementFunction::Relu),
        conv(16, 16, 3, 2, 1), // 16x7x7
        act(ElementFunction::Relu),
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 16 * 7 * 7, outputs: 64 },
        act(ElementFunction::Relu),
        LayerSpec::Dense { inputs: 64, outputs: 10 },
    ]
}

/// `mnist-cnn-square`: the CryptoNets-style network, one strided convolution and two dense layers with
/// square activations (197k multiply-adds). Ring-only on ciphertexts.
pub fn mnist_cnn_square() -> Vec<LayerSpec> {
    vec![
        conv(1, 8, 5, 2, 2), // 8x14x14
        act(ElementFunction::Square),
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 8 * 14 * 14, outputs: 100 },
        act(ElementFunction::Square),
        LayerSpec::Dense { inputs: 100, outputs: 10 },
    ]
}

/// The MNIST network of depth one that BFV evaluates exactly once quantized (`more-bfv`): conv 1→10 5x5/2
/// (28x28 → 10x14x14), square, dense 1960→10 — ring operations only ([`bfv_cnn`] with ten classes).
pub fn mnist_bfv() -> Vec<LayerSpec> {
    bfv_cnn(10)
}

/// The network of depth one BFV evaluates exactly once quantized (`more-bfv`), for any 28x28 input: conv
/// 1→10 5x5/2 (28x28 → 10x14x14), square, dense 1960→`classes` — ring operations only. The angiogram views
/// use it with two classes on frames averaged down to 28x28.
pub fn bfv_cnn(classes: usize) -> Vec<LayerSpec> {
    vec![
        LayerSpec::Conv2d { in_channels: 1, out_channels: 10, kernel: [5, 5], stride: 2, padding: 2 },
        act(ElementFunction::Square),
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 10 * 14 * 14, outputs: classes },
    ]
}

/// `angio-cnn`: LCA vs RCA view of a 128x128 angiogram — conv 5x5/2, ReLU, average pool, conv 3x3/2, ReLU,
/// average pool, dense to 2 logits (3,426 parameters). ReLU uses the 2x2 structure; the rest is ring-only.
pub fn angio_cnn() -> Vec<LayerSpec> {
    vec![
        conv(1, 8, 5, 2, 2), // 8x64x64
        act(ElementFunction::Relu),
        LayerSpec::AvgPool { size: 2, stride: 2 }, // 8x32x32
        conv(8, 16, 3, 2, 1),                      // 16x16x16
        act(ElementFunction::Relu),
        LayerSpec::AvgPool { size: 2, stride: 2 }, // 16x8x8
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 16 * 8 * 8, outputs: 2 },
    ]
}

/// `wbc-mlp`: the whole-body circulation surrogate, `inputs → hidden → hidden → outputs` with tanh (the 2x2
/// structure on ciphertexts). The bundled model has 7 inputs, 64 hidden units and 6 outputs.
pub fn wbc_mlp(inputs: usize, hidden: usize, outputs: usize) -> Vec<LayerSpec> {
    vec![
        LayerSpec::Dense { inputs, outputs: hidden },
        act(ElementFunction::Tanh),
        LayerSpec::Dense { inputs: hidden, outputs: hidden },
        act(ElementFunction::Tanh),
        LayerSpec::Dense { inputs: hidden, outputs },
    ]
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::Plain;
    use crate::train::Net;

    fn output_len(input: &[usize], specs: &[LayerSpec]) -> usize {
        let net = Net::new(&Plain, input, specs, &mut ChaCha8Rng::seed_from_u64(1)).expect("the layers fit");
        net.to_model(&Plain, crate::ModelMeta::new("t", "t")).expect("a model").output_len()
    }

    #[test]
    fn every_network_builds_for_its_input() {
        assert_eq!(output_len(&MNIST_INPUT, &mnist_cnn_relu()), 10);
        assert_eq!(output_len(&MNIST_INPUT, &mnist_cnn_square()), 10);
        assert_eq!(output_len(&ANGIO_INPUT, &angio_cnn()), 2);
        assert_eq!(output_len(&MNIST_INPUT, &mnist_bfv()), 10);
        assert_eq!(output_len(&MNIST_INPUT, &bfv_cnn(2)), 2);
        assert_eq!(output_len(&[7], &wbc_mlp(7, 16, 6)), 6);
    }
}

/// A network a remote trainer offers for training jobs, with what the key owner needs to prepare its data
/// and to train the same network on plaintext for comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trainable {
    /// Id a training job names it by.
    pub id: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Input shape of one sample.
    pub input_shape: Vec<usize>,
    /// Outputs per sample (columns of the targets).
    pub outputs: usize,
    /// The loss trained on.
    pub loss: crate::train::Loss,
    /// Whether the targets are one-hot classes.
    pub classification: bool,
    /// The layers.
    #[serde(skip)]
    pub layers: Vec<LayerSpec>,
}

/// Every network offered for training jobs, in the order a trainer lists them.
pub fn trainable() -> Vec<Trainable> {
    use crate::train::Loss;
    vec![
        Trainable {
            id: "wbc-mlp",
            description: "whole-body circulation surrogate: 7 standardised patient parameters to 6 scaled outputs, \
                          7-64-64-6 tanh MLP, mean squared error",
            input_shape: vec![7],
            outputs: 6,
            loss: Loss::Mse,
            classification: false,
            layers: wbc_mlp(7, 64, 6),
        },
        Trainable {
            id: "mnist-cnn-relu",
            description: "MNIST digits: two strided convolutions and two dense layers with ReLU, cross-entropy",
            input_shape: MNIST_INPUT.to_vec(),
            outputs: 10,
            loss: Loss::CrossEntropy,
            classification: true,
            layers: mnist_cnn_relu(),
        },
        Trainable {
            id: "mnist-cnn-square",
            description: "MNIST digits: CryptoNets-style network with square activations (ring-only), cross-entropy",
            input_shape: MNIST_INPUT.to_vec(),
            outputs: 10,
            loss: Loss::CrossEntropy,
            classification: true,
            layers: mnist_cnn_square(),
        },
    ]
}

/// The offered network with this id.
pub fn find_trainable(id: &str) -> Option<Trainable> {
    trainable().into_iter().find(|n| n.id == id)
}
