//! Waveforms as CSV and as a small self-contained SVG figure (pressures over one beat and the LV
//! pressure–volume loop).

use std::fmt::Write as _;

use crate::simulate::Simulation;

/// The final beat's waveforms as CSV (one row per sample).
pub fn waveforms_csv(sim: &Simulation) -> String {
    let w = &sim.waveforms;
    let mut s = String::from(
        "time_s,aortic_pressure_mmHg,lv_pressure_mmHg,la_pressure_mmHg,lv_volume_mL,pulmonary_pressure_mmHg,rv_pressure_mmHg,aortic_flow_mL_s\n",
    );
    for i in 0..w.time.len() {
        let _ = writeln!(
            s,
            "{:.5},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4}",
            w.time[i],
            w.aortic_pressure[i],
            w.lv_pressure[i],
            w.la_pressure[i],
            w.lv_volume[i],
            w.pulmonary_pressure[i],
            w.rv_pressure[i],
            w.aortic_flow[i]
        );
    }
    s
}

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    xr: (f64, f64),
    yr: (f64, f64),
}

impl Panel {
    fn px(&self, x: f64) -> f64 {
        self.x0 + (x - self.xr.0) / (self.xr.1 - self.xr.0) * self.w
    }
    fn py(&self, y: f64) -> f64 {
        self.y0 + self.h - (y - self.yr.0) / (self.yr.1 - self.yr.0) * self.h
    }
    fn path(&self, xs: &[f64], ys: &[f64], color: &str, svg: &mut String) {
        let mut d = String::new();
        for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
            let _ = write!(d, "{}{:.1},{:.1} ", if i == 0 { "M" } else { "L" }, self.px(*x), self.py(*y));
        }
        let _ = writeln!(svg, r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="2"/>"#);
    }
    fn axes(&self, xlabel: &str, ylabel: &str, xticks: &[f64], yticks: &[f64], svg: &mut String) {
        let _ = writeln!(
            svg,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#fff" stroke="#444"/>"##,
            self.x0, self.y0, self.w, self.h
        );
        for &t in xticks {
            let x = self.px(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                self.y0,
                self.y0 + self.h,
                self.y0 + self.h + 16.0,
                trim(t)
            );
        }
        for &t in yticks {
            let y = self.py(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                self.x0,
                self.x0 + self.w,
                self.x0 - 6.0,
                y + 4.0,
                trim(t)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{xlabel}</text><text transform="translate({},{}) rotate(-90)" text-anchor="middle">{ylabel}</text>"#,
            self.x0 + self.w / 2.0,
            self.y0 + self.h + 36.0,
            self.x0 - 42.0,
            self.y0 + self.h / 2.0
        );
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + 1e-9 {
        v.push(t);
        t += step;
    }
    v
}

/// A two-panel SVG: aortic, LV and LA pressure over the final beat, and the LV pressure–volume loop.
pub fn waveforms_svg(sim: &Simulation) -> String {
    let w = &sim.waveforms;
    let o = &sim.outputs;
    let p_max = w.lv_pressure.iter().chain(&w.aortic_pressure).cloned().fold(0.0, f64::max);
    let p_top = (p_max / 20.0).ceil() * 20.0;
    let t_end = *w.time.last().unwrap_or(&1.0);
    let v_lo = (o.end_systolic_volume / 20.0).floor() * 20.0 - 20.0;
    let v_hi = (o.end_diastolic_volume / 20.0).ceil() * 20.0 + 20.0;
    let left = Panel { x0: 60.0, y0: 52.0, w: 360.0, h: 228.0, xr: (0.0, t_end), yr: (0.0, p_top) };
    let right = Panel { x0: 520.0, y0: 52.0, w: 260.0, h: 228.0, xr: (v_lo.max(0.0), v_hi), yr: (0.0, p_top) };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="820" height="340" viewBox="0 0 820 340" font-family="sans-serif" font-size="12">
<rect width="820" height="340" fill="#fafafa"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="60" y="24" font-size="14" font-weight="bold">Pressures over one beat — {:.0} bpm: {:.0}/{:.0} mmHg (mean {:.0}), SV {:.0} mL, CO {:.1} L/min, EF {:.0}%</text>"#,
        sim.params.heart_rate,
        o.systolic_pressure,
        o.diastolic_pressure,
        o.mean_pressure,
        o.stroke_volume,
        o.cardiac_output,
        o.ejection_fraction
    );
    left.axes("time (s)", "pressure (mmHg)", &ticks(0.0, t_end, 0.2), &ticks(0.0, p_top, 20.0), &mut s);
    left.path(&w.time, &w.la_pressure, "#2a9d8f", &mut s);
    left.path(&w.time, &w.lv_pressure, "#e63946", &mut s);
    left.path(&w.time, &w.aortic_pressure, "#1d3557", &mut s);
    let legend = [("#1d3557", "aorta"), ("#e63946", "left ventricle"), ("#2a9d8f", "left atrium")];
    for (i, (c, name)) in legend.iter().enumerate() {
        let x = 60.0 + 110.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="40" x2="{}" y2="40" stroke="{c}" stroke-width="2"/><text x="{}" y="44">{name}</text>"#,
            x + 20.0,
            x + 25.0
        );
    }
    right.axes(
        "LV volume (mL)",
        "LV pressure (mmHg)",
        &ticks(right.xr.0, v_hi, 40.0),
        &ticks(0.0, p_top, 20.0),
        &mut s,
    );
    right.path(&w.lv_volume, &w.lv_pressure, "#e63946", &mut s);
    let _ = writeln!(s, r#"<text x="520" y="44">LV pressure–volume loop</text>"#);
    s.push_str("</svg>\n");
    s
}
