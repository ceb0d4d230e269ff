//! mPLUG-Owl2's visual abstractor: learned queries cross-attending to the ViT features, then `visual_fc` and the
//! appended `vit_eos` → `num_queries + 1` image tokens in the LLM's width.
//!
//! One layer, with `x` the queries `[B, Q, D]` and `img` the ViT output `[B, S, D]`:
//! `xq = norm1(x)`; `kv = cat(xq, normk(img))`; `q = Wq(xq + q_pos)`, `k = Wk(kv + cat(q_pos, k_pos))`, `v = Wv(kv)`;
//! `x = xq + out_proj(softmax(q kᵀ/√hd) v)` (the residual is the *normed* query);
//! `x = x + w2(ffn_ln(silu(w1 h) · w3 h))` with `h = norm2(x)`. `norm1`, `normk`, `norm2` use eps 1e-5 (PyTorch's
//! default), `ffn_ln` the config's. There is no final norm.

use biqa_checkpoint::Weights;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;

use crate::config::AbstractorConfig;
use crate::error::{Result, VisionError};
use crate::ops::{attention, layer_norm, linear};

/// eps of `norm1`, `normk` and `norm2` (`nn.LayerNorm`'s default; the config's eps is only used by `ffn_ln`).
pub const TORCH_LAYER_NORM_EPS: f64 = 1e-5;

/// MAE's 1-D sin-cos table `[len(positions), dim]`: `ω_i = 1/10000^(i/(dim/2))`, `[sin(p·ω), cos(p·ω)]`, computed in
/// f32 as the original numpy code does.
pub fn sincos_1d(dim: usize, positions: &[f32]) -> Vec<f32> {
    let half = dim / 2;
    let omega: Vec<f32> = (0..half)
        .map(|i| 1.0 / 10000f32.powf(i as f32 / (dim as f32 / 2.0)))
        .collect();
    let mut out = Vec::with_capacity(positions.len() * dim);
    for &p in positions {
        out.extend(omega.iter().map(|&w| (p * w).sin()));
        out.extend(omega.iter().map(|&w| (p * w).cos()));
    }
    out
}

/// The query position table `[num_queries, dim]`.
pub fn query_pos_table(dim: usize, num_queries: usize) -> Vec<f32> {
    let pos: Vec<f32> = (0..num_queries).map(|q| q as f32).collect();
    sincos_1d(dim, &pos)
}

/// The key position table `[1 + grid², dim]`: a zero row for CLS, then for patch `row·grid + col` the 1-D table
/// (width dim/2) of `col` followed by that of `row` (MAE's `meshgrid(w, h)` order).
pub fn key_pos_table(dim: usize, grid: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; dim];
    for row in 0..grid {
        for col in 0..grid {
            out.extend(sincos_1d(dim / 2, &[col as f32]));
            out.extend(sincos_1d(dim / 2, &[row as f32]));
        }
    }
    out
}

/// The attention of one layer, with its (fixed) position tables.
#[derive(Module, Debug)]
pub struct AbstractorAttention {
    /// `query`.
    pub query: Linear,
    /// `key`.
    pub key: Linear,
    /// `value`.
    pub value: Linear,
    /// `q_pos_embed` `[Q, D]` (stored in the checkpoint or computed).
    #[module(skip)]
    pub q_pos_embed: Tensor<2>,
    /// `k_pos_embed` `[1 + grid², D]` (stored in the checkpoint or computed).
    #[module(skip)]
    pub k_pos_embed: Tensor<2>,
    /// Heads.
    #[module(skip)]
    pub num_heads: usize,
}

/// SwiGLU with its inner LayerNorm: `w2(ffn_ln(silu(w1 x) · w3 x))`.
#[derive(Module, Debug)]
pub struct AbstractorMlp {
    /// `w1`.
    pub w1: Linear,
    /// `w2`.
    pub w2: Linear,
    /// `w3`.
    pub w3: Linear,
    /// `ffn_ln` (config eps).
    pub ffn_ln: LayerNorm,
}

/// `crossattention.output`.
#[derive(Module, Debug)]
pub struct AbstractorOutputBlock {
    /// `out_proj`.
    pub out_proj: Linear,
    /// `norm2` (eps 1e-5).
    pub norm2: LayerNorm,
    /// `mlp`.
    pub mlp: AbstractorMlp,
}

