//! The training forward of the composed network ([`Owl2Net`], the one module tree that inference uses too):
//! `MPLUGOwl2LlamaForCausalLM.forward` with labels, as the [`ForwardLoss`] trait.

use std::path::Path;

use biqa_decoder::{DecoderInput, ForwardOptions, KvCache, LogitsMode, Modality};
use biqa_model::{Owl2, Owl2Assets, Owl2Net};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::batch::ExpandedBatch;
use crate::error::{Result, TrainError};
use crate::loss::label_smoothed_nll;

/// Loads a checkpoint directory onto `device` (use `device.autodiff()` to train) as the network and its assets.
///
/// # Errors
/// As [`Owl2::from_dir`].
pub fn load_model(dir: impl AsRef<Path>, device: &Device) -> Result<(Owl2Net, Owl2Assets)> {
    Ok(Owl2::from_dir(dir, device, &biqa_model::LoadOptions::default())?.into_parts())
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

/// The training forward of the composed network ([`Owl2Net`]), as `MPLUGOwl2LlamaForCausalLM.forward` with labels.
pub trait ForwardLoss {
    /// Encodes the batch's images (`pixels` `[N, 3, S, S]`, one per image slot, in order), splices, runs the
    /// decoder with the expanded attention mask and positions `0..L'`, and takes the label-smoothed NLL
    /// (ε = `epsilon`) of the shifted labels, a token-level mean over the batch. Only the supervised positions go
    /// through the head.
    ///
    /// # Errors
    /// Bad shapes, or a batch without any supervised token.
    fn forward_loss(
        &self,
        batch: &ExpandedBatch,
        pixels: Option<Tensor<4>>,
        epsilon: f64,
    ) -> Result<TrainOutput>;
}

impl ForwardLoss for Owl2Net {
    fn forward_loss(
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
            return Err(TrainError::MissingPixels {
                slots: batch.images.len(),
            });
        }
        if let Some(imgs) = &images {
            let [n, q, _] = imgs.dims();
            if n != batch.images.len() || q != batch.image_tokens {
                return Err(TrainError::EncodedImages {
                    images: n,
                    tokens: q,
                    slots: batch.images.len(),
                    slot_tokens: batch.image_tokens,
                });
            }
        }
        let embeds = self.splice(&batch.rows, images.as_ref())?;
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
            return Err(TrainError::NoSupervisedToken);
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
