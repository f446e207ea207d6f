//! The networks the server trains: `more_nn::networks::trainable()` (the list the key owner's side uses
//! too), each with an estimate of the memory one training sample's activations take here.

use more_nn::networks::Trainable;
use serde::Serialize;

/// One network a client may pick for a training job.
#[derive(Debug, Clone, Serialize)]
pub struct Network {
    /// The network.
    #[serde(flatten)]
    pub net: Trainable,
    /// Estimated bytes per training sample of a mini-batch (activations and their gradients, both
    /// coefficient arrays).
    #[serde(skip)]
    pub activation_bytes: usize,
}

impl std::ops::Deref for Network {
    type Target = Trainable;
    fn deref(&self) -> &Trainable {
        &self.net
    }
}

/// Activation memory per training sample: 4 KiB for the small MLP, 256 KiB for the MNIST CNNs.
fn activation_bytes(net: &Trainable) -> usize {
    if net.input_shape.len() == 1 { 4 << 10 } else { 256 << 10 }
}

/// Every network offered, in the order `GET /api/v1/training` lists them.
pub fn offered() -> Vec<Network> {
    more_nn::networks::trainable()
        .into_iter()
        .map(|net| Network { activation_bytes: activation_bytes(&net), net })
        .collect()
}

/// The offered network with this id.
pub fn find(id: &str) -> Option<Network> {
    offered().into_iter().find(|n| n.id == id)
}
