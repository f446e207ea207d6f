//! The seven stages, in the order the harness runs them. Each reads and writes only the files named in
//! [`crate::layout`]; the server stages never open `io/<name>/secret_key`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fhe::bfv::Ciphertext;
use more_bfv::layout::{INPUT_CIPHERTEXTS, output_ciphertexts};
use more_bfv::network::argmax;
use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL, PLAINTEXT_MODULUS};
use more_bfv::wire::{self, MAX_CIPHERTEXT_BYTES, MAX_CIPHERTEXTS, MAX_KEYS_BYTES};
use more_bfv::{BfvModel, Client, Evaluator};
use rand::RngCore;
use rayon::prelude::*;

use crate::files::{self, PIXELS};
use crate::layout::{DIGITS, Layout, Packing};
use crate::report::{log, secs};

/// The file name of the bundled model.
pub const MODEL_FILE_NAME: &str = "mnist-bfv-square.bfv.json";

/// Where the model file is read from: `$HEORG_MODEL` if set; else `mnist-bfv-square.bfv.json` next to the
/// executable (where `build_task.sh` puts it); else the repository's `models/` directory this build came
/// from.
pub fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HEORG_MODEL") {
        return PathBuf::from(p);
    }
    if let Some(beside) = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join(MODEL_FILE_NAME)))
        && beside.exists()
    {
        return beside;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(MODEL_FILE_NAME)
}

/// Loads the model file and checks that every value the integer network reached on the test set stays
/// below `t/2` (so that BFV's arithmetic modulo `t` equals the integer network).
pub fn load_model() -> Result<BfvModel> {
    let path = model_path();
    let model = BfvModel::load(&path).with_context(|| format!("model {}", path.display()))?;
    let half = (PLAINTEXT_MODULUS / 2) as i64;
    if model.ranges.max() >= half {
        bail!(
            "model {}: its recorded value range {} reaches t/2 = {half}; BFV would wrap around",
            path.display(),
            model.ranges.max()
        );
    }
    Ok(model)
}

/// The client rebuilt from the seed in `io/<name>/secret_key`.
fn client(layout: &Layout) -> Result<Client> {
    let seed = files::read_secret_seed(&layout.secret_key_file())?;
    Ok(Client::from_seed(seed))
}

/// Stage 2, `client_key_generation`: a fresh secret key (its 32-byte seed, drawn from `rand::rng()`, a
/// ChaCha CSPRNG seeded by the operating system, stored in `io/<name>/secret_key`) and the public evaluation keys
/// of the instance's packing in `io/<name>/public_keys`.
pub fn client_key_generation(layout: &Layout) -> Result<()> {
    let t = Instant::now();
    let mut rng = rand::rng();
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let client = Client::from_seed(seed);
    files::fresh_dir(&layout.secret_key_dir())?;
    files::write_secret_seed(&layout.secret_key_file(), &seed)?;
    let packing = layout.instance().packing();
    let bytes = match packing {
        Packing::PerImage => wire::encode_keys(&client.eval_keys(&mut rng).context("evaluation keys")?),
        Packing::SlotPerImage => crate::batch::encode_keys(&client, &mut rng)?,
    };
    files::fresh_dir(&layout.public_keys_dir())?;
    files::write(&layout.eval_keys_file(), &bytes, "evaluation keys")?;
    log("client", format_args!("keys for the {}: {} bytes, {:.3} s", packing.name(), bytes.len(), secs(t)));
    Ok(())
}

/// Stage 3, `server_preprocess_model`: reads the model file, checks its parameters, shapes and value
/// ranges, and stores the checked model (the repository's model file format) in `io/model/network.bfv.json`
/// for `server_encrypted_compute`.
/// The model is the same for every instance, so the instance argument is optional.
pub fn server_preprocess_model(root: &Path) -> Result<()> {
    let t = Instant::now();
    let model = load_model()?;
    let path = Layout::preprocessed_model_file(root);
    files::ensure_dir(&Layout::model_dir(root))?;
    model.save(&path).with_context(|| format!("writing the preprocessed model {}", path.display()))?;
    log("server", format_args!("model {} preprocessed into {} in {:.3} s", model.id, path.display(), secs(t)));
    Ok(())
}

