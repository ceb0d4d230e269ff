//! Batches as mPLUG-Owl2 training builds them, on the host: the collator (`DataCollatorForSupervisedDataset`) and
//! the token layout of `prepare_inputs_labels_for_multimodal` (image placeholders expanded to the image tokens).
//!
//! # Collator ([`collate`])
//!
//! Right padding to the longest row with the pad id (= unk, as `train()` sets it: [`pad_id`]), labels padded with
//! −100, then every row cut to `model_max_length`; `attention_mask = input_ids != pad` (so a real `<unk>` in the
//! text is masked too, as in the original).
//!
//! # Expansion ([`expand`])
//!
//! Each row becomes a list of [`Segment`]s, which the model side turns into input embeddings:
//! - [`Segment::Text`]: ids embedded with `embed_tokens`, **including the row's pad ids** (the original embeds the
//!   whole padded row, so pads are `embed_tokens(pad)` vectors, masked out as keys and ignored by the loss);
//! - [`Segment::Image`]: the row's image, `image_tokens` visual tokens (the abstractor's queries + EOS: 65 for the
//!   7B models, 9 for the tiny fixture model) in place of the −200 placeholder; labels −100, modality 1;
//! - [`Segment::Zeros`]: the re-padding of rows shorter than the longest expanded row, **zero vectors** (not
//!   embeddings), label −100, modality 0, attention mask false.
//!
//! The attention mask of a row is `[true] * (row_len − L) + collator_mask + [false] * (max_len − row_len)`, exactly
//! as the original builds it (the prepended `true`s stand for the added image tokens; with right padding this lines
//! up with the real tokens). Position ids are `0..max_len` for every row ([`ExpandedBatch::position_ids`]).
//!
//! A text-only sample in a batch with images gets no image: the original gives it an all-zero image, encodes it
//! and uses none of it (`image_features[i][0:0]`), which contributes nothing to the outputs or the gradients, so it
//! is not represented here. The same holds for a sample that has an image but no placeholder (left) in its ids.
//! At most one placeholder per row is accepted: with one image per sample the original would take the next
//! sample's image for a second one.

use std::path::PathBuf;

use biqa_model::{IMAGE_TOKEN_INDEX, PadFill, PaddingSide, Tokenizer, pad_rows};

use crate::conversation::{IGNORE_INDEX, TokenizedSample};
use crate::error::{Result, TrainError};

/// The pad id of training batches: the unk id (`tokenizer.pad_token = tokenizer.unk_token` in `train()`).
#[must_use]
pub fn pad_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer.unk_id()
}

/// A collated batch (`DataCollatorForSupervisedDataset` output); tensors are row-major `[batch, len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of rows.
    pub batch: usize,
    /// Row length after padding (and the cut at `model_max_length`).
    pub len: usize,
    /// Token ids, −200 for an image, the pad id after each row's end.
    pub input_ids: Vec<i64>,
    /// Labels, −100 where not supervised and after each row's end.
    pub labels: Vec<i64>,
    /// `input_ids != pad_id`.
    pub attention_mask: Vec<bool>,
    /// The image of each row (`None` for text-only samples).
    pub images: Vec<Option<PathBuf>>,
    /// The sample id of each row.
    pub ids: Vec<String>,
    /// The pad id used.
    pub pad_id: u32,
}

impl Batch {
    /// The ids of row `b`, `None` when `b >= batch`.
    #[must_use]
    pub fn row_ids(&self, b: usize) -> Option<&[i64]> {
        self.input_ids.get(b * self.len..(b + 1) * self.len)
    }
}

/// Collates samples as `DataCollatorForSupervisedDataset` does (see the [module docs](self)).
///
/// # Errors
/// [`TrainError::EmptyBatch`] for an empty batch, [`TrainError::SampleLengths`] for a sample whose ids and labels
/// differ in length.
pub fn collate<'a>(
    samples: impl IntoIterator<Item = &'a TokenizedSample>,
    pad_id: u32,
    model_max_length: usize,
) -> Result<Batch> {
    let samples: Vec<&TokenizedSample> = samples.into_iter().collect();
    if samples.is_empty() {
        return Err(TrainError::EmptyBatch);
    }
    if let Some(s) = samples.iter().find(|s| s.input_ids.len() != s.labels.len()) {
        return Err(TrainError::SampleLengths {
            id: s.id.clone(),
            input_ids: s.input_ids.len(),
            labels: s.labels.len(),
        });
    }
    let longest = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    let len = longest.min(model_max_length);
    let batch = samples.len();
    let pad = i64::from(pad_id);
    let mut input_ids = Vec::with_capacity(batch * len);
    let mut labels = Vec::with_capacity(batch * len);
    for s in &samples {
        let n = s.input_ids.len().min(len);
        input_ids.extend_from_slice(&s.input_ids[..n]);
        input_ids.resize(input_ids.len() + len - n, pad);
        labels.extend_from_slice(&s.labels[..n]);
        labels.resize(labels.len() + len - n, IGNORE_INDEX);
    }
    let attention_mask = input_ids.iter().map(|&id| id != pad).collect();
    Ok(Batch {
        batch,
        len,
        input_ids,
        labels,
        attention_mask,
        images: samples.iter().map(|s| s.image.clone()).collect(),
        ids: samples.iter().map(|s| s.id.clone()).collect(),
        pad_id,
    })
}

