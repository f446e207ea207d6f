//! The figures of `more reproduce --svg`, each one self-contained SVG. One comparison: the training curves
//! of its plaintext and encrypted runs (this file) — training loss and validation accuracy per epoch, the
//! plaintext run solid, the encrypted run (decrypted figures) dashed over it, so that where the two runs
//! agree the lines coincide. A study: [`study_svg`].

use std::fmt::Write as _;

use more_nn::train::History;

mod study;

pub use study::study_svg;

/// The two runs: legend label, colour, dashed. The plaintext run is drawn wide and pale, the encrypted run
/// dashed on top, so both stay visible where they agree.
const RUNS: [(&str, &str, bool); 2] =
    [("plaintext training", "#1f5fbf", false), ("encrypted training (decrypted)", "#d9480f", true)];

fn stroke(dashed: bool) -> &'static str {
    if dashed { r#" stroke-width="2" stroke-dasharray="6 4""# } else { r#" stroke-width="5" stroke-opacity="0.45""# }
}

/// One run's curve in a panel.
struct Curve {
    color: &'static str,
    dashed: bool,
    values: Vec<f64>,
}

/// A plot area in SVG coordinates with its data ranges.
struct Area {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    epochs: usize,
    y: (f64, f64),
}

impl Area {
    fn x(&self, epoch: usize) -> f64 {
        let span = self.epochs.saturating_sub(1).max(1) as f64;
        self.left + (epoch.saturating_sub(1)) as f64 / span * self.width
    }

    fn y(&self, v: f64) -> f64 {
        let (lo, hi) = self.y;
        self.top + self.height - (v - lo) / (hi - lo).max(1e-12) * self.height
    }

    fn frame(&self, title: &str, svg: &mut String) {
        let (l, t, w, h) = (self.left, self.top, self.width, self.height);
        let _ = writeln!(svg, r##"<rect x="{l}" y="{t}" width="{w}" height="{h}" fill="#fff" stroke="#555"/>"##);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{title}</text>"#,
            l + w / 2.0,
            t - 8.0
        );
        for e in 1..=self.epochs {
            let x = self.x(e);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{e}</text>"##,
                t + h,
                t + h + 15.0
            );
        }
        let _ = writeln!(svg, r#"<text x="{}" y="{}" text-anchor="middle">epoch</text>"#, l + w / 2.0, t + h + 32.0);
        let (step, decimals) = tick_step(self.y.1 - self.y.0);
        let first = (self.y.0 / step).ceil() as i64;
        let last = (self.y.1 / step).floor() as i64;
        for k in first..=last {
            let v = k as f64 * step;
            let y = self.y(v);
            let _ = writeln!(
                svg,
                r##"<line x1="{l}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.decimals$}</text>"##,
                l + w,
                l - 5.0,
                y + 4.0,
            );
        }
    }

