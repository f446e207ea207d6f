//! Slot layout (packing) of the inputs, the plaintext weights and the outputs.
//!
//! SIMD encoding gives `N = 8192` slots seen as 2 rows of 4096; a column rotation by `r` moves slot `i` of a
//! row to `i − r` (cyclically within the row), the row rotation swaps the rows. We cut the slots into four
//! **blocks** of 2048 (two per row); one block holds the 1,960 hidden values `c·196 + p` (channel `c`, output
//! position `p`) and 88 zeros.
//!
//! - **Input** (client side, im2col): ciphertext `i` (of 7) carries window position `k = 4i + b` in block `b`:
//!   slot `c·196 + p` holds the input pixel that window position `k` of output position `p` reads — the same
//!   for every channel `c`. Only the client sees the image, so it may lay it out like this for free.
//! - **Convolution** (server): `Σ_i ct_i ⊙ w_i` with `w_i` holding `w[c][4i + b]` in block `b` (7 ct×pt), then
//!   the four blocks are added together by one column rotation by 2048 and one row rotation: afterwards every
//!   block holds the whole convolution output.
//! - **Square**: one ct×ct and a relinearisation.
//! - **Dense**: for round `r` (of `⌈classes / 4⌉`: 3 for the ten digits, 1 for two classes), one ct×pt with
//!   `W[4r + b]` in block `b`, then rotate-and-sum over 2048 slots (column rotations by 1, 2, …, 1024): logit
//!   `4r + b` lands in the first slot of block `b`.

use crate::network::{CHANNELS, HIDDEN, MAX_CLASSES, POSITIONS, QuantizedNet, WINDOW, im2col};
use crate::params::RING_DEGREE;

