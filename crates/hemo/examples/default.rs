//! Prints the outputs of the default adult.
fn main() {
    let t = std::time::Instant::now();
    let s = more_hemo::simulate(&more_hemo::PatientParams::default()).unwrap();
    println!(
        "{:#?}\nbeats {} change {:e} drift {:e} time {:?}",
        s.outputs,
        s.beats,
        s.periodicity_error,
        s.volume_drift,
        t.elapsed()
    );
}
