//! Every operation of the encrypted training algebra decrypts to the same operation of `more-nn`'s
//! plaintext algebra (f32 planes: tolerance 1e-4 on values of order 1).

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::algebra::Encrypted;
use more_enctrain::owner::KeyOwner;
use more_enctrain::{Basis, CoeffTensor};
use more_nn::{Algebra, ElementFunction, PAD, Plain};

const TOL: f32 = 1e-4;

struct Fixture {
    owner: KeyOwner,
    alg: Encrypted,
    rng: ChaCha20Rng,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        let key = SecretKey::from_seed(seed, KeyOptions::default()).unwrap();
        let mut owner = KeyOwner::with_seed(key, seed);
        let probe = owner.encrypt_inputs(&ArrayD::from_elem(IxDyn(&[4]), 0.5f32).view(), -1.0, 1.0).unwrap();
        let alg = Encrypted::new(Basis::from_ciphertexts(&probe).unwrap());
        Self { owner, alg, rng: ChaCha20Rng::seed_from_u64(seed + 1000) }
    }

    fn pair(&mut self, shape: &[usize], lo: f32, hi: f32) -> (ArrayD<f32>, CoeffTensor<f32>) {
        let x = ArrayD::from_shape_fn(IxDyn(shape), |_| self.rng.random_range(lo..hi));
        let c = self.owner.encrypt_inputs(&x.view(), f64::from(lo), f64::from(hi)).unwrap();
        (x.clone(), CoeffTensor::from_encrypted(&c, self.alg.basis()).unwrap())
    }

    fn check(&self, what: &str, plain: &ArrayD<f32>, enc: &CoeffTensor<f32>) {
        assert_eq!(plain.shape(), enc.shape(), "{what}");
        let d = self.owner.decrypt(enc);
        let err = d.iter().zip(plain).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0f32, f32::max);
        assert!(err < TOL, "{what}: error {err}");
    }
}

#[test]
fn elementwise_and_linear_operations() {
    let p = Plain;
    for seed in 0..5 {
        let mut f = Fixture::new(seed);
        let e = f.alg;
        let (a, ea) = f.pair(&[6, 5], -2.0, 2.0);
        let (b, eb) = f.pair(&[6, 5], -2.0, 2.0);
        f.check("add", &p.add(&a, &b).unwrap(), &e.add(&ea, &eb).unwrap());
        f.check("sub", &p.sub(&a, &b).unwrap(), &e.sub(&ea, &eb).unwrap());
        f.check("mul", &p.mul(&a, &b).unwrap(), &e.mul(&ea, &eb).unwrap());
        f.check("scale", &p.scale(&a, -0.3).unwrap(), &e.scale(&ea, -0.3).unwrap());
        f.check("shift", &p.shift(&a, 0.7).unwrap(), &e.shift(&ea, 0.7).unwrap());
        f.check("reshape", &p.reshape(&a, &[3, 10]).unwrap(), &e.reshape(&ea, &[3, 10]).unwrap());
        f.check("select_rows", &p.select_rows(&a, &[4, 0, 4]).unwrap(), &e.select_rows(&ea, &[4, 0, 4]).unwrap());
        let idx = vec![3, PAD, 29, 0, 0, 12];
        f.check("gather", &p.gather(&a, &idx, &[2, 3]).unwrap(), &e.gather(&ea, &idx, &[2, 3]).unwrap());
        let (g, eg) = f.pair(&[2, 3], -1.0, 1.0);
        f.check("scatter_add", &p.scatter_add(&g, &idx, &[6, 5]).unwrap(), &e.scatter_add(&eg, &idx, &[6, 5]).unwrap());
        let (bias, ebias) = f.pair(&[5], -1.0, 1.0);
        f.check("add_row", &p.add_row(&a, &bias).unwrap(), &e.add_row(&ea, &ebias).unwrap());
        f.check("sum_rows", &p.sum_rows(&a).unwrap(), &e.sum_rows(&ea).unwrap());
        f.check("row_sums", &p.row_sums(&a).unwrap(), &e.row_sums(&ea).unwrap());
        let (c, ec) = f.pair(&[6, 1], -1.0, 1.0);
        f.check("mul_col", &p.mul_col(&a, &c).unwrap(), &e.mul_col(&ea, &ec).unwrap());
        f.check("sum_all", &p.sum_all(&a).unwrap(), &e.sum_all(&ea).unwrap());
        f.check("softmax_rows", &p.softmax_rows(&a).unwrap(), &e.softmax_rows(&ea).unwrap());
        assert!(e.add(&ea, &e.reshape(&eb, &[30]).unwrap()).is_err());
    }
}

#[test]
fn matrix_products_with_transposes() {
    let p = Plain;
    let mut f = Fixture::new(7);
    let e = f.alg;
    for (short, long) in [(3usize, 8usize), (5, 100)] {
        let (a, ea) = f.pair(&[short, long], -1.0, 1.0);
        let (b, eb) = f.pair(&[long, 4], -1.0, 1.0);
        let (bt, ebt) = f.pair(&[4, long], -1.0, 1.0);
        let (at, eat) = f.pair(&[long, short], -1.0, 1.0);
        f.check("matmul", &p.matmul(&a, false, &b, false).unwrap(), &e.matmul(&ea, false, &eb, false).unwrap());
        f.check("matmul b^T", &p.matmul(&a, false, &bt, true).unwrap(), &e.matmul(&ea, false, &ebt, true).unwrap());
        f.check("matmul a^T", &p.matmul(&at, true, &b, false).unwrap(), &e.matmul(&eat, true, &eb, false).unwrap());
        assert!(e.matmul(&ea, false, &ea, false).is_err());
    }
}

#[test]
fn lanewise_functions() {
    let p = Plain;
    let mut f = Fixture::new(3);
    let e = f.alg;
    let (a, ea) = f.pair(&[40], -3.0, 3.0);
    let (pos, epos) = f.pair(&[40], 0.2, 3.0);
    for func in [
        ElementFunction::Square,
        ElementFunction::Relu,
        ElementFunction::Step,
        ElementFunction::Abs,
        ElementFunction::Sigmoid,
        ElementFunction::Tanh,
        ElementFunction::Exp,
    ] {
        f.check(func.name(), &p.map(&a, func).unwrap(), &e.map(&ea, func).unwrap());
    }
    for func in [ElementFunction::Ln, ElementFunction::Sqrt, ElementFunction::Recip] {
        f.check(func.name(), &p.map(&pos, func).unwrap(), &e.map(&epos, func).unwrap());
    }
}

#[test]
fn im2col_and_col2im() {
    use more_nn::kernels::Window;
    let p = Plain;
    let mut f = Fixture::new(5);
    let e = f.alg;
    let win = Window { kh: 3, kw: 3, stride: 2, padding: 1 };
    let (x, ex) = f.pair(&[2, 3, 7, 6], -1.0, 1.0);
    let cols = p.im2col(&x, win).unwrap();
    f.check("im2col", &cols, &e.im2col(&ex, win).unwrap());
    let (g, eg) = f.pair(cols.shape(), -1.0, 1.0);
    f.check("col2im", &p.col2im(&g, &[2, 3, 7, 6], win).unwrap(), &e.col2im(&eg, &[2, 3, 7, 6], win).unwrap());
    assert!(e.col2im(&eg, &[2, 3, 7, 9], win).is_err());
}
