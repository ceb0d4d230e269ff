//! The decoder's building blocks: RMSNorm, modality-routed ("multiway") modules, attention, SwiGLU MLP.
//!
//! Field names mirror the HF checkpoint names (`self_attn.k_proj.multiway.1` is
//! `self_attn.k_proj.multiway[1]`).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Bool, DType, FloatDType, Int, Tensor};

/// RMSNorm computed in f32: `w · x / sqrt(mean(x²) + eps)`, the result cast back to the input dtype.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Gain `[hidden]`.
    pub weight: Param<Tensor<1>>,
    /// Epsilon.
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    /// Normalises the last dimension of `x` `[.., hidden]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x32 = if dtype == DType::F32 {
            x
        } else {
            x.cast(FloatDType::F32)
        };
        let var = x32.clone().powi_scalar(2).mean_dim(D - 1);
        let normed = x32 * (var + self.eps).sqrt().recip();
        let normed = if dtype == DType::F32 {
            normed
        } else {
            normed.cast(FloatDType::from(dtype))
        };
        let w = self.weight.val();
        let dims = w.dims()[0];
        let mut shape = [1usize; D];
        shape[D - 1] = dims;
        normed * w.reshape(shape)
    }
}

/// How the tokens of one forward are routed to the modality branches.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once per forward, never stored in bulk
pub enum Routing {
    /// Every token uses branch `.0` (a text-only sequence costs one projection per token).
    Uniform(usize),
    /// Tokens of both modalities: the flattened token indices of each, and the inverse permutation that puts
    /// `cat(branch0_rows, branch1_rows)` back in token order.
    Mixed {
        /// Flattened (`b·L + l`) indices of the text tokens.
        text: Tensor<1, Int>,
        /// Flattened indices of the image tokens.
        image: Tensor<1, Int>,
        /// Inverse permutation `[B·L]`.
        inverse: Tensor<1, Int>,
    },
}

impl Routing {
    /// Applies per-branch functions to `x` `[B, L, d]`, each token through the branch of its modality.
    pub fn apply<M>(
        &self,
        x: Tensor<3>,
        branches: &[M],
        f: impl Fn(&M, Tensor<3>) -> Tensor<3>,
    ) -> Tensor<3> {
        let pick = |m: usize| &branches[m.min(branches.len() - 1)];
        match self {
            Routing::Uniform(m) => f(pick(*m), x),
            Routing::Mixed {
                text,
                image,
                inverse,
            } => {
                let [b, l, d] = x.dims();
                let flat = x.reshape([1, b * l, d]);
                let t = f(pick(0), flat.clone().select(1, text.clone()));
                let i = f(pick(1), flat.select(1, image.clone()));
                let out = Tensor::cat(vec![t, i], 1).select(1, inverse.clone());
                let d_out = out.dims()[2];
                out.reshape([b, l, d_out])
            }
        }
    }
}

/// Per-modality RMSNorms (`*.multiway.{0,1}`; one branch for plain LLaMA).
#[derive(Module, Debug)]
pub struct MultiwayNorm {
    /// Branch 0 = text, 1 = image.
    pub multiway: Vec<RmsNorm>,
}

/// Per-modality linear projections (`*.multiway.{0,1}`; one branch for plain LLaMA).
#[derive(Module, Debug)]
pub struct MultiwayLinear {
    /// Branch 0 = text, 1 = image.
    pub multiway: Vec<Linear>,
}

impl MultiwayNorm {
    /// Normalises `x` `[B, L, H]` token by token with the branch of its modality.
    pub fn forward(&self, x: Tensor<3>, routing: &Routing) -> Tensor<3> {
        routing.apply(x, &self.multiway, |n, t| n.forward(t))
    }
}

impl MultiwayLinear {
    /// Projects `x` `[B, L, d_in]` token by token with the branch of its modality → `[B, L, d_out]`.
    pub fn forward(&self, x: Tensor<3>, routing: &Routing) -> Tensor<3> {
        routing.apply(x, &self.multiway, |lin, t| lin.forward(t))
    }
}

/// Self-attention with shared q/o and per-modality k/v, RoPE (rotate-half) and grouped-query heads.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection (shared).
    pub q_proj: Linear,
    /// Key projection, per modality.
    pub k_proj: MultiwayLinear,
    /// Value projection, per modality.
    pub v_proj: MultiwayLinear,
    /// Output projection (shared).
    pub o_proj: Linear,
    /// Query heads.
    #[module(skip)]
    pub num_heads: usize,
    /// Key/value heads.
    #[module(skip)]
    pub num_kv_heads: usize,
    /// Head width.
    #[module(skip)]
    pub head_dim: usize,
}

