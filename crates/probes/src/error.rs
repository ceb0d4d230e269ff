//! The one error type of `biqa-probes`.

use std::path::PathBuf;

/// Everything that can go wrong in a probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Inputs that do not fit (a layer or position out of range, missing traces, empty sample sets).
    #[error("invalid probe input: {0}")]
    Input(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Serialising a result failed.
    #[error("{path}: {reason}")]
    Serialize {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Drawing a figure failed.
    #[error("{path}: cannot draw the figure: {reason}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The decoder failed while computing lens logits.
    #[error(transparent)]
    Decoder(#[from] biqa_decoder::DecoderError),
    /// The model failed (images, prompts, generation).
    #[error(transparent)]
    Model(#[from] biqa_model::ModelError),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ProbeError>;
