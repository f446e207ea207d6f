//! The slot-per-image path (more-bfv's batch packing, `more_bfv::batch`): image `b` of a batch in SIMD slot
//! `b` of each of 784 ciphertexts (one per pixel), up to 8,192 images per batch; the instance's images are
//! cut into batches in order ([`Layout::chunks`]), one upload and one result file per batch.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use more_bfv::batch::BatchEvaluator;
use more_bfv::wire::{self, MAX_BATCH_BYTES, MAX_CIPHERTEXT_BYTES, MAX_KEYS_BYTES};
use more_bfv::{Client, QuantizedNet};
use rand::{CryptoRng, RngCore};

use crate::files;
use crate::layout::{DIGITS, Layout};
use crate::report::{log, secs};

/// The batch key message (a relinearisation key; no rotation keys are needed).
pub(crate) fn encode_keys<R: RngCore + CryptoRng>(client: &Client, rng: &mut R) -> Result<Vec<u8>> {
    Ok(wire::encode_batch_keys(&client.batch_keys(rng).context("batch key")?))
}

/// One batch of quantized images encrypted and framed.
pub(crate) fn encrypt(client: &Client, images: &[Vec<i64>]) -> Result<Vec<u8>> {
    let cts = client.encrypt_batch(images, &mut rand::rng()).context("encrypt a batch")?;
    Ok(wire::encode_batch(&cts, images.len()))
}

/// The server's work: every upload batch evaluated into its result file.
pub(crate) fn evaluate(layout: &Layout, net: &QuantizedNet, keys_file: &Path) -> Result<()> {
    let t = Instant::now();
    let bytes = files::read_output_of(keys_file, MAX_KEYS_BYTES as u64, "evaluation keys", "client_key_generation")?;
    let keys = wire::decode_batch_keys(&bytes).with_context(|| format!("evaluation keys {}", keys_file.display()))?;
    let evaluator = BatchEvaluator::new(net).context("the model")?;
    let chunks = layout.chunks();
    log(
        "server",
        format_args!("ready after {:.3} s; evaluating {}", secs(t), files::count(chunks.len(), "batch", "batches")),
    );
    for (j, &expected) in chunks.iter().enumerate() {
        let path = layout.upload_file(j);
        let start = Instant::now();
        let bytes =
            files::read_output_of(&path, MAX_BATCH_BYTES as u64, "encrypted batch", "client_encode_encrypt_input")?;
        let (images, cts) =
            wire::decode_batch(&bytes).with_context(|| format!("encrypted batch {}", path.display()))?;
        drop(bytes);
        if images != expected {
            bail!("encrypted batch {}: {images} images, expected {expected} for this instance", path.display());
        }
        let read = secs(start);
        let last_decile = AtomicUsize::new(0);
        let progress = |done: usize, total: usize| {
            let decile = done * 10 / total;
            if decile > last_decile.fetch_max(decile, Ordering::Relaxed) {
                log("server", format_args!("batch {j}: {}0% of the hidden values", decile));
            }
        };
        let out = evaluator.evaluate(&keys, &cts, &progress).with_context(|| format!("evaluate {}", path.display()))?;
        log(
            "server",
            format_args!("batch {j} ({images} images): read {read:.3} s, evaluated in {:.3} s", secs(start) - read),
        );
        files::write(&layout.download_file(j), &wire::encode_batch_result(&out, images), "encrypted result")?;
    }
    Ok(())
}

/// The client's logits of every batch, in image order.
pub(crate) fn decrypt(layout: &Layout, client: &Client) -> Result<Vec<Vec<i64>>> {
    let mut logits = Vec::with_capacity(layout.instance().batch_size());
    for (j, &expected) in layout.chunks().iter().enumerate() {
        let path = layout.download_file(j);
        let cap = (DIGITS * (MAX_CIPHERTEXT_BYTES + 4) + 64) as u64;
        let bytes = files::read_output_of(&path, cap, "encrypted result", "server_encrypted_compute")?;
        let (images, cts) = wire::decode_batch_result(&bytes, DIGITS)
            .with_context(|| format!("encrypted result {}", path.display()))?;
        if images != expected {
            bail!("encrypted result {}: {images} images, expected {expected} for this instance", path.display());
        }
        logits
            .extend(client.decrypt_batch(&cts, DIGITS, images).with_context(|| format!("decrypt {}", path.display()))?);
    }
    Ok(logits)
}
