//! The bundled models (`models/` of the repository) were trained from the networks of
//! `more_nn::networks`: their layers are exactly these.

use std::path::Path;

use more_nn::networks::{angio_cnn, mnist_cnn_relu, mnist_cnn_square, wbc_mlp};
use more_nn::{LayerSpec, Model};

#[test]
fn bundled_models_have_these_layers() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for (file, specs) in [
        ("mnist-cnn-relu", mnist_cnn_relu()),
        ("mnist-cnn-square", mnist_cnn_square()),
        ("angio-cnn", angio_cnn()),
        ("wbc-mlp", wbc_mlp(7, 64, 6)),
    ] {
        let model = Model::load(models.join(format!("{file}.morenn"))).expect(file);
        let layers: Vec<LayerSpec> = model.layers().iter().map(|l| l.spec()).collect();
        assert_eq!(layers, specs, "{file}");
    }
}
