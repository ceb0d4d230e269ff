//! The one error type of `biqa-train`.

use std::path::PathBuf;

/// Everything that can go wrong while preparing data or training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A dataset file or record that cannot be used (the file and the record are named).
    #[error("{path}: {reason}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Inputs that do not fit (batch shapes, configuration values).
    #[error("invalid training input: {0}")]
    Input(String),
    /// The loss became NaN or infinite.
    #[error("non-finite loss {loss} at step {step}")]
    NonFiniteLoss {
        /// The optimiser step (1-based) whose loss was not finite.
        step: usize,
        /// The value.
        loss: f64,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The model failed (tokenizer, images, loading).
    #[error(transparent)]
    Model(#[from] biqa_model::ModelError),
    /// The decoder failed.
    #[error(transparent)]
    Decoder(#[from] biqa_decoder::DecoderError),
    /// The vision half failed.
    #[error(transparent)]
    Vision(#[from] biqa_vision::VisionError),
    /// Checkpoint reading or writing failed.
    #[error(transparent)]
    Checkpoint(#[from] biqa_checkpoint::CheckpointError),
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
