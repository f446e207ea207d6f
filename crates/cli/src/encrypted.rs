//! Training on encrypted data with this process as the key owner: a fresh key encrypts a task's inputs and
//! labels, `more-enctrain`'s trainer trains on the ciphertexts, the owner decrypts the weights. Used by
//! `more train <task> --encrypted` for every task built on `more_enctrain::task::Task`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use more_core::{KeyOptions, SecretKey};
use more_enctrain::task::{Task, TimedRun, mean_epoch_seconds, predict_plain, train_task};
use more_enctrain::train::PlainData;
use more_nn::ModelMeta;
use more_nn::train::correct;

use crate::files::{create_parent, write_private, wrote};

/// The key of an encrypted run: from the OS CSPRNG, with condition number `kappa` if given (else `κ`
/// uniform in [1, 10]).
pub fn fresh_key(kappa: Option<f64>) -> Result<SecretKey> {
    use rand_chacha::rand_core::SeedableRng;
    Ok(match kappa {
        Some(k) => {
            SecretKey::with_condition_rng(k, KeyOptions::default().noise, &mut rand_chacha::ChaCha20Rng::from_os_rng())?
        }
        None => SecretKey::generate(KeyOptions::default())?,
    })
}

/// What a task hands to [`train_encrypted_task`] besides its [`Task`].
#[derive(Debug, Clone)]
pub struct EncryptedTaskOutput {
    /// Model id (printed).
    pub id: String,
    /// The decrypted model's path; the still-encrypted model (`.moreenc`) and the key (`.key.json`, owner
    /// read-only) are written next to it. The caller has refused existing files
    /// ([`crate::files::encrypted_outputs`]).
    pub out: PathBuf,
    /// No progress lines.
    pub quiet: bool,
}

/// `more train <task> --encrypted`, task-generic: a fresh key encrypts `task`'s inputs and labels, the
/// trainer trains on ciphertexts, the owner decrypts; returns the run. `meta` is the decrypted model's metadata (this adds
/// `training.encrypted_training`); `test`, if given, is evaluated with the decrypted model (metrics
/// `test_accuracy`; the caller may add more before the file is rewritten). Writes the decrypted model,
/// the `.moreenc` model and the `.key.json` key.
pub fn train_encrypted_task(
    task: &Task,
    mut meta: ModelMeta,
    test: Option<&PlainData>,
    output: &EncryptedTaskOutput,
) -> Result<TimedRun> {
    meta.training.insert(
        "encrypted_training".into(),
        "inputs and labels MORE-encrypted; weights trained as ciphertexts and decrypted by the key owner".into(),
    );
    let key = SecretKey::generate(KeyOptions::default())?;
    if !output.quiet {
        eprintln!("training {} on encrypted data under a fresh key (κ = {:.2})", output.id, key.condition_number());
    }
    let mut timed = train_task(task, &key, meta)?;
    let run = &mut timed.run;
    let mut test_acc = None;
    if let Some(test) = test {
        let (out_test, _) = predict_plain(&run.model, &test.inputs, 500)?;
        let acc = correct(&out_test, &test.targets) as f64 / out_test.shape()[0].max(1) as f64;
        run.model.meta_mut().metrics.insert("test_accuracy".into(), acc);
        test_acc = Some(acc);
    }
    run.model.meta_mut().metrics.insert("train_seconds_per_epoch".into(), mean_epoch_seconds(&run.history));
    let out = &output.out;
    create_parent(out)?;
    run.model.save(out)?;
    let encrypted_path = out.with_extension("moreenc");
    run.encrypted.save(&encrypted_path)?;
    let key_path = out.with_extension("key.json");
    write_private(&key_path, key.to_json().as_bytes()).with_context(|| format!("writing {}", key_path.display()))?;
    println!(
        "{}: trained on encrypted data;{} {:.1} s per epoch",
        output.id,
        test_acc.map(|a| format!(" decrypted model's test accuracy {:.2}%,", 100.0 * a)).unwrap_or_default(),
        mean_epoch_seconds(&run.history),
    );
    wrote(out, Some("the decrypted model"), false);
    wrote(&encrypted_path, Some("the model, still encrypted"), false);
    wrote(&key_path, Some("the key: keep it private"), false);
    Ok(timed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use more_enctrain::owner::KeyOwner;
    use more_enctrain::train::EncryptionSetup;
    use more_enctrain::train::decrypt_model;
    use more_nn::train::TrainConfig;
    use more_nn::{ElementFunction, LayerSpec, Model};
    use ndarray::{ArrayD, IxDyn};

    /// 10x10 one-channel "frames", class = which half is brighter (deterministic).
    fn frames(n: usize, offset: usize) -> PlainData {
        let label = |i: usize| (i * 7 + offset) % 3 == 0;
        let x = ArrayD::from_shape_fn(IxDyn(&[n, 1, 10, 10]), |i| {
            let bright = label(i[0]) == (i[3] < 5);
            (if bright { 0.7 } else { 0.3 }) + 0.01 * ((i[0] * 13 + i[2] * 5 + i[3]) % 11) as f32
        });
        let y = ArrayD::from_shape_fn(IxDyn(&[n, 2]), |i| f32::from(u8::from(usize::from(label(i[0])) == i[1])));
        PlainData { inputs: x, targets: y }
    }

    #[test]
    fn train_encrypted_task_writes_decryptable_files() {
        let dir = std::env::temp_dir().join(format!("more-enctask-{}", std::process::id()));
        let out = dir.join("toy.morenn");
        let train = frames(40, 0);
        let val = frames(12, 1);
        let task = Task {
            input_shape: vec![1, 10, 10],
            specs: vec![
                LayerSpec::Conv2d { in_channels: 1, out_channels: 2, kernel: [3, 3], stride: 2, padding: 1 },
                LayerSpec::Activation { function: ElementFunction::Square },
                LayerSpec::AvgPool { size: 2, stride: 1 },
                LayerSpec::Flatten,
                LayerSpec::Dense { inputs: 32, outputs: 2 },
            ],
            train: train.reweighted(&more_enctrain::task::balanced_class_weights(&train.targets).unwrap(), 1).unwrap(),
            val: Some(val.clone()),
            init_seed: 2,
            cfg: TrainConfig { epochs: 2, batch_size: 8, progress: false, ..TrainConfig::default() },
            setup: EncryptionSetup::default(),
        };
        let res = train_encrypted_task(
            &task,
            ModelMeta::new("toy", "test"),
            Some(&val),
            &EncryptedTaskOutput { id: "toy".into(), out: out.clone(), quiet: true },
        )
        .unwrap();
        assert_eq!(res.run.history.epochs.len(), 2);
        let saved = Model::load(&out).unwrap();
        assert!(saved.meta().metrics.contains_key("test_accuracy"));
        assert!(saved.meta().training.contains_key("encrypted_training"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.with_extension("key.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
        }
        // The key file decrypts the .moreenc file to the saved model; another key is refused.
        let key = SecretKey::from_json(&std::fs::read_to_string(out.with_extension("key.json")).unwrap()).unwrap();
        let enc = more_enctrain::model_file::EncryptedModel::load(out.with_extension("moreenc")).unwrap();
        let back = decrypt_model(&KeyOwner::new(key), &enc).unwrap();
        let (a, b) = (back.forward_plain(val.inputs.view()).unwrap(), saved.forward_plain(val.inputs.view()).unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4));
        let other = KeyOwner::new(SecretKey::generate(KeyOptions::default()).unwrap());
        assert!(decrypt_model(&other, &enc).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
