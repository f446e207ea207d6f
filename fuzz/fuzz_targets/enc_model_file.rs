//! The encrypted-model loader (`.moreenc`, more-enctrain): arbitrary bytes never panic; a file that loads
//! saves to bytes that load again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use more_enctrain::model_file::EncryptedModel;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = EncryptedModel::from_bytes(data, LIMIT) {
        let bytes = model.to_bytes().expect("a loaded model serialises");
        let again = EncryptedModel::from_bytes(&bytes, usize::MAX).expect("a saved model loads");
        assert_eq!(again.params.len(), model.params.len());
    }
});
