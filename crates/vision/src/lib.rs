//! The vision side of mPLUG-Owl2 (Q-Align / Q-Instruct): image preprocessing, bit-exact with Pillow and
//! transformers' `CLIPImageProcessor`.
//!
//! - [`preprocess`]: decode ([`load_rgb`]), pad / resize / crop with Pillow's resampler ([`Preprocessor`],
//!   [`ResizeMode`], [`resize`]), normalise, and batch ([`PixelBatch`], [`PixelBatch::to_tensor`]);
//! - [`config`]: the serde mirror of `visual_config` in an mPLUG-Owl2 `config.json` ([`HfVisualConfig`],
//!   [`HfVisionConfig`], [`HfAbstractorConfig`], [`read_visual_config`]) and the validated runtime configs
//!   ([`VisionConfig`], [`AbstractorConfig`]);
//! - [`encoder`]: the ViT ([`VisionModel`]: patch projection, CLS, position embedding, pre-LN blocks with the
//!   per-head interleaved fused QKV, quick-GELU, post-LN);
//! - [`abstractor`]: the visual abstractor ([`VisualAbstractor`]: learned queries, sin-cos position tables on
//!   queries and keys, normed-query residual, SwiGLU with `ffn_ln`, `visual_fc` + `vit_eos`);
//! - [`error`]: the crate's error type, [`VisionError`].
//!
//! ```no_run
//! use biqa_vision::{Preprocessor, ResizeMode};
//!
//! # fn main() -> Result<(), biqa_vision::VisionError> {
//! let proc = Preprocessor::from_json_file("checkpoint/preprocessor_config.json", ResizeMode::Pad)?;
//! let batch = proc.preprocess_paths(&["a.jpg", "b.png"])?; // [2, 3, 448, 448]
//! let pixels = batch.to_tensor(&burn::tensor::Device::default());
//! # let _ = pixels;
//! # Ok(())
//! # }
//! ```

pub mod abstractor;
pub mod config;
pub mod encoder;
pub mod error;
mod ops;
pub mod preprocess;

pub use abstractor::{AbstractorOutput, VisualAbstractor};
pub use config::{
    AbstractorConfig, HfAbstractorConfig, HfVisionConfig, HfVisualConfig, VisionConfig,
    read_visual_config,
};
pub use encoder::{VisionModel, VisionOutput};
pub use error::{IN_MEMORY, Result, VisionError};
pub use preprocess::{
    CLIP_MEAN, CLIP_STD, ChannelValues, PILLOW_MAX_IMAGE_PIXELS, PassOrder, PixelBatch,
    PreprocessedImage, Preprocessor, PreprocessorConfig, Resample, ResizeMode, Rgb8Image, SizeSpec,
    TargetSize, center_crop, center_crop_size, decode_rgb, expand_to_square, load_rgb, resize,
    resize_with_order, shortest_edge_size,
};
