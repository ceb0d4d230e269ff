//! The one error type of `biqa-train`.

use std::path::PathBuf;

/// Everything that can go wrong while preparing data or training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A dataset file or record that cannot be used (the file and the record are named).
    #[error("{path}: {reason}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A conversation record that cannot be used (named by its position in its file, when known, and its id).
    #[error("record {}: {problem}", record_label(.index, .id))]
    Record {
        /// The record's position in its file (0-based), when known.
        index: Option<usize>,
        /// The record's id.
        id: String,
        /// What is wrong with it.
        problem: RecordProblem,
    },
    /// An answer that cannot be split into a description and a conclusion ([`crate::split_answer`]).
    #[error("cannot split the answer {answer:?}: {problem}")]
    UnsplittableAnswer {
        /// The answer.
        answer: String,
        /// Why it cannot be split.
        problem: AnswerProblem,
    },
    /// A setting of the TOML training config (named by its key) outside its domain.
    #[error("invalid training setting {key} = {value}: {reason}")]
    InvalidSetting {
        /// The key (`lr`, `batch_size`, `trainable.lora.rank`, ...).
        key: &'static str,
        /// The value found.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// The recipe of the config needs data files that the `[data]` table does not name.
    #[error("invalid training setting: the {recipe} recipe needs {needs}")]
    MissingData {
        /// The recipe (`one-stage`, `two-stage`).
        recipe: &'static str,
        /// The keys it needs.
        needs: &'static str,
    },
    /// No data could be found or derived for a stage.
    #[error("no data for {stage}")]
    NoStageData {
        /// The stage ([`crate::StageKind::name`]).
        stage: &'static str,
    },
    /// The LoRA targets of the config match no linear layer of the LLM.
    #[error(
        "invalid training setting trainable.lora.targets: {targets:?} match no linear layer of the LLM"
    )]
    LoraTargetsUnmatched {
        /// The targets.
        targets: Vec<String>,
    },
    /// A function argument outside its domain.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidArgument {
        /// The argument (`image_tokens`, `epsilon`).
        name: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// No device was given to train on.
    #[error("no device to train on")]
    NoDevice,
    /// A batch to collate has no sample.
    #[error("cannot collate an empty batch")]
    EmptyBatch,
    /// A tokenised sample whose input ids and labels differ in length.
    #[error("sample {id:?}: {input_ids} input ids but {labels} labels")]
    SampleLengths {
        /// The sample's id.
        id: String,
        /// Its number of input ids.
        input_ids: usize,
        /// Its number of labels.
        labels: usize,
    },
    /// A collated batch whose buffers do not have `rows × len` entries (`rows` images).
    #[error(
        "inconsistent batch: {rows} rows of {len} but {input_ids} ids, {labels} labels, {mask} mask flags, {images} images"
    )]
    InconsistentBatch {
        /// The batch's rows.
        rows: usize,
        /// The batch's row length.
        len: usize,
        /// The input ids it has.
        input_ids: usize,
        /// The labels it has.
        labels: usize,
        /// The attention-mask flags it has.
        mask: usize,
        /// The image slots it has (one per row).
        images: usize,
    },
    /// A batch row with more than one image placeholder.
    #[error("row {row} ({id:?}): more than one image placeholder")]
    ExtraImagePlaceholder {
        /// The row.
        row: usize,
        /// The sample's id, when the batch has it.
        id: Option<String>,
    },
    /// A batch row with an image placeholder but no image.
    #[error("row {row} ({id:?}): an image placeholder but no image")]
    MissingImage {
        /// The row.
        row: usize,
        /// The sample's id, when the batch has it.
        id: Option<String>,
    },
    /// A batch row with a negative token id (other than the image placeholder) or one beyond `u32`.
    #[error("row {row} ({id:?}): invalid token id {token}")]
    InvalidTokenId {
        /// The row.
        row: usize,
        /// The sample's id, when the batch has it.
        id: Option<String>,
        /// The id found.
        token: i64,
    },
    /// A batch with image slots but no pixels.
    #[error("the batch has {slots} image slot(s) but no pixels")]
    MissingPixels {
        /// The batch's image slots.
        slots: usize,
    },
    /// Encoded images whose count or length do not fit the batch's image slots.
    #[error(
        "{images} encoded images of {tokens} tokens each for {slots} image slots of {slot_tokens} tokens"
    )]
    EncodedImages {
        /// The images encoded.
        images: usize,
        /// The tokens of each encoded image.
        tokens: usize,
        /// The batch's image slots.
        slots: usize,
        /// The tokens of each slot.
        slot_tokens: usize,
    },
    /// A batch without any supervised token.
    #[error("the batch has no supervised token (every label is -100)")]
    NoSupervisedToken,
    /// Two sizes of a batch that must agree do not.
    #[error("{what}: expected {expected}, found {found}")]
    BatchShape {
        /// The size expected.
        expected: usize,
        /// The size found.
        found: usize,
        /// What was counted (`targets (one per logit row)`).
        what: &'static str,
    },
    /// A target token id outside the vocabulary.
    #[error("target id {target} is outside the vocabulary of {vocab}")]
    TargetOutOfVocab {
        /// The target id.
        target: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A tensor could not be read back on the host.
    #[error("reading {what} on the host: {source}")]
    HostRead {
        /// What was read (`a parameter`).
        what: &'static str,
        /// burn's error.
        #[source]
        source: burn::tensor::DataError,
    },
    /// A data-parallel replica panicked.
    #[error("data-parallel replica {replica} panicked")]
    ReplicaPanicked {
        /// The replica (0 is the main device).
        replica: usize,
    },
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

/// What is wrong with a conversation record ([`TrainError::Record`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordProblem {
    /// The record has no turn.
    #[error("empty `conversations`")]
    EmptyConversations,
    /// A turn from neither `human` nor `gpt`.
    #[error("turn {turn}: unknown role {role:?} (expected \"human\" or \"gpt\")")]
    UnknownRole {
        /// The turn (0-based).
        turn: usize,
        /// Its role.
        role: String,
    },
    /// Turns that do not alternate `human` / `gpt` starting with `human`.
    #[error(
        "turn {turn}: expected a {expected} turn, found {found:?} (turns must alternate human/gpt, starting with human)"
    )]
    RoleOrder {
        /// The turn (0-based).
        turn: usize,
        /// The role it should have.
        expected: &'static str,
        /// The role it has.
        found: String,
    },
    /// More than one `<|image|>` after `preprocess_multimodal` (the original would take the next sample's image for
    /// the second one).
    #[error(
        "{count} <|image|> placeholders after preprocess_multimodal (in {count} turns); one image per sample is supported"
    )]
    ImagePlaceholders {
        /// The placeholders found.
        count: usize,
    },
    /// The record has no `gpt` turn.
    #[error("no answer (no \"gpt\" turn)")]
    NoAnswer,
    /// The record has no image, so it cannot give a stage-1 sample.
    #[error("no image: it cannot give a stage-1 sample")]
    NoImage,
    /// The record's image is not a file (checked before the first step).
    #[error("image {} not found", path.display())]
    ImageNotFound {
        /// The image path, joined to the image folder.
        path: std::path::PathBuf,
    },
    /// The record's answer cannot be split into a description and a conclusion.
    #[error("cannot split the answer {answer:?}: {problem}")]
    Answer {
        /// The answer.
        answer: String,
        /// Why it cannot be split.
        problem: AnswerProblem,
    },
}

/// Why an answer cannot be split into a description and a conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerProblem {
    /// No sentence states a quality level.
    #[error("no sentence states a quality level")]
    NoLevelStated,
    /// The only sentence that states a level is the whole answer: nothing is left to describe.
    #[error("it is only a conclusion: nothing to describe")]
    OnlyConclusion,
}

/// `3 (id "x")` or `"x"`.
fn record_label(index: &Option<usize>, id: &str) -> String {
    match index {
        Some(i) => format!("{i} (id {id:?})"),
        None => format!("{id:?}"),
    }
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl From<biqa_core::CoreError> for TrainError {
    fn from(e: biqa_core::CoreError) -> Self {
        let (path, source) = e.into_io();
        Self::Io { path, source }
    }
}
