//! Classification metrics: the one argmax and accuracy of the project.

use ndarray::{ArrayD, Axis};

/// Index of the largest value: the first on ties, NaN values skipped, 0 when empty (or all NaN). The
/// predicted class of one output row.
pub fn argmax<'a>(values: impl IntoIterator<Item = &'a f32>) -> usize {
    values.into_iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
}

/// The [`argmax`] of every row (axis 0) of outputs `[N, ...]`.
pub fn predictions(outputs: &ArrayD<f32>) -> Vec<usize> {
    if outputs.ndim() == 0 {
        return vec![argmax(outputs.iter())];
    }
    outputs.axis_iter(Axis(0)).map(|row| argmax(row.iter())).collect()
}

/// Number of rows whose argmax agrees between outputs and (one-hot) targets.
pub fn correct(outputs: &ArrayD<f32>, targets: &ArrayD<f32>) -> usize {
    predictions(outputs).into_iter().zip(predictions(targets)).filter(|(o, t)| o == t).count()
}

/// Share of rows whose argmax agrees between outputs and (one-hot) targets (0 for no rows).
pub fn accuracy(outputs: &ArrayD<f32>, targets: &ArrayD<f32>) -> f64 {
    let n = if outputs.ndim() == 0 { 1 } else { outputs.shape()[0] };
    correct(outputs, targets) as f64 / n.max(1) as f64
}

/// Share of rows whose argmax is the label (0 for no rows; rows beyond the labels are not counted).
pub fn label_accuracy<L: Copy + Into<usize>>(outputs: &ArrayD<f32>, labels: &[L]) -> f64 {
    let right = predictions(outputs).into_iter().zip(labels).filter(|&(p, &l)| p == l.into()).count();
    right as f64 / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{IxDyn, arr2};

    #[test]
    fn argmax_takes_the_first_maximum_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, -2.0]), 1);
        assert_eq!(argmax(&[] as &[f32]), 0);
    }

    #[test]
    fn accuracy_against_targets_and_labels() {
        let out = arr2(&[[0.1f32, 0.9], [0.8, 0.2], [0.3, 0.7]]).into_dyn();
        let targets = arr2(&[[0.0f32, 1.0], [0.0, 1.0], [0.0, 1.0]]).into_dyn();
        assert_eq!(predictions(&out), vec![1, 0, 1]);
        assert_eq!(correct(&out, &targets), 2);
        assert!((accuracy(&out, &targets) - 2.0 / 3.0).abs() < 1e-12);
        assert!((label_accuracy(&out, &[1u8, 0, 0]) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(accuracy(&ArrayD::zeros(IxDyn(&[0, 2])), &ArrayD::zeros(IxDyn(&[0, 2]))), 0.0);
    }
}
