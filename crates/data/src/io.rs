//! Atomic file writes: write to a temporary file in the same folder, then rename over the target.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `path` atomically: `write` fills a temporary file next to it, which is flushed, synced and renamed over
/// `path` only when `write` succeeds. On any error the temporary file is removed and `path` is left untouched (absent
/// if it did not exist), so no half-written file remains.
///
/// # Errors
/// The error of `write`, or [`DataError::Io`] when creating, flushing or renaming fails.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = write_then_rename(path, &tmp, write);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(
    path: &Path,
    tmp: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let file = fs::File::create(tmp).map_err(|e| DataError::io(tmp, e))?;
    let mut w = BufWriter::new(file);
    write(&mut w)?;
    let file = w
        .into_inner()
        .map_err(|e| DataError::io(tmp, e.into_error()))?;
    file.sync_all().map_err(|e| DataError::io(tmp, e))?;
    fs::rename(tmp, path).map_err(|e| DataError::io(path, e))
}

/// Writes bytes atomically (see [`write_atomic`]).
///
/// # Errors
/// [`DataError::Io`] when writing or renaming fails.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| {
        w.write_all(bytes).map_err(|e| DataError::io(path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.csv");
        let r = write_atomic(&p, |w| {
            w.write_all(b"image,mos\nhalf").unwrap();
            Err(DataError::Config("boom".into()))
        });
        assert!(r.is_err());
        assert!(!p.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        // An existing file survives a failed rewrite unchanged.
        write_bytes_atomic(&p, b"old").unwrap();
        let r = write_atomic(&p, |_| Err(DataError::Config("boom".into())));
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
