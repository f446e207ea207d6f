//! Data sets for the surrogate: Latin-hypercube samples over the parameter ranges, each simulated to
//! periodic steady state (in parallel with the `parallel` feature), and their CSV form.

use std::io::{BufRead, Write};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::error::{Error, Result};
use crate::params::{N_PARAMS, PARAMETERS, PatientParams};
use crate::simulate::{OUTPUT_NAMES, SimOptions, simulate_with};

/// Number of surrogate outputs.
pub const N_OUTPUTS: usize = OUTPUT_NAMES.len();

/// A table of simulated patients: inputs in [`PARAMETERS`] order, outputs in [`OUTPUT_NAMES`] order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Patient parameters, one row per sample.
    pub inputs: Vec<[f64; N_PARAMS]>,
    /// Simulated outputs, one row per sample.
    pub outputs: Vec<[f64; N_OUTPUTS]>,
    /// Samples whose simulation failed (not converged); they are left out of the table.
    pub failed: usize,
}

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    // 53 random bits in [0, 1)
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// `n` Latin-hypercube samples over the parameter ranges: each range is cut into `n` equal strata and every
/// stratum of every parameter is used exactly once, the strata paired at random. Deterministic in `seed`.
pub fn latin_hypercube(n: usize, seed: u64) -> Vec<[f64; N_PARAMS]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = vec![[0.0; N_PARAMS]; n];
    for (j, spec) in PARAMETERS.iter().enumerate() {
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let k = (rng.next_u64() % (i as u64 + 1)) as usize;
            perm.swap(i, k);
        }
        for (row, stratum) in rows.iter_mut().zip(perm) {
            let u = (stratum as f64 + uniform(&mut rng)) / n as f64;
            row[j] = spec.min + u * (spec.max - spec.min);
        }
    }
    rows
}

/// Simulates `n` Latin-hypercube samples (seed `seed`); `progress` is called once per finished sample
/// (from several threads with the `parallel` feature).
pub fn generate(n: usize, seed: u64, opts: &SimOptions, progress: &(dyn Fn() + Sync)) -> Dataset {
    let samples = latin_hypercube(n, seed);
    let run = |a: &[f64; N_PARAMS]| {
        let r = simulate_with(&PatientParams::from_array(*a), opts).map(|s| (*a, s.outputs.to_array()));
        progress();
        r
    };
    #[cfg(feature = "parallel")]
    let results: Vec<Result<_>> = {
        use rayon::prelude::*;
        samples.par_iter().map(run).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let results: Vec<Result<_>> = samples.iter().map(run).collect();
    let mut d = Dataset::default();
    for r in results {
        match r {
            Ok((x, y)) => {
                d.inputs.push(x);
                d.outputs.push(y);
            }
            Err(_) => d.failed += 1,
        }
    }
    d
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Writes the table as CSV: a header of parameter then output names, one row per sample.
    pub fn write_csv(&self, mut w: impl Write) -> std::io::Result<()> {
        let header: Vec<&str> = PARAMETERS.iter().map(|p| p.name).chain(OUTPUT_NAMES).collect();
        writeln!(w, "{}", header.join(","))?;
        for (x, y) in self.inputs.iter().zip(&self.outputs) {
            let row: Vec<String> = x.iter().chain(y).map(|v| format!("{v}")).collect();
            writeln!(w, "{}", row.join(","))?;
        }
        Ok(())
    }

    /// Reads a table written by [`Dataset::write_csv`]; the header must match.
    pub fn read_csv(r: impl BufRead) -> Result<Self> {
        let bad = |m: String| Error::InvalidOption(format!("data set CSV: {m}"));
        let mut lines = r.lines();
        let header = lines.next().ok_or_else(|| bad("empty file".into()))?.map_err(|e| bad(e.to_string()))?;
        let expected: Vec<&str> = PARAMETERS.iter().map(|p| p.name).chain(OUTPUT_NAMES).collect();
        if header.trim() != expected.join(",") {
            return Err(bad(format!("header {header:?}, expected {:?}", expected.join(","))));
        }
        let mut d = Dataset::default();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| bad(e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Vec<f64> = line
                .split(',')
                .map(|s| s.trim().parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad(format!("line {}: {e}", i + 2)))?;
            if v.len() != N_PARAMS + N_OUTPUTS || v.iter().any(|x| !x.is_finite()) {
                return Err(bad(format!("line {}: expected {} finite numbers", i + 2, N_PARAMS + N_OUTPUTS)));
            }
            let mut x = [0.0; N_PARAMS];
            let mut y = [0.0; N_OUTPUTS];
            x.copy_from_slice(&v[..N_PARAMS]);
            y.copy_from_slice(&v[N_PARAMS..]);
            d.inputs.push(x);
            d.outputs.push(y);
        }
        Ok(d)
    }
}
