//! The seven executables run the way the suite's harness runs them (`harness/run_submission.py`: same
//! order, arguments, working directory and file layout) on MNIST test images, for instances 0 (1 image) and
//! 1 (15 images), both in the per-image packing: the decrypted logits equal the exact integer network's, and
//! the predictions file the harness scores holds its labels. Instance 2 (1,000 images, the slot-per-image
//! packing) takes longer and is ignored by default: `cargo test -p more-heorg -- --ignored`.

mod common;

use std::path::Path;

use common::{TempRoot, mnist_test, run_ok, write_dataset};
use more_bfv::BfvModel;
use more_bfv::network::argmax;

const NAMES: [&str; 4] = ["single", "small", "medium", "large"];

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs instance `instance` on MNIST test images `first..first + count` and checks everything the harness
/// and the exact integer network say.
fn instance_end_to_end(instance: usize, first: usize, count: usize, files: usize) {
    let name = NAMES[instance];
    let tmp = TempRoot::new(name);
    let root = tmp.path();
    let arg = instance.to_string();
    let (images, labels) = mnist_test(first, count);
    write_dataset(root, name, &images, &labels);
    let io = root.join("io").join(name);

    run_ok(root, "client_key_generation", &[&arg]);
    run_ok(root, "server_preprocess_model", &[]);
    run_ok(root, "client_preprocess_input", &[&arg]);
    run_ok(root, "client_encode_encrypt_input", &[&arg]);
    // The server works without the secret key: hide it while the server stage runs.
    let (secret, hidden) = (io.join("secret_key"), root.join("hidden_secret_key"));
    std::fs::rename(&secret, &hidden).unwrap();
    run_ok(root, "server_encrypted_compute", &[&arg]);
    std::fs::rename(&hidden, &secret).unwrap();
    run_ok(root, "client_decrypt_decode", &[&arg]);
    run_ok(root, "client_postprocess", &[&arg]);

    // What the harness measures and reads.
    assert_eq!(files_in(&io.join("ciphertexts_upload")).len(), files, "upload files");
    assert_eq!(files_in(&io.join("ciphertexts_download")).len(), files, "result files");
    let seed = &std::fs::read(io.join("secret_key/secret_key_seed.bin")).unwrap()[8..];
    assert_eq!(seed.len(), 32);
    for file in files_in(&io.join("public_keys")).iter().chain(&files_in(&io.join("ciphertexts_upload"))) {
        assert!(!contains(file, seed), "the secret seed appears in a file sent to the server");
    }
    let predictions = read_lines(&io.join("encrypted_model_predictions.txt"));
    assert_eq!(predictions.len(), count);

    // The exact integer network on the same text the client read.
    let model = BfvModel::load(common::repo_root().join("models/mnist-bfv-square.bfv.json")).unwrap();
    let pixel_lines = read_lines(&root.join("datasets").join(name).join("intermediate/test_pixels.txt"));
    let logits = read_lines(&io.join("intermediate/logits.txt"));
    let mut correct = 0;
    for i in 0..count {
        let pixels: Vec<f32> = pixel_lines[i].split(' ').map(|v| v.parse().unwrap()).collect();
        let (expect, _) = model.network.forward(&model.network.quantize_image(&pixels).unwrap());
        let got: Vec<i64> = logits[i].split(' ').map(|v| v.parse().unwrap()).collect();
        assert_eq!(got, expect, "logits of image {i}");
        assert_eq!(predictions[i], argmax(&expect).to_string(), "label of image {i}");
        correct += usize::from(predictions[i] == labels[i].to_string());
    }
    // The harness's accuracy (utils.calculate_quality: equal lines / predictions) is the integer network's.
    println!("{name}: {correct}/{count} correct");
    assert!(correct * 10 >= count * 8, "accuracy {correct}/{count}");
    if instance == 0 {
        // verify_result.py reads both files as one integer each.
        let text = std::fs::read_to_string(io.join("encrypted_model_predictions.txt")).unwrap();
        assert_eq!(text.trim().parse::<u8>().unwrap(), labels[0], "the single image is classified correctly");
    }
}

#[test]
fn instance_0_single_image() {
    instance_end_to_end(0, 0, 1, 1);
}

#[test]
fn instance_1_fifteen_images() {
    instance_end_to_end(1, 100, 15, 15);
}

#[test]
#[ignore = "about a minute: one slot-per-image batch"]
fn instance_2_thousand_images_in_one_batch() {
    instance_end_to_end(2, 2000, 1000, 1);
}
