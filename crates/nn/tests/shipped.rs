//! The shipped models (`models/*.morenn`) give the same outputs, bit for bit, as the recorded ones in
//! `tests/data/shipped-outputs.json`: plaintext logits and the raw ciphertext planes of an encrypted
//! forward pass in both forms (four planes, coefficient form) under a seeded key and seeded encryption
//! randomness. Any change to a layer's arithmetic
//! (order of sums, fused operations, another formula) shows up here, and every file re-serialises to
//! the same header and weights (the layer specs' JSON names never change).
//!
//! To record new reference outputs on purpose (e.g. after retraining a model), run with
//! `MORE_NN_BLESS=1`; the file is rewritten and the test passes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use more_core::{KeyOptions, SecretKey};
use more_nn::{EncryptedForm, Model};

/// Samples per model: more than one so batching is covered, fewer than a chunk.
const SAMPLES: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/shipped-outputs.json")
}

fn bits(a: &ArrayD<f32>) -> Vec<String> {
    a.iter().map(|v| format!("{:08x}", v.to_bits())).collect()
}

/// Plaintext outputs and encrypted output planes of one model, as `f32` bit patterns.
fn outputs(model: &Model, seed: u64) -> BTreeMap<String, Vec<String>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut shape = vec![SAMPLES];
    shape.extend_from_slice(model.input_shape());
    // Values around the models' normalised input range.
    let x = ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.random_range(-1.0f32..2.0));
    let plain = model.forward_plain(x.view()).unwrap();
    let key = SecretKey::from_seed(seed, KeyOptions::default()).unwrap();
    let enc = key.encrypt_tensor_with(&x.view(), &mut rng).unwrap();
    let out = model.forward_encrypted_in(&enc, EncryptedForm::FourPlanes).unwrap();
    let coef = model.forward_encrypted_in(&enc, EncryptedForm::Coefficients).unwrap();
    let mut m = BTreeMap::new();
    m.insert("plain".to_string(), bits(&plain));
    m.insert("encrypted_planes".to_string(), bits(out.data()));
    m.insert("decrypted".to_string(), bits(&key.decrypt_tensor(&out)));
    m.insert("coefficient_form_planes".to_string(), bits(coef.data()));
    m.insert("coefficient_form_decrypted".to_string(), bits(&key.decrypt_tensor(&coef)));
    m
}

/// The JSON header of a model file, parsed.
fn header(file: &[u8]) -> serde_json::Value {
    let len = u32::from_le_bytes(file[8..12].try_into().unwrap()) as usize;
    serde_json::from_slice(&file[12..12 + len]).unwrap()
}

/// The weight bytes of a model file (after the header, before the checksum).
fn weights(file: &[u8]) -> &[u8] {
    let len = u32::from_le_bytes(file[8..12].try_into().unwrap()) as usize;
    &file[12 + len..file.len() - 4]
}

#[test]
fn shipped_models_give_the_recorded_outputs_bit_for_bit() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == more_nn::model::FILE_EXTENSION))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the shipped models are in models/");
    let mut got = BTreeMap::new();
    for (i, path) in files.iter().enumerate() {
        let model = Model::load(path).unwrap();
        // Saving a loaded model writes the same JSON header (compared as JSON values: the metrics' number
        // formatting may differ) and the same weight bytes.
        let (saved, file) = (model.to_bytes(), std::fs::read(path).unwrap());
        assert_eq!(
            header(&saved),
            header(&file),
            "{}: metadata or layer specs re-serialise differently",
            path.display()
        );
        assert!(weights(&saved) == weights(&file), "{}: weights re-serialise differently", path.display());
        got.insert(model.meta().id.clone(), outputs(&model, 100 + i as u64));
    }
    let path = reference_path();
    if std::env::var_os("MORE_NN_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let want: BTreeMap<String, BTreeMap<String, Vec<String>>> = serde_json::from_str(&text).unwrap();
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "the set of shipped models");
    for (id, w) in &want {
        for (what, values) in w {
            assert_eq!(values, &got[id][what], "{id}: {what} differ from the recorded outputs");
        }
    }
}