/// `crossattention` of one layer.
#[derive(Module, Debug)]
pub struct CrossAttention {
    /// `norm1` on the queries (eps 1e-5).
    pub norm1: LayerNorm,
    /// `normk` on the image features (eps 1e-5).
    pub normk: LayerNorm,
    /// `attention`.
    pub attention: AbstractorAttention,
    /// `output`.
    pub output: AbstractorOutputBlock,
}

/// One abstractor layer.
#[derive(Module, Debug)]
pub struct AbstractorLayer {
    /// `crossattention`.
    pub crossattention: CrossAttention,
}

/// The layer stack (`encoder.layers.{i}`).
#[derive(Module, Debug)]
pub struct AbstractorEncoder {
    /// Layers.
    pub layers: Vec<AbstractorLayer>,
}

/// The visual abstractor (`model.visual_abstractor`).
#[derive(Module, Debug)]
pub struct VisualAbstractor {
    /// `query_embeds` `[1, Q, D]`.
    pub query_embeds: Param<Tensor<3>>,
    /// Layers.
    pub encoder: AbstractorEncoder,
    /// `visual_fc` `[D → H_llm]`.
    pub visual_fc: Linear,
    /// `vit_eos` `[1, 1, H_llm]`.
    pub vit_eos: Param<Tensor<3>>,
    /// The config.
    #[module(skip)]
    pub config: AbstractorConfig,
}

/// What the abstractor returns.
#[derive(Debug, Clone)]
pub struct AbstractorOutput {
    /// The image tokens `[B, Q + 1, H_llm]`: `visual_fc(queries)` then `vit_eos`.
    pub image_embeds: Tensor<3>,
    /// When asked: the query stream after each layer `[B, Q, D]`.
    pub layer_outputs: Option<Vec<Tensor<3>>>,
}

impl VisualAbstractor {
    /// Builds the abstractor from `weights` scoped to it (`weights.scope("model.visual_abstractor")`). The position tables are
    /// read from the checkpoint when present (as the original code does), computed otherwise.
    pub fn load(weights: &Weights<'_>, config: &AbstractorConfig) -> Self {
        let c = config;
        let d = c.hidden_size;
        let (q, s) = (c.num_queries, 1 + c.grid_size * c.grid_size);
        let computed_q = || weights.from_host(query_pos_table(d, q), [q, d]);
        let computed_k = || weights.from_host(key_pos_table(d, c.grid_size), [s, d]);
        let layers = (0..c.num_layers)
            .map(|i| {
                let l = format!("encoder.layers.{i}.crossattention");
                let a = format!("{l}.attention");
                CrossAttention {
                    norm1: weights.layer_norm(&format!("{l}.norm1"), d, TORCH_LAYER_NORM_EPS),
                    normk: weights.layer_norm(&format!("{l}.normk"), d, TORCH_LAYER_NORM_EPS),
                    attention: AbstractorAttention {
                        query: weights.linear(&format!("{a}.query"), d, d, true),
                        key: weights.linear(&format!("{a}.key"), d, d, true),
                        value: weights.linear(&format!("{a}.value"), d, d, true),
                        q_pos_embed: weights
                            .optional(&format!("{a}.q_pos_embed"), [q, d])
                            .unwrap_or_else(computed_q),
                        k_pos_embed: weights
                            .optional(&format!("{a}.k_pos_embed"), [s, d])
                            .unwrap_or_else(computed_k),
                        num_heads: c.num_heads,
                    },
                    output: AbstractorOutputBlock {
                        out_proj: weights.linear(&format!("{l}.output.out_proj"), d, d, true),
                        norm2: weights.layer_norm(
                            &format!("{l}.output.norm2"),
                            d,
                            TORCH_LAYER_NORM_EPS,
                        ),
                        mlp: AbstractorMlp {
                            w1: weights.linear(
                                &format!("{l}.output.mlp.w1"),
                                d,
                                c.intermediate_size,
                                true,
                            ),
                            w2: weights.linear(
                                &format!("{l}.output.mlp.w2"),
                                c.intermediate_size,
                                d,
                                true,
                            ),
                            w3: weights.linear(
                                &format!("{l}.output.mlp.w3"),
                                d,
                                c.intermediate_size,
                                true,
                            ),
                            ffn_ln: weights.layer_norm(
                                &format!("{l}.output.mlp.ffn_ln"),
                                c.intermediate_size,
                                c.layer_norm_eps,
                            ),
                        },
                    },
                }
            })
            .map(|crossattention| AbstractorLayer { crossattention })
            .collect();
        Self {
            query_embeds: Param::from_tensor(weights.tensor("query_embeds", [1, q, d])),
            encoder: AbstractorEncoder { layers },
            visual_fc: weights.linear("visual_fc", d, c.output_size, true),
            vit_eos: Param::from_tensor(weights.tensor("vit_eos", [1, 1, c.output_size])),
            config: c.clone(),
        }
    }

