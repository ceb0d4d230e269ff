//! The one error type of `biqa-decoder`.

use std::path::PathBuf;

/// Everything that can go wrong building or running the decoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecoderError {
    /// The config file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The config is not valid JSON, lacks a required field, or holds a value of the wrong type (a malformed
    /// `eos_token_id`, ...).
    #[error("{path}: invalid config: {reason}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// What serde said (the key and the line and column).
        reason: String,
    },
    /// A config value that is unsupported or unusable (another activation, biases, a RoPE variant, a zero size,
    /// an odd head width).
    #[error("invalid decoder config: {key} = {value}: {reason}")]
    InvalidConfig {
        /// The key (`hidden_act`, `rope_scaling.rope_type`, `head_dim`, ...).
        key: &'static str,
        /// The value found, as JSON would write it.
        value: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A size of the config that must be a multiple of another is not (or the other is zero).
    #[error("invalid decoder config: {key} {value} is not a multiple of {divisor_key} {divisor}")]
    NotMultiple {
        /// The key of the size.
        key: &'static str,
        /// The size.
        value: usize,
        /// The key of the divisor.
        divisor_key: &'static str,
        /// The divisor.
        divisor: usize,
    },
    /// The weights do not fit the config (missing, mis-shaped or unexpected tensors, unreadable files).
    #[error(transparent)]
    Checkpoint(#[from] biqa_checkpoint::CheckpointError),
    /// An input with no token (no token rows, empty rows, embeddings of length 0).
    #[error("invalid decoder input: no tokens in {input}")]
    EmptyInput {
        /// Which input (`the token rows`, `the embeddings`).
        input: &'static str,
    },
    /// Token rows of different lengths.
    #[error(
        "invalid decoder input: token row {row} has {found} tokens, row 0 has {expected} (rows must be of equal length)"
    )]
    RaggedRows {
        /// The first row whose length differs.
        row: usize,
        /// The length of row 0.
        expected: usize,
        /// The length of that row.
        found: usize,
    },
    /// A token id outside the vocabulary.
    #[error("invalid decoder input: token id {id} is outside the vocabulary ({vocab_size})")]
    TokenOutOfVocab {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// Embeddings of another width than the model's.
    #[error("invalid decoder input: embeddings have width {found}, the model {expected}")]
    WidthMismatch {
        /// The model's hidden size.
        expected: usize,
        /// The embeddings' last dimension.
        found: usize,
    },
    /// A per-token or per-row input whose length does not match the batch (modality flags, position ids, padding
    /// flags, left padding).
    #[error("invalid decoder input: {found} {input} for {expected} {unit}")]
    LengthMismatch {
        /// Which input (`modality flags`, `position ids`, `padding flags`, `left_padding entries`).
        input: &'static str,
        /// The length needed.
        expected: usize,
        /// The length given.
        found: usize,
        /// What `expected` counts (`tokens`, `rows`).
        unit: &'static str,
    },
    /// A modality flag other than 0 (text) or 1 (image).
    #[error(
        "invalid decoder input: modality flag {flag} at token {index} is not 0 (text) or 1 (image)"
    )]
    InvalidModalityFlag {
        /// Position of the first bad flag (row-major `[B·L]`).
        index: usize,
        /// The flag.
        flag: u8,
    },
    /// A position id outside the RoPE table.
    #[error(
        "invalid decoder input: position {position} is outside the RoPE table (max_position_embeddings = {max})"
    )]
    PositionOutOfRange {
        /// The position id.
        position: i64,
        /// The number of positions the table covers.
        max: usize,
    },
    /// A forward whose batch size differs from the rows already in the cache.
    #[error("invalid decoder input: the cache holds {cached} rows, the input {found}")]
    CacheBatchMismatch {
        /// Rows in the cache.
        cached: usize,
        /// Rows of the input.
        found: usize,
    },
    /// A prompt row whose left padding leaves no token.
    #[error(
        "invalid decoder input: row {row} has left_padding {padding}, not shorter than the prompt ({len} tokens)"
    )]
    PaddingTooLong {
        /// The row.
        row: usize,
        /// Its left padding.
        padding: usize,
        /// The prompt length.
        len: usize,
    },
    /// A tensor could not be read back on the host.
    #[error("reading {what} on the host: {source}")]
    HostRead {
        /// Which tensor (`logits`).
        what: &'static str,
        /// burn's error.
        #[source]
        source: burn::tensor::DataError,
    },
    /// A temperature that is negative or not finite.
    #[error("invalid sampling parameters: temperature {value} must be ≥ 0 and finite")]
    InvalidTemperature {
        /// The temperature given.
        value: f32,
    },
    /// A `top_p` outside (0, 1].
    #[error("invalid sampling parameters: top_p {value} must be in (0, 1]")]
    InvalidTopP {
        /// The `top_p` given.
        value: f32,
    },
    /// A `top_k` of 0.
    #[error("invalid sampling parameters: top_k {value} must be ≥ 1")]
    InvalidTopK {
        /// The `top_k` given.
        value: usize,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DecoderError>;
