//! Summary statistics for repeated runs: mean, standard deviation, range, and the paired difference of
//! two sides with a Student-t confidence interval — what `more reproduce --runs K` reports.

use serde::Serialize;

/// Mean, sample standard deviation and range of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (`n − 1` in the denominator; 0 for one value).
    pub sd: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// The summary of `values` (`None` when empty).
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd =
            if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Self { n, mean, sd, min, max })
    }
}

/// The paired difference `b_i − a_i` of two sides measured on the same runs (same seed, data and
/// hyper-parameters), with a 95% confidence interval for its mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedDifference {
    /// Summary of the differences.
    pub difference: Summary,
    /// Lower end of the 95% confidence interval of the mean difference.
    pub ci95_low: f64,
    /// Upper end.
    pub ci95_high: f64,
    /// The Student-t quantile used (`t(0.975, n − 1)`).
    pub t_quantile: f64,
}

impl PairedDifference {
    /// `b − a` pairwise; `None` unless both have the same length of at least two.
    pub fn of(a: &[f64], b: &[f64]) -> Option<Self> {
        if a.len() != b.len() || a.len() < 2 {
            return None;
        }
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
        let difference = Summary::of(&d)?;
        let t_quantile = student_t_975(d.len() - 1);
        let half = t_quantile * difference.sd / (d.len() as f64).sqrt();
        Some(Self { difference, ci95_low: difference.mean - half, ci95_high: difference.mean + half, t_quantile })
    }

    /// Whether the interval excludes zero.
    pub fn significant(&self) -> bool {
        self.ci95_low > 0.0 || self.ci95_high < 0.0
    }
}

/// The two-sided 95% quantile of Student's t distribution with `df` degrees of freedom, `t(0.975, df)`
/// (table values to three decimals for `df ≤ 30`, the normal quantile's Cornish–Fisher expansion beyond).
pub fn student_t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, n) = (1.959_964_f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * n) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// `v` with a sign and three significant digits' worth of precision: fixed point from 0.01 up, scientific
/// below (so differences of 1e-6 do not print as `+0.000`).
pub fn signed(v: f64) -> String {
    if v == 0.0 || v.abs() >= 0.01 { format!("{v:+.3}") } else { format!("{v:+.2e}") }
}

/// `v` as [`signed`] without the sign of positive values.
pub fn plain(v: f64) -> String {
    if v == 0.0 || v.abs() >= 0.01 { format!("{v:.3}") } else { format!("{v:.2e}") }
}

/// How the encrypted side compares with the plaintext side's own seed-to-seed spread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// `|mean difference|` is at most the plaintext runs' standard deviation.
    pub within_seed_spread: bool,
    /// The 95% interval of the mean difference excludes zero.
    pub significant: bool,
    /// The verdict in words.
    pub text: String,
}

/// The verdict for a metric whose plaintext runs are `plain` and paired difference `diff`; `scale` and
/// `unit` format values (e.g. `100.0` and `" pp"` for accuracies), `higher_is_better` names the direction.
pub fn verdict(plain: &Summary, diff: &PairedDifference, scale: f64, unit: &str, higher_is_better: bool) -> Verdict {
    let mean = diff.difference.mean;
    let within = mean.abs() <= plain.sd;
    let significant = diff.significant();
    let f = |v: f64| format!("{}{unit}", signed(v * scale));
    let worse = if higher_is_better { mean < 0.0 } else { mean > 0.0 };
    let direction = if worse { "worse" } else { "better" };
    let numbers = format!(
        "mean difference {} (95% CI {} to {}), plaintext seed-to-seed sd {}{unit}",
        f(mean),
        f(diff.ci95_low),
        f(diff.ci95_high),
        self::plain(plain.sd * scale)
    );
    let text = match (within, significant) {
        (true, false) => format!(
            "encrypted training is indistinguishable from plaintext training: the difference is within the \
             plaintext runs' own seed-to-seed spread and not significant ({numbers})"
        ),
        (true, true) => format!(
            "encrypted training is consistently slightly {direction}, but by less than the plaintext runs' own \
             seed-to-seed spread ({numbers})"
        ),
        (false, false) => format!(
            "the difference is larger than the plaintext seed-to-seed spread but not significant with this many \
             runs ({numbers}); more runs would settle it"
        ),
        (false, true) => {
            format!("encrypted training is {direction} by more than the plaintext seed-to-seed spread ({numbers})")
        }
    };
    Verdict { within_seed_spread: within, significant, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        // Sample variance 32 / 7.
        assert!((s.sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert_eq!(Summary::of(&[3.0]).unwrap().sd, 0.0);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn paired_interval_from_known_inputs() {
        // Differences 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776.
        let a = [10.0, 10.0, 10.0, 10.0, 10.0];
        let b = [11.0, 12.0, 13.0, 14.0, 15.0];
        let p = PairedDifference::of(&a, &b).unwrap();
        let half = 2.776 * 2.5f64.sqrt() / 5f64.sqrt();
        assert!((p.difference.mean - 3.0).abs() < 1e-12);
        assert!((p.ci95_low - (3.0 - half)).abs() < 1e-9);
        assert!((p.ci95_high - (3.0 + half)).abs() < 1e-9);
        assert!(p.significant());
        // Differences symmetric around zero: not significant.
        let p = PairedDifference::of(&[0.0, 0.0, 0.0], &[-1.0, 0.0, 1.0]).unwrap();
        assert!(!p.significant());
        assert!(PairedDifference::of(&[1.0], &[2.0]).is_none());
        assert!(PairedDifference::of(&[1.0, 2.0], &[2.0]).is_none());
    }

    #[test]
    fn small_numbers_keep_their_digits() {
        assert_eq!(signed(0.05), "+0.050");
        assert_eq!(signed(-2.5e-6), "-2.50e-6");
        assert_eq!(plain(3.1e-4), "3.10e-4");
        assert_eq!(signed(0.0), "+0.000");
    }

    #[test]
    fn t_quantiles() {
        assert_eq!(student_t_975(1), 12.706);
        assert_eq!(student_t_975(4), 2.776);
        assert!((student_t_975(60) - 2.000).abs() < 2e-3);
        assert!((student_t_975(1000) - 1.962).abs() < 1e-3);
        assert!(student_t_975(0).is_infinite());
    }

    #[test]
    fn verdicts() {
        let plain = Summary::of(&[0.990, 0.991, 0.992, 0.989, 0.990]).unwrap();
        // Tiny, noisy differences: within the spread, not significant.
        let diff =
            PairedDifference::of(&[0.990, 0.991, 0.992, 0.989, 0.990], &[0.9905, 0.9905, 0.9915, 0.9895, 0.9895])
                .unwrap();
        let v = verdict(&plain, &diff, 100.0, " pp", true);
        assert!(v.within_seed_spread && !v.significant, "{v:?}");
        assert!(v.text.contains("indistinguishable"));
        // A consistent 1 pp loss: outside the spread and significant.
        let enc: Vec<f64> = [0.990, 0.991, 0.992, 0.989, 0.990].iter().map(|v| v - 0.01).collect();
        let diff = PairedDifference::of(&[0.990, 0.991, 0.992, 0.989, 0.990], &enc).unwrap();
        let v = verdict(&plain, &diff, 100.0, " pp", true);
        assert!(!v.within_seed_spread && v.significant);
        assert!(v.text.contains("worse by more than"), "{}", v.text);
        // For an error (lower is better) the same sign means better.
        let v = verdict(&plain, &diff, 100.0, " pp", false);
        assert!(v.text.contains("better by more than"), "{}", v.text);
    }
}
