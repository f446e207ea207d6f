//! Which lane is the data? The one bit the eigenbasis attack leaves open, settled without the key.
//!
//! The eigenbasis splits every ciphertext into two lanes but cannot say which one is the message: the sign
//! of `P − I/2` is arbitrary. It is **one bit for the whole key** (every ciphertext under the key has its
//! message on the same side), and the data usually give it away:
//!
//! - **ties** — real data repeat values (the black background of a digit, saturated pixels, a constant
//!   image); a lane drawn fresh from a continuous random range essentially never does;
//! - **smoothness** — neighbouring pixels of an image are alike; independent random values are not
//!   (`roughness = mean((xᵢ − xⱼ)²) / (2·var)` over horizontal and vertical neighbours is `≈ 1` for noise);
//! - **grid** — 8-bit images take only 256 levels `lo + k·(hi − lo)/255`;
//! - **range** — pixels stay in their nominal range.
//!
//! Each feature scores a lane in `[0, 1]` (1 = data-like); the verdict picks the lane with the larger mean
//! score and reports `confidence = |mean score difference|` in `[0, 1]`: near 1 when every feature agrees,
//! near 0 when the lanes are indistinguishable (e.g. ten logits, or data that are themselves i.i.d. random) —
//! then use one known value instead ([`LaneVerdict::from_known`]).

use crate::attack::basis::Lane;

/// What the attacker assumes about the data (all optional).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DataPrior {
    /// The nominal range `[lo, hi]` of the values (e.g. `[0, 1]` for pixels scaled by 1/255).
    pub range: Option<(f64, f64)>,
    /// Number of quantisation steps across `range` (255 for 8-bit images).
    pub levels: Option<u32>,
    /// `[height, width]` of the trailing two axes, for the smoothness feature.
    pub image: Option<(usize, usize)>,
}

impl DataPrior {
    /// No assumptions: only the ties feature is used.
    pub fn none() -> Self {
        Self::default()
    }

    /// 8-bit grayscale images of `height x width` pixels whose levels `0..=255` map linearly onto
    /// `[lo, hi]` (e.g. `(0, 1)`, or the normalised `((0 − mean)/std, (1 − mean)/std)`).
    pub fn image_8bit(lo: f64, hi: f64, height: usize, width: usize) -> Self {
        Self { range: Some((lo, hi)), levels: Some(255), image: Some((height, width)) }
    }

    /// Rounds `x` to the nearest quantisation level (clamped to the range), when `range` and `levels`
    /// are known; otherwise returns `x`.
    pub fn snap(&self, x: f64) -> f64 {
        match (self.range, self.levels) {
            (Some((lo, hi)), Some(levels)) if hi > lo && levels > 0 => {
                let n = f64::from(levels);
                let k = ((x - lo) / (hi - lo) * n).round().clamp(0.0, n);
                // Written so that level k of [0, 1] is exactly k/255.
                lo + (hi - lo) * k / n
            }
            _ => x,
        }
    }
}

/// How much one lane looks like data. Every score is in `[0, 1]`; `None` when the prior lacks what the
/// feature needs. (Serialisable, so the page receives it as an object.)
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LaneLooks {
    /// Fraction of sorted neighbours that tie (within the recovery resolution), rescaled so a continuous
    /// random lane scores about 0.
    pub ties: f64,
    /// `1 − roughness` (clamped), over horizontal and vertical neighbours.
    pub smooth: Option<f64>,
    /// Fraction of values on the quantisation grid, rescaled so random values score about 0.
    pub grid: Option<f64>,
    /// Fraction of values inside the nominal range.
    pub range: Option<f64>,
    /// Mean of the available scores.
    pub score: f64,
}

/// The decision which lane holds the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneVerdict {
    /// The lane judged to be the message.
    pub lane: Lane,
    /// In `[0, 1]`: the difference of the two lanes' mean scores (or, from a known value, how much closer
    /// the chosen lane is). Below ~0.2 the bit is a guess.
    pub confidence: f64,
    /// The scores of `[lane₁, lane₂]` (absent when decided from a known value).
    pub looks: Option<[LaneLooks; 2]>,
}

impl LaneVerdict {
    /// Decides from how the two lanes look. `resolution` is the absolute precision of the recovered values
    /// (values closer than that count as ties).
    pub fn from_looks(lanes: [&[f64]; 2], prior: &DataPrior, resolution: f64) -> Self {
        let looks = [looks(lanes[0], prior, resolution), looks(lanes[1], prior, resolution)];
        let diff = looks[0].score - looks[1].score;
        let lane = if diff >= 0.0 { Lane::First } else { Lane::Second };
        Self { lane, confidence: diff.abs().min(1.0), looks: Some(looks) }
    }

