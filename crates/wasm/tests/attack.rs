//! The walkthrough's attack bindings in headless Chromium (`scripts/wasm-test.sh`): each attack, given only
//! the wire bytes a browser-generated key produced, recovers what the page claims it recovers.
#![cfg(target_arch = "wasm32")]

use more_wasm::Key;
use more_wasm::attack::{
    attack_eigenvalues, attack_equality, attack_ink_mask, attack_key_from_known_pixel, attack_linear_relation,
    attack_outputs, attack_recover_image, eigenvalue_reading, equality_reading, homomorphic_pair, output_reading,
};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    js_sys::Reflect::get(&v, &JsValue::from_str("message")).unwrap().as_string().unwrap_or_default()
}

/// Property `name` of a JavaScript object.
fn field(v: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(v, &JsValue::from_str(name)).unwrap()
}

/// A 28x28 "digit" on 8-bit levels in `[0, 1]`: a thick diagonal stroke with graded edges on black.
fn digit() -> Vec<f32> {
    let mut img = vec![0.0f32; 784];
    for y in 4..24usize {
        for x in 0..28usize {
            let d = (x as i32 - (y as i32 / 2 + 8)).unsigned_abs();
            let level = match d {
                0 | 1 => 255,
                2 => 180,
                3 => 60,
                _ => 0,
            };
            img[y * 28 + x] = level as f32 / 255.0;
        }
    }
    img
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Rounds to the 8-bit grid of `[0, 1]`.
fn grid(v: &[f32]) -> Vec<u8> {
    v.iter().map(|&x| (x * 255.0).round().clamp(0.0, 255.0) as u8).collect()
}

#[wasm_bindgen_test]
fn ciphertext_only_recovery_of_a_drawn_digit() {
    let img = digit();
    for _ in 0..20 {
        let key = Key::generate(None).unwrap();
        let wire = key.encrypt(&img, &[1, 28, 28]).unwrap();
        let rec = attack_recover_image(&wire, 28, 28, 0.0, 1.0).unwrap();
        assert_eq!(grid(&rec.values()), grid(&img), "the image is recovered exactly on the 8-bit grid");
        assert!(max_diff(&rec.values(), &img) < 1e-5);
        assert!(rec.confidence() > 0.0 && rec.confidence() <= 1.0);
        assert!(!rec.degenerate());
        assert_eq!(rec.eigenvectors().len(), 4);
        // The lane choice's evidence, as an object per lane.
        let scores = rec.scores().unwrap();
        let chosen = field(&field(&scores, "chosen"), "score").as_f64().unwrap();
        let other = field(&field(&scores, "other"), "score").as_f64().unwrap();
        assert!(chosen > other, "the chosen lane looks more like data: {chosen} vs {other}");
        // The other lane is the encryption's noise, not the image.
        assert!(max_diff(&rec.noise(), &img) > 0.05);
    }
}

#[wasm_bindgen_test]
fn eigenvalues_expose_each_pixel() {
    let img = digit();
    let key = Key::generate(None).unwrap();
    let wire = key.encrypt(&img, &[1, 28, 28]).unwrap();
    for index in [0u32, 300, 350, 783] {
        let e = eigenvalue_reading(&wire, index).unwrap();
        let m = img[index as usize] as f64;
        assert!((e.trace - (e.high + e.low)).abs() < 1e-5, "trace = sum of eigenvalues");
        assert!((e.high - m).abs() < 1e-5 || (e.low - m).abs() < 1e-5, "pixel {m} among eigenvalues {e:?}");
        // The page gets the same reading as an object with these field names.
        let js = attack_eigenvalues(&wire, index).unwrap();
        assert_eq!(field(&js, "high").as_f64(), Some(e.high));
        assert_eq!(field(&js, "trace").as_f64(), Some(e.trace));
        assert_eq!(js_sys::Array::from(&field(&js, "ciphertext")).length(), 4);
    }
}

#[wasm_bindgen_test]
fn one_known_pixel_breaks_the_key() {
    let img = digit();
    let key = Key::generate(None).unwrap();
    let wire = key.encrypt(&img, &[1, 28, 28]).unwrap();
    // Pixel 0 is black: a value any attacker can guess.
    let stolen = attack_key_from_known_pixel(&wire, 0, 0.0).unwrap();
    assert!(max_diff(&stolen.decrypt(&wire).unwrap(), &img) < 1e-4, "the stolen key decrypts the image");
    // ... and anything else the user encrypts under the same key.
    let other: Vec<f32> = (0..50).map(|i| (i as f32 * 0.7).cos()).collect();
    let wire2 = key.encrypt(&other, &[50]).unwrap();
    assert!(max_diff(&stolen.decrypt(&wire2).unwrap(), &other) < 1e-4);
    // Tsaban–Lifshitz: the same from the linear relation.
    let rel = attack_linear_relation(&wire, 0, 0.0).unwrap();
    assert!(max_diff(&rel, &img) < 1e-4);
}

#[wasm_bindgen_test]
fn ink_mask_and_equality_without_the_key() {
    let img = digit();
    let key = Key::generate(None).unwrap();
    let wire = key.encrypt(&img, &[1, 28, 28]).unwrap();
    let mask = attack_ink_mask(&wire, 0.0).unwrap();
    let truth: Vec<u8> = img.iter().map(|&v| u8::from(v != 0.0)).collect();
    let wrong = mask.iter().zip(&truth).filter(|(a, b)| a != b).count();
    assert!(wrong <= 2, "{wrong} of 784 pixels misread");
    // Two black pixels are equal, a black and a white one are not.
    let ink = img.iter().position(|&v| v == 1.0).unwrap() as u32;
    assert!(equality_reading(&wire, 0, 1).unwrap().equal);
    assert!(!equality_reading(&wire, 0, ink).unwrap().equal);
    assert_eq!(field(&attack_equality(&wire, 0, 1).unwrap(), "equal").as_bool(), Some(true));
}

#[wasm_bindgen_test]
fn homomorphic_sum_and_product_decrypt_with_the_key() {
    let key = Key::generate(None).unwrap();
    let wire = key.encrypt(&[1.5, -2.25, 4.0], &[3]).unwrap();
    let out = key.decrypt(&homomorphic_pair(&wire, 0, 2).unwrap()).unwrap();
    assert!((out[0] - 5.5).abs() < 1e-4 && (out[1] - 6.0).abs() < 1e-4, "{out:?}");
}

#[wasm_bindgen_test]
fn model_outputs_leak_through_the_input_basis() {
    // A "model answer" encrypted under the same key as the image: the basis recovered from the image
    // decrypts it, and its argmax is the class.
    let img = digit();
    let key = Key::generate(None).unwrap();
    let input = key.encrypt(&img, &[1, 28, 28]).unwrap();
    let logits = [0.1f32, -1.0, 3.5, 0.2, 0.0, -0.3, 1.1, 0.9, -2.0, 0.4];
    let output = key.encrypt(&logits, &[10]).unwrap();
    let leak = output_reading(&input, &output, 28, 28, 0.0, 1.0).unwrap();
    assert_eq!(leak.values.len(), 10);
    for (a, b) in leak.values.iter().zip(&logits) {
        assert!((*a as f32 - b).abs() < 1e-4, "{leak:?}");
    }
    assert_eq!(leak.argmax, 2);
    let js = attack_outputs(&input, &output, 28, 28, 0.0, 1.0).unwrap();
    assert_eq!(field(&js, "argmax").as_f64(), Some(2.0));
}

#[wasm_bindgen_test]
fn attacks_reject_bad_input_with_clear_errors() {
    let key = Key::generate(None).unwrap();
    let wire = key.encrypt(&[0.5; 4], &[4]).unwrap();
    let m = message(attack_eigenvalues(&wire, 4).err().unwrap());
    assert!(m.contains("out of range"), "{m}");
    let m = message(attack_recover_image(b"not a tensor", 2, 2, 0.0, 1.0).err().unwrap());
    assert!(m.starts_with("not an encrypted tensor"), "{m}");
    assert!(homomorphic_pair(&wire, 0, 9).is_err());
    assert!(attack_key_from_known_pixel(&wire[..20], 0, 0.0).is_err());
}
