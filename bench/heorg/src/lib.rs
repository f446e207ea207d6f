//! The HomomorphicEncryption.org FHE benchmarking suite's ML-inference workload (MNIST classification) on
//! BFV (more-bfv, fhe.rs): the seven stage executables its harness (`harness/run_submission.py`) runs, with
//! the harness's arguments and file layout ([`layout`]).
//!
//! Every executable takes the instance number (0–3: 1, 15, 1,000 or 10,000 images) as its only argument
//! (optional for `server_preprocess_model`, which the harness calls without one) and works below the current
//! directory, the harness root. Small instances use more-bfv's per-image packing (lowest latency), large
//! ones its slot-per-image batch packing (lowest cost per image): [`layout::Packing`].
//!
//! The secret key never leaves the client's files: it is kept as a 32-byte seed in `io/<name>/secret_key`,
//! read only by the client stages; the server stages read the public evaluation keys, the uploaded
//! ciphertexts and the model.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

mod batch;
pub mod files;
pub mod layout;
mod report;
pub mod stages;

pub use layout::{Instance, Layout, Packing};

pub use more_bfv::batch::{BATCH_CROSSOVER, BATCH_SLOTS};

/// The seven executables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `client_key_generation`.
    ClientKeyGeneration,
    /// `server_preprocess_model`.
    ServerPreprocessModel,
    /// `client_preprocess_input`.
    ClientPreprocessInput,
    /// `client_encode_encrypt_input`.
    ClientEncodeEncryptInput,
    /// `server_encrypted_compute`.
    ServerEncryptedCompute,
    /// `client_decrypt_decode`.
    ClientDecryptDecode,
    /// `client_postprocess`.
    ClientPostprocess,
}

impl Stage {
    /// The executable's name, as the harness calls it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::ClientKeyGeneration => "client_key_generation",
            Stage::ServerPreprocessModel => "server_preprocess_model",
            Stage::ClientPreprocessInput => "client_preprocess_input",
            Stage::ClientEncodeEncryptInput => "client_encode_encrypt_input",
            Stage::ServerEncryptedCompute => "server_encrypted_compute",
            Stage::ClientDecryptDecode => "client_decrypt_decode",
            Stage::ClientPostprocess => "client_postprocess",
        }
    }

    /// Runs the stage below `root` with the command-line arguments `args` (without the program name).
    pub fn run(self, root: &Path, args: &[String]) -> Result<()> {
        let instance_optional = self == Stage::ServerPreprocessModel;
        let instance = match args {
            [] if instance_optional => None,
            [arg] => Some(Instance::parse(arg)?),
            _ => bail!(
                "usage: {} {}  (0: 1 image, 1: 15, 2: 1,000, 3: 10,000; run from the harness root)",
                self.name(),
                if instance_optional { "[INSTANCE]" } else { "INSTANCE" }
            ),
        };
        let layout = instance.map(|i| Layout::new(root, i));
        let layout = || layout.as_ref().expect("an instance is required for every stage but one");
        match self {
            Stage::ClientKeyGeneration => stages::client_key_generation(layout()),
            Stage::ServerPreprocessModel => stages::server_preprocess_model(root),
            Stage::ClientPreprocessInput => stages::client_preprocess_input(layout()),
            Stage::ClientEncodeEncryptInput => stages::client_encode_encrypt_input(layout()),
            Stage::ServerEncryptedCompute => stages::server_encrypted_compute(layout()),
            Stage::ClientDecryptDecode => stages::client_decrypt_decode(layout()),
            Stage::ClientPostprocess => stages::client_postprocess(layout()),
        }
    }

    /// The body of each executable's `main`: runs the stage in the current directory with the process's
    /// arguments; on failure prints the error with its causes and exits with status 1.
    pub fn main(self) -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let result = std::env::current_dir().map_err(anyhow::Error::from).and_then(|root| self.run(&root, &args));
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: error: {e:#}", self.name());
                ExitCode::FAILURE
            }
        }
    }
}
