//! The data-set parsers of more-nn: the IDX format (MNIST-style files) and the labelled-image format the
//! server's sample route sends to the training page. Arbitrary bytes never panic; a parsed IDX array has
//! exactly the elements its header declares, and a parsed labelled set encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = more_nn::idx::parse_idx(data) {
        assert!(a.len() <= data.len());
    }
    if let Ok(set) = more_nn::idx::ImageSet::from_bytes(data, 1 << 20) {
        assert_eq!(set.to_bytes(), data);
    }
});
