//! `more train <task> --encrypted --server URL`, for every task that a server trains: this process is the
//! data owner. It checks the job against the server's limits, loads (or simulates) the data, encrypts the
//! training inputs and targets under a fresh key, has the server train on the ciphertexts (following the
//! decrypted loss), decrypts the model it sends back, and trains the same network here on the same
//! plaintext with the same seed and hyper-parameters (fixed epochs, no validation split: the server cannot
//! select without the key). The task scores both models on its held-out data and describes the result
//! ([`ServerData::finish`](crate::server_job::ServerData::finish)); this module saves the decrypted model and prints.
//!
//! A task offers the job with [`Task::server_job`](crate::tasks::Task::server_job).

use std::path::Path;

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use more_enctrain::upload::JobRequest;
use more_nn::Plain;
use more_nn::train::{Dataset, Net, fit};

use crate::args::TrainOptions;
use crate::files::{model_path, wrote};
use crate::remote::{Rows, Server};
use crate::server_job::BothSides;
use crate::tasks::{Hyper, TaskRef};

/// Runs `more train <task> --encrypted --server URL`.
pub fn train(task: TaskRef, server: &str, options: &TrainOptions, hyper: &Hyper) -> Result<()> {
    let common = &options.common;
    let json = common.json;
    let quiet = common.quiet.quiet || json;
    let job = task.server_job(options, hyper)?;
    let out = model_path(common.out.as_deref(), &job.id, common.force)?;
    // The server's limits first: a job it would refuse fails before the data are read.
    let trainer = Server::connect(server, &job.request)?;
    let data = (job.data)()?;
    let key = crate::encrypted::fresh_key(None)?;
    let rows = Rows { noun: data.noun, fewer: &*data.fewer };
    let remote = trainer.train(&key, &job.request, &data.inputs, &data.targets, &data.setup, &rows, quiet)?;

    let alg = Plain;
    let cfg = job.request.train_config(job.loss, job.classification);
    let mut net = Net::new(&alg, &job.input_shape, &job.specs, &mut ChaCha8Rng::seed_from_u64(hyper.seed))?;
    let history = fit(&alg, &alg, &mut net, &Dataset::new(&alg, data.inputs, data.targets)?, None, &cfg)?;
    let plain = net.to_model(&alg, job.plain_meta)?;
    let mut sides = BothSides { remote, plain, plain_history: history };
    let outcome = (data.finish)(&mut sides, server)?;
    sides.remote.model.save(&out)?;
    wrote(&out, Some("the decrypted model"), json);
    if json {
        println!("{}", job_json(outcome.json, task, server, &job.request, &sides, &out));
    } else {
        print!("{}", outcome.text);
    }
    Ok(())
}

/// The task's fields with the job's own: the server, the hyper-parameters, times, bytes and the file.
fn job_json(
    mut fields: serde_json::Value,
    task: TaskRef,
    server: &str,
    request: &JobRequest,
    sides: &BothSides,
    out: &Path,
) -> serde_json::Value {
    let remote = &sides.remote;
    let job = serde_json::json!({
        "task": task.name(), "server": server,
        "epochs": remote.epoch_losses.len(), "batch_size": request.batch_size, "lr": request.lr, "seed": request.seed,
        "seconds": remote.seconds, "encrypt_seconds": remote.encrypt_seconds,
        "upload_bytes": remote.upload_bytes, "model_bytes": remote.model_bytes,
        "plaintext_epoch_seconds": sides.plain_epoch_seconds(), "server_epoch_seconds": sides.server_epoch_seconds(),
        "model": out.display().to_string(),
    });
    if let (Some(fields), serde_json::Value::Object(job)) = (fields.as_object_mut(), job) {
        fields.extend(job);
    }
    fields
}
