//! Atomic file writes (a temporary file in the same folder, synced, then renamed over the target): thin wrappers
//! over [`biqa_core::write_atomic`] with [`DataError`].

use std::io::Write;
use std::path::Path;

use crate::error::{DataError, Result};

/// Writes `path` atomically: `write` fills a temporary file next to it, which is flushed, synced and renamed over
/// `path` only when `write` succeeds. On any error the temporary file is removed and `path` is left untouched (absent
/// if it did not exist), so no half-written file remains.
///
/// # Errors
/// The error of `write`, or [`DataError::Io`] when creating, flushing or renaming fails.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    biqa_core::write_atomic(path, write)
}

/// Writes bytes atomically (see [`write_atomic`]).
///
/// # Errors
/// [`DataError::Io`] when writing or renaming fails.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    biqa_core::write_bytes_atomic(path, bytes).map_err(DataError::from)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.csv");
        let r = write_atomic(&p, |w| {
            w.write_all(b"image,mos\nhalf").unwrap();
            Err(DataError::ZeroCropSize)
        });
        assert!(r.is_err());
        assert!(!p.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        // An existing file survives a failed rewrite unchanged.
        write_bytes_atomic(&p, b"old").unwrap();
        let r = write_atomic(&p, |_| Err(DataError::ZeroCropSize));
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
