//! The networks the server trains: a fixed list, each with its input shape, outputs, loss and an estimate
//! of the memory one training sample's activations take.

use more_nn::LayerSpec;
use more_nn::train::Loss;
use serde::Serialize;

/// One network a client may pick for a training job.
#[derive(Debug, Clone, Serialize)]
pub struct Network {
    /// Id given in the job's header.
    pub id: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Input shape of one sample.
    pub input_shape: Vec<usize>,
    /// Outputs per sample (columns of the targets).
    pub outputs: usize,
    /// The loss trained on.
    pub loss: Loss,
    /// Whether the targets are one-hot classes.
    pub classification: bool,
    /// The layers.
    #[serde(skip)]
    pub layers: Vec<LayerSpec>,
    /// Estimated bytes per training sample of a mini-batch (activations and their gradients, both
    /// coefficient arrays).
    #[serde(skip)]
    pub activation_bytes: usize,
}

/// Every network offered, in the order `GET /api/v1/training` lists them.
pub fn offered() -> Vec<Network> {
    use more_nn::networks::{MNIST_INPUT, mnist_cnn_relu, mnist_cnn_square, wbc_mlp};
    vec![
        Network {
            id: "wbc-mlp",
            description: "whole-body circulation surrogate: 7 standardised patient parameters to 6 scaled outputs, \
                          7-64-64-6 tanh MLP, mean squared error",
            input_shape: vec![7],
            outputs: 6,
            loss: Loss::Mse,
            classification: false,
            layers: wbc_mlp(7, 64, 6),
            activation_bytes: 4 << 10,
        },
        Network {
            id: "mnist-cnn-relu",
            description: "MNIST digits: two strided convolutions and two dense layers with ReLU, cross-entropy",
            input_shape: MNIST_INPUT.to_vec(),
            outputs: 10,
            loss: Loss::CrossEntropy,
            classification: true,
            layers: mnist_cnn_relu(),
            activation_bytes: 256 << 10,
        },
        Network {
            id: "mnist-cnn-square",
            description: "MNIST digits: CryptoNets-style network with square activations (ring-only), cross-entropy",
            input_shape: MNIST_INPUT.to_vec(),
            outputs: 10,
            loss: Loss::CrossEntropy,
            classification: true,
            layers: mnist_cnn_square(),
            activation_bytes: 256 << 10,
        },
    ]
}

/// The offered network with this id.
pub fn find(id: &str) -> Option<Network> {
    offered().into_iter().find(|n| n.id == id)
}
