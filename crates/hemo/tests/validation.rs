//! Physiological validation of the circulation model.

use more_hemo::{Error, PARAMETERS, PatientParams, SimOptions, simulate, simulate_with};

fn with(name: &str, value: f64) -> PatientParams {
    let mut p = PatientParams::default();
    p.set(name, value).unwrap();
    p
}

#[test]
fn default_adult_is_in_normal_ranges() {
    let s = simulate(&PatientParams::default()).unwrap();
    let o = s.outputs;
    assert!((110.0..=130.0).contains(&o.systolic_pressure), "systolic {}", o.systolic_pressure);
    assert!((70.0..=85.0).contains(&o.diastolic_pressure), "diastolic {}", o.diastolic_pressure);
    assert!((85.0..=105.0).contains(&o.mean_pressure), "mean {}", o.mean_pressure);
    assert!((4.0..=7.0).contains(&o.cardiac_output), "CO {}", o.cardiac_output);
    assert!((50.0..=70.0).contains(&o.ejection_fraction), "EF {}", o.ejection_fraction);
    assert!((55.0..=100.0).contains(&o.stroke_volume), "SV {}", o.stroke_volume);
    assert!((100.0..=160.0).contains(&o.end_diastolic_volume), "EDV {}", o.end_diastolic_volume);
    assert!((0.0..=10.0).contains(&o.central_venous_pressure), "CVP {}", o.central_venous_pressure);
    assert!((8.0..=20.0).contains(&o.pulmonary_pressure), "mPAP {}", o.pulmonary_pressure);
    assert!(o.mean_pressure > o.diastolic_pressure && o.mean_pressure < o.systolic_pressure);
}

#[test]
fn blood_volume_is_conserved() {
    let p = PatientParams::default();
    let s = simulate(&p).unwrap();
    // stated tolerance: 1e-9 of the total volume over the whole run
    assert!(s.volume_drift < 1e-9 * p.blood_volume, "drift {} mL", s.volume_drift);
    // the same at the extremes of two parameters
    let q = PatientParams { heart_rate: 110.0, lv_contractility: 3.8, ..p };
    let s = simulate(&q).unwrap();
    assert!(s.volume_drift < 1e-9 * q.blood_volume, "drift {} mL", s.volume_drift);
}

#[test]
fn reaches_periodic_steady_state() {
    let s = simulate(&PatientParams::default()).unwrap();
    assert!(s.periodicity_error < 1e-4);
    // a tighter tolerance takes more beats and moves the outputs by less than the looser one's error
    let tight =
        simulate_with(&PatientParams::default(), &SimOptions { tolerance: 1e-7, ..Default::default() }).unwrap();
    assert!(tight.beats > s.beats);
    for (a, b) in s.outputs.to_array().iter().zip(tight.outputs.to_array()) {
        assert!(((a - b) / b).abs() < 1e-3, "{a} vs {b}");
    }
}

#[test]
fn step_size_is_converged() {
    let p = PatientParams::default();
    let a = simulate(&p).unwrap();
    let b = simulate_with(&p, &SimOptions { steps_per_beat: 4000, ..Default::default() }).unwrap();
    for (x, y) in a.outputs.to_array().iter().zip(b.outputs.to_array()) {
        assert!(((x - y) / y).abs() < 1e-3, "{x} vs {y}");
    }
}

#[test]
fn higher_resistance_raises_mean_pressure() {
    let lo = simulate(&with("systemic_resistance", 0.6)).unwrap().outputs;
    let hi = simulate(&with("systemic_resistance", 1.1)).unwrap().outputs;
    assert!(hi.mean_pressure > lo.mean_pressure + 10.0, "{} vs {}", hi.mean_pressure, lo.mean_pressure);
    // and lowers stroke volume (afterload)
    assert!(hi.stroke_volume < lo.stroke_volume);
}

#[test]
fn higher_contractility_raises_stroke_volume_and_ejection_fraction() {
    let lo = simulate(&with("lv_contractility", 1.6)).unwrap().outputs;
    let hi = simulate(&with("lv_contractility", 3.6)).unwrap().outputs;
    assert!(hi.stroke_volume > lo.stroke_volume);
    assert!(hi.ejection_fraction > lo.ejection_fraction + 5.0);
    assert!(hi.end_systolic_volume < lo.end_systolic_volume);
}

#[test]
fn lower_compliance_widens_pulse_pressure() {
    let stiff = simulate(&with("arterial_compliance", 0.8)).unwrap().outputs;
    let soft = simulate(&with("arterial_compliance", 1.8)).unwrap().outputs;
    let pp = |o: &more_hemo::Outputs| o.systolic_pressure - o.diastolic_pressure;
    assert!(pp(&stiff) > pp(&soft) + 10.0, "{} vs {}", pp(&stiff), pp(&soft));
}

#[test]
fn more_blood_volume_raises_preload_and_output() {
    let lo = simulate(&with("blood_volume", 4600.0)).unwrap().outputs;
    let hi = simulate(&with("blood_volume", 5500.0)).unwrap().outputs;
    assert!(hi.end_diastolic_volume > lo.end_diastolic_volume);
    assert!(hi.stroke_volume > lo.stroke_volume);
    assert!(hi.central_venous_pressure > lo.central_venous_pressure);
}

#[test]
fn faster_heart_rate_lowers_stroke_volume_raises_output() {
    let lo = simulate(&with("heart_rate", 60.0)).unwrap().outputs;
    let hi = simulate(&with("heart_rate", 100.0)).unwrap().outputs;
    assert!(hi.stroke_volume < lo.stroke_volume);
    assert!(hi.cardiac_output > lo.cardiac_output);
}

#[test]
fn stiffer_ventricle_fills_less() {
    let lo = simulate(&with("lv_stiffness", 0.06)).unwrap().outputs;
    let hi = simulate(&with("lv_stiffness", 0.14)).unwrap().outputs;
    assert!(hi.end_diastolic_volume < lo.end_diastolic_volume);
}

#[test]
fn out_of_range_parameters_are_errors() {
    for spec in PARAMETERS {
        for bad in [spec.min * 0.5, spec.max * 2.0, f64::NAN] {
            let err = simulate(&with(spec.name, bad)).unwrap_err();
            assert!(matches!(err, Error::OutOfRange { name, .. } if name == spec.name), "{err}");
        }
    }
    assert!(matches!(PatientParams::from_slice(&[1.0]), Err(Error::WrongLength { expected: 7, got: 1 })));
    assert!(PatientParams::default().set("nope", 1.0).is_err());
}

#[test]
fn waveforms_cover_one_beat() {
    let s = simulate(&PatientParams::default()).unwrap();
    let w = &s.waveforms;
    let period = 60.0 / s.params.heart_rate;
    assert!(w.time.len() > 100);
    assert!((w.time.last().unwrap() - period).abs() < 1e-9);
    assert_eq!(w.aortic_pressure.len(), w.time.len());
    assert_eq!(w.lv_volume.len(), w.time.len());
    // the LV pressure exceeds the aortic pressure during ejection only
    let max_lv = w.lv_pressure.iter().cloned().fold(f64::MIN, f64::max);
    assert!((max_lv - s.outputs.systolic_pressure).abs() < 15.0);
}
