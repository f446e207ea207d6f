//! How the random lane behaves during encrypted training, for several ways of drawing `r`.
//!
//! Trains a 784-128-10 ReLU MLP (softmax cross-entropy, SGD with momentum, batch 64) on the first
//! `N` MNIST training images, once on public data (`β = 0`, the plaintext run through the same code) and
//! once per noise choice on encrypted inputs and labels, and reports: the largest |weight| on the message
//! and noise lanes, the largest difference between the decrypted and the plaintext weights, and the
//! decrypted model's accuracy on the first 2,000 test images.
//!
//! `cargo run --release -p more-enctrain --example noise_lane [N] [epochs]`

use std::io::Read;
use std::path::PathBuf;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::owner::{KeyOwner, encrypt_lanes};
use more_enctrain::{Basis, CoeffTensor};
use ndarray::{Array2, ArrayD, Axis, IxDyn};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

type T = CoeffTensor<f32>;

/// A noise choice: name, input-lane sampler, label-row sampler.
type Variant = (&'static str, Box<dyn Fn(&mut ChaCha20Rng, usize) -> f32>, Box<dyn Fn(&mut ChaCha20Rng) -> Vec<f32>>);

fn idx(name: &str) -> Vec<u8> {
    let dir = std::env::var("MORE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let f = std::fs::File::open(dir.join("mnist").join(name)).expect("MNIST data");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut out).expect("gzip");
    out
}

fn mnist(split: &str, n: usize) -> (Array2<f32>, Vec<usize>) {
    let img = idx(&format!("{split}-images-idx3-ubyte.gz"));
    let lab = idx(&format!("{split}-labels-idx1-ubyte.gz"));
    let x = Array2::from_shape_fn((n, 784), |(i, j)| img[16 + i * 784 + j] as f32 / 255.0);
    (x, lab[8..8 + n].iter().map(|&l| l as usize).collect())
}

struct Mlp {
    p: Vec<T>,
    v: Vec<T>,
}

fn softmax_rows(l: &ArrayD<f32>) -> ArrayD<f32> {
    let mut out = l.clone();
    for mut row in out.rows_mut() {
        let mx = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - mx).exp());
        let s = row.sum();
        row /= s;
    }
    out
}

impl Mlp {
    fn new(basis: Basis, seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut w = |i: usize, o: usize| {
            let a = (6.0 / i as f32).sqrt();
            T::public(ArrayD::from_shape_fn(IxDyn(&[i, o]), |_| rng.random_range(-a..a)), basis)
        };
        let p = vec![w(784, 128), T::zeros(&[128], basis), w(128, 10), T::zeros(&[10], basis)];
        let v = p.iter().map(|t| T::zeros(t.shape(), basis)).collect();
        Self { p, v }
    }

    fn logits(&self, x: &T) -> (T, T, T) {
        let z1 = x.matmul(&self.p[0]).unwrap().add_broadcast(&self.p[1]).unwrap();
        let h = z1.map_lanes(|v| v.max(0.0));
        let z2 = h.matmul(&self.p[2]).unwrap().add_broadcast(&self.p[3]).unwrap();
        (z1, h, z2)
    }

    fn step(&mut self, x: &T, y: &T, lr: f32) {
        let b = x.shape()[0] as f32;
        let (z1, h, z2) = self.logits(x);
        let p = z2.map_lane_arrays(softmax_rows).unwrap();
        let g = p.sub(y).unwrap().scale(1.0 / b);
        let dw2 = h.t().unwrap().matmul(&g).unwrap();
        let db2 = g.sum_axis(0);
        let dh = g.matmul(&self.p[2].t().unwrap()).unwrap();
        let dz1 = z1.zip_lanes(&dh, |z, g| if z > 0.0 { g } else { 0.0 }).unwrap();
        let dw1 = x.t().unwrap().matmul(&dz1).unwrap();
        let db1 = dz1.sum_axis(0);
        for (i, g) in [dw1, db1, dw2, db2].iter().enumerate() {
            self.v[i] = self.v[i].scale(0.9).add(g).unwrap();
            self.p[i].scaled_add(-lr, &self.v[i]).unwrap();
        }
    }
}