    /// Decides from one known plaintext: `values` are the two lane values of the element whose plaintext
    /// `known` is known.
    pub fn from_known(values: [f64; 2], known: f64) -> Self {
        let d = [(values[0] - known).abs(), (values[1] - known).abs()];
        let lane = if d[0] <= d[1] { Lane::First } else { Lane::Second };
        let (near, far) = if d[0] <= d[1] { (d[0], d[1]) } else { (d[1], d[0]) };
        let confidence = if far > 0.0 { 1.0 - near / far } else { 0.0 };
        Self { lane, confidence, looks: None }
    }
}

/// Scores one lane.
pub fn looks(values: &[f64], prior: &DataPrior, resolution: f64) -> LaneLooks {
    let n = values.len();
    let ties = ties(values, resolution);
    let smooth = prior.image.and_then(|(h, w)| smoothness(values, h, w, resolution));
    let grid = match (prior.range, prior.levels) {
        (Some((lo, hi)), Some(levels)) if hi > lo && levels > 0 => {
            let step = (hi - lo) / f64::from(levels);
            // Tolerance: a tenth of a step (random values land there with probability 0.2).
            let tol = (0.1 * step).max(resolution);
            let frac_random = (2.0 * tol / step).min(1.0);
            let on =
                values.iter().filter(|&&x| ((x - lo) / step - ((x - lo) / step).round()).abs() * step <= tol).count();
            let frac = on as f64 / n.max(1) as f64;
            Some(if frac_random < 1.0 { ((frac - frac_random) / (1.0 - frac_random)).clamp(0.0, 1.0) } else { 0.0 })
        }
        _ => None,
    };
    let range = prior.range.filter(|(lo, hi)| hi > lo).map(|(lo, hi)| {
        let tol = resolution.max(1e-9 * (hi - lo));
        values.iter().filter(|&&x| x >= lo - tol && x <= hi + tol).count() as f64 / n.max(1) as f64
    });
    let parts: Vec<f64> = [Some(ties), smooth, grid, range].into_iter().flatten().collect();
    let score = parts.iter().sum::<f64>() / parts.len() as f64;
    LaneLooks { ties, smooth, grid, range, score }
}

/// Ties among sorted values: a gap below `max(resolution, 0.01·spread/n)` (a continuous random lane has
/// about 1% of its gaps that small), on an evenly strided sample of at most ~4096 values.
fn ties(values: &[f64], resolution: f64) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    // At most ~4096 values (an even stride): the fraction is a statistic, and sorting dominates the cost.
    let stride = n.div_ceil(4096);
    let mut v: Vec<f64> = values.iter().step_by(stride).copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n < 2 {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let spread = v.last().copied().unwrap_or(0.0) - v.first().copied().unwrap_or(0.0);
    if spread <= 4.0 * resolution {
        return 1.0; // constant up to the recovery's rounding
    }
    let tol = resolution.max(0.01 * spread / n as f64);
    let tied = v.windows(2).filter(|w| w[1] - w[0] <= tol).count();
    let frac = tied as f64 / (n - 1) as f64;
    // Expected fraction for i.i.d. continuous values: 1 − exp(−n·tol/spread).
    let random = if spread > 0.0 { 1.0 - (-(n as f64) * tol / spread).exp() } else { 0.0 };
    if random >= 1.0 { 0.0 } else { ((frac - random) / (1.0 - random)).clamp(0.0, 1.0) }
}

/// `1 − mean((xᵢ − xⱼ)²)/(2·var)` over neighbours in `h x w` images (trailing axes), clamped to `[0, 1]`;
/// a lane constant up to `resolution` is perfectly smooth.
fn smoothness(values: &[f64], h: usize, w: usize, resolution: f64) -> Option<f64> {
    let plane = h * w;
    if plane < 4 || values.len() % plane != 0 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let (mut sum, mut count) = (0.0, 0usize);
    for img in values.chunks_exact(plane) {
        for y in 0..h {
            for x in 0..w {
                let v = img[y * w + x];
                if x + 1 < w {
                    sum += (v - img[y * w + x + 1]).powi(2);
                    count += 1;
                }
                if y + 1 < h {
                    sum += (v - img[(y + 1) * w + x]).powi(2);
                    count += 1;
                }
            }
        }
    }
    if count == 0 {
        return None;
    }
    if var.sqrt() <= 2.0 * resolution {
        return Some(1.0); // constant up to the recovery's rounding
    }
    Some((1.0 - sum / count as f64 / (2.0 * var)).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_rounds_to_levels() {
        let p = DataPrior::image_8bit(0.0, 1.0, 2, 2);
        assert_eq!(p.snap(3.0 / 255.0 + 1e-4), 3.0 / 255.0);
        assert_eq!(p.snap(2.0), 1.0);
    }

    #[test]
    fn known_value_decides() {
        let v = LaneVerdict::from_known([0.2, 0.9], 0.9);
        assert_eq!(v.lane, Lane::Second);
        assert!(v.confidence > 0.99);
    }
}
