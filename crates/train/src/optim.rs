//! AdamW exactly as `torch.optim.AdamW` (torch 2.x, single-tensor path), global-norm gradient clipping as
//! `clip_grad_norm_`, and the HF learning-rate schedules.

use std::collections::HashMap;

use burn::module::{Module, ParamId};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::params::{FlatGrad, ParamInfo, ParamUpdater, param_infos, param_values};

/// Which parameters weight decay skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayExclusion {
    /// Every parameter is decayed (`torch.optim.AdamW(model.parameters())`).
    None,
    /// Biases and `nn.LayerNorm` weights are not decayed, RMSNorm gains are (mPLUG-Owl2's `MPLUGOwl2Trainer`,
    /// which inherits the HF trainer's grouping).
    #[default]
    BiasAndLayerNorm,
}

/// AdamW hyper-parameters. The defaults are the paper's: β = (0.9, 0.98), ε = 1e-6.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε (added to `sqrt(v̂)`).
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Which parameters are not decayed.
    pub decay_exclusion: DecayExclusion,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-6,
            weight_decay: 0.0,
            decay_exclusion: DecayExclusion::BiasAndLayerNorm,
        }
    }
}

/// The moments of one parameter (flattened, inner device).
#[derive(Debug, Clone)]
pub struct AdamState {
    /// Steps taken on this parameter.
    pub step: u64,
    /// `exp_avg` `[numel]`.
    pub exp_avg: Tensor<1>,
    /// `exp_avg_sq` `[numel]`.
    pub exp_avg_sq: Tensor<1>,
}

/// AdamW with torch's arithmetic: decay first (`p *= 1 − lr·wd`), `m = β₁m + (1−β₁)g`,
/// `v = β₂v + (1−β₂)g²`, then `p −= (lr / (1−β₁ᵗ)) · m / (sqrt(v)/sqrt(1−β₂ᵗ) + ε)` with the bias corrections
/// in f64. A parameter without a gradient (frozen, or not reached by the loss) is skipped entirely; a zero
/// gradient still decays it and advances its moments.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// The hyper-parameters.
    pub config: AdamWConfig,
    /// Per-parameter state.
    pub states: HashMap<ParamId, AdamState>,
    /// Factors of the learning rate by parameter (a parameter not listed takes the rate as given); see
    /// [`crate::TrainablePolicy::lr_scales`].
    pub lr_scale: HashMap<ParamId, f64>,
}

