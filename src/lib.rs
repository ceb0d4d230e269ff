//! biqa: blind image quality assessment with vision-language models (mPLUG-Owl2 as used by Q-Align /
//! Q-Instruct), in Rust.
//!
//! This facade re-exports the member crates and holds what the `biqa` command line shares with library users:
//! device selection ([`device`]), the CSV inputs of the evaluation commands ([`tables`]), training helpers
//! ([`training`]) and the paper's evaluation on a dataset ([`eval`]).
//!
//! The flow, one type per step:
//!
//! ```text
//! image file ──vision::Preprocessor──▶ pixels [N, 3, S, S]
//!            ──vision::VisionModel───▶ patch features [N, 1 + g², D]          ┐
//!            ──vision::VisualAbstractor──▶ image tokens [N, Q + 1, H]         │ model::Owl2Net::encode_images
//! prompt ──model::Tokenizer──▶ model::Segment rows (text ids, image slots)   │
//!        ──model::Owl2Net::splice──▶ embeddings [B, L, H] + modality          ┘
//!        ──decoder::Llama (modality-adaptive)──▶ logits / hidden states / attentions
//!        ──model::Scorer──▶ Q-Align score        ──decoder::Llama::generate──▶ text
//!        ──model::pipeline (Direct / OneStage / TwoStage)──▶ model::Assessment
//!        ──eval::evaluate──▶ results.jsonl, summary.json (SRCC / PLCC / accuracy / instability)
//! ```
//!
//! [`model::Owl2Net`] is the one composed network: [`model::Owl2`] is that network with its assets (inference),
//! `train` runs the same module on an autodiff device, and `probes` run its forward with traces.
//!
//! | crate | re-exported as | what |
//! |---|---|---|
//! | `biqa-metrics` | [`metrics`] | SRCC, PLCC (raw and logistic), KRCC, RMSE, accuracy, instability |
//! | `biqa-checkpoint` | [`checkpoint`] | named tensors from safetensors / PyTorch pickles, sharded or not |
//! | `biqa-decoder` | [`decoder`] | LLaMA with the modality-adaptive module, KV cache, traces, generation |
//! | `biqa-vision` | [`vision`] | Pillow-exact preprocessing, the ViT encoder, the visual abstractor |
//! | `biqa-model` | [`model`] | checkpoint directories, tokenizer, prompts, Q-Align scoring, descriptions |
//! | `biqa-probes` | [`probes`] | logit lens, trajectories, attention aggregation, figures |
//! | `biqa-data` | [`data`] | IQA manifests, the synthetic distortion set, Q-Pathway-style text |

pub use biqa_checkpoint as checkpoint;
pub use biqa_core as core;
pub use biqa_data as data;
pub use biqa_decoder as decoder;
pub use biqa_kernels as kernels;
pub use biqa_metrics as metrics;
pub use biqa_model as model;
pub use biqa_probes as probes;
pub use biqa_train as train;
pub use biqa_vision as vision;

pub mod device;
pub mod error;
pub mod eval;
pub mod miniature;
pub mod realshape;
pub mod reproduce;
pub mod tables;
pub mod training;

pub use error::{Error, Result};