fn lane_max(a: &ArrayD<f32>) -> f32 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("number")).collect();
    let n = args.first().copied().unwrap_or(10_000);
    let epochs = args.get(1).copied().unwrap_or(1);
    let (x, labels) = mnist("train", n);
    let (xt, lt) = mnist("t10k", 2000);
    let key = SecretKey::from_seed(42, KeyOptions::default()).unwrap();
    println!("key κ = {:.2}, {n} images, {epochs} epochs", key.condition_number());
    let onehot = |l: &[usize]| Array2::from_shape_fn((l.len(), 10), |(i, k)| (l[i] == k) as u8 as f32).into_dyn();
    let y = onehot(&labels);
    let variants: Vec<Variant> = vec![
        ("plaintext (β = 0)", Box::new(|_, _| f32::NAN), Box::new(|_| vec![])),
        (
            "inputs r~U[0,1), labels r~Dirichlet",
            Box::new(|r, _| r.random_range(0.0..1.0)),
            Box::new(|r| {
                let e: Vec<f32> = (0..10).map(|_| -(1.0 - r.random::<f32>()).ln()).collect();
                let s: f32 = e.iter().sum();
                e.iter().map(|v| v / s).collect()
            }),
        ),
        (
            "inputs r~U[0,1), labels r~U[0,1)",
            Box::new(|r, _| r.random_range(0.0..1.0)),
            Box::new(|r| (0..10).map(|_| r.random_range(0.0..1.0)).collect()),
        ),
        (
            "inputs r~U[-1,1), labels r~Dirichlet",
            Box::new(|r, _| r.random_range(-1.0..1.0)),
            Box::new(|r| {
                let e: Vec<f32> = (0..10).map(|_| -(1.0 - r.random::<f32>()).ln()).collect();
                let s: f32 = e.iter().sum();
                e.iter().map(|v| v / s).collect()
            }),
        ),
        (
            "inputs r~U[-8,8), labels r~U[-8,8)",
            Box::new(|r, _| r.random_range(-8.0..8.0)),
            Box::new(|r| (0..10).map(|_| r.random_range(-8.0..8.0)).collect()),
        ),
    ];
    let mut plain_w: Option<Vec<ArrayD<f32>>> = None;
    for (name, rin, rlab) in &variants {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let owner = KeyOwner::with_seed(key.clone(), 1);
        let (xs, ys, basis) = if plain_w.is_none() {
            let b = Basis::from_matrix([[0.5, 1.0], [0.5, -0.5]]).unwrap();
            (T::public(x.clone().into_dyn(), b), T::public(y.clone(), b), b)
        } else {
            let rx = ArrayD::from_shape_fn(IxDyn(&[n, 784]), |i| rin(&mut rng, i[1]));
            let mut ry = ArrayD::<f32>::zeros(IxDyn(&[n, 10]));
            for mut row in ry.rows_mut() {
                row.assign(&ndarray::Array1::from(rlab(&mut rng)));
            }
            let cx = encrypt_lanes(owner.key(), &x.view().into_dyn(), &rx.view()).unwrap();
            let cy = encrypt_lanes(owner.key(), &y.view(), &ry.view()).unwrap();
            let b = Basis::from_ciphertexts(&cx).unwrap();
            (T::from_encrypted(&cx, b).unwrap(), T::from_encrypted(&cy, b).unwrap(), b)
        };
        let mut mlp = Mlp::new(basis, 3);
        let mut order: Vec<usize> = (0..n).collect();
        let mut srng = ChaCha20Rng::seed_from_u64(5);
        let t0 = std::time::Instant::now();
        let mut shadow_max = 0.0f32;
        for _ in 0..epochs {
            order.shuffle(&mut srng);
            for chunk in order.chunks(64) {
                mlp.step(&xs.rows(chunk), &ys.rows(chunk), 0.05);
                if plain_w.is_some() {
                    shadow_max = shadow_max.max(lane_max(&owner.decrypt_noise(&mlp.p[2])));
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let w: Vec<ArrayD<f32>> =
            mlp.p.iter().map(|p| if plain_w.is_none() { p.alpha().clone() } else { owner.decrypt(p) }).collect();
        // Accuracy of the (decrypted) weights in plaintext.
        let w0: ndarray::ArrayView2<f32> = w[0].view().into_dimensionality().unwrap();
        let w2: ndarray::ArrayView2<f32> = w[2].view().into_dimensionality().unwrap();
        let b1: ndarray::ArrayView1<f32> = w[1].view().into_dimensionality().unwrap();
        let b3: ndarray::ArrayView1<f32> = w[3].view().into_dimensionality().unwrap();
        let h: Array2<f32> = (xt.dot(&w0) + b1).mapv(|v| v.max(0.0));
        let z: Array2<f32> = h.dot(&w2) + b3;
        let acc = z
            .axis_iter(Axis(0))
            .zip(&lt)
            .filter(|(r, l)| {
                r.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 == **l
            })
            .count() as f64
            / lt.len() as f64;
        let noise_max = if plain_w.is_none() {
            0.0
        } else {
            mlp.p.iter().map(|p| lane_max(&owner.decrypt_noise(p))).fold(0.0, f32::max)
        };
        let diff = plain_w.as_ref().map_or(0.0, |pw| {
            pw.iter()
                .zip(&w)
                .map(|(a, b)| a.iter().zip(b).map(|(u, v)| (u - v).abs()).fold(0.0, f32::max))
                .fold(0.0, f32::max)
        });
        println!(
            "{name:40} acc {:.2}%  max|w| {:.3}  max|w_r| {noise_max:.3} (W2 peak {shadow_max:.3})  max|w − w_plain| {diff:.2e}  {secs:.1} s",
            acc * 100.0,
            w.iter().map(lane_max).fold(0.0, f32::max)
        );
        if plain_w.is_none() {
            plain_w = Some(w);
        }
    }
}