impl AdamW {
    /// A fresh optimiser.
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            states: HashMap::new(),
            lr_scale: HashMap::new(),
        }
    }

    fn decays(&self, info: &ParamInfo) -> bool {
        match self.config.decay_exclusion {
            DecayExclusion::None => true,
            DecayExclusion::BiasAndLayerNorm => !(info.is_bias || info.is_layer_norm),
        }
    }

    /// A fresh optimiser whose learning rate is multiplied by `lr_scale[id]` for the parameters listed.
    pub fn with_lr_scale(config: AdamWConfig, lr_scale: HashMap<ParamId, f64>) -> Self {
        Self {
            lr_scale,
            ..Self::new(config)
        }
    }

    /// One step with learning rate `lr` (times [`AdamW::lr_scale`] where listed) and the gradients `grads` (by
    /// parameter id, flattened like the parameters, inner device) on `module`, returning the updated module. The
    /// gradients are consumed, so that the moments update in place where the backend allows. The parameters are
    /// independent: on a multi-core CPU they are updated by several threads (each parameter's arithmetic is
    /// unchanged).
    pub fn step<M: Module>(&mut self, module: M, lr: f64, grads: HashMap<ParamId, FlatGrad>) -> M {
        let infos = param_infos(&module);
        let decay: HashMap<ParamId, bool> = infos.iter().map(|p| (p.id, self.decays(p))).collect();
        let mut values = param_values(&module);
        let c = self.config;
        let mut jobs: Vec<Job> = grads
            .into_iter()
            .filter_map(|(id, g)| {
                let p = values.remove(&id)?;
                let wd = if decay.get(&id).copied().unwrap_or(true) {
                    c.weight_decay
                } else {
                    0.0
                };
                Some(Job {
                    id,
                    lr: lr * self.lr_scale.get(&id).copied().unwrap_or(1.0),
                    numel: g.shape().num_elements(),
                    p,
                    g,
                    state: self.states.remove(&id),
                    wd,
                })
            })
            .collect();
        drop(values);
        // Largest first, each to the least loaded thread.
        jobs.sort_by_key(|j| std::cmp::Reverse(j.numel));
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, 8)
            .min(jobs.len().max(1));
        let mut buckets: Vec<(usize, Vec<Job>)> = (0..threads).map(|_| (0, Vec::new())).collect();
        for job in jobs {
            if let Some(b) = buckets.iter_mut().min_by_key(|b| b.0) {
                b.0 += job.numel;
                b.1.push(job);
            }
        }
        let run = |bucket: Vec<Job>| -> Vec<(ParamId, Tensor<1>, AdamState)> {
            bucket.into_iter().map(|j| adamw_update(&c, j)).collect()
        };
        let results: Vec<(ParamId, Tensor<1>, AdamState)> = if threads == 1 {
            buckets.into_iter().flat_map(|b| run(b.1)).collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = buckets
                    .into_iter()
                    .map(|b| scope.spawn(move || run(b.1)))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        let mut updated: HashMap<ParamId, Tensor<1>> = HashMap::with_capacity(results.len());
        for (id, p, state) in results {
            self.states.insert(id, state);
            updated.insert(id, p);
        }
        let ids: std::collections::HashSet<ParamId> = updated.keys().copied().collect();
        let mut updater = ParamUpdater::new(
            |id| ids.contains(&id),
            |id, p: Tensor<1>| updated.remove(&id).unwrap_or(p),
        );
        module.map(&mut updater)
    }
}

/// One parameter's AdamW update.
struct Job {
    id: ParamId,
    lr: f64,
    numel: usize,
    p: Tensor<1>,
    g: Tensor<1>,
    state: Option<AdamState>,
    wd: f64,
}

/// torch's single-tensor AdamW on one parameter: returns the new value and state.
fn adamw_update(c: &AdamWConfig, job: Job) -> (ParamId, Tensor<1>, AdamState) {
    let Job {
        id,
        lr,
        p,
        g,
        state,
        wd,
        ..
    } = job;
    let AdamState {
        step,
        exp_avg,
        exp_avg_sq,
    } = state.unwrap_or_else(|| AdamState {
        step: 0,
        exp_avg: g.zeros_like(),
        exp_avg_sq: g.zeros_like(),
    });
    let step = step + 1;
    let t = step as i32;
    // torch: param.mul_(1 - lr * weight_decay) — the factor is a Python float rounded to f32.
    let p = if wd != 0.0 { p * (1.0 - lr * wd) } else { p };
    let m = exp_avg * c.beta1 + g.clone() * (1.0 - c.beta1);
    let v = exp_avg_sq * c.beta2 + (g.clone() * g) * (1.0 - c.beta2);
    let bias_correction1 = 1.0 - c.beta1.powi(t);
    let bias_correction2 = 1.0 - c.beta2.powi(t);
    let step_size = lr / bias_correction1;
    let denom = v.clone().sqrt() / bias_correction2.sqrt() + c.eps;
    let p = p + (m.clone() / denom) * (-step_size);
    (
        id,
        p,
        AdamState {
            step,
            exp_avg: m,
            exp_avg_sq: v,
        },
    )
}

/// The global L2 norm of `grads` as `clip_grad_norm_` computes it: the norm of the per-tensor norms, in f32.
pub fn global_grad_norm(grads: &HashMap<ParamId, FlatGrad>) -> f64 {
    let norms: Vec<f32> = grads
        .values()
        .map(|g| {
            // Reduced in f32 whatever the gradient's dtype (bf16 parameters have bf16 gradients).
            let v: Vec<f32> = g
                .clone()
                .cast(burn::tensor::FloatDType::F32)
                .powi_scalar(2)
                .sum()
                .sqrt()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            v.first().copied().unwrap_or(0.0)
        })
        .collect();
    let total: f32 = norms.iter().map(|n| n * n).sum::<f32>().sqrt();
    f64::from(total)
}

