//! The data-set generator: Latin-hypercube sampling, simulation, CSV round trip.

use more_hemo::{Dataset, N_PARAMS, PARAMETERS, SimOptions, generate, latin_hypercube, plot};

#[test]
fn latin_hypercube_uses_every_stratum_once() {
    let n = 50;
    let rows = latin_hypercube(n, 7);
    assert_eq!(rows.len(), n);
    for (j, spec) in PARAMETERS.iter().enumerate() {
        let mut seen = vec![false; n];
        for r in &rows {
            assert!(r[j] >= spec.min && r[j] <= spec.max);
            let k = (((r[j] - spec.min) / (spec.max - spec.min)) * n as f64).floor() as usize;
            assert!(!seen[k.min(n - 1)], "stratum {k} of {} used twice", spec.name);
            seen[k.min(n - 1)] = true;
        }
    }
    assert_eq!(latin_hypercube(n, 7), rows, "deterministic in the seed");
    assert_ne!(latin_hypercube(n, 8), rows);
}

#[test]
fn generate_and_csv_round_trip() {
    let count = std::sync::atomic::AtomicUsize::new(0);
    let d = generate(6, 1, &SimOptions::default(), &|| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(count.into_inner(), 6);
    assert_eq!(d.len() + d.failed, 6);
    assert_eq!(d.failed, 0);
    for (x, y) in d.inputs.iter().zip(&d.outputs) {
        assert_eq!(x.len(), N_PARAMS);
        assert!(y[0] > y[1], "systolic above diastolic");
        assert!(y.iter().all(|v| v.is_finite() && *v > 0.0));
    }
    let mut buf = Vec::new();
    d.write_csv(&mut buf).unwrap();
    let back = Dataset::read_csv(&buf[..]).unwrap();
    assert_eq!(back.inputs, d.inputs);
    assert_eq!(back.outputs, d.outputs);
    assert!(Dataset::read_csv(&b"a,b\n1,2\n"[..]).is_err());
}

#[test]
fn figure_and_csv_of_waveforms() {
    let s = more_hemo::simulate(&Default::default()).unwrap();
    let svg = plot::waveforms_svg(&s);
    assert!(svg.starts_with("<svg") && svg.contains("pressure–volume loop"));
    let csv = plot::waveforms_csv(&s);
    assert_eq!(csv.lines().count(), s.waveforms.time.len() + 1);
}

#[test]
fn scaling_round_trips_and_errors_are_measured() {
    use more_hemo::surrogate::{Scaling, errors};
    let d = generate(8, 3, &SimOptions::default(), &|| {});
    let s = Scaling::fit(&d);
    let x = s.inputs(&d);
    assert_eq!(x.len(), 8 * N_PARAMS);
    let mean0: f32 = x.iter().step_by(N_PARAMS).sum::<f32>() / 8.0;
    assert!(mean0.abs() < 1e-5);
    let y = s.targets(&d);
    let back = s.outputs(&y);
    let e = errors(&back, &d.outputs);
    assert!(e.mean_rel.iter().all(|r| *r < 1e-6), "{e:?}");
    // a 1% bias is measured as 1%
    let biased: Vec<_> = d.outputs.iter().map(|r| r.map(|v| v * 1.01)).collect();
    let e = errors(&biased, &d.outputs);
    assert!(e.mean_rel.iter().all(|r| (r - 0.01).abs() < 1e-9), "{e:?}");
}
