//! [`Owl2Net`]: the composed mPLUG-Owl2 network — vision tower, visual abstractor, LLaMA decoder with the
//! modality-adaptive module — as ONE burn module, used by inference ([`crate::Owl2`]), training (on an autodiff
//! device), the probes and the examples. Image encoding and the splice of image tokens into text are written here
//! and nowhere else.
//!
//! The flow: pixels `[N, 3, S, S]` → [`Owl2Net::encode_images`] (ViT → abstractor) → image tokens `[N, Q + 1, H]`
//! → [`Owl2Net::splice`] (rows of [`Segment`]s: text ids through `embed_tokens`, image slots from the image
//! tokens, zero re-padding) → embeddings `[B, L, H]` and per-token modality → [`Owl2Net::forward`] (the decoder)
//! → logits / hidden states / attentions.

use std::collections::BTreeMap;

use biqa_checkpoint::Weights;
use biqa_decoder::{DecoderInput, DecoderOutput, ForwardOptions, KvCache, Llama};
use biqa_vision::{VisionModel, VisualAbstractor};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

use crate::config::Owl2Config;
use crate::error::{ModelError, Result};
use crate::names::{CheckpointTensors, ParamLayout, param_infos, param_values};

/// mPLUG-Owl2 (`MPLUGOwl2LlamaForCausalLM`) as one module tree. The field paths mirror the checkpoint names:
/// `llm` holds `model.embed_tokens`, `model.layers.*`, `model.norm` and `lm_head`; `vision_model` is
/// `model.vision_model`; `visual_abstractor` is `model.visual_abstractor`. A plain LLaMA directory has no vision
/// half.
#[derive(Module, Debug)]
pub struct Owl2Net {
    /// The language model (`model.*` of the LLM and `lm_head`).
    pub llm: Llama,
    /// `model.vision_model` (absent for a plain LLaMA).
    pub vision_model: Option<VisionModel>,
    /// `model.visual_abstractor` (absent for a plain LLaMA).
    pub visual_abstractor: Option<VisualAbstractor>,
}

/// One piece of a spliced input row, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Token ids embedded with `embed_tokens` (pad ids included, as the original embeds whole padded rows).
    Text(Vec<u32>),
    /// The image tokens of image `i` of the batch (`Q + 1` positions, modality 1).
    Image(usize),
    /// This many zero vectors (training's re-padding to the longest expanded row).
    Zeros(usize),
}

impl Segment {
    /// The number of positions the segment takes, with `image_tokens` positions per image.
    #[must_use]
    pub fn len(&self, image_tokens: usize) -> usize {
        match self {
            Segment::Text(ids) => ids.len(),
            Segment::Image(_) => image_tokens,
            Segment::Zeros(n) => *n,
        }
    }

    /// Whether the segment takes no position.
    #[must_use]
    pub fn is_empty(&self, image_tokens: usize) -> bool {
        self.len(image_tokens) == 0
    }

    /// The modality of the segment's positions: 1 on image tokens, 0 elsewhere.
    #[must_use]
    pub fn modality(&self) -> u8 {
        u8::from(matches!(self, Segment::Image(_)))
    }
}

/// Where padding goes when rows of different lengths are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaddingSide {
    /// Before the row (inference and generation: every row's last token is at the same position).
    Left,
    /// After the row (training: `labels[:, 1:]` against `logits[:, :-1]`, as the original collator).
    Right,
}

/// What padding positions hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadFill {
    /// The embedding of this token id (the pad token at inference).
    Token(u32),
    /// Zero vectors (training's re-padding after image expansion).
    Zeros,
}

