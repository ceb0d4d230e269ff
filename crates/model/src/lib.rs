//! `biqa-model`: what the mPLUG-Owl2 / Q-Align model needs around the network itself.
//!
//! - [`Owl2`]: a checkpoint directory exactly as released (mPLUG-Owl2 / Q-Align / Q-Instruct, or plain LLaMA):
//!   `config.json`, weights in every supported format, tokenizer, `preprocessor_config.json`; image splicing,
//!   Q-Align scoring ([`Scorer`]), quality descriptions and text generation;
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

mod convert;
pub mod error;
pub mod prompt;
pub mod tokenizer;
mod vlm;

pub use convert::convert_dir;
pub use error::{ModelError, Result};
pub use prompt::{Conversation, IMAGE_PLACEHOLDER, ScoringPrompt, VICUNA_SYSTEM, describe_prompt};
pub use tokenizer::{
    DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX, IncrementalDecoder, PromptToken, Tokenizer,
    TokenizerSource, prompt_ids_i64,
};
pub use vlm::{Generated, LoadOptions, Owl2, ScoreResult, Scorer, VisionPart};