pub use biqa_model::Segment;

/// The output of `prepare_inputs_labels_for_multimodal` on the host (see the [module docs](self)); tensors are
/// row-major `[batch, len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandedBatch {
    /// Number of rows.
    pub batch: usize,
    /// Expanded row length (the longest expanded row).
    pub len: usize,
    /// Visual tokens per image.
    pub image_tokens: usize,
    /// The segments of each row; each row's segments add up to `len` positions.
    pub rows: Vec<Vec<Segment>>,
    /// The image of each [`Segment::Image`], in order of appearance (row by row).
    pub images: Vec<PathBuf>,
    /// Labels: −100 on image tokens and re-padding; the loss pairs `labels[:, 1:]` with `logits[:, :-1]`.
    pub labels: Vec<i64>,
    /// Modality indicators: 1 on image tokens, 0 elsewhere.
    pub modality: Vec<u8>,
    /// Attention (key padding) mask, true = attend.
    pub attention_mask: Vec<bool>,
}

impl ExpandedBatch {
    /// Position ids `0..len` for every row, row-major `[batch, len]`.
    #[must_use]
    pub fn position_ids(&self) -> Vec<i64> {
        let row = 0..i64::try_from(self.len).unwrap_or(i64::MAX);
        (0..self.batch).flat_map(|_| row.clone()).collect()
    }

    /// The number of supervised targets of the shifted loss: labels not −100 at positions 1.. of each row.
    #[must_use]
    pub fn n_supervised(&self) -> usize {
        self.labels
            .chunks(self.len.max(1))
            .map(|row| row.iter().skip(1).filter(|&&l| l != IGNORE_INDEX).count())
            .sum()
    }
}

