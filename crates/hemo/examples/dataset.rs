//! Writes a data set as CSV: `cargo run --release -p more-hemo --features parallel --example dataset -- N SEED OUT`.
//! (The `more wbc dataset` command is the user-facing way; this example has no progress bar.)
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let out = args.get(3).cloned().unwrap_or_else(|| "wbc.csv".into());
    let t = std::time::Instant::now();
    let d = more_hemo::generate(n, seed, &Default::default(), &|| {});
    let f = std::io::BufWriter::new(std::fs::File::create(&out).expect("create"));
    d.write_csv(f).expect("write");
    println!("{} samples ({} failed) in {:?} -> {out}", d.len(), d.failed, t.elapsed());
}
