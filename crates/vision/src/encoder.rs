//! The mPLUG-Owl2 vision tower: a CLIP-style ViT (ViT-L/14-448 in the released model) with Megatron's fused QKV.
//!
//! Patch conv without bias (computed as one matmul over unfolded patches), CLS token, learned position embedding,
//! pre-LayerNorm, pre-LN blocks (`x += dense(attn(LN(x)))`, `x += fc2(quick_gelu(fc1(LN(x))))`), post-LayerNorm
//! over all tokens. The fused `query_key_value` rows are ordered `[head][q|k|v][head_dim]`.

use biqa_checkpoint::Weights;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{FloatDType, Tensor};

use crate::config::VisionConfig;
use crate::error::{Result, VisionError};
use crate::ops::{attention, layer_norm, linear};

/// Embeddings: unfolded-patch projection (the bias-free conv), CLS, position embedding, pre-LayerNorm.
#[derive(Module, Debug)]
pub struct VisionEmbeddings {
    /// `cls_token` `[1, 1, D]`.
    pub cls_token: Param<Tensor<3>>,
    /// `position_embedding` `[1, 1 + grid², D]`.
    pub position_embedding: Param<Tensor<3>>,
    /// `patch_embed.weight` as a matrix `[C·p·p, D]` (the conv kernel `[D, C, p, p]` flattened and transposed).
    pub patch_embed: Param<Tensor<2>>,
    /// `pre_layernorm`.
    pub pre_layernorm: LayerNorm,
}

/// Attention with the fused, per-head interleaved `query_key_value` projection.
#[derive(Module, Debug)]
pub struct VisionAttention {
    /// `query_key_value` `[D → 3D]`.
    pub query_key_value: Linear,
    /// `dense` `[D → D]`.
    pub dense: Linear,
    /// Heads.
    #[module(skip)]
    pub num_heads: usize,
}

/// The MLP `fc2(quick_gelu(fc1(x)))`.
#[derive(Module, Debug)]
pub struct VisionMlp {
    /// `fc1`.
    pub fc1: Linear,
    /// `fc2`.
    pub fc2: Linear,
}

/// One pre-LN block.
#[derive(Module, Debug)]
pub struct VisionLayer {
    /// LayerNorm before attention.
    pub input_layernorm: LayerNorm,
    /// Attention.
    pub self_attn: VisionAttention,
    /// LayerNorm before the MLP.
    pub post_attention_layernorm: LayerNorm,
    /// MLP.
    pub mlp: VisionMlp,
}

/// The layer stack (`encoder.layers.{i}`).
#[derive(Module, Debug)]
pub struct VisionEncoder {
    /// Layers.
    pub layers: Vec<VisionLayer>,
}

/// The vision tower (`model.vision_model`).
#[derive(Module, Debug)]
pub struct VisionModel {
    /// Embeddings.
    pub embeddings: VisionEmbeddings,
    /// Layers.
    pub encoder: VisionEncoder,
    /// `post_layernorm`, applied to every token of the last layer.
    pub post_layernorm: LayerNorm,
    /// The config.
    #[module(skip)]
    pub config: VisionConfig,
}

/// What the vision tower returns.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// `post_layernorm(last layer)` `[B, 1 + grid², D]`, CLS included: what the abstractor consumes.
    pub last_hidden_state: Tensor<3>,
    /// When asked: the embeddings (after pre-LN) then every layer's output (no post-LN), `[B, S, D]` each.
    pub hidden_states: Option<Vec<Tensor<3>>>,
    /// When asked: every layer's attention probabilities `[B, heads, S, S]`.
    pub attentions: Option<Vec<Tensor<4>>>,
}

impl VisionModel {
    /// Builds the tower from `weights` scoped to it (`weights.scope("model.vision_model")` for an mPLUG-Owl2
    /// checkpoint; names below are relative: `embeddings.patch_embed.weight`, `encoder.layers.{i}.…`).
    pub fn load(weights: &Weights<'_>, config: &VisionConfig) -> Self {
        let c = config;
        let (d, p, ch) = (c.hidden_size, c.patch_size, c.num_channels);
        let s = c.seq_len();
        let eps = c.layer_norm_eps;
        // Conv kernel [D, C, p, p] → [C·p·p, D] so that unfolded patches [.., C·p·p] multiply it.
        let cpp = ch * p * p;
        let kt = weights
            .tensor("embeddings.patch_embed.weight", [d, ch, p, p])
            .reshape([d, cpp])
            .transpose();
        let embeddings = VisionEmbeddings {
            cls_token: Param::from_tensor(weights.tensor("embeddings.cls_token", [1, 1, d])),
            position_embedding: Param::from_tensor(
                weights.tensor("embeddings.position_embedding", [1, s, d]),
            ),
            patch_embed: Param::from_tensor(kt),
            pre_layernorm: weights.layer_norm("embeddings.pre_layernorm", d, eps),
        };
        let layers = (0..c.num_layers)
            .map(|i| {
                let l = format!("encoder.layers.{i}");
                VisionLayer {
                    input_layernorm: weights.layer_norm(&format!("{l}.input_layernorm"), d, eps),
                    self_attn: VisionAttention {
                        query_key_value: weights.linear(
                            &format!("{l}.self_attn.query_key_value"),
                            d,
                            3 * d,
                            true,
                        ),
                        dense: weights.linear(&format!("{l}.self_attn.dense"), d, d, true),
                        num_heads: c.num_heads,
                    },
                    post_attention_layernorm: weights.layer_norm(
                        &format!("{l}.post_attention_layernorm"),
                        d,
                        eps,
                    ),
                    mlp: VisionMlp {
                        fc1: weights.linear(&format!("{l}.mlp.fc1"), d, c.intermediate_size, true),
                        fc2: weights.linear(&format!("{l}.mlp.fc2"), c.intermediate_size, d, true),
                    },
                }
            })
            .collect();
        Self {
            embeddings,
            encoder: VisionEncoder { layers },
            post_layernorm: weights.layer_norm("post_layernorm", d, eps),
            config: c.clone(),
        }
    }

