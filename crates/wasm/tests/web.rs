//! The wasm API in headless Chromium (`scripts/wasm-test.sh`): keygen, round trip, preprocessing known
//! answers, errors on bad input. Needs `../shared/data/angio` at build time (embedded with include_bytes).
#![cfg(target_arch = "wasm32")]

use std::io::Read;

use more_wasm::{Key, angio_bfv_input, normalize, preprocess_image, preprocess_image_raw, wire_planes, wire_shape};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The `message` of the JS `Error` a `JsError` becomes.
fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    js_sys::Reflect::get(&v, &JsValue::from_str("message")).unwrap().as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
fn keygen_uses_the_browser_csprng() {
    let a = Key::generate(None).unwrap();
    let b = Key::generate(None).unwrap();
    assert_ne!(a.to_bytes(), b.to_bytes(), "two fresh keys must differ");
    assert_eq!(a.to_bytes().len(), 56);
    assert!(a.condition_number() >= 1.0 && a.condition_number() <= 10.0 + 1e-9);
    let c = Key::generate(Some(2.0)).unwrap();
    assert!(c.condition_number() <= 2.0 + 1e-9);
    // Export / import both ways.
    assert_eq!(Key::from_bytes(&a.to_bytes()).unwrap().to_bytes(), a.to_bytes());
    assert_eq!(Key::from_json(&a.to_json()).unwrap().to_bytes(), a.to_bytes());
    assert_eq!(a.matrix().len(), 4);
}

#[wasm_bindgen_test]
fn encrypt_decrypt_round_trip_in_wire_format() {
    let key = Key::generate(None).unwrap();
    let x: Vec<f32> = (0..784).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let wire = key.encrypt(&x, &[1, 28, 28]).unwrap();
    assert_eq!(&wire[..8], &[b'M', b'O', b'R', b'E', 1, 1, 3, 0]);
    assert_eq!(wire.len(), 8 + 4 * 3 + 4 * 784 * 4);
    assert_eq!(wire_shape(&wire).unwrap(), vec![1, 28, 28]);
    let planes = wire_planes(&wire).unwrap();
    assert_eq!(planes.len(), 4 * 784);
    // The planes are not the plaintext.
    assert!(planes[..784].iter().zip(&x).any(|(p, v)| (p - v).abs() > 1e-3));
    let y = key.decrypt(&wire).unwrap();
    let err = y.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err < 1e-4, "round-trip error {err}");
    // Fresh randomness: encrypting twice gives different ciphertexts.
    assert_ne!(key.encrypt(&x, &[784]).unwrap(), key.encrypt(&x, &[784]).unwrap());
    // Another key decrypts to something else.
    let other = Key::generate(None).unwrap();
    let z = other.decrypt(&wire).unwrap();
    assert!(z.iter().zip(&x).any(|(a, b)| (a - b).abs() > 1e-2));
}

#[wasm_bindgen_test]
fn digit_preprocessing_known_answer() {
    // A 20x100 black bar on a white 300x200 RGBA canvas -> a 4x20 white bar at rows 5..25, columns 13..17.
    let (w, h) = (300usize, 200usize);
    let mut rgba = vec![255u8; w * h * 4];
    for y in 10..110 {
        for x in 20..40 {
            rgba[(y * w + x) * 4..(y * w + x) * 4 + 3].fill(0);
        }
    }
    let raw = preprocess_image_raw("mnist-digit", &rgba, w as u32, h as u32, 0, 0).unwrap();
    let mut want = vec![0f32; 784];
    for y in 5..25 {
        for x in 13..17 {
            want[y * 28 + x] = 255.0;
        }
    }
    assert_eq!(raw, want);
    let x = preprocess_image("mnist-digit", &rgba, w as u32, h as u32, 0, 0, 1.0 / 255.0, &[0.5], &[0.5]).unwrap();
    assert_eq!(x.iter().filter(|&&v| (v - 1.0).abs() < 1e-6).count(), 80);
    assert_eq!(x.iter().filter(|&&v| (v + 1.0).abs() < 1e-6).count(), 784 - 80);
}

