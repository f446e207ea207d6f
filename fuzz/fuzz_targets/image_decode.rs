//! The PNG/JPEG decoder (more-imaging, feature `decode`): arbitrary bytes never panic, and a decoded image
//! goes through both preprocessing paths (angiogram frame, MNIST digit) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = more_imaging::decode_image(data) {
        assert!(img.width() <= more_imaging::MAX_SIDE && img.height() <= more_imaging::MAX_SIDE);
        let _ = more_imaging::angio_frame(&img, more_imaging::ANGIO_SIZE, more_imaging::ANGIO_SIZE);
        let _ = more_imaging::mnist_digit(&img, more_imaging::Ink::Auto);
    }
});
