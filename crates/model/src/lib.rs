//! `biqa-model`: what the mPLUG-Owl2 / Q-Align model needs around the network itself.
//!
//! The flow, one type per step: image file → [`biqa_vision::Preprocessor`] (Pillow-exact pixels `[N, 3, S, S]`) →
//! [`Owl2Net::encode_images`] (the ViT [`biqa_vision::VisionModel`], then the [`biqa_vision::VisualAbstractor`]:
//! image tokens `[N, Q + 1, H]`) → [`Owl2Net::splice`] (rows of [`Segment`]s: text ids and image slots →
//! embeddings `[B, L, H]` + per-token modality) → the decoder [`biqa_decoder::Llama`] (modality-adaptive LLaMA) →
//! [`Scorer`] (Q-Align's softmax over the level words) or [`biqa_decoder::Llama::generate`] (descriptions).
//!
//! - [`Owl2Net`]: the composed network as ONE burn module (used by inference, training under autodiff, the
//!   probes); [`Owl2Config`] / [`HfOwl2Config`]: the whole `config.json`, parsed once;
//! - [`Owl2`]: a checkpoint directory exactly as released (mPLUG-Owl2 / Q-Align / Q-Instruct, or plain LLaMA) = the
//!   network + its [`Owl2Assets`] (tokenizer, preprocessing, config); image splicing, Q-Align scoring
//!   ([`Scorer`]), quality descriptions and text generation;
//! - [`prompt`]: the conversation templates and scoring prompts as types;
//! - [`convert_dir`]: `.bin` checkpoints rewritten as sharded safetensors;
//! - [`Tokenizer`]: the **slow** LLaMA tokenizer of transformers 4.31 (`LlamaTokenizer`, `use_fast=False`), the one
//!   mPLUG-Owl2 and Q-Align load, loaded from `tokenizer.model` (a SentencePiece BPE model, parsed in Rust) or from
//!   `tokenizer.json`, with the special-token handling, `legacy` behaviour and decoding quirks of the Python code;
//! - [`PromptToken`] and [`Tokenizer::encode_with_images`]: mPLUG-Owl2's `tokenizer_image_token`;
//! - [`Tokenizer::level_token_ids`]: the Q-Align level-word ids;
//! - [`IncrementalDecoder`]: streaming decode of generated ids.
//!
//! Every failure is a [`ModelError`] that names the file involved.
//!
//! ```no_run
//! use biqa_model::{PromptToken, Tokenizer};
//!
//! let tok = Tokenizer::from_dir("checkpoints/one-align")?;
//! tok.check_vocab_size(32000)?;
//! let levels = tok.level_token_ids(&["excellent", "good", "fair", "poor", "bad"])?;
//! let prompt = tok.encode_with_images(
//!     "USER: How would you rate the quality of this image?\n<|image|>\nASSISTANT: The quality of the image is",
//! );
//! assert_eq!(prompt.iter().filter(|t| **t == PromptToken::Image).count(), 1);
//! # Ok::<(), biqa_model::ModelError>(())
//! ```

pub mod config;
mod convert;
pub mod error;
pub mod names;
pub mod net;
pub mod pipeline;
pub mod prompt;
pub mod report;
pub mod tokenizer;
mod vlm;

pub use biqa_decoder::StopReason;
pub use config::{HfOwl2Config, ImageAspectRatio, Owl2Config, VisualConfig};
pub use convert::convert_dir;
pub use error::{ModelError, Result};
pub use net::{Owl2Net, PadFill, PaddingSide, Segment, is_frozen, pad_rows, segment_modality};
pub use pipeline::{
    Assessment, Pass, PassKind, PipelineConfig, PipelineKind, PipelinePrompts, ProbsAt,
};
pub use prompt::{Conversation, IMAGE_PLACEHOLDER, ScoringPrompt, VICUNA_SYSTEM, describe_prompt};
pub use report::{FailedImage, ScoreRow, ScoredImage};
pub use tokenizer::{
    DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX, IncrementalDecoder, PromptToken, Tokenizer,
    TokenizerSource, prompt_ids_i64,
};
pub use vlm::{Generated, LoadOptions, Owl2, Owl2Assets, ScoreResult, Scorer};

/// The files of a checkpoint directory besides its weights (each optional): config, generation config,
/// preprocessor, tokenizer files. Exports and copies of a checkpoint carry these over.
pub const ASSET_FILES: [&str; 7] = [
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "tokenizer.json",
];
