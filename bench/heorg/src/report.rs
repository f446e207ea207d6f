//! How the stages report: one indented line per step on standard output (the harness shows it under its
//! own step lines), and seconds since an instant.

use std::time::Instant;

/// Prints a log line indented like the harness's own (`side` is `client` or `server`).
pub(crate) fn log(side: &str, msg: std::fmt::Arguments<'_>) {
    println!("         [{side}] {msg}");
}

/// Seconds since `t`.
pub(crate) fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
