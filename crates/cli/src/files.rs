//! Files the commands write: model paths, the recorded command line, the private key file, figures.
//!
//! Model files follow one rule: a command never replaces an existing file unless it was given `--force`
//! ([`refuse_existing`], checked before any work starts), and it says where it wrote and how much
//! ([`wrote`]). Without `--out`, models go to `crate::paths::TRAINED_DIR`, away from the bundled `models/`
//! the server serves.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The command line as a model file records it: `more` and the arguments, whatever path the binary ran
/// from (`./target/release/more`, `cargo run`'s `target/...`), so the record reads as the documented command.
pub fn command_line() -> String {
    std::iter::once("more".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ")
}

/// `out`, else `trained/<id>.morenn`; refused if the file exists and `force` is not set; its directory is
/// created.
pub fn model_path(out: Option<&Path>, id: &str, force: bool) -> Result<PathBuf> {
    let out = out.map_or_else(|| default_model_path(id), Path::to_path_buf);
    refuse_existing(&[&out], force)?;
    create_parent(&out)?;
    Ok(out)
}

/// `trained/<id>.morenn`.
pub fn default_model_path(id: &str) -> PathBuf {
    Path::new(crate::paths::TRAINED_DIR).join(format!("{id}.{}", more_nn::model::FILE_EXTENSION))
}

/// The files `more train <task> --encrypted` writes: the decrypted model at `out`, the still-encrypted
/// model (`.moreenc`) and the key (`.key.json`) next to it; each is refused if it exists and `force` is
/// not set.
pub fn encrypted_outputs(out: Option<&Path>, id: &str, force: bool) -> Result<PathBuf> {
    let path = model_path(out, id, true)?;
    refuse_existing(&[&path, &path.with_extension("moreenc"), &path.with_extension("key.json")], force)?;
    Ok(path)
}

/// An error for the first of `paths` that exists, unless `force`: the file is named and `--out` or
/// `--force` suggested. Called before any work, so that a long run is not lost at the end.
pub fn refuse_existing(paths: &[&Path], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    if let Some(path) = paths.iter().find(|p| p.exists()) {
        bail!("{} already exists; pass --out PATH to write elsewhere, or --force to overwrite it", path.display());
    }
    Ok(())
}

/// Says where a file was written and its size: `wrote trained/x.morenn (12,345 bytes)`, with `note` in
/// parentheses after the size if given. To stderr when stdout carries JSON (`json`), else to stdout.
pub fn wrote(path: &Path, note: Option<&str>, json: bool) {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let note = note.map(|n| format!("; {n}")).unwrap_or_default();
    let line = format!("wrote {} ({} bytes{note})", path.display(), thousands(bytes));
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// `n` with a comma every three digits: `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for people: `512 bytes`, `163.4 KiB`, `64 MiB`, `462.3 MiB` (one decimal, none when it
/// is zero).
pub fn human_bytes(n: u64) -> String {
    let (value, unit) = match n {
        0..1024 => return format!("{n} bytes"),
        1024..0x10_0000 => (n as f64 / 1024.0, "KiB"),
        _ => (n as f64 / f64::from(1 << 20), "MiB"),
    };
    let text = format!("{value:.1}");
    format!("{} {unit}", text.strip_suffix(".0").unwrap_or(&text))
}

/// Creates the directory `path` goes into.
pub fn create_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

/// Writes a file only its owner can read (the secret key).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// Writes a `more reproduce --svg` figure, creating its directory.
pub fn write_svg(path: &Path, svg: &str) -> Result<()> {
    create_parent(path)?;
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("training curves: {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(166_830), "162.9 KiB");
        assert_eq!(human_bytes(484_756_000), "462.3 MiB");
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let dir = std::env::temp_dir().join(format!("more-files-{}", std::process::id()));
        let file = dir.join("m.morenn");
        assert_eq!(model_path(Some(&file), "x", false).unwrap(), file);
        assert!(dir.is_dir(), "the directory is created");
        std::fs::write(&file, b"model").unwrap();
        let e = model_path(Some(&file), "x", false).unwrap_err().to_string();
        assert!(e.contains("m.morenn already exists") && e.contains("--out PATH") && e.contains("--force"), "{e}");
        assert_eq!(model_path(Some(&file), "x", true).unwrap(), file);
        // The encrypted run's key file counts too.
        let other = dir.join("n.morenn");
        std::fs::write(other.with_extension("key.json"), b"{}").unwrap();
        let e = encrypted_outputs(Some(&other), "x", false).unwrap_err().to_string();
        assert!(e.contains("n.key.json already exists"), "{e}");
        assert_eq!(default_model_path("wbc-mlp"), Path::new("trained/wbc-mlp.morenn"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
