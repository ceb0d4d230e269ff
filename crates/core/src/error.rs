//! [`CoreError`]: what the shared helpers can fail with.

use std::path::{Path, PathBuf};

/// An error of the shared helpers; every variant names the file or folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A file or folder could not be created, written, synced, renamed or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl CoreError {
    /// An [`CoreError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The file or folder the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } => path,
        }
    }

    /// The error as a path and an I/O error, for crates whose own error enum has an `Io { path, source }` variant.
    pub fn into_io(self) -> (PathBuf, std::io::Error) {
        match self {
            Self::Io { path, source } => (path, source),
        }
    }
}

/// A result with a [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
