//! Files the commands write: model paths, the recorded command line, the private key file, figures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The command line as a model file records it: `more` and the arguments, whatever path the binary ran
/// from (`./target/release/more`, `cargo run`'s `target/...`), so the record reads as the documented command.
pub fn command_line() -> String {
    std::iter::once("more".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ")
}

/// `out`, else `models/<id>.morenn`; its directory is created.
pub fn model_path(out: Option<&Path>, id: &str) -> Result<PathBuf> {
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("models/{id}.{}", more_nn::model::FILE_EXTENSION)));
    create_parent(&out)?;
    Ok(out)
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
