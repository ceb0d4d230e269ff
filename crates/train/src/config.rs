//! The training configuration (`train.toml`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::conversation::{MaskingVariant, Template};
use crate::error::{Result, TrainError};
use crate::optim::{AdamWConfig, Schedule};
use crate::policy::TrainablePolicy;
use crate::recipe::{Recipe, StageKind};

/// Where the conversations come from. Relative paths are relative to the config file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// One-stage records (image + question → description + conclusion). For the two-stage recipe the stages are
    /// derived from them ([`crate::recipe::two_stage_records`]) unless `stage1` / `stage2` are given.
    pub one_stage: Option<PathBuf>,
    /// Q-Align records (image + question → "The quality of the image is WORD.") for the direct recipe; derived from
    /// `one_stage` ([`crate::recipe::direct_records`]) when absent.
    pub direct: Option<PathBuf>,
    /// Stage-1 records (image → description).
    pub stage1: Option<PathBuf>,
    /// Stage-2 records (text-only description → conclusion).
    pub stage2: Option<PathBuf>,
    /// Folder the records' image paths are relative to (`--image_folder`).
    pub image_folder: Option<PathBuf>,
    /// The conversation template (`--version`; default `v1`, as the released scripts).
    pub template: Template,
    /// The label-masking code.
    pub masking: MaskingVariant,
    /// `model_max_length`.
    pub model_max_length: Option<usize>,
}

/// The validation pass: held-out images through the `Direct` pipeline (Q-Align scores) and the recipe's own
/// pipeline (one-stage or two-stage), against their MOS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Records with `image` (or `img_path`) and `gt_score` (Q-Align test JSON, or a `biqa synth` split file).
    pub data: PathBuf,
    /// Folder the image paths are relative to (default: the training `image_folder`).
    #[serde(default)]
    pub image_folder: Option<PathBuf>,
    /// Evaluate every this many optimiser steps (0: only at the end of each stage).
    #[serde(default)]
    pub every: usize,
    /// At most this many images (the first ones).
    #[serde(default)]
    pub max_images: Option<usize>,
    /// The instability of sampled quality descriptions (the paper's instability ratio), when set.
    #[serde(default)]
    pub instability: Option<InstabilityConfig>,
    /// New tokens per generated pass of the recipe's validation pipeline (one-stage / two-stage).
    #[serde(default = "default_eval_new_tokens")]
    pub max_new_tokens: usize,
}

/// The default of [`EvalConfig::max_new_tokens`].
pub const DEFAULT_EVAL_NEW_TOKENS: usize = 128;

fn default_eval_new_tokens() -> usize {
    DEFAULT_EVAL_NEW_TOKENS
}

/// K sampled descriptions × S sessions of the first images, read into levels (the last level word of each
/// answer), and `biqa_metrics::instability` over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstabilityConfig {
    /// Images (the first ones of the validation set).
    pub images: usize,
    /// Sampled answers per image and session (K).
    pub samples: usize,
    /// Sessions (S), each with its own seeds.
    pub sessions: usize,
    /// Sampling temperature (mPLUG-Owl2's demo: 0.7).
    pub temperature: f32,
    /// Longest answer.
    pub max_new_tokens: usize,
}

impl Default for InstabilityConfig {
    fn default() -> Self {
        Self {
            images: 8,
            samples: 5,
            sessions: 2,
            temperature: 0.7,
            max_new_tokens: 64,
        }
    }
}

/// Everything `biqa train` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The checkpoint directory to start from.
    pub model: PathBuf,
    /// The output directory (checkpoints, logs, the final model).
    pub output: PathBuf,
    /// The recipe and its step budgets.
    pub recipe: Recipe,
    /// The data.
    #[serde(default)]
    pub data: DataConfig,
    /// Samples per micro-batch.
    #[serde(default = "one")]
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[serde(default = "one")]
    pub grad_accumulation: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Peak learning rate of the two-stage recipe's second stage (text-only description → conclusion), if it
    /// differs from `lr`. A small model trained on the second stage at the first stage's rate can forget the first
    /// stage's skill (the miniature of the main job answers the image question with a conclusion after 100 steps
    /// at 5e-4), while the paper's two-pass inference needs both.
    #[serde(default)]
    pub stage2_lr: Option<f64>,
    /// The schedule.
    #[serde(default)]
    pub schedule: Schedule,
    /// Warmup as a fraction of each stage's steps (HF `warmup_ratio`).
    #[serde(default)]
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this (HF default 1.0; `None` = no clipping).
    #[serde(default = "default_clip")]
    pub max_grad_norm: Option<f64>,
    /// ε of the label-smoothed NLL (0 = plain cross-entropy, what the released scripts use).
    #[serde(default)]
    pub label_smoothing: f64,
    /// AdamW.
    #[serde(default)]
    pub optimizer: AdamWConfig,
    /// Which parameters train.
    #[serde(default)]
    pub trainable: TrainablePolicy,
    /// Seed of the data order (and of LoRA's initialisation).
    #[serde(default)]
    pub seed: u64,
    /// Write a checkpoint every this many optimiser steps (0: only at the end of each stage).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Keep this many most recent checkpoints.
    #[serde(default = "two")]
    pub keep_checkpoints: usize,
    /// The validation pass.
    #[serde(default)]
    pub eval: Option<EvalConfig>,
    /// Stop after this many optimiser steps in this process, without a final checkpoint or export, as an
    /// interruption would (time-boxed runs, and the resume test); `--resume` continues.
    #[serde(default)]
    pub stop_after: Option<usize>,
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
#[allow(clippy::unnecessary_wraps)]
fn default_clip() -> Option<f64> {
    Some(1.0)
}

