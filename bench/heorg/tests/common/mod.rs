//! Shared by the integration tests: a harness root in a temporary directory, MNIST test images from the
//! project's data directory, and the stage executables.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project's data directory: `$MORE_DATA`, else `../shared/data` beside the repository.
pub fn data_dir() -> PathBuf {
    std::env::var_os("MORE_DATA").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/data"))
}

fn read_gz(path: &Path) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("MNIST file {}: {e} (set MORE_DATA)", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut out).expect("gzip");
    out
}

/// `count` MNIST test images (784 bytes each) and labels, starting at image `first`.
pub fn mnist_test(first: usize, count: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let dir = data_dir().join("mnist");
    let images = read_gz(&dir.join("t10k-images-idx3-ubyte.gz"));
    let labels = read_gz(&dir.join("t10k-labels-idx1-ubyte.gz"));
    assert_eq!(&images[..4], &[0, 0, 8, 3], "IDX images");
    assert_eq!(&labels[..4], &[0, 0, 8, 1], "IDX labels");
    let imgs = (first..first + count).map(|i| images[16 + i * 784..16 + (i + 1) * 784].to_vec()).collect();
    (imgs, labels[8 + first..8 + first + count].to_vec())
}

/// A harness root in a fresh temporary directory, removed on drop.
pub struct TempRoot(pub PathBuf);

impl TempRoot {
    pub fn new(tag: &str) -> TempRoot {
        let dir = std::env::temp_dir().join(format!("more-heorg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempRoot(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `datasets/<name>/intermediate/test_pixels.txt` and `test_labels.txt` the way the harness does
/// (`intensity / 255` with 6 decimals, one image per line; one label per line).
pub fn write_dataset(root: &Path, name: &str, images: &[Vec<u8>], labels: &[u8]) {
    let dir = root.join("datasets").join(name).join("intermediate");
    std::fs::create_dir_all(&dir).unwrap();
    let pixels: String = images
        .iter()
        .map(|img| img.iter().map(|&p| format!("{:.6}", f32::from(p) / 255.0)).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    std::fs::write(dir.join("test_pixels.txt"), pixels).unwrap();
    let labels: String = labels.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("test_labels.txt"), labels).unwrap();
}

/// The path of a stage executable.
pub fn exe(stage: &str) -> &'static str {
    match stage {
        "client_key_generation" => env!("CARGO_BIN_EXE_client_key_generation"),
        "server_preprocess_model" => env!("CARGO_BIN_EXE_server_preprocess_model"),
        "client_preprocess_input" => env!("CARGO_BIN_EXE_client_preprocess_input"),
        "client_encode_encrypt_input" => env!("CARGO_BIN_EXE_client_encode_encrypt_input"),
        "server_encrypted_compute" => env!("CARGO_BIN_EXE_server_encrypted_compute"),
        "client_decrypt_decode" => env!("CARGO_BIN_EXE_client_decrypt_decode"),
        "client_postprocess" => env!("CARGO_BIN_EXE_client_postprocess"),
        other => panic!("no stage {other}"),
    }
}

/// Runs a stage in `root` with `args`.
pub fn run(root: &Path, stage: &str, args: &[&str]) -> Output {
    Command::new(exe(stage)).args(args).current_dir(root).env_remove("HEORG_MODEL").output().expect("runs")
}

/// Runs a stage and asserts that it succeeded.
pub fn run_ok(root: &Path, stage: &str, args: &[&str]) -> Output {
    let out = run(root, stage, args);
    assert!(
        out.status.success(),
        "{stage} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
