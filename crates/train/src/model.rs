//! The trainable mPLUG-Owl2: the LLM, the vision tower and the abstractor as one burn module, and the training
//! forward (`MPLUGOwl2LlamaForCausalLM.forward` with labels).

use std::path::{Path, PathBuf};

use biqa_decoder::{DecoderInput, ForwardOptions, KvCache, Llama, LogitsMode, Modality};
use biqa_model::Owl2;
use biqa_model::VisionPart;
use biqa_model::tokenizer::Tokenizer;
use biqa_vision::{Preprocessor, VisionModel, VisualAbstractor};
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::batch::{ExpandedBatch, Segment};
use crate::error::{Result, TrainError};
use crate::loss::label_smoothed_nll;
use crate::params::is_frozen;

/// mPLUG-Owl2 as one module tree, so that freezing, LoRA, gradients and the optimiser see every parameter.
/// Field paths mirror the checkpoint names (see [`crate::params`]).
#[derive(Module, Debug)]
pub struct Owl2Train {
    /// `model.*` of the LLM and `lm_head`.
    pub llm: Llama,
    /// `model.vision_model` (absent for a plain LLaMA).
    pub vision_model: Option<VisionModel>,
    /// `model.visual_abstractor`.
    pub visual_abstractor: Option<VisualAbstractor>,
}

/// What a checkpoint directory brings besides the parameters.
#[derive(Debug, Clone)]
pub struct ModelAssets {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Image preprocessing (absent for a plain LLaMA).
    pub preprocessor: Option<Preprocessor>,
    /// The directory it came from (config, tokenizer and preprocessor files are copied from it on export).
    pub dir: PathBuf,
}

/// One training forward's result.
#[derive(Debug)]
pub struct TrainOutput {
    /// The scalar loss `[1]` (attached to the autodiff graph when the model is).
    pub loss: Tensor<1>,
    /// The number of supervised tokens `N`.
    pub tokens: usize,
    /// The logits at the supervised positions `[N, V]` (row n predicts `targets[n]`).
    pub logits: Tensor<2>,
    /// The supervised target ids.
    pub targets: Vec<u32>,
    /// For each supervised position: `(row, t)` in the expanded frame, `t` the position whose logits predict
    /// the label at `t + 1`.
    pub positions: Vec<(usize, usize)>,
}

impl Owl2Train {
    /// Splits a loaded [`Owl2`] into the trainable module and its assets.
    pub fn from_owl2(owl: Owl2) -> (Self, ModelAssets) {
        let Owl2 {
            llm,
            vision,
            tokenizer,
            dir,
        } = owl;
        let (vision_model, visual_abstractor, preprocessor) = match vision {
            Some(VisionPart {
                tower,
                abstractor,
                preprocessor,
            }) => (Some(tower), Some(abstractor), Some(preprocessor)),
            None => (None, None, None),
        };
        (
            Self {
                llm,
                vision_model,
                visual_abstractor,
            },
            ModelAssets {
                tokenizer,
                preprocessor,
                dir,
            },
        )
    }

    /// Loads a checkpoint directory onto `device` (use `device.autodiff()` to train).
    ///
    /// # Errors
    /// As [`Owl2::from_dir`].
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<(Self, ModelAssets)> {
        let owl = Owl2::from_dir(dir, device, &biqa_model::LoadOptions::default())?;
        Ok(Self::from_owl2(owl))
    }

    /// Puts the module back together with its assets as an [`Owl2`] for scoring and generation. Call it on
    /// [`Module::valid`] to leave the autodiff graph (and LoRA factors merged with [`merge_lora`]).
    pub fn into_owl2(self, assets: &ModelAssets) -> Owl2 {
        let vision = match (
            self.vision_model,
            self.visual_abstractor,
            &assets.preprocessor,
        ) {
            (Some(tower), Some(abstractor), Some(p)) => Some(VisionPart {
                tower,
                abstractor,
                preprocessor: p.clone(),
            }),
            _ => None,
        };
        Owl2 {
            llm: self.llm,
            vision,
            tokenizer: assets.tokenizer.clone(),
            dir: assets.dir.clone(),
        }
    }

