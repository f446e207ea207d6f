//! Scores of classifiers: predicted class, accuracy, balanced accuracy, confusion matrix.

pub use more_nn::metrics::argmax;

/// Predictions equal to their labels.
pub fn hits(pred: &[usize], labels: &[u8]) -> usize {
    pred.iter().zip(labels).filter(|(p, l)| **p == usize::from(**l)).count()
}

/// Accuracy and balanced accuracy (mean recall over the classes present in `labels`) of predictions
/// against labels, for `classes` classes (larger labels and predictions count as the last class).
pub fn scores(pred: &[usize], labels: &[u8], classes: usize) -> (f64, f64) {
    let m = confusion(pred, labels, classes);
    let acc = (0..classes).map(|c| m[c][c]).sum::<usize>() as f64 / pred.len().max(1) as f64;
    let recalls: Vec<f64> = m
        .iter()
        .enumerate()
        .filter(|(_, row)| row.iter().sum::<usize>() > 0)
        .map(|(c, row)| row[c] as f64 / row.iter().sum::<usize>() as f64)
        .collect();
    (acc, recalls.iter().sum::<f64>() / recalls.len().max(1) as f64)
}

/// Confusion matrix `m[true][predicted]`.
pub fn confusion(pred: &[usize], labels: &[u8], classes: usize) -> Vec<Vec<usize>> {
    let last = classes.saturating_sub(1);
    let mut m = vec![vec![0; classes]; classes];
    for (&p, &l) in pred.iter().zip(labels) {
        m[usize::from(l).min(last)][p.min(last)] += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_balanced() {
        let (a, b) = scores(&[0, 0, 0, 1], &[0, 0, 1, 1], 2);
        assert!((a - 0.75).abs() < 1e-12);
        assert!((b - 0.75).abs() < 1e-12);
        let (a, b) = scores(&[0, 0, 0, 0], &[0, 0, 0, 1], 2);
        assert!((a - 0.75).abs() < 1e-12);
        assert!((b - 0.5).abs() < 1e-12);
        assert_eq!(confusion(&[0, 1, 1], &[0, 0, 1], 2), vec![vec![1, 1], vec![0, 1]]);
        assert_eq!(hits(&[0, 1, 1], &[0, 0, 1]), 2);
    }
}
