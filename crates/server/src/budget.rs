//! The memory budget: what one inference request may hold while it is admitted, and the bound on the
//! whole process's memory that follows from it.
//!
//! An admitted request reserves, until its job is dropped (answered, or skipped because the client went):
//!
//! - [`BODY_COPIES`] times its body size: the body buffer, the decoded tensor, its copy in a merged batch
//!   and the copy of the chunk the forward pass works on;
//! - the **compute memory** of its samples: the largest set of arrays any one layer holds at once while
//!   running on those samples' four ciphertext planes ([`ComputeCost`], from the model's layer shapes:
//!   im2col column matrices, activations, pooling index tables, output copies).
//!
//! A worker runs a merged batch in chunks of at most [`CHUNK_SAMPLES`] samples, one chunk after another,
//! so the compute memory of a merged pass is at most that of `min(total, CHUNK_SAMPLES)` samples, which is
//! at most the sum of what its jobs reserved (each reserving for `min(own samples, CHUNK_SAMPLES)`).
//! Whatever the worker count, the memory of all passes in progress is therefore inside the budget, and the
//! process stays below [`Bound::total`]: the models, a fixed runtime allowance, a per-thread and a
//! per-connection allowance, and the budget.

use std::sync::Arc;

use more_nn::Model;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Copies of a request body held at once over its life (see the module docs).
pub const BODY_COPIES: usize = 4;

/// Most samples a forward pass runs through the layers at once (four plane rows each).
pub const CHUNK_SAMPLES: usize = more_nn::model::CHUNK_ROWS / 4;

/// Bytes of one `f32` element on the four planes of a ciphertext.
const PLANE_BYTES: usize = 4 * 4;

/// Allowance for the runtime: the executable's code and data, the allocator's bookkeeping, the async
/// runtime, logging and the router (the idle process measures 7–8 MB with the bundled models).
pub const RUNTIME_BYTES: usize = 16 << 20;

/// Allowance per thread (inference worker or async runtime thread): the touched part of its stack and its
/// allocator arena's free-list slack for small allocations.
pub const PER_THREAD_BYTES: usize = 2 << 20;

/// Allowance per open connection: the HTTP/1 read and write buffers and the connection's task.
pub const PER_CONNECTION_BYTES: usize = 64 << 10;

/// Open connections assumed by [`Bound`] when the caller does not say (`more-server --max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The compute memory of one model, per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ComputeCost {
    /// Peak bytes the forward pass holds per encrypted sample, beyond the input it was given.
    pub per_sample: usize,
    /// Bytes of one encrypted input sample (four `f32` planes).
    pub input_per_sample: usize,
    /// Wire-format header bytes of a request without a batch axis (`[4, ...input_shape]`); a batched
    /// request's header is 4 bytes longer.
    pub header: usize,
}

impl ComputeCost {
    /// The cost of `model`'s encrypted forward pass, from its layer shapes: the most elements any layer
    /// holds at once (`LayerKind::live_elements`, stated by each layer family next to its forward pass),
    /// plus the output rows the pass collects.
    pub fn of(model: &Model) -> ComputeCost {
        let mut shape = model.input_shape().to_vec();
        let input: usize = shape.iter().product();
        let mut peak = 0usize;
        for layer in model.layers() {
            // The model checked its layer chain when it was built; a shape error cannot happen here, and
            // counting the input again keeps the estimate conservative if it ever did.
            let out = layer.output_shape(&shape).unwrap_or_else(|_| shape.clone());
            peak = peak.max(layer.spec().live_elements(&shape, &out));
            shape = out;
        }
        ComputeCost {
            per_sample: (peak + model.output_len()) * PLANE_BYTES,
            input_per_sample: input * PLANE_BYTES,
            header: 8 + 4 * (model.input_shape().len() + 1),
        }
    }

    /// Bytes an admitted request of `body_bytes` carrying `samples` samples reserves.
    pub fn reservation(&self, body_bytes: usize, samples: usize) -> usize {
        body_bytes
            .saturating_mul(BODY_COPIES)
            .saturating_add(self.per_sample.saturating_mul(samples.clamp(1, CHUNK_SAMPLES)))
    }

    /// Samples in a valid body of `body_bytes` (header, then whole samples), at least one. A body of any
    /// other length is refused when decoded, before any forward pass.
    pub fn samples_in(&self, body_bytes: usize) -> usize {
        (body_bytes.saturating_sub(self.header) / self.input_per_sample.max(1)).max(1)
    }
}

/// The shared memory budget, counted in KiB permits.
#[derive(Debug, Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    kib: usize,
}

/// A reservation, released when dropped. It can grow ([`Budget::grow`]) as a request's body arrives.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// A reservation of nothing, to grow from.
    pub fn empty() -> Reservation {
        Reservation { permit: None }
    }

    /// Bytes reserved (a multiple of KiB).
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits() << 10)
    }

    /// Joins `other` into this reservation.
    pub fn absorb(&mut self, other: Reservation) {
        match (&mut self.permit, other.permit) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }
}

