//! The one error type of `biqa-probes`.

use std::path::PathBuf;

/// Everything that can go wrong in a probe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A layer outside the traces.
    #[error("invalid probe input: layer {layer} of {layers} {what}")]
    LayerOutOfRange {
        /// The layer asked for.
        layer: usize,
        /// The layers the trace has.
        layers: usize,
        /// Which trace (`attention maps`, `hidden states`).
        what: &'static str,
    },
    /// A layer range that is empty or reaches beyond the traces.
    #[error("invalid probe input: layers {start}..={end} outside 0..={last}")]
    LayerRange {
        /// The first layer asked for.
        start: usize,
        /// The last layer asked for.
        end: usize,
        /// The last layer of the trace.
        last: usize,
    },
    /// A batch row outside the traces.
    #[error("invalid probe input: row {row} of {rows}")]
    RowOutOfRange {
        /// The row asked for.
        row: usize,
        /// The rows the trace has.
        rows: usize,
    },
    /// A sequence position outside the traces.
    #[error("invalid probe input: {what} {position} outside {len} positions")]
    PositionOutOfRange {
        /// Which position (`query`, `position`).
        what: &'static str,
        /// The position asked for.
        position: usize,
        /// The positions the trace has.
        len: usize,
    },
    /// The forward output lacks a trace the probe needs.
    #[error("invalid probe input: no {what} (run the forward with {what}: true)")]
    MissingTrace {
        /// The trace, as the forward option that asks for it (`hidden_states`, `attentions`).
        what: &'static str,
    },
    /// Nothing chosen where at least one is needed.
    #[error("invalid probe input: choose at least one {what}")]
    NothingChosen {
        /// What must be chosen (`layer`, `query`).
        what: &'static str,
    },
    /// A segment that does not start where the previous one ended (or ends before it starts).
    #[error(
        "invalid probe input: segment {name:?} ({start}..{end}) does not continue at {expected}"
    )]
    SegmentGap {
        /// The segment's name.
        name: String,
        /// Its start.
        start: usize,
        /// Its end.
        end: usize,
        /// Where it should start.
        expected: usize,
    },
    /// Segments that do not cover every key position.
    #[error("invalid probe input: segments cover 0..{covered}, the keys 0..{keys}")]
    SegmentCoverage {
        /// The end of the last segment.
        covered: usize,
        /// The key positions.
        keys: usize,
    },
    /// A level word whose token id is outside the vocabulary.
    #[error(
        "invalid probe input: level word {word:?} has id {id}, outside the vocabulary ({vocab})"
    )]
    LevelIdOutOfVocab {
        /// The word.
        word: String,
        /// Its token id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A word that is not one of the level words of the samples.
    #[error("invalid probe input: {word:?} is not a level word (the level words are {words:?})")]
    UnknownLevelWord {
        /// The word.
        word: String,
        /// The level words.
        words: Vec<String>,
    },
    /// An aggregate over samples without any sample.
    #[error("invalid probe input: no samples")]
    EmptySamples,
    /// Lens results without level words.
    #[error("invalid probe input: no level words")]
    NoLevelWords,
    /// A sample whose layers or level words differ from the first sample's.
    #[error(
        "invalid probe input: sample {index} has different layers or level words than sample 0"
    )]
    MismatchedSample {
        /// The sample (0-based).
        index: usize,
    },
    /// A figure without anything to draw.
    #[error("{path}: nothing to plot ({what})")]
    NothingToPlot {
        /// The figure's file.
        path: PathBuf,
        /// What is missing (`no layers`, `empty attention map`, `no finite point`).
        what: &'static str,
    },
    /// A tensor could not be read back on the host.
    #[error("reading {what} on the host: {source}")]
    HostRead {
        /// What was read (`logits`, `attention`).
        what: &'static str,
        /// burn's error.
        #[source]
        source: burn::tensor::DataError,
    },
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

impl From<biqa_core::CoreError> for ProbeError {
    fn from(e: biqa_core::CoreError) -> Self {
        let (path, source) = e.into_io();
        Self::Io { path, source }
    }
}
