//! Which parameters train: freezing the vision tower, the abstractor or the LLM, and LoRA adapters on target
//! modules chosen by name, as the released scripts configure them.
//!
//! LoRA is PEFT's `lora.Linear`: each target projection computes `x·W + scale·(dropout(x)·A)·B` with
//! `scale = α / r`, A `[d_in, r]` from PEFT's default `kaiming_uniform_(a=√5)` (U(−1/√d_in, 1/√d_in)), B `[r, d_out]`
//! = 0 (see [`biqa_decoder::layers::LoraBranch`]). Dropout acts in training mode on the autodiff device only;
//! [`Owl2Net::merge_lora`] folds `scale·A·B` into W for scoring and export.

use std::sync::{Mutex, MutexGuard, PoisonError};

use biqa_data::SplitMix64;
use biqa_decoder::LlamaConfig;
use biqa_vision::{AbstractorConfig, VisionConfig};
use burn::module::{Module, ParamGroup};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::params::{ParamInfo, param_infos};
use biqa_model::Owl2Net;

/// LoRA adapters (PEFT semantics for the targets: a module is adapted when its name equals a target or ends with
/// `.` + target; only the LLM's linear layers are candidates, as in `find_all_linear_names`, which skips the
/// vision tower and the abstractor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank r.
    pub rank: usize,
    /// α; the update is scaled by α / r.
    pub alpha: f64,
    /// Dropout probability on the adapter's input, in `[0, 1)` (PEFT's `lora_dropout`; Q-Align's `train.py`
    /// defaults to 0.05 and its LoRA scripts keep it). It acts only in training mode on the autodiff device, with
    /// masks from the device's generator (the trainer seeds it per micro-batch with [`seed_dropout`]);
    /// scoring, validation and the merged export never drop.
    pub dropout: f64,
    /// Target module name suffixes.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    /// Q-Align's LoRA: r = 128, α = 256, dropout 0.05, targets `q_proj` and `v_proj.multiway.1` (the image-branch value).
    fn default() -> Self {
        Self {
            rank: 128,
            alpha: 256.0,
            dropout: 0.05,
            targets: vec!["q_proj".into(), "v_proj.multiway.1".into()],
        }
    }
}

impl LoraConfig {
    /// Whether the module named `module` (a checkpoint name without `.weight`) is a target.
    pub fn targets(&self, module: &str) -> bool {
        self.targets
            .iter()
            .any(|t| module == t || module.ends_with(&format!(".{t}")))
    }
}

/// Which parameters train, and at what share of the learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainablePolicy {
    /// Freeze `model.vision_model` (mPLUG-Owl2 SFT: `--freeze_vision_model True`).
    pub freeze_vision: bool,
    /// Freeze `model.visual_abstractor` (`--tune_visual_abstractor False`).
    pub freeze_abstractor: bool,
    /// Freeze the LLM's own weights (implied by LoRA for the LLM).
    pub freeze_llm: bool,
    /// LoRA on the LLM: everything else of the LLM is frozen, the adapters train.
    pub lora: Option<LoraConfig>,
    /// The factor of the learning rate for the vision tower's parameters (1: the rate of the rest), for a tower
    /// that should adapt more slowly than the parts trained from its output.
    pub vision_lr_scale: f64,
}

impl Default for TrainablePolicy {
    /// Everything trains, at one learning rate.
    fn default() -> Self {
        Self {
            freeze_vision: false,
            freeze_abstractor: false,
            freeze_llm: false,
            lora: None,
            vision_lr_scale: 1.0,
        }
    }
}

impl TrainablePolicy {
    /// Q-Align's LoRA recipe: LoRA (r 128, α 256) on `q_proj` + `v_proj.multiway.1`, the abstractor trained, the
    /// vision tower frozen (about 149 M trainable parameters for the 7B model).
    pub fn qalign_lora() -> Self {
        Self {
            freeze_vision: true,
            freeze_abstractor: false,
            freeze_llm: true,
            lora: Some(LoraConfig::default()),
            vision_lr_scale: 1.0,
        }
    }

    /// The learning-rate factors of [`TrainablePolicy::vision_lr_scale`] by parameter id of `model` (empty when
    /// the factor is 1), for [`crate::AdamW::with_lr_scale`].
    ///
    /// # Errors
    /// A factor that is not finite and positive.
    pub fn lr_scales(
        &self,
        model: &Owl2Net,
    ) -> Result<std::collections::HashMap<burn::module::ParamId, f64>> {
        let v = self.vision_lr_scale;
        if !(v.is_finite() && v > 0.0) {
            return Err(TrainError::InvalidSetting {
                key: "trainable.vision_lr_scale",
                value: v.to_string(),
                reason: "must be finite and above 0",
            });
        }
        if v == 1.0 {
            return Ok(std::collections::HashMap::new());
        }
        Ok(param_infos(model)
            .into_iter()
            .filter(|p| Self::part(&p.name) == Part::Vision)
            .map(|p| (p.id, v))
            .collect())
    }

