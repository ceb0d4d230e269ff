//! The LLaMA decoder ([`Llama`]): loading by HF names, the forward pass with traces, and unembedding.

use std::path::Path;

use biqa_checkpoint::{Checkpoint, FloatPolicy, Weights};
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Bool, DType, Device, FloatDType, Int, Tensor, TensorData};

use crate::cache::KvCache;
use crate::config::LlamaConfig;
use crate::error::{DecoderError, Result};
use crate::layers::{
    Attention, DecoderLayer, Mlp, MultiwayLinear, MultiwayNorm, Projection, RmsNorm, Routing,
};

/// RoPE cos/sin tables `[max_positions, head_dim]`, computed in f32 exactly as HF does
/// (`inv_freq = 1 / θ^(2i/d)`, `freqs = t · inv_freq`, `emb = cat(freqs, freqs)`).
#[derive(Debug, Clone)]
pub struct Rope {
    /// `cos(emb)` `[max_positions, head_dim]`.
    pub cos: Tensor<2>,
    /// `sin(emb)` `[max_positions, head_dim]`.
    pub sin: Tensor<2>,
    /// Number of positions covered.
    pub max_positions: usize,
}

impl Rope {
    /// Builds the tables for `config` on `device`.
    pub fn new(config: &LlamaConfig, device: &Device) -> Self {
        let (d, n) = (config.head_dim, config.max_position_embeddings);
        let theta = config.rope_theta as f32;
        let inv_freq: Vec<f32> = (0..d / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / d as f32))
            .collect();
        let (mut cos, mut sin) = (Vec::with_capacity(n * d), Vec::with_capacity(n * d));
        for t in 0..n {
            // emb = cat(freqs, freqs)
            for _ in 0..2 {
                for &f in &inv_freq {
                    let a = t as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [n, d]), device),
            sin: Tensor::from_data(TensorData::new(sin, [n, d]), device),
            max_positions: n,
        }
    }
}

/// Modality of every token of a forward: 0 = text, 1 = image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modality {
    /// Every token is text.
    Text,
    /// Every token is image.
    Image,
    /// One flag per token, row-major `[B·L]`.
    PerToken(Vec<u8>),
}

/// The inputs of one forward pass.
#[derive(Debug, Clone)]
pub struct DecoderInput {
    /// Input embeddings `[B, L, H]` (see [`Llama::embed`] for token ids).
    pub embeds: Tensor<3>,
    /// Modality of each token.
    pub modality: Modality,
    /// Position ids, row-major `[B·L]`; `None` means `past..past+L` for every row.
    pub positions: Option<Vec<i64>>,
    /// Padding flags of the new tokens, row-major `[B·L]`, true = real token; `None` means all real.
    /// Earlier tokens' flags are remembered by the [`KvCache`].
    pub padding: Option<Vec<bool>>,
}

impl DecoderInput {
    /// Text embeddings at the default positions, no padding.
    pub fn text(embeds: Tensor<3>) -> Self {
        Self {
            embeds,
            modality: Modality::Text,
            positions: None,
            padding: None,
        }
    }
}

/// Which logits a forward computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogitsMode {
    /// Every position: `[B, L, V]`.
    All,
    /// The last position only: `[B, 1, V]` (prefill before generation, scoring).
    #[default]
    Last,
    /// None (only traces).
    None,
}

/// What a forward should return besides the logits. Asking for nothing costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// Which logits.
    pub logits: LogitsMode,
    /// Return the hidden states (HF convention) and raw layer outputs.
    pub hidden_states: bool,
    /// Return the attention probabilities of every layer.
    pub attentions: bool,
}

/// The outputs of a forward pass.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// Logits `[B, L, V]` ([`LogitsMode::All`]) or `[B, 1, V]` ([`LogitsMode::Last`]).
    pub logits: Option<Tensor<3>>,
    /// HF convention: `num_layers + 1` tensors `[B, L, H]`; 0 = the input embeddings, i = the output of layer
    /// i − 1, and the last one = the final RMSNorm of the last layer's output.
    pub hidden_states: Option<Vec<Tensor<3>>>,
    /// The raw output of every layer `[B, L, H]` (the last one before the final norm).
    pub layer_outputs: Option<Vec<Tensor<3>>>,
    /// Attention probabilities of every layer `[B, heads, L, past + L]`.
    pub attentions: Option<Vec<Tensor<4>>>,
    /// The final-normed hidden state `[B, L, H]`.
    pub last_hidden_state: Tensor<3>,
}