/// Stage 5, `client_preprocess_input`: the harness's pixels (`test_pixels.txt`, values in `[0, 1]`)
/// quantized as the model expects (`round(v · input_levels)`), one image per line in
/// `io/<name>/intermediate/quantized_inputs.txt`. Only `input_levels` and the parameters are read from the
/// model file.
pub fn client_preprocess_input(layout: &Layout) -> Result<()> {
    let t = Instant::now();
    let n = layout.instance().batch_size();
    let pixels = files::read_matrix(
        &layout.test_pixels_file(),
        "test input",
        "harness/generate_input.py",
        n,
        PIXELS,
        files::parse_pixel,
    )?;
    let model = load_model()?;
    let quantized =
        pixels.iter().map(|p| model.network.quantize_image(p)).collect::<Result<Vec<_>, _>>().context("quantize")?;
    files::ensure_dir(&layout.io_intermediate_dir())?;
    files::write_matrix(&layout.quantized_inputs_file(), "quantized input", &quantized)?;
    log(
        "client",
        format_args!("{} quantized to 0..={} in {:.3} s", files::images(n), model.network.input_levels, secs(t)),
    );
    Ok(())
}

/// Stage 6, `client_encode_encrypt_input`: the quantized images encrypted under the secret key into
/// `io/<name>/ciphertexts_upload` — one file of 7 ciphertexts per image (per-image packing) or one file of
/// 784 ciphertexts per 8,192 images (slot per image).
pub fn client_encode_encrypt_input(layout: &Layout) -> Result<()> {
    let t = Instant::now();
    let n = layout.instance().batch_size();
    let images = files::read_matrix(
        &layout.quantized_inputs_file(),
        "quantized input",
        "client_preprocess_input",
        n,
        PIXELS,
        files::parse_int_in(0, 255),
    )?;
    let client = client(layout)?;
    files::fresh_dir(&layout.upload_dir())?;
    let packing = layout.instance().packing();
    match packing {
        Packing::PerImage => images.par_iter().enumerate().try_for_each(|(i, x)| {
            let cts = client.encrypt(x, &mut rand::rng()).with_context(|| format!("encrypt image {i}"))?;
            files::write(&layout.upload_file(i), &wire::encode_ciphertexts(&cts, INPUT_LEVEL), "encrypted image")
        })?,
        Packing::SlotPerImage => {
            let mut start = 0;
            for (j, count) in layout.chunks().into_iter().enumerate() {
                let bytes = crate::batch::encrypt(&client, &images[start..start + count])?;
                files::write(&layout.upload_file(j), &bytes, "encrypted batch")?;
                start += count;
            }
        }
    }
    log("client", format_args!("{} encrypted ({}) in {:.3} s", files::images(n), packing.name(), secs(t)));
    Ok(())
}

/// Decodes the input ciphertexts of one image, naming the file in errors.
fn read_image_ciphertexts(path: &Path) -> Result<Vec<Ciphertext>> {
    let cap = (MAX_CIPHERTEXTS * (MAX_CIPHERTEXT_BYTES + 4) + 64) as u64;
    let bytes = files::read_output_of(path, cap, "encrypted image", "client_encode_encrypt_input")?;
    wire::decode_ciphertexts(&bytes, INPUT_CIPHERTEXTS, INPUT_LEVEL)
        .with_context(|| format!("encrypted image {}", path.display()))
}