/// Pads `rows` of segments to the longest row, on `side`, with `fill`; returns the padding added to each row.
/// Nothing is added to a row that is already the longest.
pub fn pad_rows(
    rows: &mut [Vec<Segment>],
    image_tokens: usize,
    side: PaddingSide,
    fill: PadFill,
) -> Vec<usize> {
    let len = |r: &[Segment]| r.iter().map(|s| s.len(image_tokens)).sum::<usize>();
    let max = rows.iter().map(|r| len(r)).max().unwrap_or(0);
    rows.iter_mut()
        .map(|row| {
            let n = max - len(row);
            if n > 0 {
                let seg = match fill {
                    PadFill::Token(id) => Segment::Text(vec![id; n]),
                    PadFill::Zeros => Segment::Zeros(n),
                };
                match side {
                    PaddingSide::Left => row.insert(0, seg),
                    PaddingSide::Right => row.push(seg),
                }
            }
            n
        })
        .collect()
}

/// The modality of every position of `rows` (row-major `[B, L]`): 1 on image tokens, 0 elsewhere.
#[must_use]
pub fn segment_modality(rows: &[Vec<Segment>], image_tokens: usize) -> Vec<u8> {
    rows.iter()
        .flatten()
        .flat_map(|s| std::iter::repeat_n(s.modality(), s.len(image_tokens)))
        .collect()
}

/// Whether no float parameter of `module` requires a gradient (a frozen part, or a module without parameters).
pub fn is_frozen<M: Module>(module: &M) -> bool {
    struct AnyTrainable(bool);
    impl ModuleVisitor for AnyTrainable {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0 |= param.is_require_grad();
        }
    }
    let mut v = AnyTrainable(false);
    module.visit(&mut v);
    !v.0
}

impl Owl2Net {
    /// Builds the network from `weights` (a checkpoint by HF name, or [`Weights::random`]) for `config`: the LLM,
    /// and the vision half when the config has one. Problems are collected by `weights` (see
    /// [`Weights::finish`]).
    pub fn load(weights: &Weights<'_>, config: &Owl2Config) -> Self {
        let llm = Llama::load(weights, &config.llm);
        let (vision_model, visual_abstractor) = match &config.vision {
            Some(v) => (
                Some(VisionModel::load(
                    &weights.scope("model.vision_model"),
                    &v.tower,
                )),
                Some(VisualAbstractor::load(
                    &weights.scope("model.visual_abstractor"),
                    &v.abstractor,
                )),
            ),
            None => (None, None),
        };
        Self {
            llm,
            vision_model,
            visual_abstractor,
        }
    }

    /// A randomly initialised network ([`Owl2Net::load`] from [`Weights::random`]; modality-adaptive when the
    /// config says so).
    pub fn random(config: &Owl2Config, device: &Device, seed: u64) -> Self {
        Self::load(&Weights::random(device, seed, config.multiway()), config)
    }

    /// The parameters a random build of `config` has, in load order: `(HF name, HF shape)`. A dry run of
    /// [`Owl2Net::load`] ([`Weights::plan`]) finds them, so the list is the loading code's own and costs no memory
    /// at any size.
    pub fn random_layout(config: &Owl2Config) -> Vec<(String, Vec<usize>)> {
        let plan = Weights::plan(&Device::flex(), config.multiway());
        let _ = Self::load(&plan, config);
        plan.planned()
    }

