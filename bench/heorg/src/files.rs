//! Reading and writing the files the stages exchange, each with a size cap and an error that names the file
//! and what is wrong with it.
//!
//! Text files (the harness's pixels, the client's quantized images and logits) hold one image per line,
//! values separated by spaces. Binary files start with an 8-byte magic so that a file of the wrong kind is
//! refused by name.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use more_bfv::network::IMAGE;

/// Pixels per image.
pub const PIXELS: usize = IMAGE * IMAGE;

/// Magic of the secret key file.
pub const SECRET_KEY_MAGIC: &[u8; 8] = b"MHEORGS1";

/// Reads a whole file after checking that it exists and holds at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
    read_output_of(path, cap, what, "")
}

/// [`read_capped`] for a file that the stage `made_by` writes: a missing file is reported as "does not
/// exist: run `made_by` first".
pub fn read_output_of(path: &Path, cap: u64, what: &str, made_by: &str) -> Result<Vec<u8>> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !made_by.is_empty() => {
            bail!("{what} {} does not exist: run {made_by} first", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("{what} {}: cannot read", path.display())),
    };
    if len > cap {
        bail!("{what} {}: {len} bytes, at most {cap} expected", path.display());
    }
    fs::read(path).with_context(|| format!("{what} {}: cannot read", path.display()))
}

/// Writes a file, naming it in the error.
pub fn write(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("{what} {}: cannot write", path.display()))
}

/// Removes `dir` if it exists and creates it empty, so that no file of an earlier run is counted in the
/// sizes the harness measures.
pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("{}: cannot remove the old directory", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the directory", dir.display()))
}

/// Creates `dir` and its parents if missing.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the directory", dir.display()))
}

/// Writes the secret key seed (magic + 32 bytes), readable by its owner only.
pub fn write_secret_seed(path: &Path, seed: &[u8; 32]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("secret key {}: cannot create", path.display()))?;
    f.write_all(SECRET_KEY_MAGIC)
        .and_then(|_| f.write_all(seed))
        .with_context(|| format!("secret key {}: cannot write", path.display()))
}

/// Reads the secret key seed written by [`write_secret_seed`].
pub fn read_secret_seed(path: &Path) -> Result<[u8; 32]> {
    let bytes = read_output_of(path, 40, "secret key", "client_key_generation")?;
    if bytes.len() != 40 || &bytes[..8] != SECRET_KEY_MAGIC {
        bail!(
            "secret key {}: not a key file of this submission (expected 40 bytes starting with MHEORGS1)",
            path.display()
        );
    }
    Ok(bytes[8..].try_into().expect("32 bytes"))
}

/// Reads a text matrix written by the stage `made_by`: exactly `rows` non-empty lines of `cols` values each,
/// each value parsed by `parse` (which says what is wrong with a value). Errors name the file, the line and
/// the column.
pub fn read_matrix<T>(
    path: &Path,
    what: &str,
    made_by: &str,
    rows: usize,
    cols: usize,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Vec<Vec<T>>> {
    // Generous: 32 bytes per value.
    let cap = (rows * cols * 32 + 4096) as u64;
    let bytes = read_output_of(path, cap, what, made_by)?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{what} {}: not UTF-8 text", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != rows {
        bail!("{what} {}: {} lines, expected {rows} (one per image of this instance)", path.display(), lines.len());
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() != cols {
                bail!("{what} {} line {}: {} values, expected {cols}", path.display(), i + 1, fields.len());
            }
            fields
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    parse(f).map_err(|e| {
                        anyhow::anyhow!("{what} {} line {} value {}: {f:?} {e}", path.display(), i + 1, j + 1)
                    })
                })
                .collect()
        })
        .collect()
}

/// Writes a text matrix (one row per line, values separated by spaces).
pub fn write_matrix<T: std::fmt::Display>(path: &Path, what: &str, rows: &[Vec<T>]) -> Result<()> {
    let mut out = String::with_capacity(rows.len() * rows.first().map_or(0, |r| r.len() * 4));
    for row in rows {
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            out.push_str(&v.to_string());
        }
        out.push('\n');
    }
    write(path, out.as_bytes(), what)
}

/// `"1 image"`, `"15 images"`.
pub fn images(n: usize) -> String {
    count(n, "image", "images")
}

/// `n` and the noun in the singular or plural.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Parses a pixel of the harness's `test_pixels.txt`: a number in `[0, 1]`.
pub fn parse_pixel(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) => Err("is outside [0, 1] (pixels are expected as intensity / 255)".into()),
        Err(_) => Err("is not a number".into()),
    }
}

/// Parses an integer in `lo..=hi`.
pub fn parse_int_in(lo: i64, hi: i64) -> impl Fn(&str) -> std::result::Result<i64, String> {
    move |s| match s.parse::<i64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        Ok(_) => Err(format!("is outside {lo}..={hi}")),
        Err(_) => Err("is not an integer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        assert_eq!(parse_pixel("0.501961"), Ok(0.501_961));
        assert!(parse_pixel("255").is_err());
        assert!(parse_pixel("NaN").is_err());
        assert!(parse_pixel("x").is_err());
        assert_eq!(parse_int_in(0, 15)("15"), Ok(15));
        assert!(parse_int_in(0, 15)("16").is_err());
    }
}