#[wasm_bindgen_test]
fn angio_preprocessing_reproduces_the_training_frame() {
    // val-3-rca.png (512x512) is row 2 of the validation set (ARCADE id 3).
    let png_bytes = include_bytes!("../../../../shared/data/angio/samples/val-3-rca.png");
    let gz = include_bytes!("../../../../shared/data/angio/val-images-idx3-ubyte.gz");
    let mut idx = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut idx).unwrap();
    let want = &idx[16 + 2 * 16384..16 + 3 * 16384];
    let mut reader = png::Decoder::new(std::io::Cursor::new(&png_bytes[..])).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(buf.len(), 512 * 512);
    // As the page does it: grayscale expanded to RGBA (canvas ImageData).
    let rgba: Vec<u8> = buf.iter().flat_map(|&g| [g, g, g, 255]).collect();
    let got = preprocess_image_raw("angio-frame", &rgba, 512, 512, 128, 128).unwrap();
    assert_eq!(got.len(), 16384);
    let diff = got.iter().zip(want).map(|(a, &b)| (a - b as f32).abs()).fold(0f32, f32::max);
    assert_eq!(diff, 0.0);
    assert_eq!(preprocess_image_raw("angio-frame", &buf, 512, 512, 0, 0).unwrap(), got);
}

#[wasm_bindgen_test]
fn the_bfv_angiogram_input_is_the_stored_frame_averaged_to_28x28() {
    // What training and evaluation feed the BFV classifier: the stored 128x128 frame through
    // `more_imaging::angio_bfv_input`. The page gets the same from the PNG, in either of two ways.
    let png_bytes = include_bytes!("../../../../shared/data/angio/samples/val-3-rca.png");
    let gz = include_bytes!("../../../../shared/data/angio/val-images-idx3-ubyte.gz");
    let mut idx = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut idx).unwrap();
    let stored: Vec<f32> = idx[16 + 2 * 16384..16 + 3 * 16384].iter().map(|&b| f32::from(b)).collect();
    let want = more_imaging::angio_bfv_input(&stored).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(&png_bytes[..])).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let frame = preprocess_image_raw("angio-frame", &buf, 512, 512, 128, 128).unwrap();
    let got = angio_bfv_input(&frame).unwrap();
    assert_eq!(got.len(), 784);
    assert_eq!(got, want);
    assert_eq!(preprocess_image_raw("angio-bfv", &buf, 512, 512, 0, 0).unwrap(), want);
    // Not a 128x128 frame: a clear error.
    let m = message(angio_bfv_input(&frame[..784]).err().unwrap());
    assert!(m.contains("BFV input") && m.contains("16384"), "{m}");
}

#[wasm_bindgen_test]
fn bad_input_gives_clear_errors() {
    let key = Key::generate(None).unwrap();
    let m = message(key.encrypt(&[1.0, 2.0, 3.0], &[2, 2]).err().unwrap());
    assert!(m.contains("does not hold 3 values"), "{m}");
    let m = message(key.encrypt(&[f32::NAN], &[1]).err().unwrap());
    assert!(m.starts_with("cannot encrypt"), "{m}");
    let m = message(key.encrypt(&[], &[]).err().unwrap());
    assert!(m.contains("non-zero dimensions"), "{m}");
    let m = message(key.decrypt(b"MORE\x01\x01\x01\x00garbage").err().unwrap());
    assert!(m.starts_with("the answer is not a valid encrypted tensor"), "{m}");
    assert!(wire_planes(&[1, 2, 3]).is_err());
    let m = message(Key::from_bytes(&[0; 10]).err().unwrap());
    assert!(m.contains("not a MORE key"), "{m}");
    assert!(Key::from_json("{\"version\":1}").is_err());
    let m = message(preprocess_image_raw("mnist-digit", &[0; 400], 10, 10, 0, 0).err().unwrap());
    assert!(m.contains("nothing is drawn"), "{m}");
    let m = message(preprocess_image_raw("mnist-digit", &[0; 7], 10, 10, 0, 0).err().unwrap());
    assert!(m.contains("pixel buffer"), "{m}");
    let m = message(preprocess_image_raw("photo", &[0; 4], 1, 1, 0, 0).err().unwrap());
    assert!(m.contains("unknown preprocessing kind"), "{m}");
    assert!(preprocess_image_raw("angio-frame", &[], 0, 0, 0, 0).is_err());
    assert!(normalize(&[1.0], 1.0, &[0.0], &[0.0]).is_err());
}