impl TrainConfig {
    /// Reads a TOML file; relative paths in it are resolved against the file's folder.
    ///
    /// # Errors
    /// An unreadable file, TOML that does not fit (the key is named), or invalid values.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = biqa_core::read_text(path, biqa_core::CONFIG_LIMIT).map_err(|source| {
            TrainError::Io {
                path: path.to_owned(),
                source,
            }
        })?;
        let mut config: TrainConfig = toml::from_str(&text).map_err(|e| TrainError::Data {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve(base);
        config.validate()?;
        Ok(config)
    }

    /// Makes relative paths relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.model);
        fix(&mut self.output);
        for p in [
            &mut self.data.one_stage,
            &mut self.data.stage1,
            &mut self.data.stage2,
            &mut self.data.image_folder,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let Some(e) = &mut self.eval {
            fix(&mut e.data);
            if let Some(f) = &mut e.image_folder {
                fix(f);
            }
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`TrainError::InvalidSetting`] naming the key for a zero batch size or accumulation, a non-positive learning
    /// rate, ε or a warmup ratio outside [0, 1), or a stage without steps; [`TrainError::MissingData`] for missing
    /// data files for the recipe.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, reason: &'static str| {
            Err(TrainError::InvalidSetting { key, value, reason })
        };
        if self.batch_size == 0 {
            return bad("batch_size", "0".into(), "must be at least 1");
        }
        if self.grad_accumulation == 0 {
            return bad("grad_accumulation", "0".into(), "must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", self.lr.to_string(), "must be positive and finite");
        }
        if let Some(lr) = self.stage2_lr
            && !(lr > 0.0 && lr.is_finite())
        {
            return bad("stage2_lr", lr.to_string(), "must be positive and finite");
        }
        let o = &self.optimizer;
        for (key, v) in [("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(key, v.to_string(), "must lie in [0, 1)");
            }
        }
        if !(o.eps > 0.0 && o.eps.is_finite()) {
            return bad(
                "optimizer.eps",
                o.eps.to_string(),
                "must be positive and finite",
            );
        }
        if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
            return bad(
                "optimizer.weight_decay",
                o.weight_decay.to_string(),
                "must be non-negative and finite",
            );
        }
        if let Some(n) = self.max_grad_norm
            && !(n > 0.0 && n.is_finite())
        {
            return bad(
                "max_grad_norm",
                n.to_string(),
                "must be positive and finite (leave it out for no clipping)",
            );
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(
                "label_smoothing",
                self.label_smoothing.to_string(),
                "must lie in [0, 1)",
            );
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(
                "warmup_ratio",
                self.warmup_ratio.to_string(),
                "must lie in [0, 1)",
            );
        }
        if let Some((kind, _)) = self.recipe.stages().into_iter().find(|s| s.1 == 0) {
            let key = match kind {
                StageKind::Direct | StageKind::OneStage => "recipe.steps",
                StageKind::Stage1 => "recipe.stage1_steps",
                StageKind::Stage2 => "recipe.stage2_steps",
            };
            return bad(key, "0".into(), "every stage needs at least one step");
        }
        let d = &self.data;
        match self.recipe {
            Recipe::Direct { .. } if d.direct.is_none() && d.one_stage.is_none() => {
                Err(TrainError::MissingData {
                    recipe: "direct",
                    needs: "data.direct, or data.one_stage to derive it",
                })
            }
            Recipe::OneStage { .. } if d.one_stage.is_none() => Err(TrainError::MissingData {
                recipe: "one-stage",
                needs: "data.one_stage",
            }),
            Recipe::TwoStage { .. }
                if d.one_stage.is_none() && (d.stage1.is_none() || d.stage2.is_none()) =>
            {
                Err(TrainError::MissingData {
                    recipe: "two-stage",
                    needs: "data.stage1 and data.stage2, or data.one_stage to derive them",
                })
            }
            _ => Ok(()),
        }
    }
}