    fn curve(&self, c: &Curve, svg: &mut String) {
        // Epochs without a value (no validation split) are left out rather than drawn as NaN.
        let points: Vec<String> = (c.values.iter().enumerate().filter(|(_, v)| v.is_finite()))
            .map(|(i, &v)| format!("{:.1},{:.1}", self.x(i + 1), self.y(v)))
            .collect();
        let style = stroke(c.dashed);
        let _ = writeln!(svg, r#"<polyline points="{}" fill="none" stroke="{}"{style}/>"#, points.join(" "), c.color);
    }
}

/// A 1-2-5 step giving 3 to 8 ticks over `span`, and the decimals its labels need.
fn tick_step(span: f64) -> (f64, usize) {
    let raw = (span / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|&s| s >= raw).unwrap_or(10.0 * mag);
    (step, (-step.log10().floor()).max(0.0) as usize)
}

fn range(curves: &[Curve]) -> (f64, f64) {
    let all = curves.iter().flat_map(|c| c.values.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

/// The SVG: `title` on top, two panels (training loss, validation accuracy in %) with the plaintext run
/// solid and the encrypted run dashed; the best epoch of each run marked on the accuracy panel.
pub fn training_curves_svg(title: &str, plain: &History, encrypted: &History) -> String {
    let epochs = plain.epochs.len().max(encrypted.epochs.len()).max(2);
    let runs = [plain, encrypted];
    // One panel's two curves: `f` of every epoch of each run (NaN where it has no value).
    let curves = |f: &dyn Fn(&more_nn::train::EpochStats) -> Option<f64>| -> Vec<Curve> {
        (runs.iter().zip(RUNS))
            .map(|(h, (_, color, dashed))| Curve {
                color,
                dashed,
                values: h.epochs.iter().map(|e| f(e).unwrap_or(f64::NAN)).collect(),
            })
            .collect()
    };
    let loss = curves(&|e| Some(e.train_loss));
    let acc = curves(&|e| e.val_accuracy.map(|a| 100.0 * a));
    let (w, h) = (860.0, 380.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    svg.push('\n');
    let _ = writeln!(svg, r##"<rect width="{w}" height="{h}" fill="#fafafa"/>"##);
    let _ =
        writeln!(svg, r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#, w / 2.0, escape(title));
    let areas = [
        (Area { left: 70.0, top: 70.0, width: 330.0, height: 230.0, epochs, y: range(&loss) }, "training loss", &loss),
        (
            Area { left: 500.0, top: 70.0, width: 330.0, height: 230.0, epochs, y: range(&acc) },
            "validation accuracy (%)",
            &acc,
        ),
    ];
    for (area, name, curves) in &areas {
        area.frame(name, &mut svg);
        for c in curves.iter() {
            area.curve(c, &mut svg);
        }
    }
    let acc_area = &areas[1].0;
    for (hist, (_, color, _)) in runs.iter().zip(RUNS) {
        if let Some(e) = hist.epochs.get(hist.best_epoch.saturating_sub(1)).and_then(|e| e.val_accuracy) {
            let (x, y) = (acc_area.x(hist.best_epoch), acc_area.y(100.0 * e));
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="none" stroke="{color}" stroke-width="2"/>"#
            );
        }
    }
    for (i, (label, color, dashed)) in RUNS.into_iter().enumerate() {
        let y = 350.0;
        let x = 220.0 + 260.0 * i as f64;
        let style = stroke(dashed);
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}"{style}/><text x="{}" y="{}">{label}</text>"#,
            x + 30.0,
            x + 36.0,
            y + 4.0,
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="372" text-anchor="middle" fill="#555">circles: the epoch each run kept (best validation accuracy)</text>"##,
        w / 2.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use more_nn::train::EpochStats;

    fn history(acc: &[f64], best: usize) -> History {
        History {
            epochs: acc
                .iter()
                .enumerate()
                .map(|(i, &a)| EpochStats {
                    epoch: i + 1,
                    train_loss: 1.0 / (i + 1) as f64,
                    train_accuracy: Some(a),
                    val_loss: Some(0.5),
                    val_accuracy: Some(a),
                    seconds: 1.0,
                    train_seconds: 1.0,
                })
                .collect(),
            best_epoch: best,
            stopped_early: false,
        }
    }

    #[test]
    fn two_panels_two_runs_and_best_epochs() {
        let svg = training_curves_svg("a <b> & c", &history(&[0.5, 0.9, 0.8], 2), &history(&[0.5, 0.9], 2));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        // The best epoch of the first run (90%) sits at the top of the accuracy panel's data range.
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn epochs_without_validation_are_left_out() {
        let mut h = history(&[0.5, 0.9], 2);
        h.epochs[0].val_accuracy = None;
        let svg = training_curves_svg("t", &h, &h);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn tick_steps_are_1_2_5() {
        assert_eq!(tick_step(1.0), (0.2, 1));
        assert_eq!(tick_step(0.22).1, 2);
        assert_eq!(tick_step(40.0), (10.0, 0));
    }
}