    /// A randomly initialised tower ([`VisionModel::load`] from [`Weights::random`]).
    pub fn init(config: &VisionConfig, device: &burn::tensor::Device, seed: u64) -> Self {
        Self::load(
            &Weights::random(device, seed, false).scope("model.vision_model"),
            config,
        )
    }

    /// Runs the tower on normalised pixels `[B, C, image_size, image_size]`.
    ///
    /// # Errors
    /// Pixels of another shape than the config's.
    pub fn forward(
        &self,
        pixels: Tensor<4>,
        hidden_states: bool,
        attentions: bool,
    ) -> Result<VisionOutput> {
        let c = &self.config;
        let [b, ch, h, w] = pixels.dims();
        if ch != c.num_channels || h != c.image_size || w != c.image_size {
            return Err(VisionError::PixelShape {
                expected: [b, c.num_channels, c.image_size, c.image_size],
                found: vec![b, ch, h, w],
            });
        }
        let (p, g, d) = (c.patch_size, c.grid(), c.hidden_size);
        let pixels = pixels.cast(FloatDType::from(self.embeddings.patch_embed.val().dtype()));
        // Unfold: [B, C, g, p, g, p] → [B, g, g, C, p, p] → [B, g², C·p·p], row-major patch order.
        let patches = pixels
            .reshape([b, ch, g, p, g, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, g * g, ch * p * p]);
        let x = patches.matmul(self.embeddings.patch_embed.val().unsqueeze_dim::<3>(0));
        let cls = self.embeddings.cls_token.val().expand([b, 1, d]);
        let x = Tensor::cat(vec![cls, x], 1) + self.embeddings.position_embedding.val();
        let mut x = layer_norm(&self.embeddings.pre_layernorm, x);
        let mut hs = hidden_states.then(Vec::new);
        let mut atts = attentions.then(Vec::new);
        for layer in &self.encoder.layers {
            if let Some(v) = hs.as_mut() {
                v.push(x.clone());
            }
            let (out, probs) = layer.self_attn.forward_traced(
                layer_norm(&layer.input_layernorm, x.clone()),
                atts.is_some(),
            );
            if let (Some(a), Some(p)) = (atts.as_mut(), probs) {
                a.push(p);
            }
            x = x + out;
            let hn = layer_norm(&layer.post_attention_layernorm, x.clone());
            let mlp = linear(
                &layer.mlp.fc2,
                biqa_kernels::quick_gelu(linear(&layer.mlp.fc1, hn)),
            );
            x = x + mlp;
        }
        if let Some(v) = hs.as_mut() {
            v.push(x.clone());
        }
        Ok(VisionOutput {
            last_hidden_state: layer_norm(&self.post_layernorm, x),
            hidden_states: hs,
            attentions: atts,
        })
    }
}

impl VisionAttention {
    /// `x` `[B, S, D]` → (`dense(context)` `[B, S, D]`, probabilities `[B, heads, S, S]`).
    pub fn forward(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let (out, probs) = self.forward_traced(x, true);
        (out, probs.expect("asked for"))
    }

    /// [`VisionAttention::forward`], with the probabilities only when `want_probs`.
    pub fn forward_traced(&self, x: Tensor<3>, want_probs: bool) -> (Tensor<3>, Option<Tensor<4>>) {
        let [b, s, d] = x.dims();
        let nh = self.num_heads;
        let hd = d / nh;
        let scale = 1.0 / (hd as f64).sqrt();
        // Rows of the fused weight are [head][q|k|v][hd]: head h's q, k, v sit at columns h·3hd + {0, hd, 2hd}.
        let qkv = linear(&self.query_key_value, x);
        let h = |i: usize| biqa_kernels::Heads {
            tensor: qkv.clone(),
            offset: i * hd,
            head_stride: 3 * hd,
        };
        if let Some((ctx, probs)) =
            biqa_kernels::try_attention(&h(0), &h(1), &h(2), nh, hd, scale, want_probs)
        {
            return (linear(&self.dense, ctx), probs);
        }
        let qkv = qkv.reshape([b, s, nh, 3, hd]).permute([3, 0, 2, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([b, nh, s, hd]);
        let (ctx, probs) = attention(part(0), part(1), part(2));
        (linear(&self.dense, ctx), want_probs.then_some(probs))
    }
}
