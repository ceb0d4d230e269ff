//! Training mPLUG-Owl2 / Q-Align checkpoints: the paper's two-stage recipe (stage 1: image → visual description;
//! stage 2: text-only description → quality) and the one-stage baseline.
//!
//! - [`conversation`]: LLaVA / Q-Align conversation JSON, the `v1` / `mplug_owl2` templates and label masking
//!   exactly as mPLUG-Owl2's `preprocess_v1`.
//! - [`batch`]: the original collator (right padding, pad = unk, labels −100) and the image-token expansion of
//!   `prepare_inputs_labels_for_multimodal`.
//! - [`loss`]: the paper's eq. 2, label-smoothed NLL (ε = 0 is plain cross-entropy), token-level mean.
//! - [`optim`]: AdamW exactly as `torch.optim.AdamW`, gradient clipping, schedules.

#![forbid(unsafe_code)]

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod conversation;
pub mod error;
pub mod loss;
pub mod model;
pub mod optim;
pub mod params;
pub mod policy;
pub mod recipe;
pub mod trainer;

pub use batch::{Batch, ExpandedBatch, Segment, collate, expand, pad_id};
pub use biqa_model::{Owl2Assets, Owl2Net};
pub use config::{DataConfig, EvalConfig, InstabilityConfig, TrainConfig};
pub use conversation::{
    IGNORE_INDEX, MaskingVariant, Mismatch, Template, TokenizeOptions, TokenizedDataset,
    TokenizedSample, load_dataset, read_records,
};
pub use error::{AnswerProblem, RecordProblem, Result, TrainError};
pub use loss::label_smoothed_nll;
pub use model::{ForwardLoss, TrainOutput, load_model};
pub use optim::{AdamW, AdamWConfig, DecayExclusion, Schedule, clip_grad_norm, global_grad_norm};
pub use params::{ParamInfo, ParamLayout, param_infos, trainable_count};
pub use policy::{LoraConfig, ParamCounts, TrainablePolicy};
pub use recipe::{
    Recipe, StageKind, direct_answer, direct_records, split_answer, two_stage_records,
};
pub use trainer::{
    EvalLog, Evaluation, GradientSync, Observer, PipelineScores, Silent, StepLog, TrainReport,
    evaluate, latest_checkpoint, recipe_pipeline, train, train_data_parallel, train_distributed,
};
