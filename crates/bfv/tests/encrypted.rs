//! BFV end to end on the real parameters: keys, encryption, the server's evaluation through the wire
//! format, decryption — equal to the exact integer network.

use more_bfv::layout::output_ciphertexts;
use more_bfv::network::{CHANNELS, HIDDEN, MAX_CLASSES, WINDOW};
use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL, PLAINTEXT_MODULUS};
use more_bfv::wire::{decode_ciphertexts, decode_keys, encode_ciphertexts, encode_keys};
use more_bfv::{BfvError, Client, Evaluator, QuantizedNet};
use rand::{Rng, SeedableRng};

/// A network of ten classes with random small weights (seeded), and a random image.
fn random_case(seed: u64) -> (QuantizedNet, Vec<i64>) {
    random_case_with(seed, MAX_CLASSES)
}

/// A network of `classes` classes with random small weights (seeded), and a random image.
fn random_case_with(seed: u64, classes: usize) -> (QuantizedNet, Vec<i64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut draw = |n: usize, m: i64| (0..n).map(|_| rng.random_range(-m..=m)).collect::<Vec<i64>>();
    let net = QuantizedNet {
        input_levels: 15,
        conv_weight: draw(CHANNELS * WINDOW, 7),
        conv_bias: draw(CHANNELS, 50),
        dense_weight: draw(classes * HIDDEN, 15),
        dense_bias: draw(classes, 1000),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 1);
    let x = (0..784).map(|_| rng.random_range(0..=15)).collect();
    (net, x)
}

#[test]
fn encrypted_inference_equals_the_integer_network() {
    let mut rng = rand::rng();
    let client = Client::new(&mut rng);
    let keys = decode_keys(&encode_keys(&client.eval_keys(&mut rng).unwrap())).unwrap();
    // Ten classes (three result ciphertexts, the last one half used), two (one, half used), four (one,
    // full): the same keys serve every class count.
    for (seed, classes, results) in [(7, MAX_CLASSES, 3), (8, 2, 1), (10, 4, 1)] {
        let (net, x) = random_case_with(seed, classes);
        let (expect, ranges) = net.forward(&x);
        assert_eq!(expect.len(), classes);
        assert!(ranges.max() < (PLAINTEXT_MODULUS / 2) as i64, "test case must not wrap: {ranges:?}");
        assert_eq!(output_ciphertexts(classes), results);
        let inputs = encode_ciphertexts(&client.encrypt(&x, &mut rng).unwrap(), INPUT_LEVEL);
        let evaluator = Evaluator::new(&net).unwrap();
        let outputs = evaluator.evaluate(&keys, &decode_ciphertexts(&inputs, 7, INPUT_LEVEL).unwrap()).unwrap();
        assert_eq!(outputs.len(), results);
        let outputs = decode_ciphertexts(&encode_ciphertexts(&outputs, OUTPUT_LEVEL), results, OUTPUT_LEVEL).unwrap();
        assert_eq!(client.decrypt(&outputs, classes).unwrap(), expect, "{classes} classes");
        // Read with a class count that needs another number of ciphertexts, or none at all: refused.
        assert!(client.decrypt(&outputs, if results == 1 { 5 } else { 2 }).is_err());
        assert!(client.decrypt(&outputs, 0).is_err());
    }
}

#[test]
fn ciphertexts_of_another_key_decrypt_to_something_else() {
    let (net, x) = random_case(9);
    let (expect, _) = net.forward(&x);
    let mut rng = rand::rng();
    let (alice, eve) = (Client::new(&mut rng), Client::new(&mut rng));
    let keys = alice.eval_keys(&mut rng).unwrap();
    let out = Evaluator::new(&net).unwrap().evaluate(&keys, &alice.encrypt(&x, &mut rng).unwrap()).unwrap();
    assert_ne!(eve.decrypt(&out, MAX_CLASSES).unwrap(), expect);
}

#[test]
fn the_wire_refuses_truncated_and_foreign_bytes() {
    let mut rng = rand::rng();
    let client = Client::new(&mut rng);
    let x = vec![3i64; 784];
    let bytes = encode_ciphertexts(&client.encrypt(&x, &mut rng).unwrap(), INPUT_LEVEL);
    for cut in [0, 7, 16, 19, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(decode_ciphertexts(&bytes[..cut], 7, INPUT_LEVEL).is_err(), "cut at {cut}");
    }
    let mut foreign = bytes.clone();
    foreign[8] ^= 1; // another parameter fingerprint
    assert!(matches!(decode_ciphertexts(&foreign, 7, INPUT_LEVEL), Err(BfvError::Parameters(_))));
    assert!(decode_ciphertexts(&bytes, 7, OUTPUT_LEVEL).is_err());
    let mut garbled = bytes.clone();
    for b in garbled.iter_mut().skip(23).step_by(97) {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let _ = decode_ciphertexts(&garbled, 7, INPUT_LEVEL); // any result but a panic
    let keys = encode_keys(&client.eval_keys(&mut rng).unwrap());
    for cut in [0, 12, 20, keys.len() / 3, keys.len() - 1] {
        assert!(decode_keys(&keys[..cut]).is_err(), "keys cut at {cut}");
    }
    assert!(decode_keys(&bytes).is_err());
}

#[test]
fn the_bundled_classifiers_load_with_their_class_counts() {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for (file, task, classes, results) in
        [("mnist-bfv-square.bfv.json", "mnist", 10, 3), ("angio-bfv-square.bfv.json", "angio", 2, 1)]
    {
        let bytes = std::fs::read(models.join(file)).unwrap();
        let model = more_bfv::BfvModel::from_json(&bytes).unwrap();
        assert_eq!((model.task.as_str(), model.network.classes(), model.labels.len()), (task, classes, classes));
        assert_eq!(output_ciphertexts(model.network.classes()), results, "{file}");
        // A file whose labels do not match its network is refused.
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        json["labels"].as_array_mut().unwrap().pop();
        let err = more_bfv::BfvModel::from_json(&serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert!(err.to_string().contains("labels"), "{err}");
    }
}
