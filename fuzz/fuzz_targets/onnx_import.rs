//! The ONNX importer (`more_onnx::import`): protobuf decoding, tensors checked against their shapes, the
//! graph walk and every operator's attributes. Arbitrary bytes never panic; an imported model runs on a
//! zero input (no panic, a finite answer or an error) and its model file loads back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::{ArrayD, IxDyn};

fuzz_target!(|data: &[u8]| {
    let options = more_onnx::ImportOptions::new("fuzz", "mnist");
    let Ok(imported) = more_onnx::import(data, &options) else { return };
    let model = imported.model;
    let bytes = model.to_bytes();
    let again = more_nn::Model::from_bytes(&bytes).expect("an imported model's file loads");
    assert_eq!(again.to_bytes(), bytes);
    // Only small models are run: a hostile file may describe a large network in few bytes.
    if model.multiply_adds() <= 1 << 22 {
        let mut shape = vec![1];
        shape.extend_from_slice(model.input_shape());
        let x = ArrayD::<f32>::zeros(IxDyn(&shape));
        let _ = model.forward_plain(x.view());
    }
});