/// Stage 7, `server_encrypted_compute`: the network evaluated on the uploaded ciphertexts with the public
/// evaluation keys and the preprocessed model; results in `io/<name>/ciphertexts_download`. Reads nothing
/// else — in particular not `io/<name>/secret_key`.
pub fn server_encrypted_compute(layout: &Layout) -> Result<()> {
    let t = Instant::now();
    let model_file = Layout::preprocessed_model_file(layout.root());
    let bytes = files::read_output_of(
        &model_file,
        more_bfv::model::MAX_MODEL_BYTES,
        "preprocessed model",
        "server_preprocess_model",
    )?;
    let net =
        BfvModel::from_json(&bytes).with_context(|| format!("preprocessed model {}", model_file.display()))?.network;
    let keys_file = layout.eval_keys_file();
    let packing = layout.instance().packing();
    log("server", format_args!("loading keys and model ({})", packing.name()));
    files::fresh_dir(&layout.download_dir())?;
    match packing {
        Packing::PerImage => {
            let bytes =
                files::read_output_of(&keys_file, MAX_KEYS_BYTES as u64, "evaluation keys", "client_key_generation")?;
            let keys = wire::decode_keys(&bytes).with_context(|| format!("evaluation keys {}", keys_file.display()))?;
            let evaluator = Evaluator::new(&net).context("encode the model's weights")?;
            log(
                "server",
                format_args!("ready after {:.3} s; evaluating {}", secs(t), files::images(layout.chunks().len())),
            );
            (0..layout.chunks().len()).into_par_iter().try_for_each(|i| {
                let input = layout.upload_file(i);
                let cts = read_image_ciphertexts(&input)?;
                let start = Instant::now();
                let out = evaluator.evaluate(&keys, &cts).with_context(|| format!("evaluate {}", input.display()))?;
                log("server", format_args!("image {i}: {:.3} s", secs(start)));
                files::write(
                    &layout.download_file(i),
                    &wire::encode_ciphertexts(&out, OUTPUT_LEVEL),
                    "encrypted result",
                )
            })?;
        }
        Packing::SlotPerImage => crate::batch::evaluate(layout, &net, &keys_file)?,
    }
    log("server", format_args!("done in {:.3} s", secs(t)));
    Ok(())
}

/// Stage 8, `client_decrypt_decode`: the result ciphertexts decrypted into the 10 integer logits per image,
/// one image per line in `io/<name>/intermediate/logits.txt`.
pub fn client_decrypt_decode(layout: &Layout) -> Result<()> {
    let t = Instant::now();
    let client = client(layout)?;
    let packing = layout.instance().packing();
    let logits: Vec<Vec<i64>> = match packing {
        Packing::PerImage => (0..layout.chunks().len())
            .into_par_iter()
            .map(|i| {
                let path = layout.download_file(i);
                let cap = (MAX_CIPHERTEXTS * (MAX_CIPHERTEXT_BYTES + 4) + 64) as u64;
                let bytes = files::read_output_of(&path, cap, "encrypted result", "server_encrypted_compute")?;
                let cts = wire::decode_ciphertexts(&bytes, output_ciphertexts(DIGITS), OUTPUT_LEVEL)
                    .with_context(|| format!("encrypted result {}", path.display()))?;
                client.decrypt(&cts, DIGITS).with_context(|| format!("decrypt {}", path.display()))
            })
            .collect::<Result<_>>()?,
        Packing::SlotPerImage => crate::batch::decrypt(layout, &client)?,
    };
    files::ensure_dir(&layout.io_intermediate_dir())?;
    files::write_matrix(&layout.logits_file(), "logits", &logits)?;
    log("client", format_args!("{} decrypted in {:.3} s", files::images(logits.len()), secs(t)));
    Ok(())
}

/// Stage 9, `client_postprocess`: each image's label is the index of its largest logit (the first on
/// ties), one per line in `io/<name>/encrypted_model_predictions.txt` — the file the harness scores.
pub fn client_postprocess(layout: &Layout) -> Result<()> {
    let n = layout.instance().batch_size();
    let logits = files::read_matrix(
        &layout.logits_file(),
        "logits",
        "client_decrypt_decode",
        n,
        DIGITS,
        files::parse_int_in(i64::MIN, i64::MAX),
    )?;
    let labels: Vec<Vec<usize>> = logits.iter().map(|l| vec![argmax(l)]).collect();
    files::write_matrix(&layout.predictions_file(), "predictions", &labels)
}
