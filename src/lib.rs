//! biqa: blind image quality assessment with vision-language models (mPLUG-Owl2 as used by Q-Align /
//! Q-Instruct), in Rust.
//!
//! This facade re-exports the member crates and holds what the `biqa` command line shares with library users:
//! device selection ([`device`]) and the CSV inputs of the evaluation commands ([`tables`]).
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
pub mod tables;
pub mod training;

pub use error::{Error, Result};