/// Rotates the halves of the last dimension: `cat(−x₂, x₁)` (HF `rotate_half`).
fn rotate_half(x: Tensor<4>) -> Tensor<4> {
    let d = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, d / 2);
    let x2 = x.narrow(3, d / 2, d / 2);
    Tensor::cat(vec![x2.neg(), x1], 3)
}

/// Applies RoPE to `x` `[B, heads, L, hd]` with `cos`, `sin` `[B, 1, L, hd]`.
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    x.clone() * cos.clone() + rotate_half(x) * sin.clone()
}

/// What one attention call returns.
pub struct AttentionOutput {
    /// `[B, L, H]`.
    pub output: Tensor<3>,
    /// Keys after RoPE, including the cache, `[B, kv_heads, T, hd]`.
    pub keys: Tensor<4>,
    /// Values including the cache, `[B, kv_heads, T, hd]`.
    pub values: Tensor<4>,
    /// Softmax probabilities `[B, heads, L, T]`, when asked for.
    pub probs: Option<Tensor<4>>,
}

impl Attention {
    /// Attention of `h` `[B, L, H]` over the cached keys/values plus its own.
    ///
    /// `cos`/`sin` `[B, 1, L, hd]`; `past` = cached `(keys, values)` `[B, kv_heads, P, hd]`; `mask` `[B, 1, L, P+L]`
    /// (true = masked) or `None` when nothing is masked.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        h: Tensor<3>,
        routing: &Routing,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        past: Option<(Tensor<4>, Tensor<4>)>,
        mask: Option<&Tensor<4, Bool>>,
        want_probs: bool,
    ) -> AttentionOutput {
        let [b, l, _] = h.dims();
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self
            .q_proj
            .forward(h.clone())
            .reshape([b, l, nh, hd])
            .swap_dims(1, 2);
        let k = self
            .k_proj
            .forward(h.clone(), routing)
            .reshape([b, l, nkv, hd])
            .swap_dims(1, 2);
        let v = self
            .v_proj
            .forward(h, routing)
            .reshape([b, l, nkv, hd])
            .swap_dims(1, 2);
        let q = apply_rope(q, cos, sin);
        let k = apply_rope(k, cos, sin);
        let (keys, values) = match past {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        let t = keys.dims()[2];
        let (k_all, v_all) = if nkv == nh {
            (keys.clone(), values.clone())
        } else {
            let rep = nh / nkv;
            let expand = |x: Tensor<4>| {
                x.unsqueeze_dim::<5>(2)
                    .repeat_dim(2, rep)
                    .reshape([b, nh, t, hd])
            };
            (expand(keys.clone()), expand(values.clone()))
        };
        let dtype = q.dtype();
        let scores = q.matmul(k_all.swap_dims(2, 3)) * (1.0 / (hd as f64).sqrt());
        let scores = if dtype == DType::F32 {
            scores
        } else {
            scores.cast(FloatDType::F32)
        };
        let scores = match mask {
            Some(m) => scores.mask_fill(m.clone().expand([b, nh, l, t]), f32::MIN),
            None => scores,
        };
        let probs = softmax(scores, 3);
        let probs = if dtype == DType::F32 {
            probs
        } else {
            probs.cast(FloatDType::from(dtype))
        };
        let ctx = probs
            .clone()
            .matmul(v_all)
            .swap_dims(1, 2)
            .reshape([b, l, nh * hd]);
        AttentionOutput {
            output: self.o_proj.forward(ctx),
            keys,
            values,
            probs: want_probs.then_some(probs),
        }
    }
}

/// SwiGLU MLP: `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Gate projection.
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

impl Mlp {
    /// `[B, L, H]` → `[B, L, H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.down_proj
            .forward(silu(self.gate_proj.forward(x.clone())) * self.up_proj.forward(x))
    }
}

/// One decoder layer (pre-norm, residual), with per-modality norms.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm before attention, per modality.
    pub input_layernorm: MultiwayNorm,
    /// Attention.
    pub self_attn: Attention,
    /// Norm before the MLP, per modality.
    pub post_attention_layernorm: MultiwayNorm,
    /// MLP (shared).
    pub mlp: Mlp,
}
