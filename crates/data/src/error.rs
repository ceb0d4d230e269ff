//! The one error type of `biqa-data`.

use std::path::PathBuf;

/// Everything that can go wrong when reading a manifest or building the synthetic set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A cell (or JSON field) could not be parsed.
    #[error("{file}: row {row}, column {column}: {message}")]
    Parse {
        /// The annotation file.
        file: PathBuf,
        /// The 1-based row: the line number for CSV files (the header is line 1), the entry index + 1 for JSON.
        row: usize,
        /// The column name (or JSON key).
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A required column is absent from the header.
    #[error("{file}: missing column {column}")]
    MissingColumn {
        /// The annotation file.
        file: PathBuf,
        /// The column that was looked for.
        column: String,
    },
    /// A file is malformed as a whole (not valid JSON, not a list of objects, a CSV writer failure …).
    #[error("{file}: {message}")]
    Format {
        /// The annotation file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An image could not be decoded or encoded.
    #[error("image {name}: {message}")]
    Image {
        /// The image name.
        name: String,
        /// The underlying error, as text.
        message: String,
    },
    /// An invalid option (crop larger than a photo, empty photo list, bad split fractions …).
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
