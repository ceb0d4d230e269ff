//! Atomic writes: a file or folder is built under a temporary name beside its target (same folder, so the same
//! file system), synced, and renamed into place only when complete. An interrupted or failed write leaves the
//! target as it was (absent if it did not exist) and removes what it wrote.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{CoreError, Result};

/// A fresh hidden name beside `path`: `.{name}.{tag}-{pid}-{n}`, unique within the process (two threads writing
/// the same target never share a temporary) and across processes.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}-{n}", std::process::id()))
}

/// Flushes a file's data and metadata to the disk.
fn sync_file(path: &Path) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| CoreError::io(path, e))
}

/// Syncs the folder holding `path`, so that a rename in it is durable (best effort; Unix only, where a folder can
/// be opened and synced).
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(dir) = fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Removes a file or a folder with its contents.
fn remove_any(path: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// The mode a new file gets in the folder of `probe` (Unix): `0o666` minus the process umask, read from a file
/// created there (and removed) so that no `libc` call is needed.
#[cfg(unix)]
fn new_file_mode(probe: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let file = fs::File::create(probe).map_err(|e| CoreError::io(probe, e))?;
    let mode = file.metadata().map(|m| m.permissions().mode() & 0o777);
    drop(file);
    let _ = fs::remove_file(probe);
    mode.map_err(|e| CoreError::io(probe, e))
}

/// Gives `path` the mode of an ordinary new file (`0o666` minus the umask, 0644 under the usual 022), whatever
/// the producer created it with (tempfile-based writers such as safetensors' create 0600).
#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| CoreError::io(path, e))
}

/// Writes `path` atomically with a function that creates a file at the path it is given: `produce` writes a
/// temporary file beside `path`, which is then synced and renamed over `path`. On any error the temporary file is
/// removed and `path` is left untouched (absent if it did not exist). This is the one temp-write-rename of the
/// workspace; [`write_atomic`] and [`write_bytes_atomic`] are built on it. On Unix the file gets the mode of an
/// ordinary new file (`0o666` minus the umask: 0644 under the usual umask 022), whatever mode `produce` created
/// it with.
///
/// # Errors
/// The error of `produce`, or [`CoreError::Io`] (converted into `E`) when syncing or renaming fails.
pub fn write_file_atomic<E: From<CoreError>>(
    path: &Path,
    produce: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = sibling(path, "tmp");
    #[cfg(unix)]
    let mode = new_file_mode(&tmp)?;
    let result = produce(&tmp).and_then(|()| {
        #[cfg(unix)]
        set_mode(&tmp, mode)?;
        sync_file(&tmp)?;
        fs::rename(&tmp, path).map_err(|e| CoreError::io(path, e))?;
        sync_parent(path);
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `path` atomically (see [`write_file_atomic`]): `write` fills a buffered writer on a temporary file next
/// to it, which is flushed, synced and renamed over `path` only when `write` succeeds.
///
/// # Errors
/// The error of `write`, or [`CoreError::Io`] (converted into `E`) when creating, flushing, syncing or renaming
/// fails.
pub fn write_atomic<E: From<CoreError>>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    write_file_atomic(path, |tmp| {
        let file = fs::File::create(tmp).map_err(|e| CoreError::io(tmp, e))?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.into_inner()
            .map_err(|e| CoreError::io(tmp, e.into_error()))?;
        Ok(())
    })
}

/// Writes bytes to `path` atomically (see [`write_file_atomic`]).
///
/// # Errors
/// [`CoreError::Io`] when writing, syncing or renaming fails.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_atomic(path, |tmp| {
        fs::write(tmp, bytes).map_err(|e| CoreError::io(tmp, e))
    })
}

