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

    /// A config parsed but holds an unusable or unsupported value.
    #[error("invalid config: {0}")]
    Config(String),

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

    // ------------------------------------------------------------------ weights
    /// The vision tower's or abstractor's weights do not fit the config (every problem listed), or cannot be read.
    #[error(transparent)]
    Checkpoint(#[from] biqa_checkpoint::CheckpointError),
}

/// `Result` with [`VisionError`].
pub type Result<T, E = VisionError> = std::result::Result<T, E>;