    /// Writes the checkpoint of [`Owl2Net::random`]`(config, _, seed)` as `dtype` safetensors (sharded by
    /// `max_shard_bytes`, see [`biqa_checkpoint::write_sharded`]) into `out_dir`, one shard in memory at a time:
    /// loading it gives the random network (bit for bit in f32). Only the weights: the caller writes
    /// `config.json` and the tokenizer. This is how the benchmarks make real-shape and 7B checkpoints.
    ///
    /// # Errors
    /// An unsupported dtype or an I/O error (named).
    pub fn write_random_checkpoint(
        config: &Owl2Config,
        seed: u64,
        dtype: burn::tensor::DType,
        out_dir: &std::path::Path,
        max_shard_bytes: u64,
    ) -> Result<Vec<std::path::PathBuf>> {
        let layout = Self::random_layout(config);
        let entries: Vec<biqa_checkpoint::TensorEntry> = layout
            .iter()
            .map(|(name, shape)| biqa_checkpoint::TensorEntry {
                name: name.clone(),
                shape: shape.clone(),
                dtype,
            })
            .collect();
        // Each tensor's values are one sequential stream; tensors are drawn in parallel, a block of up to
        // 512 MiB of f32 ahead of the writer at a time.
        let index: BTreeMap<&str, usize> = layout
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        let mut ready: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
        let fetch = |name: &str| {
            let i = index.get(name).copied().unwrap_or(usize::MAX);
            let Some((_, shape)) = layout.get(i) else {
                return Err(biqa_checkpoint::CheckpointError::NotFound {
                    source_desc: format!("a random checkpoint (seed {seed})"),
                    name: name.to_string(),
                });
            };
            if !ready.contains_key(&i) {
                let (mut end, mut bytes) = (i, 0usize);
                while end < layout.len() && (end == i || bytes < 512 << 20) {
                    bytes += layout[end].1.iter().product::<usize>() * 4;
                    end += 1;
                }
                let block: Vec<(usize, Vec<f32>)> = (i..end)
                    .into_par_iter()
                    .map(|j| {
                        (
                            j,
                            biqa_checkpoint::random_values(&layout[j].0, &layout[j].1, seed),
                        )
                    })
                    .collect();
                ready.extend(block);
            }
            let values = ready.remove(&i).unwrap_or_default();
            Ok(burn::tensor::TensorData::new(values, shape.clone()).convert_dtype(dtype))
        };
        let desc = format!("a random checkpoint (seed {seed})");
        Ok(biqa_checkpoint::write_sharded(
            out_dir,
            &desc,
            &entries,
            fetch,
            max_shard_bytes,
        )?)
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.llm.device()
    }

    /// Whether the network has a vision half.
    pub fn has_vision(&self) -> bool {
        self.vision_model.is_some() && self.visual_abstractor.is_some()
    }

    /// The number of image tokens each image becomes (`Q + 1`: the abstractor's queries and its EOS token), or
    /// `None` for a text-only network.
    pub fn image_tokens(&self) -> Option<usize> {
        self.visual_abstractor
            .as_ref()
            .map(|a| a.config.num_queries + 1)
    }

    /// Image tokens `[N, Q + 1, H]` from normalised pixels `[N, 3, S, S]`.
    ///
    /// On an autodiff device, a frozen tower has nothing to differentiate (the pixels are data), so it runs
    /// without autodiff: no graph is recorded, the fused CPU kernels apply, and its output re-enters the graph as a
    /// constant; the same for the abstractor when it is frozen too (Q-Align's LoRA recipe freezes the tower).
    ///
    /// # Errors
    /// [`ModelError::NoVision`] for a text-only network, or pixels of the wrong shape.
    pub fn encode_images(&self, pixels: Tensor<4>) -> Result<Tensor<3>> {
        let (Some(tower), Some(abstractor)) = (&self.vision_model, &self.visual_abstractor) else {
            return Err(ModelError::NoVision { dir: None });
        };
        let plain = pixels.is_autodiff() && !pixels.is_require_grad();
        let tower_plain = plain && is_frozen(tower);
        let features = if tower_plain {
            tower
                .valid()
                .forward(pixels.without_autodiff(), false, false)?
                .last_hidden_state
        } else {
            tower.forward(pixels, false, false)?.last_hidden_state
        };
        if tower_plain && is_frozen(abstractor) {
            let embeds = abstractor.valid().forward(features, false)?.image_embeds;
            return Ok(embeds.autodiff());
        }
        let features = if tower_plain {
            features.autodiff()
        } else {
            features
        };
        Ok(abstractor.forward(features, false)?.image_embeds)
    }

