//! The `mnist-digit` preprocessing is MNIST-compatible: MNIST test digits, put through it again (crop, fit
//! 20x20, centre of mass), are still classified by the bundled model as well as the originals.

use std::io::Read;
use std::path::PathBuf;

use more_imaging::{GrayImage, Ink, Normalization, mnist_digit};
use ndarray::{ArrayD, IxDyn};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn gunzip(path: PathBuf) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("{} (MNIST data missing?): {e}", path.display())),
    )
    .read_to_end(&mut out)
    .unwrap();
    out
}

fn accuracy(model: &more_nn::Model, xs: Vec<f32>, labels: &[u8]) -> f64 {
    let x = ArrayD::from_shape_vec(IxDyn(&[labels.len(), 1, 28, 28]), xs).unwrap();
    more_nn::metrics::label_accuracy(&model.forward_plain(x.view()).unwrap(), labels)
}

#[test]
fn re_preprocessed_mnist_digits_keep_their_accuracy() {
    let data = std::env::var_os("MORE_DATA").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"));
    let images = gunzip(data.join("mnist/t10k-images-idx3-ubyte.gz"));
    let labels = gunzip(data.join("mnist/t10k-labels-idx1-ubyte.gz"));
    let model = more_nn::Model::load(root().join("models/mnist-cnn-relu.morenn")).unwrap();
    let pre = &model.meta().preprocessing;
    assert_eq!(pre.kind, "mnist-digit");
    let norm = Normalization::new(pre.scale, pre.mean.clone(), pre.std.clone()).unwrap();
    let n = 1000;
    let labels = &labels[8..8 + n];
    let (mut original, mut again) = (Vec::new(), Vec::new());
    let mut moved = 0usize;
    for i in 0..n {
        let px = &images[16 + i * 784..16 + (i + 1) * 784];
        let mut a: Vec<f32> = px.iter().map(|&v| v as f32).collect();
        norm.apply(&mut a).unwrap();
        original.extend(a);
        let img = GrayImage::from_gray8(28, 28, px).unwrap();
        let mut b = mnist_digit(&img, Ink::Auto).unwrap();
        moved += b.iter().zip(px).filter(|&(x, &y)| (x - y as f32).abs() > 64.0).count();
        norm.apply(&mut b).unwrap();
        again.extend(b);
    }
    let acc_original = accuracy(&model, original, labels);
    let acc_again = accuracy(&model, again, labels);
    eprintln!(
        "mnist-cnn-relu on {n} test digits: original {acc_original:.3}, re-preprocessed {acc_again:.3}; \
         {:.1}% of pixels changed by > 64 grey levels",
        100.0 * moved as f64 / (n * 784) as f64
    );
    assert!(acc_original > 0.97);
    assert!(acc_again >= acc_original - 0.015, "{acc_again} vs {acc_original}");
}
