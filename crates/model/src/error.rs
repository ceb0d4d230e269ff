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
    /// `config.json` is not valid JSON, or a key is missing or of the wrong type.
    #[error("{path}: invalid config.json: {reason}")]
    ConfigParse {
        /// The `config.json` file.
        path: PathBuf,
        /// What serde found (with line and column).
        reason: String,
    },
    /// The model has no vision half (a plain LLaMA directory) but was given images.
    #[error("{}: a text-only checkpoint (no visual_config) cannot take images", dir.as_deref().map_or_else(|| "the model".into(), |d| d.display().to_string()))]
    NoVision {
        /// The checkpoint directory, when known.
        dir: Option<PathBuf>,
    },
    /// The prompts' image placeholders and the images given differ in number.
    #[error("the prompts have {placeholders} image placeholder(s) for {images} image(s)")]
    PlaceholderCount {
        /// `<|image|>` placeholders over all prompts.
        placeholders: usize,
        /// Images given.
        images: usize,
    },
    /// Spliced rows differ in length, or have no position at all.
    #[error("spliced rows must share one non-zero length; found lengths {lens:?}")]
    RowLengths {
        /// The length of each row.
        lens: Vec<usize>,
    },
    /// A row refers to an image slot that the encoded images do not have.
    #[error("image slot {slot} refers past the {images} encoded image(s)")]
    ImageSlot {
        /// The slot.
        slot: usize,
        /// Encoded images.
        images: usize,
    },
    /// Fewer than two level words were given to a scorer.
    #[error("scoring needs at least two level words, got {got}")]
    TooFewLevelWords {
        /// The number given.
        got: usize,
    },
    /// The decoder returned no tensor of a kind that was asked for.
    #[error("the decoder returned no {what}")]
    MissingOutput {
        /// `logits`, `hidden states`, `attentions`.
        what: &'static str,
    },
    /// A tensor could not be read back to the host as f32.
    #[error("reading {what} back to the host: {reason}")]
    HostRead {
        /// What was read.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A name (pipeline, prompt, …) that is not one of the known ones.
    #[error("unknown {what} {name:?} (known: {known})")]
    UnknownName {
        /// What was named.
        what: &'static str,
        /// The name given.
        name: String,
        /// The known names.
        known: &'static str,
    },
    /// A stage of the model produced a non-finite value (NaN weights, a degenerate config): no score is given.
    #[error(
        "non-finite values in the {stage}: the weights or the config are broken (no score is given)"
    )]
    NonFinite {
        /// The first stage that produced one.
        stage: &'static str,
    },
    /// A batch failed as a whole (a decoder error); each of its images carries this.
    #[error("its batch failed: {reason}")]
    BatchFailed {
        /// The batch's error.
        reason: String,
    },
    /// `biqa convert` was asked to write into its own input directory.
    #[error("{dir}: the output directory must differ from the input directory")]
    ConvertInPlace {
        /// The directory.
        dir: PathBuf,
    },
    /// `biqa convert` was given a source directory that does not exist.
    #[error("{dir}: the source checkpoint directory does not exist")]
    ConvertSourceMissing {
        /// The missing directory.
        dir: PathBuf,
    },
    /// `biqa convert` was asked to write into a folder that already holds files (its old weights would be left
    /// beside the new shards, and a later load could pick them).
    #[error(
        "{dir}: the output directory is not empty ({entries} entries); convert into a new or empty directory"
    )]
    ConvertTargetNotEmpty {
        /// The directory.
        dir: PathBuf,
        /// How many entries it holds.
        entries: usize,
    },
    /// An atomic write of a file or folder (creating, syncing, renaming).
    #[error(transparent)]
    Core(#[from] biqa_core::CoreError),
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
