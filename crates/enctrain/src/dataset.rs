//! What the trainer receives: encrypted inputs and encrypted targets, in coefficient form.
//!
//! The key owner encrypts chunk by chunk (4-plane [`EncryptedTensor`]s, the wire form); the trainer
//! converts each chunk key-free into coefficient form as it arrives, so the 4-plane copy of a whole data
//! set never exists. The first chunk fixes the reference basis unless one is given (validation and test
//! sets reuse the training set's basis; a chunk under another key is rejected).

use ndarray::{ArrayD, Axis, IxDyn};

use more_core::{EncryptedTensor, Real};

use crate::basis::Basis;
use crate::coeff::CoeffTensor;
use crate::error::{Error, Result};

/// Encrypted inputs `[n, ...input_shape]` and targets `[n, outputs]` (one-hot rows or regression values).
#[derive(Debug, Clone)]
pub struct EncryptedDataset<F: Real> {
    /// Encrypted inputs.
    pub inputs: CoeffTensor<F>,
    /// Encrypted targets.
    pub targets: CoeffTensor<F>,
}

impl<F: Real> EncryptedDataset<F> {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.inputs.shape()[0]
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The reference basis of the data.
    pub fn basis(&self) -> Basis {
        *self.inputs.basis()
    }

    /// The examples at `idx` (a mini-batch).
    pub fn batch(&self, idx: &[usize]) -> (CoeffTensor<F>, CoeffTensor<F>) {
        (self.inputs.rows(idx), self.targets.rows(idx))
    }
}

/// Builds an [`EncryptedDataset`] from chunks of ciphertexts, converting each on arrival.
#[derive(Debug)]
pub struct DatasetBuilder<F: Real> {
    basis: Option<Basis>,
    x: (Vec<F>, Vec<F>),
    y: (Vec<F>, Vec<F>),
    x_shape: Option<Vec<usize>>,
    y_shape: Option<Vec<usize>>,
    n: usize,
}

impl<F: Real> DatasetBuilder<F> {
    /// A builder; `basis` is `None` to choose it from the first chunk (key-free).
    pub fn new(basis: Option<Basis>) -> Self {
        Self { basis, x: (vec![], vec![]), y: (vec![], vec![]), x_shape: None, y_shape: None, n: 0 }
    }

    /// The basis (once the first chunk has arrived or if given).
    pub fn basis(&self) -> Option<Basis> {
        self.basis
    }

    /// Adds a chunk: inputs `[k, ...]` and targets `[k, outputs]`.
    pub fn push(&mut self, inputs: &EncryptedTensor<F>, targets: &EncryptedTensor<F>) -> Result<()> {
        let k = inputs.shape()[0];
        if targets.shape()[0] != k || targets.shape().len() != 2 {
            return Err(Error::ShapeMismatch {
                op: "dataset chunk",
                left: inputs.shape().to_vec(),
                right: targets.shape().to_vec(),
            });
        }
        for (seen, shape) in [(&mut self.x_shape, inputs.shape()), (&mut self.y_shape, targets.shape())] {
            match seen {
                Some(s) if s[1..] != shape[1..] => {
                    return Err(Error::ShapeMismatch { op: "dataset chunk", left: s.clone(), right: shape.to_vec() });
                }
                Some(_) => {}
                None => *seen = Some(shape.to_vec()),
            }
        }
        let basis = match self.basis {
            Some(b) => b,
            None => *self.basis.insert(Basis::from_ciphertexts(inputs)?),
        };
        for (c, dst) in [(inputs, &mut self.x), (targets, &mut self.y)] {
            let t = CoeffTensor::from_encrypted(c, basis)?;
            dst.0.extend(t.alpha().iter().copied());
            dst.1.extend(t.beta().iter().copied());
        }
        self.n += k;
        Ok(())
    }

    /// The data set.
    pub fn finish(self) -> Result<EncryptedDataset<F>> {
        let (Some(basis), Some(xs), Some(ys)) = (self.basis, self.x_shape, self.y_shape) else {
            return Err(Error::Invalid("no chunk was added".into()));
        };
        let part = |shape: &[usize], v: Vec<F>| {
            let mut s = shape.to_vec();
            s[0] = self.n;
            ArrayD::from_shape_vec(IxDyn(&s), v).expect("sizes add up")
        };
        Ok(EncryptedDataset {
            inputs: CoeffTensor::from_parts(part(&xs, self.x.0), part(&xs, self.x.1), basis)?,
            targets: CoeffTensor::from_parts(part(&ys, self.y.0), part(&ys, self.y.1), basis)?,
        })
    }
}

/// Splits rows `0..n` of a plaintext array into chunks of at most `size` rows (for chunked encryption).
pub fn chunks<F: Clone>(x: &ArrayD<F>, size: usize) -> impl Iterator<Item = ndarray::ArrayViewD<'_, F>> {
    x.axis_chunks_iter(Axis(0), size.max(1))
}
