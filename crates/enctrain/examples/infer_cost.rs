//! Encrypted vs plaintext forward pass of the MNIST ReLU CNN (batch 500) through the training engine.
//! `cargo run --release -p more-enctrain --example infer_cost`

use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::algebra::Encrypted;
use more_enctrain::owner::KeyOwner;
use more_enctrain::{Basis, CoeffTensor};
use more_nn::train::Net;
use more_nn::{ElementFunction, LayerSpec, Plain};

fn main() {
    let act = LayerSpec::Activation { function: ElementFunction::Relu };
    let conv = |i, o, k, stride, padding| LayerSpec::Conv2d {
        in_channels: i,
        out_channels: o,
        kernel: [k, k],
        stride,
        padding,
    };
    let specs = vec![
        conv(1, 16, 5, 2, 2),
        act.clone(),
        conv(16, 16, 3, 2, 1),
        act.clone(),
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 784, outputs: 64 },
        act,
        LayerSpec::Dense { inputs: 64, outputs: 10 },
    ];
    let x = ArrayD::from_shape_fn(IxDyn(&[500, 1, 28, 28]), |i| ((i[2] * 7 + i[3] * 3 + i[0]) % 17) as f32 / 17.0);
    let key = SecretKey::from_seed(1, KeyOptions::default()).unwrap();
    let mut owner = KeyOwner::with_seed(key, 2);
    let c = owner.encrypt_inputs(&x.view(), 0.0, 0.25).unwrap();
    let basis = Basis::from_ciphertexts(&c).unwrap();
    let t = Instant::now();
    let cx = CoeffTensor::from_encrypted(&c, basis).unwrap();
    println!("convert 500 images: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let alg = Encrypted::new(basis);
    let pn = Net::new(&Plain, &[1, 28, 28], &specs, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let en = Net::new(&alg, &[1, 28, 28], &specs, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let _ = pn.predict(&Plain, &x).unwrap();
        let p = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = en.predict(&alg, &cx).unwrap();
        let e = t.elapsed().as_secs_f64();
        println!("plain {:.1} ms, encrypted {:.1} ms, ratio {:.2}", p * 1e3, e * 1e3, e / p);
    }
}