    /// Whether a training forward draws random numbers: LoRA with a dropout above 0 (see [`seed_dropout`]).
    pub fn draws_dropout(&self) -> bool {
        self.lora.as_ref().is_some_and(|l| l.dropout > 0.0)
    }

    fn part(name: &str) -> Part {
        if name.starts_with("model.vision_model.") {
            Part::Vision
        } else if name.starts_with("model.visual_abstractor.") {
            Part::Abstractor
        } else {
            Part::Llm
        }
    }

    /// Whether the parameter named `name` (base weights; not LoRA factors) stays trainable.
    fn trains(&self, name: &str) -> bool {
        match Self::part(name) {
            Part::Vision => !self.freeze_vision,
            Part::Abstractor => !self.freeze_abstractor,
            Part::Llm => !self.freeze_llm && self.lora.is_none(),
        }
    }

    /// Applies the policy to a freshly loaded model: a fresh LoRA branch (trainable A and B, see the module
    /// docs; A drawn from the device's generator, so seed it first) on every LLM projection whose checkpoint
    /// module name matches a target, then every base parameter's trainability set as the policy says (the LLM's
    /// own weights frozen under LoRA).
    ///
    /// # Errors
    /// A LoRA dropout outside `[0, 1)`, a rank of 0, a non-finite α, or targets that match no LLM linear layer.
    pub fn apply(&self, model: Owl2Net) -> Result<Owl2Net> {
        let infos = param_infos(&model);
        let mut model = model;
        if let Some(lora) = &self.lora {
            if !(lora.dropout.is_finite() && (0.0..1.0).contains(&lora.dropout)) {
                return Err(TrainError::InvalidSetting {
                    key: "trainable.lora.dropout",
                    value: lora.dropout.to_string(),
                    reason: "must be in [0, 1)",
                });
            }
            if lora.rank == 0 {
                return Err(TrainError::InvalidSetting {
                    key: "trainable.lora.rank",
                    value: lora.rank.to_string(),
                    reason: "must be at least 1",
                });
            }
            if !lora.alpha.is_finite() {
                return Err(TrainError::InvalidSetting {
                    key: "trainable.lora.alpha",
                    value: lora.alpha.to_string(),
                    reason: "must be finite",
                });
            }
            let mut attached = 0;
            for (name, projection) in model.llm.projections_mut() {
                if lora.targets(&name) {
                    projection.attach_lora(lora.rank, lora.alpha, lora.dropout);
                    attached += 1;
                }
            }
            if attached == 0 {
                return Err(TrainError::LoraTargetsUnmatched {
                    targets: lora.targets.clone(),
                });
            }
        }
        let (train, freeze): (Vec<&ParamInfo>, Vec<&ParamInfo>) = infos
            .iter()
            .filter(|p| !p.is_lora)
            .partition(|p| self.trains(&p.name));
        let ids = |v: Vec<&ParamInfo>| ParamGroup::from_ids(v.iter().map(|p| p.id).collect());
        Ok(model
            .set_require_grad_group(ids(freeze), false)
            .set_require_grad_group(ids(train), true))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Vision,
    Abstractor,
    Llm,
}

/// The seed of the LoRA dropout masks of micro-batch `micro` (0-based, counted over every replica: the index of
/// the micro-batch in the step's sample order) of the optimiser step that follows `global_step` completed steps
/// (counted over all stages), in a run seeded with `seed`. Masks keyed by (seed, step, micro-batch) make a resumed
/// run draw the masks an uninterrupted one would have, and data parallelism draw those of gradient accumulation.
pub fn dropout_seed(seed: u64, global_step: usize, micro: usize) -> u64 {
    /// Separates this stream from the other uses of the run seed ("LORADROP").
    const TAG: u64 = 0x4C4F_5241_4452_4F50;
    SplitMix64::derive(seed, &[TAG, global_step as u64, micro as u64]).next_u64()
}

/// Seeds `device`'s generator with `seed` and returns a guard to hold while the draws that must follow from that
/// seed are made (LoRA's A in [`TrainablePolicy::apply`], dropout masks in a forward).
///
/// burn's generators are process-wide on every backend (flex and CubeCL alike), so concurrent draws (data-parallel
/// replicas, or runs, in threads) would interleave; the guard serialises every seeded section of the process.
/// Not reentrant: do not nest two guards in one thread.
pub fn seed_generator(device: &Device, seed: u64) -> MutexGuard<'static, ()> {
    static DRAWS: Mutex<()> = Mutex::new(());
    let guard = DRAWS.lock().unwrap_or_else(PoisonError::into_inner);
    device.seed(seed);
    guard
}