impl Budget {
    /// A budget of `bytes` (rounded down to KiB, at least 1 KiB).
    pub fn new(bytes: usize) -> Budget {
        let kib = (bytes >> 10).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Budget { permits: Arc::new(Semaphore::new(kib)), kib }
    }

    /// The budget in bytes.
    pub fn total(&self) -> usize {
        self.kib << 10
    }

    /// Bytes currently reserved.
    pub fn in_use(&self) -> usize {
        self.kib.saturating_sub(self.permits.available_permits()) << 10
    }

    /// Reserves `bytes` (rounded up to KiB) if they fit now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        if !self.could_fit(bytes) {
            return None;
        }
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).ok()?;
        Arc::clone(&self.permits).try_acquire_many_owned(kib).ok().map(|p| Reservation { permit: Some(p) })
    }

    /// Grows `reservation` to at least `bytes` if the difference fits now; `false` (and the reservation
    /// unchanged) if it does not.
    pub fn grow(&self, reservation: &mut Reservation, bytes: usize) -> bool {
        let have = reservation.bytes();
        if bytes <= have {
            return true;
        }
        match self.try_reserve(bytes - have) {
            Some(more) => {
                reservation.absorb(more);
                true
            }
            None => false,
        }
    }

    /// Whether `bytes` fit in the whole budget (when nothing else is reserved).
    pub fn could_fit(&self, bytes: usize) -> bool {
        bytes.div_ceil(1024).max(1) <= self.kib
    }
}

/// The bound on the process's resident memory, and its parts (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bound {
    /// The loaded models' weights.
    pub models: usize,
    /// [`RUNTIME_BYTES`].
    pub runtime: usize,
    /// Threads (inference workers and async runtime threads) × [`PER_THREAD_BYTES`].
    pub threads: usize,
    /// Open connections at most × [`PER_CONNECTION_BYTES`].
    pub connections: usize,
    /// The memory budget for admitted requests.
    pub budget: usize,
    /// Sample training data held for the page (0 when none is offered).
    pub data: usize,
    /// BFV: what its models keep resident and the key store's cap (0 without BFV models); its uploads and
    /// evaluations reserve from `budget`.
    pub bfv: usize,
    /// Training jobs: uploads being read and checked (each up to three times the upload limit) and the one
    /// job training (its memory limit plus its data read back), 0 with training off.
    pub training: usize,
    /// Uploaded models held (or, with the shared state, cached) in this process: their count cap times
    /// one model's largest memory (0 when uploads are off); uploads being checked reserve from `budget`.
    pub uploads: usize,
}

