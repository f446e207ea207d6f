//! The benchmark's instances and the harness's directory layout.
//!
//! The harness (`harness/params.py` of the suite) runs every executable from the root of its checkout and
//! passes the instance number as the only argument. Everything lives below that root:
//!
//! ```text
//! datasets/<name>/intermediate/test_pixels.txt     written by the harness: one image per line, 784 values in [0, 1]
//! datasets/<name>/intermediate/test_labels.txt     written by the harness: the true labels (never read here)
//! io/<name>/public_keys/                           client -> server: evaluation keys (size measured by the harness)
//! io/<name>/secret_key/                            client only: the secret key seed
//! io/<name>/ciphertexts_upload/                    client -> server: encrypted images (size measured)
//! io/<name>/ciphertexts_download/                  server -> client: encrypted logits (size measured)
//! io/<name>/intermediate/                          client-side working files (quantized images, logits)
//! io/<name>/encrypted_model_predictions.txt        the client's answer: one label per line (read by the harness)
//! io/model/                                        server-side: the preprocessed model (all instances)
//! ```
//!
//! `<name>` is `single`, `small`, `medium` or `large` for instances 0–3 (1, 15, 1,000 and 10,000 images).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The workload's classes: the ten digits (the bundled network's, which the client does not read).
pub const DIGITS: usize = 10;

/// Instance names, by instance number (the harness's `instance_name`).
pub const INSTANCE_NAMES: [&str; 4] = ["single", "small", "medium", "large"];

/// Images per instance, by instance number (the harness's `batch_size`).
pub const BATCH_SIZES: [usize; 4] = [1, 15, 1000, 10_000];

/// One of the benchmark's four instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance(usize);

impl Instance {
    /// The instance numbered `index` (0–3).
    pub fn new(index: usize) -> Result<Instance> {
        if index < BATCH_SIZES.len() {
            Ok(Instance(index))
        } else {
            bail!("instance {index} does not exist: the instances are 0 (1 image), 1 (15), 2 (1,000) and 3 (10,000)")
        }
    }

    /// Parses the harness's argument (`"0"` to `"3"`).
    pub fn parse(arg: &str) -> Result<Instance> {
        match arg.parse::<usize>() {
            Ok(i) => Instance::new(i),
            Err(_) => bail!("{arg:?} is not an instance number (0, 1, 2 or 3)"),
        }
    }

    /// The instance number.
    pub fn index(self) -> usize {
        self.0
    }

    /// `single`, `small`, `medium` or `large`.
    pub fn name(self) -> &'static str {
        INSTANCE_NAMES[self.0]
    }

    /// How many images the instance classifies.
    pub fn batch_size(self) -> usize {
        BATCH_SIZES[self.0]
    }

    /// The packing used for this instance's images.
    pub fn packing(self) -> Packing {
        Packing::for_images(self.batch_size())
    }
}

/// How images are laid out in ciphertexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// One image per set of 7 ciphertexts (more-bfv's im2col layout, evaluated with rotations): lowest
    /// latency, cost proportional to the number of images.
    PerImage,
    /// One image per SIMD slot, up to 8,192 images per set of 784 ciphertexts (more-bfv's batch packing):
    /// a fixed cost per set, cheapest per image for large batches.
    SlotPerImage,
}

impl Packing {
    /// The packing for `images` images: per image below `more_bfv::batch::BATCH_CROSSOVER`, slot per image
    /// from there on. Client and server executables both derive it from the instance, so they always agree.
    pub fn for_images(images: usize) -> Packing {
        if images < crate::BATCH_CROSSOVER { Packing::PerImage } else { Packing::SlotPerImage }
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Packing::PerImage => "per-image packing",
            Packing::SlotPerImage => "slot-per-image packing",
        }
    }
}

/// The paths of one instance below the harness root.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    instance: Instance,
}

impl Layout {
    /// The layout of `instance` below `root` (the harness runs the executables with the root as current
    /// directory).
    pub fn new(root: impl Into<PathBuf>, instance: Instance) -> Layout {
        Layout { root: root.into(), instance }
    }

    /// The instance.
    pub fn instance(&self) -> Instance {
        self.instance
    }

    /// The harness root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `io/<name>`.
    pub fn io_dir(&self) -> PathBuf {
        self.root.join("io").join(self.instance.name())
    }

    /// `io/<name>/public_keys`: what the client sends the server once.
    pub fn public_keys_dir(&self) -> PathBuf {
        self.io_dir().join("public_keys")
    }

    /// `io/<name>/secret_key`: read by the client executables only.
    pub fn secret_key_dir(&self) -> PathBuf {
        self.io_dir().join("secret_key")
    }

    /// `io/<name>/ciphertexts_upload`.
    pub fn upload_dir(&self) -> PathBuf {
        self.io_dir().join("ciphertexts_upload")
    }

    /// `io/<name>/ciphertexts_download`.
    pub fn download_dir(&self) -> PathBuf {
        self.io_dir().join("ciphertexts_download")
    }

    /// `io/<name>/intermediate`: the client's working files.
    pub fn io_intermediate_dir(&self) -> PathBuf {
        self.io_dir().join("intermediate")
    }