/// [`seed_generator`] with [`dropout_seed`]: hold the guard until the micro-batch's forward has returned (the
/// masks are drawn in the forward; the backward reuses them). Call it only when
/// [`TrainablePolicy::draws_dropout`] is true, so that runs without dropout keep data-parallel forwards parallel.
pub fn seed_dropout(
    device: &Device,
    seed: u64,
    global_step: usize,
    micro: usize,
) -> MutexGuard<'static, ()> {
    seed_generator(device, dropout_seed(seed, global_step, micro))
}

/// Parameter counts by part, computed from the configs (no tensor is allocated), for the 7B presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParamCounts {
    /// The vision tower.
    pub vision: usize,
    /// The abstractor.
    pub abstractor: usize,
    /// The LLM.
    pub llm: usize,
    /// LoRA factors.
    pub lora: usize,
    /// Trainable under the policy.
    pub trainable: usize,
}

impl ParamCounts {
    /// Counts for mPLUG-Owl2 configs under `policy` (LoRA targets resolved against the LLM's linear layers:
    /// `q_proj`, `k_proj`/`v_proj` per branch, `o_proj`, `gate_proj`, `up_proj`, `down_proj`).
    pub fn of(
        llm: &LlamaConfig,
        vision: &VisionConfig,
        abstractor: &AbstractorConfig,
        modalities: usize,
        policy: &TrainablePolicy,
    ) -> Self {
        let (h, i) = (llm.hidden_size, llm.intermediate_size);
        let kv = llm.num_kv_heads * llm.head_dim;
        let q = llm.num_heads * llm.head_dim;
        let mut linears: Vec<(String, usize, usize)> = vec![
            ("q_proj".into(), h, q),
            ("o_proj".into(), q, h),
            ("gate_proj".into(), h, i),
            ("up_proj".into(), h, i),
            ("down_proj".into(), i, h),
        ];
        for m in 0..modalities {
            linears.push((format!("k_proj.multiway.{m}"), h, kv));
            linears.push((format!("v_proj.multiway.{m}"), h, kv));
        }
        let per_layer: usize =
            linears.iter().map(|(_, a, b)| a * b).sum::<usize>() + 2 * modalities * h;
        let head = if llm.tie_word_embeddings {
            0
        } else {
            h * llm.vocab_size
        };
        let llm_total = llm.vocab_size * h + llm.num_layers * per_layer + h + head;
        let lora = policy.lora.as_ref().map_or(0, |l| {
            llm.num_layers
                * linears
                    .iter()
                    .filter(|(n, _, _)| {
                        l.targets(&format!("model.layers.0.self_attn.{n}"))
                            || l.targets(&format!("model.layers.0.mlp.{n}"))
                    })
                    .map(|(_, a, b)| l.rank * (a + b))
                    .sum::<usize>()
        });
        let (d, p, c) = (vision.hidden_size, vision.patch_size, vision.num_channels);
        let s = vision.seq_len();
        let vi = vision.intermediate_size;
        let vision_total = d * c * p * p
            + d
            + s * d
            + 2 * d
            + vision.num_layers
                * (2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * vi + vi) + (vi * d + d))
            + 2 * d;
        let (ad, ai) = (abstractor.hidden_size, abstractor.intermediate_size);
        let abstractor_total = abstractor.num_queries * ad
            + abstractor.num_layers
                * (2 * 2 * ad
                    + 3 * (ad * ad + ad)
                    + (ad * ad + ad)
                    + 2 * ad
                    + 2 * (ad * ai + ai)
                    + (ai * ad + ad)
                    + 2 * ai)
            + (ad * h + h)
            + h;
        let mut trainable = lora;
        if !policy.freeze_vision {
            trainable += vision_total;
        }
        if !policy.freeze_abstractor {
            trainable += abstractor_total;
        }
        if !policy.freeze_llm && policy.lora.is_none() {
            trainable += llm_total;
        }
        Self {
            vision: vision_total,
            abstractor: abstractor_total,
            llm: llm_total,
            lora,
            trainable,
        }
    }
}
