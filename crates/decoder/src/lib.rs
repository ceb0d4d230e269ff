//! The language half of mPLUG-Owl2: LLaMA / LLaMA-2 with the modality-adaptive module, on burn.
//!
//! - [`LlamaConfig`] from a HF `config.json` (`rope_theta` at the top level or in `rope_parameters`, GQA,
//!   `head_dim`, tied or untied head), with 7B presets;
//! - [`Llama`]: RMSNorm in f32, HF rotate-half RoPE, causal attention with an f32 softmax, MHA and GQA, SwiGLU;
//!   per-token routing of the two modality branches (k/v projections and both norms) when the checkpoint has
//!   `multiway` weights, plain LLaMA otherwise;
//! - [`Llama::forward`] over embeddings with a modality mask, padding, position ids and an external [`KvCache`],
//!   returning logits and, only when asked, HF-convention hidden states and attention probabilities;
//! - [`Llama::generate`]: greedy / temperature / top-k / top-p with a seeded [`Sampler`], stop tokens, left-padded
//!   batches.
//!
//! Tensor shapes: B = batch, L = new tokens, P = cached tokens, T = P + L, H = hidden size, V = vocabulary.

mod cache;
mod config;
mod error;
mod generate;
pub mod layers;
mod model;

pub use cache::KvCache;
pub use config::{
    EosTokenId, HfLlamaConfig, HfRopeParameters, LlamaConfig, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB,
    MAX_WIDTH,
};
pub use error::{DecoderError, Result};
pub use generate::{Generation, GenerationConfig, Prompt, Sampler, Sampling, StopReason};
pub use model::{DecoderInput, DecoderOutput, ForwardOptions, Llama, LogitsMode, Modality, Rope};
