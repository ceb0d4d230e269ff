//! The decoder's building blocks: RMSNorm, modality-routed ("multiway") modules, attention, SwiGLU MLP.
//!
//! Field names mirror the HF checkpoint names (`self_attn.k_proj.multiway.1` is
//! `self_attn.k_proj.multiway[1]`).
//!
//! The LLM's linear layers are [`Projection`]s: a `Linear` with an optional LoRA branch (PEFT's
//! `y = x·W + b + (α/r)·dropout(x)·A·B`), so that adapter dropout can act on the adapter's own input.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::module::linear;
use burn::tensor::{Bool, DType, Device, Distribution, FloatDType, Int, Tensor};

/// A linear projection `y = x·W + b` with an optional LoRA branch (PEFT's `lora.Linear`):
/// `y = x·W + b + scale · (dropout(x)·A)·B`.
///
/// The fields are those of burn's `Linear` (`weight` `[d_in, d_out]`, the checkpoint's `[d_out, d_in]`
/// transposed; `bias` `[d_out]`), so module paths, and with them parameter names, are the same.
#[derive(Module, Debug)]
pub struct Projection {
    /// `[d_in, d_out]`.
    pub weight: Param<Tensor<2>>,
    /// `[d_out]`, if any.
    pub bias: Option<Param<Tensor<1>>>,
    /// The LoRA adapter, when attached.
    pub lora: Option<LoraBranch>,
}

/// A LoRA adapter on the input of a [`Projection`]: `scale · (dropout(x)·A)·B`, A `[d_in, r]`, B `[r, d_out]`
/// (burn's `[in, out]` orientation: PEFT's `lora_A.weight` `[r, d_in]` and `lora_B.weight` `[d_out, r]`
/// transposed).
///
/// Dropout acts only while the module is in training mode (its flag, cleared by [`Module::valid`] and
/// [`Module::freeze`]) on an autodiff device, as `burn::nn::Dropout` decides; masks come from the device's
/// random generator (seed it with `Device::seed` for reproducible masks).
#[derive(Module, Debug)]
pub struct LoraBranch {
    /// Down-projection `[d_in, r]`.
    pub a: Param<Tensor<2>>,
    /// Up-projection `[r, d_out]`.
    pub b: Param<Tensor<2>>,
    /// `α / r`.
    #[module(skip)]
    pub scale: f64,
    /// Dropout on the adapter's input (probability in `[0, 1)`).
    pub dropout: Dropout,
}

impl LoraBranch {
    /// A fresh adapter with PEFT's default initialisation: A from `kaiming_uniform_(a=√5)` on torch's
    /// `[r, d_in]` weight, i.e. U(−1/√d_in, 1/√d_in), drawn from `device`'s generator; B = 0, so the adapted
    /// projection computes what the base does until B is trained. The factors are `dtype`, trainable.
    ///
    /// # Panics
    /// A rank of 0, or a dropout probability outside `[0, 1)`.
    pub fn init(
        d_in: usize,
        d_out: usize,
        rank: usize,
        alpha: f64,
        dropout: f64,
        device: &Device,
        dtype: FloatDType,
    ) -> Self {
        assert!(rank > 0, "LoRA rank must be at least 1");
        let bound = 1.0 / (d_in as f64).sqrt();
        // Factors are parameters, alive as long as the module: allocate them as burn's own LoRA does.
        let (a, b) = device.memory_persistent_allocations((), |_| {
            let a = Tensor::<2>::random([d_in, rank], Distribution::Uniform(-bound, bound), device);
            let b = Tensor::<2>::zeros([rank, d_out], device);
            (a.cast(dtype), b.cast(dtype))
        });
        Self {
            a: Param::from_tensor(a),
            b: Param::from_tensor(b),
            scale: alpha / rank as f64,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.a.lazy_shape().dims::<2>()[1]
    }

    /// The branch's output `scale · (dropout(x)·A)·B` for `x` `[.., d_in]` → `[.., d_out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = self.dropout.forward(x);
        linear(linear(x, self.a.val(), None), self.b.val(), None).mul_scalar(self.scale)
    }

    /// The weight update `scale · A·B` `[d_in, d_out]`, in f32.
    pub fn delta(&self) -> Tensor<2> {
        let f32 = |t: Tensor<2>| {
            if t.dtype() == DType::F32 {
                t
            } else {
                t.cast(FloatDType::F32)
            }
        };
        f32(self.a.val())
            .matmul(f32(self.b.val()))
            .mul_scalar(self.scale)
    }
}

impl From<Linear> for Projection {
    fn from(l: Linear) -> Self {
        Self {
            weight: l.weight,
            bias: l.bias,
            lora: None,
        }
    }
}

impl Projection {
    /// `(d_in, d_out)`.
    pub fn dims(&self) -> (usize, usize) {
        let [d_in, d_out] = self.weight.lazy_shape().dims::<2>();
        (d_in, d_out)
    }

