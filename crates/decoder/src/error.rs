//! The one error type of `biqa-decoder`.

use std::path::PathBuf;

/// Everything that can go wrong building or running the decoder.
#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    /// The config file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The config is not valid JSON or lacks a required field.
    #[error("{path}: invalid config: {reason}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// What serde said.
        reason: String,
    },
    /// The config's values are inconsistent or unsupported.
    #[error("invalid decoder config: {0}")]
    Config(String),
    /// The weights do not fit the config (missing, mis-shaped or unexpected tensors, unreadable files).
    #[error(transparent)]
    Checkpoint(#[from] biqa_checkpoint::CheckpointError),
    /// Inputs of inconsistent shapes (e.g. a modality mask of the wrong length).
    #[error("invalid decoder input: {0}")]
    Input(String),
    /// Sampling parameters out of range.
    #[error("invalid sampling parameters: {0}")]
    Sampling(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DecoderError>;