    /// `datasets/<name>/intermediate`: the harness's input and labels.
    pub fn dataset_intermediate_dir(&self) -> PathBuf {
        self.root.join("datasets").join(self.instance.name()).join("intermediate")
    }

    /// `datasets/<name>/intermediate/test_pixels.txt`.
    pub fn test_pixels_file(&self) -> PathBuf {
        self.dataset_intermediate_dir().join("test_pixels.txt")
    }

    /// `datasets/<name>/intermediate/test_labels.txt`.
    pub fn test_labels_file(&self) -> PathBuf {
        self.dataset_intermediate_dir().join("test_labels.txt")
    }

    /// `io/<name>/encrypted_model_predictions.txt`: one label per line, what the harness scores.
    pub fn predictions_file(&self) -> PathBuf {
        self.io_dir().join("encrypted_model_predictions.txt")
    }

    /// The client's quantized images (text, one image per line).
    pub fn quantized_inputs_file(&self) -> PathBuf {
        self.io_intermediate_dir().join("quantized_inputs.txt")
    }

    /// The client's decrypted logits (text, one image per line).
    pub fn logits_file(&self) -> PathBuf {
        self.io_intermediate_dir().join("logits.txt")
    }

    /// The secret key seed.
    pub fn secret_key_file(&self) -> PathBuf {
        self.secret_key_dir().join("secret_key_seed.bin")
    }

    /// The evaluation keys of this instance's packing.
    pub fn eval_keys_file(&self) -> PathBuf {
        self.public_keys_dir().join(match self.instance.packing() {
            Packing::PerImage => "eval_keys.bin",
            Packing::SlotPerImage => "batch_keys.bin",
        })
    }

    /// Upload file `i`: image `i` (per-image packing) or batch `i` (slot per image).
    pub fn upload_file(&self, i: usize) -> PathBuf {
        self.upload_dir().join(match self.instance.packing() {
            Packing::PerImage => format!("image_{i}.bin"),
            Packing::SlotPerImage => format!("batch_{i}.bin"),
        })
    }

    /// Download file `i`: the result of upload file `i`.
    pub fn download_file(&self, i: usize) -> PathBuf {
        self.download_dir().join(match self.instance.packing() {
            Packing::PerImage => format!("result_{i}.bin"),
            Packing::SlotPerImage => format!("batch_result_{i}.bin"),
        })
    }

    /// How many upload (and download) files the instance has, and how many images each carries.
    pub fn chunks(&self) -> Vec<usize> {
        let n = self.instance.batch_size();
        match self.instance.packing() {
            Packing::PerImage => vec![1; n],
            Packing::SlotPerImage => {
                let per = crate::BATCH_SLOTS;
                (0..n.div_ceil(per)).map(|j| per.min(n - j * per)).collect()
            }
        }
    }

    /// `io/model`: the server's preprocessed model, shared by all instances (the harness runs
    /// `server_preprocess_model` without an instance argument).
    pub fn model_dir(root: &Path) -> PathBuf {
        root.join("io").join("model")
    }

    /// The preprocessed model file.
    pub fn preprocessed_model_file(root: &Path) -> PathBuf {
        Layout::model_dir(root).join("network.bfv.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_match_the_harness() {
        let sizes: Vec<usize> = (0..4).map(|i| Instance::new(i).unwrap().batch_size()).collect();
        assert_eq!(sizes, [1, 15, 1000, 10_000]);
        assert_eq!(Instance::parse("2").unwrap().name(), "medium");
        assert!(Instance::parse("4").is_err());
        assert!(Instance::parse("x").is_err());
        assert!(Instance::parse("-1").is_err());
    }

    #[test]
    fn small_instances_use_the_per_image_packing_and_large_ones_batches() {
        assert_eq!(Instance::new(0).unwrap().packing(), Packing::PerImage);
        assert_eq!(Instance::new(1).unwrap().packing(), Packing::PerImage);
        assert_eq!(Instance::new(2).unwrap().packing(), Packing::SlotPerImage);
        assert_eq!(Instance::new(3).unwrap().packing(), Packing::SlotPerImage);
        let large = Layout::new("/r", Instance::new(3).unwrap());
        assert_eq!(large.chunks().iter().sum::<usize>(), 10_000);
        assert!(large.chunks().iter().all(|&c| (1..=crate::BATCH_SLOTS).contains(&c)));
        assert_eq!(Layout::new("/r", Instance::new(1).unwrap()).chunks(), vec![1; 15]);
    }

    #[test]
    fn paths_follow_the_harness() {
        let l = Layout::new("/r", Instance::new(1).unwrap());
        assert_eq!(l.test_pixels_file(), Path::new("/r/datasets/small/intermediate/test_pixels.txt"));
        assert_eq!(l.predictions_file(), Path::new("/r/io/small/encrypted_model_predictions.txt"));
        assert_eq!(l.public_keys_dir(), Path::new("/r/io/small/public_keys"));
        assert_eq!(l.upload_dir(), Path::new("/r/io/small/ciphertexts_upload"));
        assert_eq!(l.download_dir(), Path::new("/r/io/small/ciphertexts_download"));
    }
}
