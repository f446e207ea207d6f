//! The figure of a study (`more reproduce TASK --runs K --svg FILE`): per headline metric both sides' values
//! run by run with their mean and ± sd, and the weight drift per epoch of every run that recorded it.

use std::fmt::Write as _;

use crate::study::{MetricReport, RunSummary, StudyReport};

/// Both sides' distributions per metric (dots per run, mean and ± sd) and the weight drift per epoch,
/// as one self-contained SVG.
pub fn study_svg(r: &StudyReport) -> String {
    let panels: Vec<&MetricReport> = r.metrics.iter().collect();
    let has_drift = r.run_details.iter().any(|d| !d.weight_drift.is_empty());
    let (pw, ph, gap) = (260.0, 260.0, 70.0);
    let n_panels = panels.len() + usize::from(has_drift);
    let width = 40.0 + n_panels as f64 * (pw + gap);
    let height = ph + 140.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="20" y="24" font-size="15" font-weight="bold">{}: {} plaintext vs {} encrypted training runs (seeds {}–{})</text>"#,
        r.task,
        r.runs,
        r.runs,
        r.seeds.first().unwrap_or(&0),
        r.seeds.last().unwrap_or(&0)
    );
    let top = 70.0;
    for (i, m) in panels.iter().enumerate() {
        let left = 60.0 + i as f64 * (pw + gap);
        let all: Vec<f64> = m.plain_values.iter().chain(&m.encrypted_values).map(|v| v * m.scale).collect();
        let (mut lo, mut hi) =
            (all.iter().copied().fold(f64::INFINITY, f64::min), all.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        let pad = ((hi - lo) * 0.15).max(1e-6 * hi.abs().max(1.0));
        lo -= pad;
        hi += pad;
        let y = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;
        let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#555"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{} ({})</text>"#,
            left + pw / 2.0,
            top - 10.0,
            m.name,
            m.unit.trim()
        );
        for k in 0..=4 {
            let v = lo + (hi - lo) * k as f64 / 4.0;
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.3}</text>"##,
                left + pw,
                left - 5.0,
                y(v) + 4.0,
                yy = y(v)
            );
        }
        for (col, (label, color, values, summary)) in [
            ("plaintext", "#1f5fbf", &m.plain_values, &m.plain),
            ("encrypted", "#d9480f", &m.encrypted_values, &m.encrypted),
        ]
        .into_iter()
        .enumerate()
        {
            let cx = left + pw * (0.3 + 0.4 * col as f64);
            let n = values.len().max(1) as f64;
            for (j, v) in values.iter().enumerate() {
                let jitter = (j as f64 - (n - 1.0) / 2.0) * (40.0 / n);
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}" fill-opacity="0.7"/>"#,
                    cx + jitter,
                    y(v * m.scale)
                );
            }
            let (mean, sd) = (summary.mean * m.scale, summary.sd * m.scale);
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="60" height="{:.1}" fill="{color}" fill-opacity="0.12" stroke="{color}"/>"#,
                cx - 30.0,
                y(mean + sd),
                (y(mean - sd) - y(mean + sd)).max(0.5)
            );
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{ym:.1}" y2="{ym:.1}" stroke="{color}" stroke-width="3"/>"#,
                cx - 34.0,
                cx + 34.0,
                ym = y(mean)
            );
            let _ = writeln!(s, r#"<text x="{cx:.1}" y="{}" text-anchor="middle">{label}</text>"#, top + ph + 18.0);
            let _ = writeln!(
                s,
                r#"<text x="{cx:.1}" y="{}" text-anchor="middle">{mean:.3} ± {sd:.3}</text>"#,
                top + ph + 34.0
            );
        }
        if let Some(v) = &m.verdict {
            let short =
                if v.within_seed_spread { "within the seed-to-seed spread" } else { "outside the seed-to-seed spread" };
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{short}</text>"#,
                left + pw / 2.0,
                top + ph + 52.0
            );
        }
    }
    if has_drift {
        let left = 60.0 + panels.len() as f64 * (pw + gap);
        let runs: Vec<&RunSummary> = r.run_details.iter().filter(|d| !d.weight_drift.is_empty()).collect();
        let epochs = runs.iter().map(|d| d.weight_drift.len()).max().unwrap_or(1).max(2);
        let vals: Vec<f64> =
            runs.iter().flat_map(|d| d.weight_drift.iter().map(|x| x.max_abs)).filter(|v| *v > 0.0).collect();
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min).log10().floor();
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max).log10().ceil().max(lo + 1.0);
        let y = |v: f64| top + ph - (v.max(1e-30).log10() - lo) / (hi - lo) * ph;
        let x = |e: usize| left + (e - 1) as f64 / (epochs - 1) as f64 * pw;
        let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#555"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">largest weight drift per epoch</text>"#,
            left + pw / 2.0,
            top - 10.0
        );
        let mut p = lo;
        while p <= hi {
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">1e{p}</text>"##,
                left + pw,
                left - 5.0,
                y(10f64.powf(p)) + 4.0,
                yy = y(10f64.powf(p))
            );
            p += 1.0;
        }
        let _ =
            writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">epoch</text>"#, left + pw / 2.0, top + ph + 18.0);
        for (i, d) in runs.iter().enumerate() {
            let kappa = d.key_condition.unwrap_or(1.0);
            // Colour by κ: blue (1) to red (10 and above).
            let t = ((kappa - 1.0) / 9.0).clamp(0.0, 1.0);
            let color = format!("rgb({},{},{})", (40.0 + 200.0 * t) as u8, 70, (200.0 - 160.0 * t) as u8);
            let pts: Vec<String> =
                d.weight_drift.iter().map(|w| format!("{:.1},{:.1}", x(w.epoch), y(w.max_abs))).collect();
            let dash = if d.name.starts_with("kappa") { "" } else { r#" stroke-dasharray="4 3""# };
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                pts.join(" ")
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" fill="{color}">{} κ={kappa:.2}</text>"#,
                left + pw + 6.0,
                top + 14.0 + 14.0 * i as f64,
                d.name
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
