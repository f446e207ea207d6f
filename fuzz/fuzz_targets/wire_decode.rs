//! The tensor wire format (more-core codec): decoding arbitrary bytes never panics, and whatever decodes
//! re-encodes to the same bytes (the format has one encoding per tensor).
#![no_main]

use libfuzzer_sys::fuzz_target;
use more_core::{AnyTensor, codec};

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let header = codec::read_header(data, LIMIT);
    match more_core::decode_any(data, LIMIT) {
        Ok(t) => {
            assert!(header.is_ok(), "decoded a body whose header was refused");
            let again = match &t {
                AnyTensor::F32(t) => more_core::encode(t),
                AnyTensor::F64(t) => more_core::encode(t),
            };
            assert_eq!(again, data, "decode then encode changed the bytes");
        }
        Err(_) => {}
    }
    let _ = more_core::decode::<f32>(data, LIMIT);
    let _ = more_core::decode::<f64>(data, LIMIT);
});
