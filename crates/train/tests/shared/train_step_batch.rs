//! The batch (and the optimiser) of `tests/fixtures/train-step` (`--version v1`, `[single_image, text_only]`), shared by
//! `crates/train/tests/train_step.rs`, `crates/train/tests/masking.rs` and `benches/common.rs` (included by path: one
//! copy for all).

#![allow(dead_code)]

use biqa_data::{ConversationRecord, Turn};
use biqa_train::Owl2Assets;
use biqa_train::batch::{ExpandedBatch, collate, expand, pad_id};
use biqa_train::conversation::{TokenizeOptions, tokenize_record};
use biqa_train::optim::{AdamW, AdamWConfig, DecayExclusion};

fn turn(from: &str, value: &str) -> Turn {
    Turn {
        from: from.into(),
        value: value.into(),
    }
}

/// The fixture's two conversations: an image record (Q-Align question, "poor") and a text-only one ("good").
pub fn fixture_records() -> [ConversationRecord; 2] {
    [
        ConversationRecord {
            id: "single_image".into(),
            image: Some("astronaut_96x96.png".into()),
            conversations: vec![
                turn(
                    "human",
                    "How would you rate the quality of this image?\n<|image|>",
                ),
                turn("gpt", "The quality of the image is poor."),
            ],
            gt_score: None,
        },
        ConversationRecord {
            id: "text_only".into(),
            image: None,
            conversations: vec![
                turn(
                    "human",
                    "The image is a sharp photo of a cup of coffee on a table. The colors are vivid, the exposure is \
                     good and there is no visible noise. How would you rate the quality of this image?",
                ),
                turn("gpt", "The quality of the image is good."),
            ],
            gt_score: None,
        },
    ]
}

/// The fixture's batch, tokenised with `assets`' tokenizer (images from `tests/fixtures/tiny-owl2/images`) and
/// expanded with `image_tokens` visual tokens per image.
pub fn fixture_batch(
    assets: &Owl2Assets,
    image_tokens: usize,
) -> biqa_train::Result<ExpandedBatch> {
    let options = TokenizeOptions {
        image_folder: Some(biqa_testkit::fixture("tiny-owl2/images")),
        ..TokenizeOptions::default()
    };
    let [single, text] = fixture_records();
    let tok = &assets.tokenizer;
    let a = tokenize_record(tok, &single, 0, &options)?;
    let b = tokenize_record(tok, &text, 1, &options)?;
    let batch = collate([&a, &b], pad_id(tok), options.model_max_length)?;
    expand(&batch, image_tokens)
}

/// The fixture's optimiser: AdamW(β = 0.9 / 0.98, ε = 1e-6, weight decay 0.01 on every parameter).
pub fn fixture_adamw() -> AdamW {
    AdamW::new(AdamWConfig {
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-6,
        weight_decay: 0.01,
        decay_exclusion: DecayExclusion::None,
    })
}
