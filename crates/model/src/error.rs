//! The one error type of `biqa-model`.

use std::path::PathBuf;

/// Everything that can go wrong in `biqa-model`.
///
/// Every variant about a file names the file (or, for [`ModelError::TokenizerFilesMissing`], the directory).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The directory has neither `tokenizer.model` nor `tokenizer.json`.
    #[error("{dir}: no tokenizer file (neither tokenizer.model nor tokenizer.json)")]
    TokenizerFilesMissing {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// `tokenizer.model` is not a valid SentencePiece model (truncated, not a protobuf, inconsistent pieces).
    #[error("{path}: corrupt SentencePiece model: {reason}")]
    CorruptSentencePieceModel {
        /// The `tokenizer.model` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `tokenizer.json` is not valid JSON or lacks what a BPE tokenizer needs.
    #[error("{path}: malformed tokenizer.json: {reason}")]
    MalformedTokenizerJson {
        /// The `tokenizer.json` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `tokenizer_config.json`, `special_tokens_map.json` or `added_tokens.json` is malformed.
    #[error("{path}: malformed tokenizer configuration: {reason}")]
    MalformedTokenizerConfig {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A well-formed tokenizer file that describes something other than a LLaMA-style SentencePiece BPE tokenizer
    /// (a unigram model, a normalisation table, ...).
    #[error("{path}: unsupported tokenizer: {reason}")]
    UnsupportedTokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// The tokenizer's vocabulary does not have the size the model expects.
    #[error("{path}: the tokenizer has {actual} tokens but {expected} were expected")]
    VocabSizeMismatch {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizer's size (`len(tokenizer)`, added tokens included).
        actual: usize,
        /// The expected size (usually the model's `vocab_size`).
        expected: usize,
    },
    /// A Q-Align level word does not encode to exactly one token.
    #[error("level word {word:?} is not a single token: it encodes to {pieces:?}")]
    LevelWordNotSingleToken {
        /// The word.
        word: String,
        /// The pieces it encodes to (without BOS).
        pieces: Vec<String>,
    },
    /// `config.json` is unreadable or inconsistent with the rest of the directory.
    #[error("invalid model config: {0}")]
    Config(String),
    /// Inputs that do not fit the model (placeholder/image counts, a text-only model asked for images, …).
    #[error("invalid input: {0}")]
    Input(String),
    /// The weights (every missing, mis-shaped or unexpected tensor listed) or weight files.
    #[error(transparent)]
    Checkpoint(#[from] biqa_checkpoint::CheckpointError),
    /// The language model (config, inputs, sampling parameters).
    #[error(transparent)]
    Decoder(#[from] biqa_decoder::DecoderError),
    /// The vision half (config, images, preprocessing).
    #[error(transparent)]
    Vision(#[from] biqa_vision::VisionError),
}

/// `Result` with [`ModelError`] as the default error.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
