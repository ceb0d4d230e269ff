//! The error type of the `biqa` facade (CSV inputs, device selection).

use std::path::PathBuf;

/// Errors of the facade crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CSV is malformed (unbalanced quotes, ragged rows, invalid UTF-8…).
    #[error("{path}: malformed CSV: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: csv::Error,
    },
    /// A required column is not in the header.
    #[error("{path}: no column named {column:?} (the header has {header:?})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column looked for.
        column: String,
        /// The columns the header has.
        header: Vec<String>,
    },
    /// A cell could not be read as the value its column needs.
    #[error("{path}: line {line}, column {column:?}: {problem}")]
    BadCell {
        /// The file.
        path: PathBuf,
        /// The line of the file (the header is line 1).
        line: u64,
        /// The column name.
        column: String,
        /// What is wrong with the cell.
        problem: String,
    },
    /// The file has a header but no data rows.
    #[error("{path}: no data rows")]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// A metric could not be computed.
    #[error("{path}: {source}")]
    Metrics {
        /// The file the values came from.
        path: PathBuf,
        /// The underlying error.
        source: biqa_metrics::MetricsError,
    },
    /// An unknown or unavailable device was asked for.
    #[error("device {0}")]
    Device(String),
}

/// Result alias of the facade crate.
pub type Result<T> = std::result::Result<T, Error>;
