//! The page's regression client run natively on the shipped WBC model: built from the scaling as the
//! server lists it (JSON, no weights), its batch key, encrypted patient and decrypted answer go through the
//! wire format and the server's evaluator, and the answer equals the exact integer network.

use more_bfv::batch::BATCH_INPUT_LEVEL;
use more_bfv::wire::{decode_batch_keys, decode_ciphertexts, encode_ciphertexts};
use more_bfv::{BfvError, BfvRegressionModel, RegressionEvaluator, RegressionScaling};
use more_wasm_bfv::BfvRegressionClient;

#[test]
fn one_patient_through_the_page_client_equals_the_integer_network() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/wbc-bfv-square.bfv.json");
    let model = BfvRegressionModel::load(path).unwrap();
    let net = &model.network;
    // What the page gets: the listed scaling only.
    let listed = serde_json::to_string(&net.scaling).unwrap();
    let scaling: RegressionScaling = serde_json::from_str(&listed).unwrap();
    let client = BfvRegressionClient::with_scaling(scaling).unwrap();

    let keys = decode_batch_keys(&client.batch_key_message().unwrap()).unwrap();
    let ev = RegressionEvaluator::new(net).unwrap();
    let (lo, hi) = (&net.scaling.input_min, &net.scaling.input_max);
    // The middle of the box and a patient near one corner.
    let patients = [
        lo.iter().zip(hi).map(|(a, b)| (a + b) / 2.0).collect::<Vec<f64>>(),
        lo.iter().zip(hi).map(|(a, b)| a + 0.9 * (b - a)).collect(),
    ];
    for raw in &patients {
        let message = client.encrypt_patient(raw).unwrap();
        let inputs = decode_ciphertexts(&message, net.inputs, BATCH_INPUT_LEVEL).unwrap();
        let answer = encode_ciphertexts(&ev.evaluate(&keys, &inputs).unwrap(), more_bfv::batch::BATCH_OUTPUT_LEVEL);
        let got = client.decrypt_answer(&answer).unwrap();
        let (limbs, _) = net.forward(&net.scaling.quantize_input(raw).unwrap());
        assert_eq!(got.limbs, limbs, "BFV equals the integer network");
        assert_eq!(got.outputs, net.scaling.decode(&limbs));
        assert_eq!(got.standardised, net.scaling.standardised_outputs(&limbs));
        assert_eq!(got.outputs.len(), net.outputs);
    }

    // Refused: a value outside the box (the library's input error), the wrong count, an answer that is not
    // the limb ciphertexts (here: the input message, 7 ciphertexts at the input level).
    let mut outside = lo.clone();
    outside[1] = hi[1] * 2.0;
    assert!(matches!(client.encrypt_patient(&outside), Err(BfvError::Input(_))));
    assert!(matches!(client.encrypt_patient(&lo[..3]), Err(BfvError::Input(_))));
    let input = client.encrypt_patient(&patients[0]).unwrap();
    assert!(matches!(client.decrypt_answer(&input), Err(BfvError::Wire(_))));
    // A scaling whose lists disagree is refused before any key is drawn.
    let mut bad = net.scaling.clone();
    bad.input_mean.pop();
    assert!(BfvRegressionClient::with_scaling(bad).is_err());
}