/// LLaMA / LLaMA-2 with mPLUG-Owl2's modality-adaptive module (two branches for k/v projections and the two
/// norms of each layer) or plain (one branch).
#[derive(Module, Debug)]
pub struct Llama {
    /// `model.embed_tokens.weight` `[V, H]`.
    pub embed_tokens: Param<Tensor<2>>,
    /// `model.layers.{i}`.
    pub layers: Vec<DecoderLayer>,
    /// `model.norm`.
    pub norm: RmsNorm,
    /// `lm_head` `[H → V]`; `None` when tied to the embeddings.
    pub lm_head: Option<Linear>,
    /// RoPE tables.
    #[module(skip)]
    pub rope: Rope,
    /// The config.
    #[module(skip)]
    pub config: LlamaConfig,
}

impl Llama {
    /// Builds the decoder from `weights` (HF names: `model.embed_tokens`, `model.layers.{i}.…`, `model.norm`,
    /// `lm_head`). mPLUG-Owl2 checkpoints (`…k_proj.multiway.{0,1}…`) get two modality branches, plain LLaMA
    /// ones one. Problems are recorded in `weights` (see [`Weights::finish`]).
    pub fn load(weights: &Weights<'_>, config: &LlamaConfig) -> Self {
        let c = config;
        let multiway = weights.contains("model.layers.0.self_attn.k_proj.multiway.0.weight");
        let (h, kv) = (c.hidden_size, c.num_kv_heads * c.head_dim);
        let norm = |name: &str| RmsNorm {
            weight: Param::from_tensor(weights.tensor(name, [h])),
            eps: c.rms_norm_eps,
        };
        let mw_norm = |prefix: &str| MultiwayNorm {
            multiway: if multiway {
                (0..2)
                    .map(|m| norm(&format!("{prefix}.multiway.{m}.weight")))
                    .collect()
            } else {
                vec![norm(&format!("{prefix}.weight"))]
            },
        };
        let proj = |prefix: &str, d_in: usize, d_out: usize| -> Projection {
            weights.linear(prefix, d_in, d_out, false).into()
        };
        let mw_linear = |prefix: &str, d_out: usize| MultiwayLinear {
            multiway: if multiway {
                (0..2)
                    .map(|m| proj(&format!("{prefix}.multiway.{m}"), h, d_out))
                    .collect()
            } else {
                vec![proj(prefix, h, d_out)]
            },
        };
        let layers = (0..c.num_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                DecoderLayer {
                    input_layernorm: mw_norm(&format!("{p}.input_layernorm")),
                    self_attn: Attention {
                        q_proj: proj(
                            &format!("{p}.self_attn.q_proj"),
                            h,
                            c.num_heads * c.head_dim,
                        ),
                        k_proj: mw_linear(&format!("{p}.self_attn.k_proj"), kv),
                        v_proj: mw_linear(&format!("{p}.self_attn.v_proj"), kv),
                        o_proj: proj(
                            &format!("{p}.self_attn.o_proj"),
                            c.num_heads * c.head_dim,
                            h,
                        ),
                        num_heads: c.num_heads,
                        num_kv_heads: c.num_kv_heads,
                        head_dim: c.head_dim,
                    },
                    post_attention_layernorm: mw_norm(&format!("{p}.post_attention_layernorm")),
                    mlp: Mlp {
                        gate_proj: proj(&format!("{p}.mlp.gate_proj"), h, c.intermediate_size),
                        up_proj: proj(&format!("{p}.mlp.up_proj"), h, c.intermediate_size),
                        down_proj: proj(&format!("{p}.mlp.down_proj"), c.intermediate_size, h),
                    },
                }
            })
            .collect();
        let tied = c.tie_word_embeddings && !weights.contains("lm_head.weight");
        Self {
            embed_tokens: Param::from_tensor(
                weights.tensor("model.embed_tokens.weight", [c.vocab_size, h]),
            ),
            layers,
            norm: norm("model.norm.weight"),
            lm_head: (!tied).then(|| weights.linear("lm_head", h, c.vocab_size, false)),
            rope: Rope::new(c, weights.device()),
            config: c.clone(),
        }
    }

    /// A randomly initialised decoder with `modalities` branches (1 = plain LLaMA, 2 = modality-adaptive), for
    /// training from scratch, tests and benchmarks: [`Llama::load`] from [`Weights::random`]. The same `seed`
    /// gives the same weights on every backend.
    pub fn init(config: &LlamaConfig, modalities: usize, device: &Device, seed: u64) -> Self {
        Self::load(&Weights::random(device, seed, modalities >= 2), config)
    }

    /// Loads a plain LLaMA checkpoint directory (`config.json` + weights in any format).
    ///
    /// # Errors
    /// Config or checkpoint errors; every missing, mis-shaped or unexpected tensor is listed.
    pub fn from_dir(dir: &Path, device: &Device, policy: FloatPolicy) -> Result<Self> {
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let ckpt = Checkpoint::open(dir)?;
        let weights = Weights::new(&ckpt, device)
            .with_policy(policy)
            .ignore_unused("rotary_emb.inv_freq");
        let model = Self::load(&weights, &config);
        weights.finish()?;
        Ok(model)
    }

    /// Every linear projection of the decoder layers with its checkpoint module name
    /// (`model.layers.{i}.self_attn.q_proj`, `model.layers.{i}.self_attn.v_proj.multiway.1`, …; `lm_head` is not
    /// one), in module order: the candidates for LoRA adapters.
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Projection)> {
        self.layers
            .iter_mut()
            .enumerate()
            .flat_map(|(i, layer)| {
                layer
                    .projections_mut()
                    .into_iter()
                    .map(move |(name, p)| (format!("model.layers.{i}.{name}"), p))
            })
            .collect()
    }

    /// Folds every LoRA branch into its projection's weight and drops it (see [`Projection::merge_lora`]): the
    /// plain decoder, with the parameter names of the checkpoint it was loaded from.
    pub fn merge_lora(mut self) -> Self {
        for (_, p) in self.projections_mut() {
            p.merge_lora();
        }
        self
    }

    /// Number of modality branches (2 for mPLUG-Owl2, 1 for plain LLaMA).
    pub fn modalities(&self) -> usize {
        self.layers
            .first()
            .map_or(1, |l| l.input_layernorm.multiway.len())
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.embed_tokens.val().device()
    }

    /// Embeds token ids `[B, L]` → `[B, L, H]`.
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [b, l] = ids.dims();
        let h = self.config.hidden_size;
        self.embed_tokens
            .val()
            .select(0, ids.reshape([b * l]))
            .reshape([b, l, h])
    }

    /// Embeds rows of token ids of equal length.
    ///
    /// # Errors
    /// Ragged rows or an id outside the vocabulary.
    pub fn embed_ids(&self, rows: &[Vec<u32>]) -> Result<Tensor<3>> {
        let l = rows.first().map_or(0, Vec::len);
        if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != l) {
            return Err(DecoderError::RaggedRows {
                row,
                expected: l,
                found: r.len(),
            });
        }
        if l == 0 {
            return Err(DecoderError::EmptyInput {
                input: "the token rows",
            });
        }
        if let Some(&bad) = rows
            .iter()
            .flatten()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            return Err(DecoderError::TokenOutOfVocab {
                id: bad,
                vocab_size: self.config.vocab_size,
            });
        }
        let flat: Vec<i64> = rows.iter().flatten().map(|&t| i64::from(t)).collect();
        let ids =
            Tensor::<2, Int>::from_data(TensorData::new(flat, [rows.len(), l]), &self.device());
        Ok(self.embed(ids))
    }

    /// The head alone: `normed` `[B, L, H]` (already final-normed) → logits `[B, L, V]`.
    pub fn head(&self, normed: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(lin) => biqa_kernels::linear_module(lin, normed),
            None => {
                let [b, l, h] = normed.dims();
                let w = self.embed_tokens.val(); // [V, H]
                let v = w.dims()[0];
                normed
                    .reshape([b * l, h])
                    .matmul(w.transpose())
                    .reshape([b, l, v])
            }
        }
    }

    /// Final norm then head: the logits a hidden state `[B, L, H]` would give if it were the last layer's output
    /// (the logit lens). Do not apply it to the last HF hidden state, which is already normed: use [`Llama::head`].
    pub fn unembed(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.head(self.norm.forward(hidden))
    }

    fn routing(&self, modality: &Modality, n: usize, device: &Device) -> Result<Routing> {
        Ok(match modality {
            Modality::Text => Routing::Uniform(0),
            Modality::Image => Routing::Uniform(1),
            Modality::PerToken(flags) => {
                if flags.len() != n {
                    return Err(DecoderError::LengthMismatch {
                        input: "modality flags",
                        expected: n,
                        found: flags.len(),
                        unit: "tokens",
                    });
                }
                if let Some((index, &flag)) = flags.iter().enumerate().find(|&(_, &f)| f > 1) {
                    return Err(DecoderError::InvalidModalityFlag { index, flag });
                }
                let text: Vec<i64> = (0..n as i64).filter(|&i| flags[i as usize] == 0).collect();
                let image: Vec<i64> = (0..n as i64).filter(|&i| flags[i as usize] == 1).collect();
                if image.is_empty() || self.modalities() == 1 {
                    Routing::Uniform(0)
                } else if text.is_empty() {
                    Routing::Uniform(1)
                } else {
                    let mut inverse = vec![0i64; n];
                    for (k, &i) in text.iter().chain(&image).enumerate() {
                        inverse[i as usize] = k as i64;
                    }
                    let t = |v: Vec<i64>| {
                        let len = v.len();
                        Tensor::<1, Int>::from_data(TensorData::new(v, [len]), device)
                    };
                    Routing::Mixed {
                        text: t(text),
                        image: t(image),
                        inverse: t(inverse),
                    }
                }
            }
        })
    }

    /// One forward pass over new tokens, appending their keys/values to `cache`.
    ///
    /// # Errors
    /// Inconsistent input sizes, positions beyond the RoPE table, or a cache of another batch size.
    pub fn forward(
        &self,
        input: DecoderInput,
        cache: &mut KvCache,
        options: ForwardOptions,
    ) -> Result<DecoderOutput> {
        let DecoderInput {
            embeds,
            modality,
            positions,
            padding,
        } = input;
        let [b, l, h] = embeds.dims();
        if h != self.config.hidden_size {
            return Err(DecoderError::WidthMismatch {
                expected: self.config.hidden_size,
                found: h,
            });
        }
        if l == 0 {
            return Err(DecoderError::EmptyInput {
                input: "the embeddings",
            });
        }
        cache.prepare(b, self.layers.len())?;
        let past = cache.len();
        let device = embeds.device();
        let positions = match positions {
            Some(p) if p.len() == b * l => p,
            Some(p) => {
                return Err(DecoderError::LengthMismatch {
                    input: "position ids",
                    expected: b * l,
                    found: p.len(),
                    unit: "tokens",
                });
            }
            None => (0..b)
                .flat_map(|_| (past..past + l).map(|p| p as i64))
                .collect(),
        };
        if let Some(&bad) = positions
            .iter()
            .find(|&&p| p < 0 || p as usize >= self.rope.max_positions)
        {
            return Err(DecoderError::PositionOutOfRange {
                position: bad,
                max: self.rope.max_positions,
            });
        }
        let padding = match padding {
            Some(p) if p.len() == b * l => p,
            Some(p) => {
                return Err(DecoderError::LengthMismatch {
                    input: "padding flags",
                    expected: b * l,
                    found: p.len(),
                    unit: "tokens",
                });
            }
            None => vec![true; b * l],
        };
        cache.push_padding(&padding, l);
        let routing = self.routing(&modality, b * l, &device)?;

        // RoPE tables gathered at the positions: [B, 1, L, hd].
        let hd = self.config.head_dim;
        let pos = Tensor::<1, Int>::from_data(TensorData::new(positions, [b * l]), &device);
        let gather = |table: &Tensor<2>| {
            let t = table.clone().select(0, pos.clone()).reshape([b, 1, l, hd]);
            if embeds.dtype() == DType::F32 {
                t
            } else {
                t.cast(FloatDType::from(embeds.dtype()))
            }
        };
        let (cos, sin) = (gather(&self.rope.cos), gather(&self.rope.sin));

        // Causal + padding mask [B, 1, L, T] (true = masked), only when something is masked.
        let t_len = past + l;
        let valid = cache.valid();
        let any_pad = valid.iter().any(|&v| !v);
        let mask = (l > 1 || any_pad).then(|| {
            let mut m = vec![false; b * l * t_len];
            for bi in 0..b {
                for i in 0..l {
                    for j in 0..t_len {
                        m[(bi * l + i) * t_len + j] = j > past + i || !valid[bi * t_len + j];
                    }
                }
            }
            Tensor::<4, Bool>::from_data(TensorData::new(m, [b, 1, l, t_len]), &device)
        });

        let mut hidden_states = options.hidden_states.then(Vec::new);
        let mut layer_outputs = options.hidden_states.then(Vec::new);
        let mut attentions = options.attentions.then(Vec::new);
        let mut x = embeds;
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(hs) = hidden_states.as_mut() {
                hs.push(x.clone());
            }
            let hn = layer.input_layernorm.forward(x.clone(), &routing);
            let att = layer.self_attn.forward(
                hn,
                &routing,
                &cos,
                &sin,
                cache.take(i),
                mask.as_ref(),
                options.attentions,
            );
            cache.put(i, att.keys, att.values);
            if let (Some(a), Some(p)) = (attentions.as_mut(), att.probs) {
                a.push(p);
            }
            x = x + att.output;
            let hn = layer.post_attention_layernorm.forward(x.clone(), &routing);
            x = x.clone() + layer.mlp.forward(hn);
            if let Some(lo) = layer_outputs.as_mut() {
                lo.push(x.clone());
            }
        }
        cache.advance(l);
        let last = self.norm.forward(x);
        if let Some(hs) = hidden_states.as_mut() {
            hs.push(last.clone());
        }
        let logits = match options.logits {
            LogitsMode::All => Some(self.head(last.clone())),
            LogitsMode::Last => Some(self.head(last.clone().narrow(1, l - 1, 1))),
            LogitsMode::None => None,
        };
        Ok(DecoderOutput {
            logits,
            hidden_states,
            layer_outputs,
            attentions,
            last_hidden_state: last,
        })
    }
}