    /// `x` `[.., d_in]` → `[.., d_out]`: `x·W + b`, plus the LoRA branch when attached.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let bias = self.bias.as_ref().map(Param::val);
        match &self.lora {
            None => biqa_kernels::linear(x, self.weight.val(), bias),
            Some(l) => biqa_kernels::linear(x.clone(), self.weight.val(), bias) + l.forward(x),
        }
    }

    /// Attaches a fresh LoRA adapter (see [`LoraBranch::init`]) at the weight's device and dtype, replacing
    /// any attached one. The base weight's trainability is left as it is.
    ///
    /// # Panics
    /// As [`LoraBranch::init`].
    pub fn attach_lora(&mut self, rank: usize, alpha: f64, dropout: f64) {
        let (d_in, d_out) = self.dims();
        let w = self.weight.val();
        let dtype = match w.dtype() {
            d if d.is_float() => FloatDType::from(d),
            _ => FloatDType::F32,
        };
        self.lora = Some(LoraBranch::init(
            d_in,
            d_out,
            rank,
            alpha,
            dropout,
            &w.device(),
            dtype,
        ));
    }

    /// Folds the LoRA branch into the weight (`W + scale·A·B`, summed in f32 and cast back to W's dtype) and
    /// drops it; the weight keeps its id and trainability and leaves any autodiff graph. Without a branch, a
    /// no-op.
    pub fn merge_lora(&mut self) {
        let Some(lora) = self.lora.take() else {
            return;
        };
        let delta = lora.delta();
        self.weight = self.weight.clone().map(|w| {
            let require_grad = w.is_require_grad();
            let dtype = w.dtype();
            let merged = if dtype == DType::F32 {
                w + delta
            } else {
                (w.cast(FloatDType::F32) + delta).cast(FloatDType::from(dtype))
            };
            merged.detach().set_require_grad(require_grad)
        });
    }
}

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
                // Rows of a [B·L, d] matrix: selecting and scattering along dim 0 are row copies.
                let [b, l, d] = x.dims();
                let flat = x.reshape([b * l, d]);
                let rows = |idx: &Tensor<1, Int>| {
                    let t = flat.clone().select(0, idx.clone());
                    let n = t.dims()[0];
                    t.reshape([1, n, d])
                };
                let t = f(pick(0), rows(text));
                let i = f(pick(1), rows(image));
                let d_out = t.dims()[2];
                let (nt, ni) = (t.dims()[1], i.dims()[1]);
                let out = Tensor::cat(vec![t.reshape([nt, d_out]), i.reshape([ni, d_out])], 0)
                    .select(0, inverse.clone());
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
    pub multiway: Vec<Projection>,
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
    pub q_proj: Projection,
    /// Key projection, per modality.
    pub k_proj: MultiwayLinear,
    /// Value projection, per modality.
    pub v_proj: MultiwayLinear,
    /// Output projection (shared).
    pub o_proj: Projection,
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
        // Unscaled scores in f32, masked with f32::MIN (HF adds finfo.min), then softmax(scores/√hd) in the fused
        // kernel (the scale is positive, so scaling after the fill masks the same entries).
        let scores = q.matmul(k_all.swap_dims(2, 3));
        let scores = if dtype == DType::F32 {
            scores
        } else {
            scores.cast(FloatDType::F32)
        };
        let scores = match mask {
            Some(m) => scores.mask_fill(m.clone().expand([b, nh, l, t]), f32::MIN),
            None => scores,
        };
        let probs = biqa_kernels::softmax_last(scores, 1.0 / (hd as f64).sqrt());
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
    pub gate_proj: Projection,
    /// Up projection.
    pub up_proj: Projection,
    /// Down projection.
    pub down_proj: Projection,
}

impl Mlp {
    /// `[B, L, H]` → `[B, L, H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.down_proj.forward(biqa_kernels::silu_mul(
            self.gate_proj.forward(x.clone()),
            self.up_proj.forward(x),
        ))
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

impl DecoderLayer {
    /// Every linear projection of the layer with its module name relative to the layer (`self_attn.q_proj`,
    /// `self_attn.k_proj.multiway.1`, `mlp.down_proj`, …), in module order.
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Projection)> {
        let Attention {
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            ..
        } = &mut self.self_attn;
        let mut out = vec![("self_attn.q_proj".to_owned(), q_proj)];
        for (name, mw) in [("k_proj", k_proj), ("v_proj", v_proj)] {
            for (m, p) in mw.multiway.iter_mut().enumerate() {
                out.push((format!("self_attn.{name}.multiway.{m}"), p));
            }
        }
        out.push(("self_attn.o_proj".to_owned(), o_proj));
        let Mlp {
            gate_proj,
            up_proj,
            down_proj,
        } = &mut self.mlp;
        out.push(("mlp.gate_proj".to_owned(), gate_proj));
        out.push(("mlp.up_proj".to_owned(), up_proj));
        out.push(("mlp.down_proj".to_owned(), down_proj));
        out
    }
}