    /// Image tokens `[N, Q + 1, H]` from normalised pixels `[N, 3, S, S]`.
    ///
    /// # Errors
    /// A text-only model, or pixels of the wrong shape.
    pub fn encode_images(&self, pixels: Tensor<4>) -> Result<Tensor<3>> {
        let (Some(tower), Some(abstractor)) = (&self.vision_model, &self.visual_abstractor) else {
            return Err(TrainError::Input(
                "the batch has images but the model has no vision half".into(),
            ));
        };
        // A frozen part has nothing to differentiate on this path (the pixels are data), so it runs without autodiff:
        // no graph is recorded, and the fused CPU kernels of `biqa-kernels` apply. Its output re-enters autodiff as
        // a constant. Q-Align's LoRA recipe freezes the tower; the abstractor only when it is frozen too.
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

    /// The input embeddings `[B, L', H]` of an expanded batch: text pieces through `embed_tokens`, image slots
    /// from `images` `[N, Q + 1, H]`, re-padding as zero vectors (as `prepare_inputs_labels_for_multimodal`).
    ///
    /// # Errors
    /// Image slots without images, or of another token count.
    pub fn embed_batch(
        &self,
        batch: &ExpandedBatch,
        images: Option<&Tensor<3>>,
    ) -> Result<Tensor<3>> {
        let h = self.llm.config.hidden_size;
        let device = self.llm.device();
        let mut rows = Vec::with_capacity(batch.rows.len());
        for row in &batch.rows {
            let mut pieces = Vec::with_capacity(row.len());
            for seg in row {
                match seg {
                    Segment::Text(ids) => {
                        pieces.push(self.llm.embed_ids(std::slice::from_ref(ids))?)
                    }
                    Segment::Image(i) => {
                        let imgs = images.ok_or_else(|| {
                            TrainError::Input(
                                "the batch has image slots but no images were encoded".into(),
                            )
                        })?;
                        let [n, q, _] = imgs.dims();
                        if *i >= n || q != batch.image_tokens {
                            return Err(TrainError::Input(format!(
                                "image slot {i} of {n} encoded images with {q} tokens each (the batch expects {})",
                                batch.image_tokens
                            )));
                        }
                        pieces.push(imgs.clone().narrow(0, *i, 1));
                    }
                    Segment::Zeros(n) => pieces.push(Tensor::zeros([1, *n, h], &device)),
                }
            }
            rows.push(Tensor::cat(pieces, 1));
        }
        Ok(Tensor::cat(rows, 0))
    }

    /// The training forward with labels: encode the batch's images (`pixels` `[N, 3, S, S]`, one per image slot,
    /// in order), splice, run the decoder with the expanded attention mask and positions `0..L'`, and take the
    /// label-smoothed NLL (ε = `epsilon`) of the shifted labels, a token-level mean over the batch.
    ///
    /// Only the supervised positions go through the head.
    ///
    /// # Errors
    /// Bad shapes, or a batch without any supervised token.
    pub fn forward_loss(
        &self,
        batch: &ExpandedBatch,
        pixels: Option<Tensor<4>>,
        epsilon: f64,
    ) -> Result<TrainOutput> {
        let images = match pixels {
            Some(p) if !batch.images.is_empty() => Some(self.encode_images(p)?),
            _ => None,
        };
        if !batch.images.is_empty() && images.is_none() {
            return Err(TrainError::Input(format!(
                "the batch has {} image slot(s) but no pixels",
                batch.images.len()
            )));
        }
        let embeds = self.embed_batch(batch, images.as_ref())?;
        let [b, l, h] = embeds.dims();
        let positions: Vec<i64> = (0..b).flat_map(|_| 0..l as i64).collect();
        let modality = if self.llm.modalities() > 1 {
            Modality::PerToken(batch.modality.clone())
        } else {
            Modality::Text
        };
        let out = self.llm.forward(
            DecoderInput {
                embeds,
                modality,
                positions: Some(positions),
                padding: Some(batch.attention_mask.clone()),
            },
            &mut KvCache::new(),
            ForwardOptions {
                logits: LogitsMode::None,
                hidden_states: false,
                attentions: false,
            },
        )?;
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        let mut flat = Vec::new();
        for r in 0..b {
            for t in 0..l.saturating_sub(1) {
                let y = batch.labels[r * l + t + 1];
                if y >= 0 {
                    positions.push((r, t));
                    targets.push(y as u32);
                    flat.push((r * l + t) as i64);
                }
            }
        }
        if targets.is_empty() {
            return Err(TrainError::Input(
                "the batch has no supervised token (every label is -100)".into(),
            ));
        }
        let n = targets.len();
        let device = out.last_hidden_state.device();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [n]), &device);
        let sup = out
            .last_hidden_state
            .reshape([b * l, h])
            .select(0, idx)
            .reshape([1, n, h]);
        let logits = self.llm.head(sup);
        let v = logits.dims()[2];
        let logits = logits.reshape([n, v]);
        let loss = label_smoothed_nll(logits.clone(), &targets, epsilon)?;
        Ok(TrainOutput {
            loss,
            tokens: n,
            logits,
            targets,
            positions,
        })
    }
}

/// Folds every LoRA branch into its projection's weight (`W + (α/r)·A·B`, summed in f32) and drops it, leaving
/// the plain model with the checkpoint's parameter names; nothing is ever dropped out afterwards. Call it on
/// [`Module::valid`] for scoring and export.
pub fn merge_lora(model: Owl2Train) -> Owl2Train {
    Owl2Train {
        llm: model.llm.merge_lora(),
        ..model
    }
}
