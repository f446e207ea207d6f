//! The comparison run: the network the server trains, trained here on the same plaintext with the same
//! seed, hyper-parameters and configuration (`JobRequest::train_config`: fixed epochs, no validation),
//! one epoch per call so the page can draw its loss curve as it goes.

use more_enctrain::upload::JobRequest;
use more_nn::train::{Dataset, Fitting, Net, TrainConfig};
use more_nn::{ModelMeta, OutputKind, Plain};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use wasm_bindgen::prelude::*;

use crate::model::TrainedModel;
use crate::{Fault, fault, from_js, network, rows_array};

/// Plaintext training of one network, an epoch at a time.
#[wasm_bindgen]
#[derive(Debug)]
pub struct PlainTraining {
    id: String,
    classification: bool,
    net: Net<Plain>,
    data: Dataset<Plain>,
    cfg: TrainConfig,
    fitting: Fitting<Plain>,
}

impl PlainTraining {
    /// [`PlainTraining::new`] for a request already read.
    pub fn start(request: JobRequest, inputs: &[f32], targets: &[f32]) -> Result<PlainTraining, Fault> {
        let net_spec = network(&request.network)?;
        let x = rows_array("inputs", inputs, &net_spec.input_shape)?;
        let y = rows_array("targets", targets, &[net_spec.outputs])?;
        let nn = |e: more_nn::Error| fault("plaintext training", e);
        let data = Dataset::new(&Plain, x, y).map_err(nn)?;
        let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
        let net = Net::new(&Plain, &net_spec.input_shape, &net_spec.layers, &mut rng).map_err(nn)?;
        let cfg = request.train_config(net_spec.loss, net_spec.classification);
        let fitting = Fitting::new(&Plain, &data, None, &cfg).map_err(nn)?;
        Ok(PlainTraining { id: request.network, classification: net_spec.classification, net, data, cfg, fitting })
    }
}

#[wasm_bindgen]
impl PlainTraining {
    /// Prepares training the request's network (an object `{network, epochs, batch_size, lr, ...}`, as
    /// [`crate::owner::TrainingOwner::job_body`] takes it) on inputs and targets (row-major, the network's
    /// shapes), initialised from the request's seed.
    #[wasm_bindgen(constructor)]
    pub fn new(request: JsValue, inputs: &[f32], targets: &[f32]) -> Result<PlainTraining, Fault> {
        PlainTraining::start(from_js("training request", request)?, inputs, targets)
    }

    /// Epochs asked for.
    pub fn epochs(&self) -> usize {
        self.cfg.epochs
    }

    /// Runs the next epoch and returns its mean training loss, or `undefined` when all epochs ran.
    #[wasm_bindgen(js_name = nextEpoch)]
    pub fn next_epoch(&mut self) -> Result<Option<f64>, Fault> {
        let stats = self
            .fitting
            .next_epoch(&Plain, &Plain, &mut self.net, &self.data, None, &self.cfg)
            .map_err(|e| fault("plaintext training", e))?;
        Ok(stats.map(|s| s.train_loss))
    }

    /// The network as trained so far.
    pub fn model(&self) -> Result<TrainedModel, Fault> {
        let mut meta = ModelMeta::new(format!("{}-plain", self.id), "training page");
        meta.description = format!("{} trained on plaintext in the page", self.id);
        if !self.classification {
            meta.output_kind = OutputKind::Values;
        }
        self.net.to_model(&Plain, meta).map(TrainedModel::new).map_err(|e| fault("plaintext model", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trains_epoch_by_epoch_like_fit() {
        let n = 40;
        let x: Vec<f32> = (0..n * 7).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let y: Vec<f32> = x.chunks(7).flat_map(|r| (0..6).map(move |k| (r[k] * 0.5 + r[6] * 0.1).tanh())).collect();
        let request: JobRequest =
            serde_json::from_str(r#"{"network":"wbc-mlp","epochs":3,"batch_size":8,"lr":0.01,"seed":4}"#).unwrap();
        let mut t = PlainTraining::start(request.clone(), &x, &y).unwrap();
        let mut losses = Vec::new();
        while let Some(l) = t.next_epoch().unwrap() {
            losses.push(l);
        }
        assert_eq!(losses.len(), 3);
        assert!(losses[2] < losses[0], "{losses:?}");
        // The same as more-nn's fit in one call.
        let spec = network("wbc-mlp").unwrap();
        let cfg = request.train_config(spec.loss, false);
        let (model, history) = more_nn::train::fit_plain(
            &[7],
            &spec.layers,
            (rows_array("x", &x, &[7]).unwrap(), rows_array("y", &y, &[6]).unwrap()),
            None,
            &cfg,
            4,
            ModelMeta::new("m", "t"),
        )
        .unwrap();
        assert_eq!(history.epochs.last().unwrap().train_loss, losses[2]);
        assert_eq!(TrainedModel::new(model).weights(), t.model().unwrap().weights());
        let unknown = JobRequest { network: "nope".into(), ..request.clone() };
        assert!(PlainTraining::start(unknown, &x, &y).is_err());
        assert!(PlainTraining::start(request, &x[..13], &y).is_err());
    }
}
