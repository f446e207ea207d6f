//! Writes the seed corpora (`corpus/TARGET/*`): small valid inputs for each fuzz target, made with the
//! project's own encoders. Run from `fuzz/`: `cargo run --release --example seeds` (the BFV seeds need
//! fhe.rs optimised). Keys and the random lanes of `job_upload` and `server_state_routes` come from fixed
//! seeds; fhe.rs draws the public seed of a fresh BFV ciphertext from the thread RNG whatever generator it
//! is given, and the older targets' MORE ciphertexts draw fresh noise, so those bytes change from run to run.

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

    write("onnx_import", "mlp.onnx", &more_onnx::sample::mlp());
    write("onnx_import", "cnn.onnx", &more_onnx::sample::cnn());

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

    let bfv = bfv_seeds();
    let jobs = job_seeds();
    state_seeds(&bfv, &jobs);
}

/// Bytes the BFV and server seeds share.
struct BfvSeeds {
    /// A small key message: the start of a relinearisation key and two empty evaluation keys.
    small_keys: Vec<u8>,
    /// One fresh (seeded) ciphertext at the last level, as a message.
    ciphertext: Vec<u8>,
}

/// `bfv_wire`: byte 0 is the mode (0 ciphertext message, 1 key message, 2 repaired ciphertext blobs,
/// 3 repaired key blobs). Valid key sets for the network are megabytes, so the keys and ciphertexts here
/// are at the last level (one modulus): about 45 KB per polynomial.
fn bfv_seeds() -> BfvSeeds {
    use fhe::bfv::{EvaluationKeyBuilder, Plaintext, RelinearizationKey};
    use fhe_traits::{FheEncoder, FheEncrypter, Serialize as _};
    use more_bfv::wire::{CIPHERTEXTS_MAGIC, KEYS_MAGIC, encode_ciphertexts};
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    let par = more_bfv::params::parameters();
    let last = par.max_level();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = fhe::bfv::SecretKey::random(&par, &mut rng);
    let slots: Vec<u64> = (0..par.degree() as u64).map(|i| i * 3 % 1000).collect();
    let pt = Plaintext::try_encode(&slots, fhe::bfv::Encoding::simd_at_level(last), &par).unwrap();
    // A fresh ciphertext sends one polynomial and the seed of the other; a sum sends both.
    let ct = sk.try_encrypt(&pt, &mut rng).unwrap();
    let sum = &ct + &ct;
    let ciphertext = encode_ciphertexts(std::slice::from_ref(&ct), last);
    let with = |mode: u8, bytes: &[u8]| [&[mode][..], bytes].concat();
    write("bfv_wire", "ct-last-level", &with(0, &ciphertext));
    write("bfv_wire", "ct-last-level-unseeded", &with(0, &encode_ciphertexts(&[sum], last)));
    write("bfv_wire", "ct-truncated", &with(0, &ciphertext[..219]));
    let mut foreign = ciphertext[..64].to_vec();
    foreign[8] ^= 1;
    write("bfv_wire", "ct-foreign-fingerprint", &with(0, &foreign));
    // The server's expectation (7 ciphertexts at level 0), with no ciphertext after the header.
    let mut header = ciphertext[..19].to_vec();
    header[16] = more_bfv::params::INPUT_LEVEL as u8;
    header[17..19].copy_from_slice(&(more_bfv::layout::INPUT_CIPHERTEXTS as u16).to_le_bytes());
    write("bfv_wire", "ct-server-header-only", &with(0, &header));
    let blob = ct.to_bytes();
    let mut raw = vec![2, last as u8];
    raw.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    raw.extend_from_slice(&blob);
    write("bfv_wire", "ct-blob", &raw);
    let mut flipped = raw.clone();
    flipped[8] ^= 0x40;
    write("bfv_wire", "ct-blob-flipped", &flipped);
    write("bfv_wire", "ct-blob-cut", &raw[..200]);

    // fhe.rs refuses a relinearisation key with a single modulus: the key is one level up (two moduli).
    let relin = RelinearizationKey::new_leveled(&sk, last, last - 1, &mut rng).unwrap();
    let mut one = EvaluationKeyBuilder::new_leveled(&sk, last, last).unwrap();
    one.enable_column_rotation(1).unwrap();
    let one = one.build(&mut rng).unwrap();
    let empty = EvaluationKeyBuilder::new_leveled(&sk, last, last).unwrap().build(&mut rng).unwrap();
    let blobs = [relin.to_bytes(), one.to_bytes(), empty.to_bytes()];
    let mut keys = KEYS_MAGIC.to_vec();
    keys.extend_from_slice(&more_bfv::params::fingerprint().to_le_bytes());
    let mut small = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        keys.extend_from_slice(&(b.len() as u32).to_le_bytes());
        keys.extend_from_slice(b);
        // The small variant: the first 100 bytes of the relinearisation key, two empty evaluation keys.
        let part: &[u8] = if i == 0 { &b[..100] } else { &blobs[2] };
        small.extend_from_slice(&(part.len() as u32).to_le_bytes());
        small.extend_from_slice(part);
    }
    write("bfv_wire", "keys-last-level", &with(1, &keys));
    write("bfv_wire", "keys-truncated", &with(1, &keys[..120]));
    write("bfv_wire", "keys-blobs-small", &with(3, &small));
    let mut wrong_magic = keys[..40].to_vec();
    wrong_magic[..8].copy_from_slice(CIPHERTEXTS_MAGIC);
    write("bfv_wire", "keys-wrong-magic", &with(1, &wrong_magic));
    let mut small_keys = KEYS_MAGIC.to_vec();
    small_keys.extend_from_slice(&more_bfv::params::fingerprint().to_le_bytes());
    small_keys.extend_from_slice(&small);
    BfvSeeds { small_keys, ciphertext }
}

