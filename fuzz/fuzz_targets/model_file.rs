//! The model file loader (more-nn): arbitrary bytes never panic. Each input is tried as it is and with a
//! valid CRC-32 appended, so the fuzzer reaches the JSON header and weight parsing behind the checksum.
//! A file that loads saves to bytes that load to the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use more_nn::Model;

fn check(bytes: &[u8]) {
    if let Ok(model) = Model::from_bytes(bytes) {
        let again = Model::from_bytes(&model.to_bytes()).expect("a saved model loads");
        assert_eq!(again.to_bytes(), model.to_bytes());
        assert_eq!(again.input_shape(), model.input_shape());
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    check(&sealed);
});
