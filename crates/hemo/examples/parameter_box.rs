//! Simulates every corner of the parameter box and prints the extremes of the outputs.
use more_hemo::*;
fn main() {
    let mut worst_beats = 0;
    let mut lo = [f64::INFINITY; 6];
    let mut hi = [f64::NEG_INFINITY; 6];
    let mut max_dt = 0.0f64;
    for mask in 0..(1u32 << N_PARAMS) {
        let a: Vec<f64> =
            PARAMETERS.iter().enumerate().map(|(i, s)| if mask >> i & 1 == 1 { s.max } else { s.min }).collect();
        let p = PatientParams::from_slice(&a).unwrap();
        match simulate(&p) {
            Ok(s) => {
                worst_beats = worst_beats.max(s.beats);
                for (i, v) in s.outputs.to_array().iter().enumerate() {
                    lo[i] = lo[i].min(*v);
                    hi[i] = hi[i].max(*v);
                }
                let fine = simulate_with(&p, &SimOptions { steps_per_beat: 4000, ..Default::default() }).unwrap();
                for (a, b) in s.outputs.to_array().iter().zip(fine.outputs.to_array()) {
                    max_dt = max_dt.max(((a - b) / b).abs());
                }
            }
            Err(e) => println!("{a:?}: {e}"),
        }
    }
    println!("worst beats {worst_beats}\nlo {lo:?}\nhi {hi:?}\nmax rel diff 1000 vs 4000 steps {max_dt:e}");
}