/// Expands the image placeholders of a collated batch to `image_tokens` positions each, as
/// `prepare_inputs_labels_for_multimodal` does (see the [module docs](self)).
///
/// # Errors
/// [`TrainError::InvalidArgument`] when `image_tokens` is 0, [`TrainError::InconsistentBatch`] when the buffers do
/// not fit the batch's shape, [`TrainError::ExtraImagePlaceholder`] when a row has more than one placeholder,
/// [`TrainError::MissingImage`] when a row with a placeholder has no image, [`TrainError::InvalidTokenId`] when an
/// id is negative (other than −200) or beyond `u32`.
pub fn expand(batch: &Batch, image_tokens: usize) -> Result<ExpandedBatch> {
    if image_tokens == 0 {
        return Err(TrainError::InvalidArgument {
            name: "image_tokens",
            value: image_tokens.to_string(),
            reason: "must be at least 1",
        });
    }
    let l = batch.len;
    let want = batch.batch * l;
    if batch.input_ids.len() != want
        || batch.labels.len() != want
        || batch.attention_mask.len() != want
        || batch.images.len() != batch.batch
    {
        return Err(TrainError::InconsistentBatch {
            rows: batch.batch,
            len: l,
            input_ids: batch.input_ids.len(),
            labels: batch.labels.len(),
            mask: batch.attention_mask.len(),
            images: batch.images.len(),
        });
    }
    let mut rows = Vec::with_capacity(batch.batch);
    let mut images = Vec::new();
    let mut row_labels = Vec::with_capacity(batch.batch);
    let mut row_modality = Vec::with_capacity(batch.batch);
    for b in 0..batch.batch {
        let ids = &batch.input_ids[b * l..(b + 1) * l];
        let labels = &batch.labels[b * l..(b + 1) * l];
        let mut segments = Vec::new();
        let mut new_labels = Vec::with_capacity(l + image_tokens);
        let mut modality = Vec::with_capacity(l + image_tokens);
        let mut text = Vec::new();
        let mut seen_image = false;
        for (&id, &label) in ids.iter().zip(labels) {
            if id == IMAGE_TOKEN_INDEX {
                if seen_image {
                    return Err(TrainError::ExtraImagePlaceholder {
                        row: b,
                        id: batch.ids.get(b).cloned(),
                    });
                }
                seen_image = true;
                let Some(path) = &batch.images[b] else {
                    return Err(TrainError::MissingImage {
                        row: b,
                        id: batch.ids.get(b).cloned(),
                    });
                };
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Image(images.len()));
                images.push(path.clone());
                new_labels.resize(new_labels.len() + image_tokens, IGNORE_INDEX);
                modality.resize(modality.len() + image_tokens, 1);
            } else {
                let token = u32::try_from(id).map_err(|_| TrainError::InvalidTokenId {
                    row: b,
                    id: batch.ids.get(b).cloned(),
                    token: id,
                })?;
                text.push(token);
                new_labels.push(label);
                modality.push(0);
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        rows.push(segments);
        row_labels.push(new_labels);
        row_modality.push(modality);
    }
    let len = row_labels.iter().map(Vec::len).max().unwrap_or(0);
    let mut labels = Vec::with_capacity(batch.batch * len);
    let mut modality = Vec::with_capacity(batch.batch * len);
    let mut attention_mask = Vec::with_capacity(batch.batch * len);
    let repads = pad_rows(&mut rows, image_tokens, PaddingSide::Right, PadFill::Zeros);
    for (b, &repad) in repads.iter().enumerate() {
        let row_len = row_labels[b].len();
        labels.extend_from_slice(&row_labels[b]);
        labels.resize(labels.len() + repad, IGNORE_INDEX);
        modality.extend_from_slice(&row_modality[b]);
        modality.resize(modality.len() + repad, 0);
        attention_mask.resize(attention_mask.len() + (row_len - l), true);
        attention_mask.extend_from_slice(&batch.attention_mask[b * l..(b + 1) * l]);
        attention_mask.resize(attention_mask.len() + repad, false);
    }
    Ok(ExpandedBatch {
        batch: batch.batch,
        len,
        image_tokens,
        rows,
        images,
        labels,
        modality,
        attention_mask,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, ids: &[i64], labels: &[i64], image: Option<&str>) -> TokenizedSample {
        TokenizedSample {
            id: id.into(),
            index: 0,
            prompt: String::new(),
            input_ids: ids.to_vec(),
            labels: labels.to_vec(),
            image: image.map(PathBuf::from),
            mismatch: None,
            truncated: false,
        }
    }

    #[test]
    fn collate_and_expand_small() -> Result<()> {
        let a = sample("a", &[1, -200, 5, 6], &[-100, -100, 5, 6], Some("a.png"));
        let b = sample(
            "b",
            &[1, 7, 8, 9, 10, 11],
            &[-100, -100, 8, 9, 10, 11],
            None,
        );
        let batch = collate([&a, &b], 0, 2048)?;
        assert_eq!(batch.len, 6);
        assert_eq!(&batch.input_ids[..6], &[1, -200, 5, 6, 0, 0]);
        assert_eq!(&batch.labels[..6], &[-100, -100, 5, 6, -100, -100]);
        let e = expand(&batch, 3)?;
        // Row a: 6 - 1 + 3 = 8; row b: 6, re-padded by 2.
        assert_eq!(e.len, 8);
        assert_eq!(
            e.rows[0],
            [
                Segment::Text(vec![1]),
                Segment::Image(0),
                Segment::Text(vec![5, 6, 0, 0])
            ]
        );
        assert_eq!(
            e.rows[1],
            [Segment::Text(vec![1, 7, 8, 9, 10, 11]), Segment::Zeros(2)]
        );
        assert_eq!(e.images, [PathBuf::from("a.png")]);
        assert_eq!(&e.modality[..8], &[0, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(
            &e.attention_mask[..8],
            &[true, true, true, true, true, true, false, false]
        );
        assert_eq!(
            &e.attention_mask[8..],
            &[true, true, true, true, true, true, false, false]
        );
        assert_eq!(&e.labels[8..], &[-100, -100, 8, 9, 10, 11, -100, -100]);
        assert_eq!(e.n_supervised(), 6);
        assert_eq!(e.position_ids()[8..].to_vec(), (0..8).collect::<Vec<i64>>());
        // The cut at model_max_length.
        let cut = collate([&a, &b], 0, 3)?;
        assert_eq!(cut.len, 3);
        assert_eq!(&cut.input_ids[3..], &[1, 7, 8]);
        Ok(())
    }

    #[test]
    fn bad_inputs() {
        assert!(collate(std::iter::empty(), 0, 8).is_err());
        let no_image = sample("x", &[1, -200, 3], &[-100, -100, 3], None);
        let batch = collate([&no_image], 0, 8);
        assert!(batch.is_ok_and(|b| expand(&b, 9).is_err()));
        let two = sample("y", &[1, -200, -200], &[-100; 3], Some("y.png"));
        let batch = collate([&two], 0, 8);
        assert!(batch.is_ok_and(|b| expand(&b, 9).is_err() && expand(&b, 0).is_err()));
    }
}
