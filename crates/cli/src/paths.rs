//! Where `more` reads data and models and writes what it trains, unless told otherwise: every default
//! location of the command, in one place.
//!
//! - Data sets: `--data DIR`, else env `MORE_DATA`, else `../shared/data` ([`data_dir`]).
//! - Bundled models: `models/` of the repository, relative to the working directory ([`bundled`]); the
//!   server serves this directory.
//! - Trained models: `trained/` ([`TRAINED_DIR`]), so that a training run never replaces a bundled model.

use std::path::{Path, PathBuf};

/// The bundled models' directory, relative to the repository root (the working directory of the
/// documented commands).
pub const MODELS_DIR: &str = "models";

/// Where `more train` and `more bfv quantize` write when given no `--out`: `trained/`, relative to the
/// working directory. Not `models/`, so that a training run cannot replace a bundled model (nor put its
/// key file where the server loads models).
pub const TRAINED_DIR: &str = "trained";

/// The bundled MNIST model `more bench mnist` times by default.
pub const MNIST_MODEL: &str = "mnist-cnn-relu.morenn";

/// The bundled angiography model `more bench angio` times by default.
pub const ANGIO_MODEL: &str = "angio-cnn.morenn";

/// The bundled whole-body circulation surrogate.
pub const WBC_MODEL: &str = "wbc-mlp.morenn";

/// The bundled BFV model (`more bench bfv`, `more eval mnist --scheme bfv`).
pub const BFV_MODEL: &str = "mnist-bfv-square.bfv.json";

/// The bundled model file `name`: `models/<name>`.
pub fn bundled(name: &str) -> PathBuf {
    Path::new(MODELS_DIR).join(name)
}

/// The bundled model file `name` in `models/` of the working directory, else of the repository this
/// binary was built from.
pub fn find_bundled(name: &str) -> PathBuf {
    let local = bundled(name);
    if local.is_file() { local } else { built_models_dir().join(name) }
}

/// The bundled models' directory of the repository this binary was built from, for finding models when
/// the working directory is elsewhere.
pub fn built_models_dir() -> PathBuf {
    repository().join(MODELS_DIR)
}

/// The data directory: `explicit` (`--data`), else env `MORE_DATA`, else `../shared/data` from the
/// working directory if it exists, else `../shared/data` beside the repository this binary was built from.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("MORE_DATA") {
        return PathBuf::from(p);
    }
    let local = Path::new("../shared/data");
    if local.is_dir() {
        return local.to_path_buf();
    }
    repository().join("../shared/data")
}

/// The root of the repository this binary was built from.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_directory_wins() {
        assert_eq!(data_dir(Some(Path::new("/d"))), Path::new("/d"));
        assert_eq!(bundled(BFV_MODEL), Path::new("models/mnist-bfv-square.bfv.json"));
        assert!(built_models_dir().join(MNIST_MODEL).is_file());
    }
}