    /// A randomly initialised abstractor ([`VisualAbstractor::load`] from [`Weights::random`]); the position
    /// tables are computed.
    pub fn init(config: &AbstractorConfig, device: &burn::tensor::Device, seed: u64) -> Self {
        Self::load(
            &Weights::random(device, seed, false).scope("model.visual_abstractor"),
            config,
        )
    }

    /// Runs the abstractor on ViT features `[B, 1 + grid², D]` → image tokens `[B, Q + 1, H_llm]`.
    ///
    /// # Errors
    /// Features of another shape than the config's.
    pub fn forward(
        &self,
        image_features: Tensor<3>,
        layer_outputs: bool,
    ) -> Result<AbstractorOutput> {
        let c = &self.config;
        let [b, s, d] = image_features.dims();
        if d != c.hidden_size || s != 1 + c.grid_size * c.grid_size {
            return Err(VisionError::FeatureShape {
                expected: [b, 1 + c.grid_size * c.grid_size, c.hidden_size],
                found: vec![b, s, d],
            });
        }
        let q = c.num_queries;
        let mut x = self.query_embeds.val().expand([b, q, d]);
        let mut outs = layer_outputs.then(Vec::new);
        for layer in &self.encoder.layers {
            x = layer.crossattention.forward(x, image_features.clone());
            if let Some(o) = outs.as_mut() {
                o.push(x.clone());
            }
        }
        let tokens = linear(&self.visual_fc, x);
        let eos = self.vit_eos.val().expand([b, 1, c.output_size]);
        Ok(AbstractorOutput {
            image_embeds: Tensor::cat(vec![tokens, eos], 1),
            layer_outputs: outs,
        })
    }
}

impl CrossAttention {
    /// One layer: queries `x` `[B, Q, D]`, image features `img` `[B, S, D]` → `[B, Q, D]`.
    pub fn forward(&self, x: Tensor<3>, img: Tensor<3>) -> Tensor<3> {
        let [b, q, d] = x.dims();
        let s = img.dims()[1];
        let a = &self.attention;
        let nh = a.num_heads;
        let hd = d / nh;
        let xq = layer_norm(&self.norm1, x);
        let kv = Tensor::cat(vec![xq.clone(), layer_norm(&self.normk, img)], 1);
        let q_pos = a.q_pos_embed.clone().unsqueeze_dim::<3>(0);
        let pos = Tensor::cat(vec![a.q_pos_embed.clone(), a.k_pos_embed.clone()], 0)
            .unsqueeze_dim::<3>(0);
        let query = linear(&a.query, xq.clone() + q_pos);
        let key = linear(&a.key, kv.clone() + pos);
        let value = linear(&a.value, kv);
        let h = |t: &Tensor<3>| biqa_kernels::Heads {
            tensor: t.clone(),
            offset: 0,
            head_stride: hd,
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let ctx = match biqa_kernels::try_attention(
            &h(&query),
            &h(&key),
            &h(&value),
            nh,
            hd,
            scale,
            false,
        ) {
            Some((ctx, _)) => ctx,
            None => {
                let heads = |t: Tensor<3>, len: usize| t.reshape([b, len, nh, hd]).swap_dims(1, 2);
                attention(heads(query, q), heads(key, q + s), heads(value, q + s)).0
            }
        };
        let x = xq + linear(&self.output.out_proj, ctx);
        let h = layer_norm(&self.output.norm2, x.clone());
        let m = &self.output.mlp;
        let g = linear(&m.w1, h.clone());
        let inner = biqa_kernels::silu_mul(g, linear(&m.w3, h));
        x + linear(&m.w2, layer_norm(&m.ffn_ln, inner))
    }
}