/// A folder written atomically: [`AtomicDir::new`] creates an empty folder under a temporary name beside the
/// target, the caller fills [`AtomicDir::path`], and [`AtomicDir::commit`] syncs its files and renames it into
/// place, replacing an existing target. Dropped without a commit (an error, a panic), it removes the temporary
/// folder, so the target is never half-written.
#[derive(Debug)]
pub struct AtomicDir {
    target: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl AtomicDir {
    /// Starts writing `target`: an empty temporary folder beside it (its parents are created).
    ///
    /// # Errors
    /// [`CoreError::Io`] when the folder cannot be created.
    pub fn new(target: &Path) -> Result<Self> {
        let tmp = sibling(target, "tmp");
        fs::create_dir_all(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
        Ok(Self {
            target: target.to_owned(),
            tmp,
            committed: false,
        })
    }

    /// The temporary folder to write into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The folder this becomes on [`AtomicDir::commit`].
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs every file of the temporary folder and renames it to the target. An existing target is first moved
    /// aside and removed once the new folder is in place (and moved back if the rename fails), so at every moment
    /// either the old or the new folder is complete.
    ///
    /// # Errors
    /// [`CoreError::Io`] when syncing or renaming fails; the temporary folder is then removed.
    pub fn commit(mut self) -> Result<()> {
        sync_tree(&self.tmp)?;
        let old = match fs::symlink_metadata(&self.target) {
            Ok(_) => {
                let old = sibling(&self.target, "old");
                fs::rename(&self.target, &old).map_err(|e| CoreError::io(&self.target, e))?;
                Some(old)
            }
            Err(_) => None,
        };
        if let Err(e) = fs::rename(&self.tmp, &self.target) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &self.target);
            }
            return Err(CoreError::io(&self.target, e));
        }
        self.committed = true;
        sync_parent(&self.target);
        if let Some(old) = old {
            // The new folder is in place; a leftover old copy is only clutter, not an error.
            let _ = remove_any(&old);
        }
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Syncs every regular file under `dir`, then `dir` itself (Unix).
fn sync_tree(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| CoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| CoreError::io(&path, e))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            sync_file(&path)?;
        }
    }
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CoreError::io(dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.csv");
        let r = write_atomic(&p, |w| {
            w.write_all(b"image,mos\nhalf").unwrap();
            Err(CoreError::io(&p, std::io::Error::other("boom")))
        });
        assert!(r.is_err());
        assert!(!p.exists());
        assert!(names(dir.path()).is_empty());
        // An existing file survives a failed rewrite unchanged.
        write_bytes_atomic(&p, b"old").unwrap();
        let r = write_atomic(&p, |_| {
            Err(CoreError::io(&p, std::io::Error::other("boom")))
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["manifest.csv"]);
        // A successful rewrite replaces it.
        write_atomic(&p, |w| {
            w.write_all(b"new")
                .map_err(|e| CoreError::io(Path::new("w"), e))
        })
        .unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["manifest.csv"]);
    }

    #[test]
    fn write_file_atomic_renames_what_the_producer_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        write_file_atomic(&p, |tmp| {
            assert_eq!(tmp.parent(), Some(dir.path()));
            assert_ne!(tmp, p);
            fs::write(tmp, b"bytes").map_err(|e| CoreError::io(tmp, e))
        })
        .unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"bytes");
        // A producer that wrote half a file and failed leaves nothing.
        let q = dir.path().join("other.bin");
        let r: Result<()> = write_file_atomic(&q, |tmp| {
            fs::write(tmp, b"ha").unwrap();
            Err(CoreError::io(tmp, std::io::Error::other("boom")))
        });
        let err = r.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(names(dir.path()), ["model.safetensors"]);
        // A missing folder is an error naming the target or the temporary file.
        let missing = dir.path().join("no/such/file");
        assert!(write_bytes_atomic(&missing, b"x").is_err());
    }

    #[test]
    fn folders_are_replaced_whole_or_not_at_all() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("checkpoints/step-1");
        let d = AtomicDir::new(&target).unwrap();
        assert_eq!(d.target(), target);
        fs::write(d.path().join("a"), b"1").unwrap();
        d.commit().unwrap();
        assert_eq!(names(&target), ["a"]);

        // Dropped without a commit: the target is unchanged and the temporary folder gone.
        {
            let d = AtomicDir::new(&target).unwrap();
            fs::write(d.path().join("b"), b"2").unwrap();
        }
        assert_eq!(names(&target), ["a"]);
        assert_eq!(names(&root.path().join("checkpoints")), ["step-1"]);

        // Committed over an existing folder: replaced, with no leftovers beside it.
        let d = AtomicDir::new(&target).unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/c"), b"3").unwrap();
        d.commit().unwrap();
        assert_eq!(names(&target), ["sub"]);
        assert_eq!(fs::read(target.join("sub/c")).unwrap(), b"3");
        assert_eq!(names(&root.path().join("checkpoints")), ["step-1"]);
    }

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_mode_of_ordinary_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // What the process gives a plain new file (0644 under the usual umask 022).
        let plain = dir.path().join("plain");
        fs::write(&plain, b"x").unwrap();
        let want = mode(&plain);
        assert_ne!(
            want & 0o044,
            0,
            "umask hides the file from group and others: {want:o}"
        );
        // A producer that creates its file 0600 (as tempfile, used by safetensors, does) still yields `want`.
        let p = dir.path().join("model.safetensors");
        write_file_atomic(&p, |tmp| {
            let _ = fs::remove_file(tmp);
            fs::write(tmp, b"w").map_err(|e| CoreError::io(tmp, e))?;
            fs::set_permissions(tmp, fs::Permissions::from_mode(0o600))
                .map_err(|e| CoreError::io(tmp, e))
        })
        .unwrap();
        assert_eq!(mode(&p), want, "{:o}", mode(&p));
        assert_ne!(mode(&p), 0o600);
        let q = dir.path().join("a.json");
        write_bytes_atomic(&q, b"{}").unwrap();
        assert_eq!(mode(&q), want);
        let r = dir.path().join("b.csv");
        write_atomic(&r, |w| {
            w.write_all(b"a")
                .map_err(|e| CoreError::io(Path::new("w"), e))
        })
        .unwrap();
        assert_eq!(mode(&r), want);
        assert_eq!(
            names(dir.path()),
            ["a.json", "b.csv", "model.safetensors", "plain"]
        );
    }

    #[test]
    fn temporary_names_are_hidden_siblings_and_unique() {
        let p = Path::new("/x/y/model.safetensors");
        let (a, b) = (sibling(p, "tmp"), sibling(p, "tmp"));
        assert_ne!(a, b);
        assert_eq!(a.parent(), p.parent());
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".model.safetensors.tmp-")
        );
    }
}