/// Scales `grads` in place so that their global norm is at most `max_norm` (torch: `coef = max_norm / (norm +
/// 1e-6)`, applied when below 1). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut HashMap<ParamId, FlatGrad>, max_norm: f64) -> f64 {
    let norm = global_grad_norm(grads);
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.values_mut() {
            *g = g.clone() * coef;
        }
    }
    norm
}

/// Learning-rate schedules as `transformers.get_scheduler`, evaluated at the optimiser step about to be taken
/// (0-based: the first step uses `lr(0)`, which is 0 during a warmup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Linear warmup, then constant.
    Constant,
    /// Linear warmup, then linear decay to 0.
    Linear,
    /// Linear warmup, then half a cosine down to 0 (`get_cosine_schedule_with_warmup`, what every Q-Align /
    /// Q-Instruct script uses).
    #[default]
    Cosine,
}

impl Schedule {
    /// The learning rate at optimiser step `step` of `total`, with `warmup` warmup steps and peak `lr`.
    pub fn lr(self, lr: f64, step: usize, warmup: usize, total: usize) -> f64 {
        if step < warmup {
            return lr * step as f64 / warmup.max(1) as f64;
        }
        let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
        match self {
            Schedule::Constant => lr,
            Schedule::Linear => lr * (1.0 - progress).max(0.0),
            Schedule::Cosine => {
                lr * (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    }

    /// HF's warmup steps for a ratio: `ceil(total · ratio)`.
    pub fn warmup_steps(total: usize, ratio: f64) -> usize {
        (total as f64 * ratio).ceil() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_scales_like_clip_grad_norm() {
        let device = burn::tensor::Device::flex();
        let t = |v: Vec<f32>| {
            let n = v.len();
            Tensor::<1>::from_data(burn::tensor::TensorData::new(v, [n]), &device)
        };
        let mut grads: HashMap<ParamId, FlatGrad> = HashMap::new();
        grads.insert(ParamId::new(), t(vec![3.0, 0.0]));
        grads.insert(ParamId::new(), t(vec![0.0, 4.0, 0.0]));
        // ‖g‖ = 5; torch: coef = 1 / (5 + 1e-6), applied because it is below 1.
        let norm = clip_grad_norm(&mut grads, 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        let coef = 1.0 / (5.0 + 1e-6);
        let after = global_grad_norm(&grads);
        assert!((after - 5.0 * coef).abs() < 1e-6, "{after}");
        // Below the limit nothing changes.
        let values = |grads: &HashMap<ParamId, FlatGrad>| -> Vec<Vec<f32>> {
            grads
                .values()
                .map(|g| {
                    g.clone()
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap_or_default()
                })
                .collect()
        };
        let before = values(&grads);
        clip_grad_norm(&mut grads, 10.0);
        assert_eq!(before, values(&grads));
    }

    #[test]
    fn cosine_matches_transformers() {
        // get_cosine_schedule_with_warmup(opt, 3, 10) with lr 1: [0, 1/3, 2/3, 1, 0.95048, 0.81174, ...]
        let s = Schedule::Cosine;
        let got: Vec<f64> = (0..10).map(|i| s.lr(1.0, i, 3, 10)).collect();
        let want = [
            0.0,
            1.0 / 3.0,
            2.0 / 3.0,
            1.0,
            0.950_484_433_951_209_9,
            0.811_744_900_929_367_5,
            0.611_260_466_978_157_1,
            0.388_739_533_021_842_9,
            0.188_255_099_070_632_5,
            0.049_515_566_048_790_2,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        assert_eq!(Schedule::warmup_steps(9000, 0.03), 270);
    }
}