/// Training-job bodies for each offered network (`job_upload`), also used by `state_seeds`.
struct JobSeeds {
    wbc: Vec<u8>,
    mnist: Vec<u8>,
}

fn job_seeds() -> JobSeeds {
    use more_enctrain::upload::{JobRequest, OptimizerKind, encode_body};

    let request = |network: &str, optimizer| JobRequest {
        network: network.into(),
        epochs: 1,
        batch_size: 2,
        lr: 0.01,
        lr_decay: 0.9,
        optimizer,
        seed: 5,
    };
    let key = SecretKey::from_seed(4, KeyOptions::default()).unwrap();
    let mut owner = KeyOwner::with_seed(key, 6);
    let canaries = owner.encrypt_canaries::<f32>().unwrap();
    let x = ArrayD::from_shape_fn(IxDyn(&[3, 7]), |i| (i[0] * 7 + i[1]) as f32 * 0.05 - 0.5);
    let y = ArrayD::from_shape_fn(IxDyn(&[3, 6]), |i| (i[0] + i[1]) as f32 * 0.1 - 0.3);
    let cx = owner.encrypt_inputs(&x.view(), -2.0, 2.0).unwrap();
    let cy = owner.encrypt_inputs(&y.view(), -1.0, 1.0).unwrap();
    let wbc = encode_body(&request("wbc-mlp", OptimizerKind::Adam), &cx, &cy, &canaries).unwrap();
    write("job_upload", "wbc-mlp-3-rows", &wbc);
    let digit = ArrayD::from_shape_fn(IxDyn(&[1, 1, 28, 28]), |i| if i[2].abs_diff(i[3]) < 2 { 1.0f32 } else { 0.0 });
    let cd = owner.encrypt_inputs(&digit.view(), 0.0, 1.0).unwrap();
    let label = owner.encrypt_one_hot::<f32>(&[3], 10).unwrap();
    let mnist = encode_body(&request("mnist-cnn-relu", OptimizerKind::Sgd), &cd, &label, &canaries).unwrap();
    write("job_upload", "mnist-cnn-relu-1-row", &mnist);
    let square = encode_body(&request("mnist-cnn-square", OptimizerKind::Adam), &cd, &label, &canaries).unwrap();
    write("job_upload", "mnist-cnn-square-1-row", &square);

    let header_end = wbc.iter().position(|&b| b == b'\n').unwrap() + 1;
    write("job_upload", "header-only", &wbc[..header_end]);
    write("job_upload", "wbc-cut", &wbc[..wbc.len() - 1]);
    let mut trailing = wbc.clone();
    trailing.push(0);
    write("job_upload", "wbc-trailing-byte", &trailing);
    // The inputs tensor's first dimension (after the 8-byte length prefix and the 8-byte tensor header).
    let mut flipped = wbc.clone();
    flipped[header_end + 8 + 8] ^= 1;
    write("job_upload", "wbc-rows-flipped", &flipped);
    // Targets and canaries under another key: outside the inputs' span.
    let mut other = KeyOwner::with_seed(SecretKey::from_seed(8, KeyOptions::default()).unwrap(), 9);
    let oy = other.encrypt_inputs(&y.view(), -1.0, 1.0).unwrap();
    let oc = other.encrypt_canaries::<f32>().unwrap();
    write("job_upload", "wbc-mixed-keys", &encode_body(&request("wbc-mlp", OptimizerKind::Adam), &cx, &oy, &oc).unwrap());
    JobSeeds { wbc, mnist }
}

