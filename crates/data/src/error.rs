//! The one error type of `biqa-data`.

use std::path::PathBuf;

/// Everything that can go wrong when reading a manifest or building the synthetic set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or folder could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A cell (or JSON field) could not be parsed.
    #[error("{file}: row {row}, column {column}: {message}")]
    Parse {
        /// The annotation file.
        file: PathBuf,
        /// The 1-based row: the line number for CSV files (the header is line 1), the entry index + 1 for JSON.
        row: usize,
        /// The column name (or JSON key).
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A required column is absent from the header.
    #[error("{file}: missing column {column}")]
    MissingColumn {
        /// The annotation file.
        file: PathBuf,
        /// The column that was looked for.
        column: String,
    },
    /// A file is malformed as a whole (not valid JSON, not a list of objects, a CSV writer failure …).
    #[error("{file}: {message}")]
    Format {
        /// The annotation file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An image could not be decoded or encoded.
    #[error("image {name}: {message}")]
    Image {
        /// The image name.
        name: String,
        /// The underlying error, as text.
        message: String,
    },
    /// A synthetic set with nothing to make: no photo, no crop per photo, or no image per crop.
    #[error(
        "invalid configuration: need at least one photo, one crop and one image per crop (got {photos} photos, \
         {crops_per_photo} crops per photo, {images_per_crop} images per crop)"
    )]
    EmptySynth {
        /// Photos given.
        photos: usize,
        /// Crops per photo asked for.
        crops_per_photo: usize,
        /// Images per crop the config gives.
        images_per_crop: usize,
    },
    /// The set would have more images than [`crate::synth::MAX_SYNTH_IMAGES`] (or more than `usize` counts).
    #[error(
        "{photos} photos × {crops_per_photo} crops × {images_per_crop} images per crop exceeds the limit of {max} images"
    )]
    TooManySynthImages {
        /// Photos given.
        photos: usize,
        /// Crops per photo asked for.
        crops_per_photo: usize,
        /// Images per crop the config gives.
        images_per_crop: usize,
        /// The limit.
        max: usize,
    },
    /// A crop size of 0.
    #[error("invalid configuration: crop size must be positive (got 0)")]
    ZeroCropSize,
    /// Two photos with one name (names key the images and the train/test split).
    #[error("invalid configuration: photo names must be distinct ({name:?} appears twice)")]
    DuplicatePhotoName {
        /// The repeated name.
        name: String,
    },
    /// A crop larger than a photo.
    #[error("invalid configuration: crop size {crop} exceeds photo {photo} ({width}x{height})")]
    CropTooLarge {
        /// The crop side.
        crop: u32,
        /// The photo's name.
        photo: String,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// Split fractions outside [0, 1) or summing to 1 or more.
    #[error(
        "invalid configuration: split fractions val={val}, test={test} must be in [0, 1) and sum to less than 1"
    )]
    InvalidSplitFractions {
        /// The validation fraction.
        val: f64,
        /// The test fraction.
        test: f64,
    },
    /// A distortion level outside 1–5.
    #[error("invalid configuration: distortion level {level} is outside 1-5")]
    DistortionLevel {
        /// The level given.
        level: u8,
    },
    /// A score scale whose bounds cannot be binned into five levels.
    #[error("invalid configuration: score scale [{lo}, {hi}]: {source}")]
    InvalidScale {
        /// The lowest score.
        lo: f64,
        /// The highest score.
        hi: f64,
        /// Why the binning refused it.
        #[source]
        source: biqa_metrics::MetricsError,
    },
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<biqa_core::CoreError> for DataError {
    fn from(e: biqa_core::CoreError) -> Self {
        let (path, source) = e.into_io();
        Self::Io { path, source }
    }
}
