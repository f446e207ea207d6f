//! Training, generic over the tensor [`crate::Algebra`]: the same forward, backward, loss, optimizer and
//! loop on plaintext ([`crate::Plain`]) and on ciphertexts (`more-enctrain`).

pub mod fit;
pub mod loss;
pub mod net;
pub mod optim;

pub use crate::metrics::correct;
pub use fit::{
    Checkpoint, Dataset, EpochStats, Fitting, History, TrainConfig, evaluate, fit, fit_plain, split_rows, take_rows,
    train_step,
};
pub use loss::Loss;
pub use net::{Net, Tape};
pub use optim::{Optimizer, OptimizerConfig};
