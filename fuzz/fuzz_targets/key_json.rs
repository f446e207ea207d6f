//! JSON key import (more-core): arbitrary text never panics; an accepted key round-trips through its
//! binary and JSON forms.
#![no_main]

use libfuzzer_sys::fuzz_target;
use more_core::SecretKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = SecretKey::from_json(text) {
        let bin = SecretKey::from_bytes(&key.to_bytes()).expect("an accepted key's bytes import");
        assert_eq!(bin.to_json(), key.to_json());
        let again = SecretKey::from_json(&key.to_json()).expect("an accepted key's JSON imports");
        assert_eq!(again.to_bytes(), key.to_bytes());
    }
});
