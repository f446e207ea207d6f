//! Writes the seed corpora (`corpus/TARGET/*`): small valid inputs for each fuzz target, made with the
//! project's own encoders. Run from `fuzz/`: `cargo run --example seeds`.

use std::path::Path;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::owner::KeyOwner;
use more_enctrain::{Basis, CoeffTensor};
use more_nn::{ElementFunction, Layer, LayerSpec, Model, ModelMeta};
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn small_cnn() -> Model {
    let conv = LayerSpec::Conv2d { in_channels: 1, out_channels: 2, kernel: [3, 3], stride: 1, padding: 1 };
    let weight = Array4::from_shape_fn((2, 1, 3, 3), |(o, _, y, x)| (o + y) as f32 * 0.1 - x as f32 * 0.05);
    let dense = Array2::from_shape_fn((8, 2), |(i, j)| (i as f32 - 3.5) * 0.1 + j as f32 * 0.2);
    let free = |spec| Layer::parameter_free(spec).unwrap();
    Model::new(
        ModelMeta::new("seed-cnn", "seed"),
        &[1, 4, 4],
        vec![
            Layer::new(conv, vec![weight.into_dyn(), Array1::from(vec![0.1, -0.1]).into_dyn()]).unwrap(),
            free(LayerSpec::Activation { function: ElementFunction::Relu }),
            free(LayerSpec::MaxPool { size: 2, stride: 2 }),
            free(LayerSpec::Flatten),
            Layer::new(LayerSpec::Dense { inputs: 8, outputs: 2 }, vec![dense.into_dyn(), Array1::zeros(2).into_dyn()])
                .unwrap(),
            free(LayerSpec::Softmax),
        ],
    )
    .unwrap()
}

fn main() {
    let key = SecretKey::from_seed(1, KeyOptions::default()).unwrap();
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0.5f32, -1.0, 2.0, 0.0, 3.5, -0.25]).unwrap();
    write("wire_decode", "f32-2x3", &more_core::encode(&key.encrypt_tensor::<f32>(&x.view()).unwrap()));
    let y = ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0f64, 2.0, -3.0, 0.125]).unwrap();
    write("wire_decode", "f64-4", &more_core::encode(&key.encrypt_tensor::<f64>(&y.view()).unwrap()));

    write("key_binary", "seed-1", &key.to_bytes());
    write("key_binary", "seed-2", &SecretKey::from_seed(2, KeyOptions::default()).unwrap().to_bytes());
    write("key_json", "seed-1.json", key.to_json().as_bytes());
    write("key_json", "seed-2.json", SecretKey::from_seed(2, KeyOptions::default()).unwrap().to_json().as_bytes());

    let cnn = small_cnn();
    let bytes = cnn.to_bytes();
    write("model_file", "cnn.morenn", &bytes);
    // Without its checksum: the fuzz target appends a valid one, so mutations reach the parser behind it.
    write("model_file", "cnn-unsealed", &bytes[..bytes.len() - 4]);

    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, 6, 5);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let data: Vec<u8> = (0..6 * 5 * 3).map(|i| (i * 7 % 256) as u8).collect();
        enc.write_header().unwrap().write_image_data(&data).unwrap();
    }
    write("image_decode", "rgb-6x5.png", &png_bytes);
    let mut gray = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut gray, 4, 4);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Sixteen);
        enc.write_header().unwrap().write_image_data(&[0x80; 32]).unwrap();
    }
    write("image_decode", "gray16-4x4.png", &gray);
    let mut jpeg = Vec::new();
    let pixels: Vec<u8> = (0..8 * 8).map(|i| (i * 4) as u8).collect();
    jpeg_encoder::Encoder::new(&mut jpeg, 50).encode(&pixels, 8, 8, jpeg_encoder::ColorType::Luma).unwrap();
    write("image_decode", "luma-8x8.jpg", &jpeg);
    let mut jpeg_rgb = Vec::new();
    let pixels: Vec<u8> = (0..8 * 8 * 3).map(|i| (i * 5 % 256) as u8).collect();
    jpeg_encoder::Encoder::new(&mut jpeg_rgb, 50).encode(&pixels, 8, 8, jpeg_encoder::ColorType::Rgb).unwrap();
    write("image_decode", "rgb-8x8.jpg", &jpeg_rgb);

    let mut idx = vec![0, 0, 8, 3];
    for d in [2u32, 3, 2] {
        idx.extend_from_slice(&d.to_be_bytes());
    }
    idx.extend((0..12).map(|i| i as u8 * 20));
    write("idx", "u8-2x3x2", &idx);

    // A still-encrypted model: canaries and two parameters under one key.
    let mut owner = KeyOwner::with_seed(key.clone(), 3);
    let canaries = owner.encrypt_canaries::<f32>().unwrap();
    let basis = Basis::from_ciphertexts(&canaries).unwrap();
    let params: Vec<CoeffTensor<f32>> = [vec![2, 2], vec![2]]
        .iter()
        .map(|shape| {
            let n = shape.iter().product();
            let v = ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| i as f32 * 0.5 - 0.5).collect()).unwrap();
            let c = owner.encrypt_inputs::<f32>(&v.view(), -1.0, 1.0).unwrap();
            CoeffTensor::from_encrypted(&c, basis).unwrap()
        })
        .collect();
    let model = more_enctrain::model_file::EncryptedModel {
        basis,
        canaries: CoeffTensor::from_encrypted(&canaries, basis).unwrap(),
        params,
        spec: serde_json::json!({"arch": "seed"}),
    };
    write("enc_model_file", "seed.moreenc", &model.to_bytes().unwrap());

    // The request path: byte 0 method, 1 path, 2 content type, 3 content length, then the body.
    let inference = ArrayD::from_shape_vec(IxDyn(&[4]), vec![0.1f32, 0.5, -0.3, 0.9]).unwrap();
    let body = more_core::encode(&key.encrypt_tensor::<f32>(&inference.view()).unwrap());
    write("server_request", "infer", &[&[1u8, 0, 0, 0][..], &body].concat());
    let batch = ArrayD::from_shape_vec(IxDyn(&[2, 4]), vec![0.1f32, 0.5, -0.3, 0.9, 1.0, -1.0, 0.2, 0.0]).unwrap();
    let body = more_core::encode(&key.encrypt_tensor::<f32>(&batch.view()).unwrap());
    write("server_request", "infer-batch-no-length", &[&[1u8, 0, 3, 100][..], &body].concat());
    write("server_request", "health", &[0, 1, 1, 100]);
    write("server_request", "models", &[0, 2, 1, 100]);
    write("server_request", "metrics", &[0, 7, 1, 100]);
    write("server_request", "raw-path", b"\x00\xff\x00\x62api/v1/models/fuzz?x=1\x00");
    write("server_request", "extra-header", b"\x01\x00\x00\x80transfer-encoding:chunked\x00MORE");
}