/// `server_state_routes`: byte 0 route, byte 1 content type, byte 2 length mode and flags, then the body.
fn state_seeds(bfv: &BfvSeeds, jobs: &JobSeeds) {
    let [rows, cols] = more_server::glyphs::shape(more_server::challenge::PHRASE_LEN);
    let seed = |name: &str, head: [u8; 3], body: &[u8]| write("server_state_routes", name, &[&head[..], body].concat());
    let image = serde_json::json!({"name": "Ada Lovelace", "answer": vec![0.5; rows * cols]});
    seed("answer-image", [0, 0, 0], image.to_string().as_bytes());
    seed("answer-phrase", [0, 4, 1], br#"{"name":"Zo\u00eb O'Neil","phrase":"acd e f"}"#);
    seed("answer-wrong-length", [0, 0, 0], br#"{"name":"x","answer":[0.5,1e308,-0.0]}"#);
    seed("answer-both-and-unknown-field", [0, 0, 0], br#"{"name":"x","answer":[1],"phrase":"A","more":1}"#);
    seed("answer-bad-name", [0, 0, 2], br#"{"name":"<>/","phrase":"A"}"#);
    seed("answer-unknown-challenge", [1, 0, 0], b"000000000000\0{\"name\":\"x\",\"phrase\":\"ACDEF\"}");
    seed("answer-not-json", [0, 3, 0], br#"{"name":"x","phrase":"ACDEF"}"#);
    seed("answers-teacher", [2, 0, 0x41], b"");
    seed("job-wbc", [3, 1, 0], &jobs.wbc);
    seed("job-mnist", [3, 1, 1], &jobs.mnist);
    seed("job-wrong-type", [3, 0, 0], &jobs.wbc[..100]);
    seed("job-huge-length", [3, 1, 4], &jobs.wbc[..100]);
    seed("training-info", [4, 0, 1], b"");
    // Whole key messages are large (bfv_wire covers their parsing); these reach the parser with small ones.
    seed("bfv-keys-small", [5, 2, 0], &bfv.small_keys);
    seed("bfv-keys-truncated", [5, 5, 1], &bfv.small_keys[..60]);
    seed("bfv-keys-delete", [6, 3, 1], b"00112233445566778899aabbccddeeff");
    let mut infer = b"00112233445566778899aabbccddeeff\0".to_vec();
    infer.extend_from_slice(&bfv.ciphertext[..19]);
    seed("bfv-infer-unknown-key", [7, 2, 0], &infer);
    seed("challenge-create", [8, 3, 0x41], b"");
    seed("job-status-unknown", [9, 3, 1], b"0123456789abcdef0123456789abcdef");
}