    /// Input embeddings `[B, L, H]` of `rows` of segments (all of the same length `L`): text through
    /// `embed_tokens`, image slot `i` from `images` `[N, Q + 1, H]`, zero vectors for [`Segment::Zeros`].
    ///
    /// # Errors
    /// Rows of different lengths, an image slot without images or beyond them, or no position at all.
    pub fn splice(&self, rows: &[Vec<Segment>], images: Option<&Tensor<3>>) -> Result<Tensor<3>> {
        let h = self.llm.config.hidden_size;
        let device = self.llm.device();
        let (n_images, image_tokens) = images.map_or((0, 0), |t| {
            let [n, q, _] = t.dims();
            (n, q)
        });
        let lens: Vec<usize> = rows
            .iter()
            .map(|r| r.iter().map(|s| s.len(image_tokens)).sum())
            .collect();
        let len = lens.first().copied().unwrap_or(0);
        if len == 0 || lens.iter().any(|&l| l != len) {
            return Err(ModelError::RowLengths { lens });
        }
        // Padding in the embeddings' dtype (bf16 parameters give bf16 embeddings; `zeros` alone would be f32).
        let dtype = self.llm.embed_tokens.val().dtype();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut pieces = Vec::with_capacity(row.len());
            for seg in row {
                match seg {
                    Segment::Text(ids) if !ids.is_empty() => {
                        pieces.push(self.llm.embed_ids(std::slice::from_ref(ids))?);
                    }
                    Segment::Text(_) | Segment::Zeros(0) => {}
                    Segment::Image(i) => {
                        let imgs =
                            images
                                .filter(|_| *i < n_images)
                                .ok_or(ModelError::ImageSlot {
                                    slot: *i,
                                    images: n_images,
                                })?;
                        pieces.push(imgs.clone().narrow(0, *i, 1));
                    }
                    Segment::Zeros(n) => {
                        let zeros = Tensor::<3>::zeros([1, *n, h], &device);
                        pieces.push(if zeros.dtype() == dtype {
                            zeros
                        } else {
                            zeros.cast(burn::tensor::FloatDType::from(dtype))
                        });
                    }
                }
            }
            out.push(Tensor::cat(pieces, 1));
        }
        Ok(Tensor::cat(out, 0))
    }

    /// The decoder's forward on spliced input (see [`Llama::forward`]).
    ///
    /// # Errors
    /// Decoder errors (shapes, cache, positions).
    pub fn forward(
        &self,
        input: DecoderInput,
        cache: &mut KvCache,
        options: ForwardOptions,
    ) -> Result<DecoderOutput> {
        Ok(self.llm.forward(input, cache, options)?)
    }

    /// Every parameter as the checkpoint stores it: HF name → (checkpoint shape, f32 values in the checkpoint's
    /// order), by the layout of [`crate::names`] (LoRA factors under their PEFT names unless merged). Loading a
    /// checkpoint and taking this gives its parameters back bit for bit (tested), so the export writes what the
    /// loader reads.
    ///
    /// # Errors
    /// [`ModelError::HostRead`] when a parameter cannot be read back as f32.
    pub fn checkpoint_tensors(&self) -> Result<CheckpointTensors> {
        let mut values = param_values(self);
        let mut out = BTreeMap::new();
        for p in param_infos(self) {
            let Some(t) = values.remove(&p.id) else {
                continue;
            };
            let host = t
                .into_data()
                .try_to_vec_as::<f32>()
                .map_err(|e| ModelError::HostRead {
                    what: "a parameter",
                    reason: format!("{}: {e:?}", p.name),
                })?;
            let (mut shape, v) = p.layout.to_checkpoint(&host, &p.shape);
            if p.layout == ParamLayout::PatchMatrix
                && let Some(vm) = &self.vision_model
            {
                let c = &vm.config;
                shape = vec![c.hidden_size, c.num_channels, c.patch_size, c.patch_size];
            }
            out.insert(p.name, (shape, v));
        }
        Ok(out)
    }

    /// Folds every LoRA branch of the LLM into its projection's weight (`W + (α/r)·A·B`) and drops it, leaving the
    /// plain network with the checkpoint's parameter names. Call it on [`Module::valid`] for scoring and export.
    #[must_use]
    pub fn merge_lora(self) -> Self {
        Self {
            llm: self.llm.merge_lora(),
            ..self
        }
    }
}