/// Slots per block.
pub const BLOCK: usize = 2048;
/// Blocks per ciphertext.
pub const BLOCKS: usize = RING_DEGREE / BLOCK;
/// Input ciphertexts per image (`⌈25 / 4⌉`).
pub const INPUT_CIPHERTEXTS: usize = WINDOW.div_ceil(BLOCKS);
/// Dense rounds = result ciphertexts of a network with `classes` classes: `⌈classes / 4⌉` (3 for the
/// digits, 1 for two classes).
pub const fn output_ciphertexts(classes: usize) -> usize {
    classes.div_ceil(BLOCKS)
}
/// Result ciphertexts of the largest network ([`MAX_CLASSES`]).
pub const MAX_OUTPUT_CIPHERTEXTS: usize = output_ciphertexts(MAX_CLASSES);
/// Column rotations of the dense layer's rotate-and-sum: 1, 2, 4, …, 1024.
pub const DENSE_ROTATIONS: [usize; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/// The column rotation that adds the two blocks of a row.
pub const HALF_ROW_ROTATION: usize = BLOCK;

const _: () = assert!(HIDDEN <= BLOCK, "one block must hold the hidden layer");
const _: () = assert!(DENSE_ROTATIONS[DENSE_ROTATIONS.len() - 1] * 2 == BLOCK);

/// Reduces a signed integer modulo `t` into `[0, t)`.
pub fn to_mod(v: i64, t: u64) -> u64 {
    v.rem_euclid(t as i64) as u64
}

/// Reads a value in `[0, t)` as the signed integer in `(−t/2, t/2]`.
pub fn from_mod(v: u64, t: u64) -> i64 {
    if v > t / 2 { v as i64 - t as i64 } else { v as i64 }
}

/// The slot vectors of the input ciphertexts for one quantized image (values in `[0, t)`).
pub fn input_slots(x: &[i64], t: u64) -> Vec<Vec<u64>> {
    let patches = im2col(x);
    (0..INPUT_CIPHERTEXTS)
        .map(|i| {
            let mut slots = vec![0u64; RING_DEGREE];
            for b in 0..BLOCKS {
                let k = BLOCKS * i + b;
                if k >= WINDOW {
                    continue;
                }
                for c in 0..CHANNELS {
                    for p in 0..POSITIONS {
                        slots[b * BLOCK + c * POSITIONS + p] = to_mod(patches[k][p], t);
                    }
                }
            }
            slots
        })
        .collect()
}

/// The convolution weights multiplied into input ciphertext `i`.
pub fn conv_weight_slots(net: &QuantizedNet, i: usize, t: u64) -> Vec<u64> {
    let mut slots = vec![0u64; RING_DEGREE];
    for b in 0..BLOCKS {
        let k = BLOCKS * i + b;
        if k >= WINDOW {
            continue;
        }
        for c in 0..CHANNELS {
            let w = to_mod(net.conv_weight[c * WINDOW + k], t);
            slots[b * BLOCK + c * POSITIONS..b * BLOCK + (c + 1) * POSITIONS].fill(w);
        }
    }
    slots
}

/// The convolution bias, in every block.
pub fn conv_bias_slots(net: &QuantizedNet, t: u64) -> Vec<u64> {
    let mut slots = vec![0u64; RING_DEGREE];
    for b in 0..BLOCKS {
        for c in 0..CHANNELS {
            slots[b * BLOCK + c * POSITIONS..b * BLOCK + (c + 1) * POSITIONS].fill(to_mod(net.conv_bias[c], t));
        }
    }
    slots
}

/// The dense weights of round `r`: row `4r + b` in block `b`.
pub fn dense_weight_slots(net: &QuantizedNet, r: usize, t: u64) -> Vec<u64> {
    let mut slots = vec![0u64; RING_DEGREE];
    for b in 0..BLOCKS {
        let j = BLOCKS * r + b;
        if j >= net.classes() {
            continue;
        }
        for (s, &w) in
            slots[b * BLOCK..b * BLOCK + HIDDEN].iter_mut().zip(&net.dense_weight[j * HIDDEN..(j + 1) * HIDDEN])
        {
            *s = to_mod(w, t);
        }
    }
    slots
}

/// The dense bias of round `r`, at the first slot of each block.
pub fn dense_bias_slots(net: &QuantizedNet, r: usize, t: u64) -> Vec<u64> {
    let mut slots = vec![0u64; RING_DEGREE];
    for (b, j) in (0..BLOCKS).map(|b| (b, BLOCKS * r + b)).filter(|&(_, j)| j < net.classes()) {
        slots[b * BLOCK] = to_mod(net.dense_bias[j], t);
    }
    slots
}

/// Where logit `j` is: (result ciphertext, slot).
pub fn logit_position(j: usize) -> (usize, usize) {
    (j / BLOCKS, (j % BLOCKS) * BLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_values_round_trip_modulo_t() {
        let t = 17;
        for v in -8..=8 {
            assert_eq!(from_mod(to_mod(v, t), t), v);
        }
    }

    #[test]
    fn every_window_position_has_one_block_and_every_logit_one_slot() {
        let mut seen = [false; WINDOW];
        for i in 0..INPUT_CIPHERTEXTS {
            for b in 0..BLOCKS {
                if let Some(s) = seen.get_mut(BLOCKS * i + b) {
                    assert!(!*s);
                    *s = true;
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        for classes in crate::network::MIN_CLASSES..=MAX_CLASSES {
            let mut positions: Vec<_> = (0..classes).map(logit_position).collect();
            positions.sort();
            positions.dedup();
            assert_eq!(positions.len(), classes);
            assert!(positions.iter().all(|&(c, s)| c < output_ciphertexts(classes) && s < RING_DEGREE));
        }
        assert_eq!((output_ciphertexts(10), output_ciphertexts(2), MAX_OUTPUT_CIPHERTEXTS), (3, 1, 3));
    }

    #[test]
    fn slot_arithmetic_in_the_clear_gives_the_network() {
        for classes in [MAX_CLASSES, 2, 5] {
            slot_arithmetic_in_the_clear_gives_the_network_with(classes);
        }
    }

    fn slot_arithmetic_in_the_clear_gives_the_network_with(classes: usize) {
        // The packing evaluated on plain slot vectors (the same adds, products and rotations the server does
        // on ciphertexts) must reproduce the integer network.
        let t = crate::params::PLAINTEXT_MODULUS;
        let net = QuantizedNet {
            input_levels: 15,
            conv_weight: (0..CHANNELS * WINDOW).map(|i| (i as i64 % 7) - 3).collect(),
            conv_bias: (0..CHANNELS as i64).map(|c| c - 4).collect(),
            dense_weight: (0..classes * HIDDEN).map(|i| (i as i64 * 31 % 11) - 5).collect(),
            dense_bias: (0..classes as i64).collect(),
        };
        let x: Vec<i64> = (0..784).map(|i| (i * 5 % 16) as i64).collect();
        let (expect, _) = net.forward(&x);
        let mul = |a: &[u64], b: &[u64]| -> Vec<u64> {
            a.iter().zip(b).map(|(&x, &y)| ((x as u128 * y as u128) % t as u128) as u64).collect()
        };
        let add = |a: &mut Vec<u64>, b: &[u64]| a.iter_mut().zip(b).for_each(|(x, &y)| *x = (*x + y) % t);
        let rot_cols = |a: &[u64], r: usize| -> Vec<u64> {
            let half = RING_DEGREE / 2;
            (0..RING_DEGREE).map(|i| a[(i / half) * half + (i % half + r) % half]).collect()
        };
        let rot_rows = |a: &[u64]| -> Vec<u64> {
            let half = RING_DEGREE / 2;
            (0..RING_DEGREE).map(|i| a[(i + half) % RING_DEGREE]).collect()
        };
        let inputs = input_slots(&x, t);
        let mut s = vec![0u64; RING_DEGREE];
        for (i, ct) in inputs.iter().enumerate() {
            add(&mut s, &mul(ct, &conv_weight_slots(&net, i, t)));
        }
        let r = rot_cols(&s, HALF_ROW_ROTATION);
        add(&mut s, &r);
        let r = rot_rows(&s);
        add(&mut s, &r);
        add(&mut s, &conv_bias_slots(&net, t));
        let sq = mul(&s, &s);
        let mut checked = 0;
        for round in 0..output_ciphertexts(classes) {
            let mut p = mul(&sq, &dense_weight_slots(&net, round, t));
            for &rot in &DENSE_ROTATIONS {
                let r = rot_cols(&p, rot);
                add(&mut p, &r);
            }
            add(&mut p, &dense_bias_slots(&net, round, t));
            for b in 0..BLOCKS {
                let j = BLOCKS * round + b;
                if j < classes {
                    assert_eq!(logit_position(j), (round, b * BLOCK));
                    assert_eq!(from_mod(p[b * BLOCK], t), expect[j], "logit {j}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, classes, "every logit read");
    }
}
