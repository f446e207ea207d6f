//! The slot-per-image path (more-bfv's batch packing).

use std::path::Path;

use anyhow::{Result, bail};
use more_bfv::{Client, QuantizedNet};

use crate::layout::Layout;

const MISSING: &str = "the slot-per-image packing is not available in this build";

pub(crate) fn encode_keys<R: rand::RngCore + rand::CryptoRng>(_client: &Client, _rng: &mut R) -> Result<Vec<u8>> {
    bail!(MISSING)
}

pub(crate) fn encrypt(_client: &Client, _images: &[Vec<i64>]) -> Result<Vec<u8>> {
    bail!(MISSING)
}

pub(crate) fn evaluate(_layout: &Layout, _net: &QuantizedNet, _keys: &Path) -> Result<()> {
    bail!(MISSING)
}

pub(crate) fn decrypt(_layout: &Layout, _client: &Client) -> Result<Vec<Vec<i64>>> {
    bail!(MISSING)
}
