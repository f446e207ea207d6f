//! Writes the default adult's waveform figure: `cargo run -p more-hemo --example figure -- out.svg`.
fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "wbc-waveforms.svg".into());
    let s = more_hemo::simulate(&more_hemo::PatientParams::default()).expect("default simulation");
    std::fs::write(&path, more_hemo::plot::waveforms_svg(&s)).expect("write");
    println!("wrote {path}");
}
