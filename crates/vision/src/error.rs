//! The crate's one error type.

use std::path::PathBuf;

/// Label used in errors about images that did not come from a file.
pub const IN_MEMORY: &str = "<in-memory image>";

/// Everything that can go wrong in `biqa-vision`.
///
/// Errors about an image always name it (`path`; [`IN_MEMORY`] for images passed as pixels). The enum is
/// `#[non_exhaustive]`: the vision tower and abstractor add their own variants (weights, shapes) here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VisionError {
    // ------------------------------------------------------------------ files and decoding
    /// A file could not be read (missing, unreadable, a directory, ...).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not in one of the supported image formats (PNG, JPEG, BMP, TIFF, WebP).
    #[error("{}: not a supported image (expected PNG, JPEG, BMP, TIFF or WebP{})", path.display(), detected.as_ref().map(|f| format!("; detected {f}")).unwrap_or_default())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format the content looks like, when it is a known but unsupported one.
        detected: Option<String>,
    },

    /// The decoder failed: truncated or corrupt data, an unsupported variant of the format.
    #[error("{}: cannot decode image: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },

    /// The decoder panicked on this input (caught; reported instead of aborting).
    #[error("{}: the image decoder failed on this file: {message}", path.display())]
    DecoderPanic {
        /// The file.
        path: PathBuf,
        /// The panic message.
        message: String,
    },

    /// The image (or an intermediate image derived from it) has more pixels than allowed: a decompression-bomb
    /// guard, like Pillow's `Image.MAX_IMAGE_PIXELS`.
    #[error("{}: {stage} of {width}x{height} = {} pixels exceeds the limit of {limit} pixels", path.display(), (*width as u128) * (*height as u128))]
    TooManyPixels {
        /// The file.
        path: PathBuf,
        /// Which image was too large: "decoded image", "padded canvas", "resized image".
        stage: &'static str,
        /// Its width.
        width: u64,
        /// Its height.
        height: u64,
        /// The configured limit.
        limit: u64,
    },

    /// The image has a zero width or height.
    #[error("{}: empty image ({width}x{height})", path.display())]
    EmptyImage {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u64,
        /// Its height.
        height: u64,
    },

    // ------------------------------------------------------------------ configuration
    /// A config file (`preprocessor_config.json`, `config.json`) is not valid JSON or lacks expected fields.
    #[error("{}: invalid config: {reason}", path.display())]
    ConfigParse {
        /// The config file (`<string>` when parsed from a string).
        path: PathBuf,
        /// What is wrong (the JSON error, or the missing field).
        reason: String,
    },

    /// A section of `config.json` that the vision half needs is absent.
    #[error(
        "{}: invalid config: no {key} (an mPLUG-Owl2 config has visual_config.visual_model and \
         visual_config.visual_abstractor)",
        path.display()
    )]
    MissingConfigSection {
        /// The config file.
        path: PathBuf,
        /// The missing key, dotted from the top level (`visual_config`, `visual_config.visual_model`, ...).
        key: &'static str,
    },

    /// A model config value that this crate does not implement (another activation, the Qwen variant, ...).
    #[error("invalid config: {section}: {key} = {value} is not supported (supported: {supported})")]
    UnsupportedConfig {
        /// The config section (`visual_config.visual_model` or `visual_config.visual_abstractor`).
        section: &'static str,
        /// The key.
        key: &'static str,
        /// The value found, as JSON would write it.
        value: String,
        /// What is supported.
        supported: &'static str,
    },

    /// A size of the model config that must be a multiple of another is not (or the other is zero).
    #[error(
        "invalid config: {section}: {key} {value} is not a multiple of {divisor_key} {divisor}"
    )]
    NotMultiple {
        /// The config section (`visual_config.visual_model` or `visual_config.visual_abstractor`).
        section: &'static str,
        /// The key of the size.
        key: &'static str,
        /// The size.
        value: usize,
        /// The key (or description) of the divisor.
        divisor_key: &'static str,
        /// The divisor.
        divisor: usize,
    },

    /// Two sizes of the model config that must be equal differ.
    #[error(
        "invalid config: {section}: {key} {found} differs from {expected_key} {expected} (unsupported)"
    )]
    ConfigMismatch {
        /// The config section (`visual_config.visual_model` or `visual_config.visual_abstractor`).
        section: &'static str,
        /// The key of the size that differs.
        key: &'static str,
        /// Its value.
        found: usize,
        /// The key (or description) of the size it must equal.
        expected_key: &'static str,
        /// That size.
        expected: usize,
    },

    /// A `preprocessor_config.json` value that cannot be used (a zero side, a zero std, a non-finite value, a
    /// `crop_size` given as `shortest_edge`).
    #[error("invalid config: {key} {value} {problem}")]
    InvalidPreprocessorValue {
        /// The key (`size`, `crop_size`, `image_mean`, `image_std`, `rescale_factor`).
        key: &'static str,
        /// The value found (its Rust debug form).
        value: String,
        /// What is wrong with it (`has a zero side`, `is not finite`, ...).
        problem: &'static str,
    },

    /// A per-channel value (`image_mean`, `image_std`) with neither 1 nor 3 entries.
    #[error("invalid config: {key} has {found} values, expected 3 (or 1 for every channel)")]
    ChannelCount {
        /// The key.
        key: &'static str,
        /// The number of values found.
        found: usize,
    },

    /// A resize-mode name that is not one of [`crate::ResizeMode`]'s.
    #[error(
        "invalid config: unknown resize mode {value:?} (expected pad, resize or shortest_edge_center_crop)"
    )]
    UnknownResizeMode {
        /// The name given.
        value: String,
    },

    /// A `resample` value that this crate does not implement (Pillow's NEAREST = 0, or an unknown code).
    #[error(
        "unsupported resample filter {value} (supported: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)"
    )]
    UnsupportedResample {
        /// The value found.
        value: i64,
    },

    // ------------------------------------------------------------------ shapes
    /// Pixel data whose length does not match its stated shape.
    #[error("pixel buffer of {len} values does not match shape {shape:?}")]
    ShapeMismatch {
        /// Number of values given.
        len: usize,
        /// The stated shape.
        shape: Vec<usize>,
    },

    /// Images of a batch that do not share one shape.
    #[error("{}: preprocessed to {found:?} (C, H, W) but the batch's first image gave {expected:?}", path.display())]
    BatchShapeMismatch {
        /// The offending image.
        path: PathBuf,
        /// Shape of the first image.
        expected: [usize; 3],
        /// Shape of this image.
        found: [usize; 3],
    },

    /// A batch with no image.
    #[error("empty batch: at least one image is needed")]
    EmptyBatch,

    /// Pixels of another shape than the vision tower takes.
    #[error(
        "pixels are {found:?}, the vision tower takes {expected:?} ([B, num_channels, image_size, image_size])"
    )]
    PixelShape {
        /// The shape the tower takes, with the input's batch size.
        expected: [usize; 4],
        /// The input's shape.
        found: Vec<usize>,
    },

    /// ViT features of another shape than the abstractor takes.
    #[error(
        "abstractor input is {found:?}, expected {expected:?} ([B, 1 + grid_size², hidden_size])"
    )]
    FeatureShape {
        /// The shape the abstractor takes, with the input's batch size.
        expected: [usize; 3],
        /// The input's shape.
        found: Vec<usize>,
    },

    // ------------------------------------------------------------------ weights
    /// The vision tower's or abstractor's weights do not fit the config (every problem listed), or cannot be read.
    #[error(transparent)]
    Checkpoint(#[from] biqa_checkpoint::CheckpointError),
}

/// `Result` with [`VisionError`].
pub type Result<T, E = VisionError> = std::result::Result<T, E>;
