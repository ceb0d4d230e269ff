#![doc = "The small things every biqa crate shares, with no other dependency (no burn):"]
#![doc = ""]
#![doc = "- [`SplitMix64`]: the deterministic random generator (synthetic data, data order, dropout seeds, bootstrap"]
#![doc = "  resamples, random initialisation);"]
#![doc = "- [`write_file_atomic`], [`write_atomic`], [`write_bytes_atomic`] and [`AtomicDir`]: files and folders"]
#![doc = "  written under a temporary name beside the target and renamed into place, so no half-written output remains;"]
#![doc = "- [`IMAGE_TOKEN`]: the image placeholder of mPLUG-Owl2 prompts;"]
#![doc = "- [`prompts`]: the questions of the synthetic set's recipes (training data and inference pipelines alike)."]

mod atomic;
mod error;
pub mod prompts;
mod rng;

pub use atomic::{AtomicDir, write_atomic, write_bytes_atomic, write_file_atomic};
pub use error::{CoreError, Result};
pub use rng::SplitMix64;

/// The image placeholder of mPLUG-Owl2 prompts (`DEFAULT_IMAGE_TOKEN` of the original code): each occurrence in a
/// prompt stands for one image's visual tokens.
pub const IMAGE_TOKEN: &str = "<|image|>";
