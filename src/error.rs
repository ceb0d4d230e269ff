//! The error type of the `biqa` facade (CSV inputs, device selection).

use std::path::PathBuf;

/// Errors of the facade crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A device name that is none of `flex`, `cpu`, `cuda`, `gpu` or `cuda:N`.
    #[error("device {name:?} is not a device name (flex, cuda, cuda:N)")]
    UnknownDevice {
        /// The name asked for (trimmed and lower-cased).
        name: String,
    },
    /// A device whose backend is not compiled into this build.
    #[error(
        "device {device} is not compiled into this build (backends: {backends:?}); rebuild with `--features {feature}`"
    )]
    BackendNotCompiled {
        /// The device asked for.
        device: crate::device::DeviceKind,
        /// The backends this build has.
        backends: Vec<&'static str>,
        /// The cargo feature that adds the device's backend.
        feature: &'static str,
    },
    /// A compiled-in device that does not work on this host (no driver, no such GPU, NVRTC missing).
    #[error("device {device} is not usable here: {reason}")]
    DeviceUnavailable {
        /// The device asked for.
        device: crate::device::DeviceKind,
        /// What the backend reported when a one-element tensor was made and read back on it.
        reason: String,
    },
    /// A run folder's file (`run.json`, `results.jsonl`, `summary.json`) that is malformed or belongs to another
    /// run.
    #[error("{path}: {reason}")]
    RunFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An image could not be assessed (with `--strict`).
    #[error("{image}: {source}")]
    Model {
        /// The image.
        image: PathBuf,
        /// The model's error (boxed: it is large, and rare).
        source: Box<biqa_model::ModelError>,
    },
    /// A setting outside its domain.
    #[error("invalid {key}: {reason}")]
    Setting {
        /// The setting.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A dataset file could not be read.
    #[error(transparent)]
    Data(#[from] biqa_data::DataError),
    /// A figure or a probe failed (boxed: it is large, and rare).
    #[error(transparent)]
    Probe(Box<biqa_probes::ProbeError>),
    /// A checkpoint directory could not be built, read or written.
    #[error("{dir}: {source}")]
    Checkpoint {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The model's error (boxed: it is large, and rare).
        source: Box<biqa_model::ModelError>,
    },
    /// Training failed (boxed: it is large, and rare).
    #[error(transparent)]
    Train(Box<biqa_train::TrainError>),
}

impl From<biqa_train::TrainError> for Error {
    fn from(e: biqa_train::TrainError) -> Self {
        Self::Train(Box::new(e))
    }
}

impl From<biqa_probes::ProbeError> for Error {
    fn from(e: biqa_probes::ProbeError) -> Self {
        Self::Probe(Box::new(e))
    }
}

impl From<biqa_core::CoreError> for Error {
    fn from(e: biqa_core::CoreError) -> Self {
        let (path, source) = e.into_io();
        Self::Io { path, source }
    }
}

/// Result alias of the facade crate.
pub type Result<T> = std::result::Result<T, Error>;