impl Bound {
    /// The bound for these models and sizes.
    pub fn new<'a>(
        models: impl IntoIterator<Item = &'a Model>,
        threads: usize,
        max_connections: usize,
        budget: usize,
    ) -> Bound {
        let models = models
            .into_iter()
            .map(|m| m.layers().iter().flat_map(|l| l.weights()).map(|p| 4 * p.len()).sum::<usize>())
            .sum();
        Bound {
            models,
            runtime: RUNTIME_BYTES,
            threads: threads.saturating_mul(PER_THREAD_BYTES),
            connections: max_connections.saturating_mul(PER_CONNECTION_BYTES),
            budget,
            data: 0,
            bfv: 0,
            training: 0,
            uploads: 0,
        }
    }

    /// The sum of the parts.
    pub fn total(&self) -> usize {
        self.models
            .saturating_add(self.runtime)
            .saturating_add(self.threads)
            .saturating_add(self.connections)
            .saturating_add(self.budget)
            .saturating_add(self.data)
            .saturating_add(self.bfv)
            .saturating_add(self.training)
            .saturating_add(self.uploads)
    }

    /// The same bound with the parts set outside [`Bound::new`] (sample data, BFV, training, uploads) taken from
    /// `other`.
    pub fn with_extras_of(self, other: &Bound) -> Bound {
        Bound { data: other.data, bfv: other.bfv, training: other.training, uploads: other.uploads, ..self }
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        write!(
            f,
            "{:.1} MiB = models {:.1} + runtime {:.1} + threads {:.1} + connections {:.1} + budget {:.1}",
            mib(self.total()),
            mib(self.models),
            mib(self.runtime),
            mib(self.threads),
            mib(self.connections),
            mib(self.budget)
        )?;
        for (name, bytes) in [
            ("sample data", self.data),
            ("bfv", self.bfv),
            ("training", self.training),
            ("uploaded models", self.uploads),
        ] {
            if bytes > 0 {
                write!(f, " + {name} {:.1}", mib(bytes))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use more_nn::{ElementFunction, Layer, LayerSpec, Model, ModelMeta};
    use ndarray::ArrayD;

    #[test]
    fn cost_follows_the_largest_layer() {
        // [1, 8, 8] -> conv 2x3x3 pad 1 -> [2, 8, 8] -> relu -> avgpool 2 -> [2, 4, 4] -> flatten -> dense 32->3
        let zeros = |shape: &[usize]| ArrayD::<f32>::zeros(shape);
        let conv = LayerSpec::Conv2d { in_channels: 1, out_channels: 2, kernel: [3, 3], stride: 1, padding: 1 };
        let layers = vec![
            Layer::new(conv, vec![zeros(&[2, 1, 3, 3]), zeros(&[2])]).unwrap(),
            Layer::parameter_free(LayerSpec::Activation { function: ElementFunction::Relu }).unwrap(),
            Layer::parameter_free(LayerSpec::AvgPool { size: 2, stride: 2 }).unwrap(),
            Layer::parameter_free(LayerSpec::Flatten).unwrap(),
            Layer::new(LayerSpec::Dense { inputs: 32, outputs: 3 }, vec![zeros(&[32, 3]), zeros(&[3])]).unwrap(),
        ];
        let m = Model::new(ModelMeta::new("t", "t"), &[1, 8, 8], layers).unwrap();
        let cost = ComputeCost::of(&m);
        // conv: input 64 + columns 9·64 + 3 × output 128 = 1024 elements; relu 256; pool 128 + 9·32 = 416.
        assert_eq!(cost.per_sample, (1024 + 3) * 16);
        assert_eq!(cost.input_per_sample, 64 * 16);
        assert_eq!(cost.header, 8 + 4 * 4);
        assert_eq!(cost.samples_in(64 * 16 + 24), 1, "one sample without a batch axis");
        assert_eq!(cost.samples_in(5 * 64 * 16 + 28), 5, "five with one");
        assert_eq!(cost.samples_in(3), 1);
        // A request reserves 4 bodies plus the compute of its samples, capped at one chunk.
        assert_eq!(cost.reservation(1000, 2), 4000 + 2 * cost.per_sample);
        assert_eq!(cost.reservation(1000, 1000), 4000 + CHUNK_SAMPLES * cost.per_sample);
    }

    #[test]
    fn budget_counts_reservations_until_dropped() {
        let b = Budget::new(10 << 10);
        let r1 = b.try_reserve(4000).unwrap();
        assert_eq!(b.in_use(), 4 << 10);
        let r2 = b.try_reserve(6 << 10).unwrap();
        assert!(b.try_reserve(1).is_none(), "full");
        assert!(!b.could_fit(11 << 10) && b.could_fit(10 << 10));
        drop(r1);
        assert_eq!(b.in_use(), 6 << 10);
        drop(r2);
        assert_eq!(b.in_use(), 0);
    }

    #[test]
    fn reservations_grow_until_the_budget_is_spent() {
        let b = Budget::new(10 << 10);
        let mut r = Reservation::empty();
        assert_eq!(r.bytes(), 0);
        assert!(b.grow(&mut r, 3000));
        assert_eq!((r.bytes(), b.in_use()), (3 << 10, 3 << 10));
        assert!(b.grow(&mut r, 2000), "already enough");
        assert!(b.grow(&mut r, 10 << 10));
        assert!(!b.grow(&mut r, (10 << 10) + 1), "over the budget");
        assert_eq!(r.bytes(), 10 << 10, "unchanged by a refusal");
        drop(r);
        assert_eq!(b.in_use(), 0);
    }

    #[test]
    fn bound_adds_its_parts() {
        let b = Bound {
            models: 1,
            runtime: 2,
            threads: 3,
            connections: 4,
            budget: 5,
            data: 0,
            bfv: 0,
            training: 0,
            uploads: 0,
        };
        assert_eq!(b.total(), 15);
        assert!(b.to_string().starts_with("0.0 MiB = models"));
        assert!(!b.to_string().contains("sample data"));
        let with_data = Bound { data: 3 << 20, ..b };
        assert_eq!(with_data.total(), 15 + (3 << 20));
        assert!(with_data.to_string().ends_with("+ sample data 3.0"), "{with_data}");
        let all = Bound { bfv: 1 << 20, training: 2 << 20, uploads: 4 << 20, ..with_data };
        assert_eq!(all.total(), 15 + (10 << 20));
        assert!(all.to_string().ends_with("+ sample data 3.0 + bfv 1.0 + training 2.0 + uploaded models 4.0"), "{all}");
        let renewed = Bound::new(std::iter::empty(), 1, 1, 5).with_extras_of(&all);
        assert_eq!(
            (renewed.data, renewed.bfv, renewed.training, renewed.uploads),
            (3 << 20, 1 << 20, 2 << 20, 4 << 20)
        );
    }
}
