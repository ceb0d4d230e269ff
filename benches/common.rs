//! What the benchmarks share (`mod common;` in each): the tiny fixture and "small" configurations of the decoder and
//! the vision side, the training fixture's batch, and device synchronisation. `benches/reference/*.py` use the same
//! shapes.

#![allow(dead_code)]

use std::path::PathBuf;

use biqa::decoder::LlamaConfig;
use biqa::vision::{AbstractorConfig, VisionConfig};
use biqa_train::Owl2Assets;
use biqa_train::batch::ExpandedBatch;
use burn::tensor::Device;

/// `tests/fixtures/tiny-owl2`.
pub fn model_dir() -> PathBuf {
    biqa_testkit::fixture("tiny-owl2")
}

/// Waits for the device's queued work.
pub fn sync(device: &Device) {
    device.sync().expect("device sync");
}

/// The LLM of `tests/fixtures/tiny-owl2`.
pub fn tiny_llm() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 512,
        hidden_size: 96,
        intermediate_size: 160,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 4,
        head_dim: 24,
        rms_norm_eps: 1e-6,
        rope_theta: 10_000.0,
        max_position_embeddings: 2048,
        tie_word_embeddings: false,
        bos_token_id: 1,
        eos_token_ids: vec![2],
    }
}

/// The "small" LLM: hidden 512, 8 layers, 8 heads, MLP 1376, vocab 32000.
pub fn small_llm() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 32_000,
        hidden_size: 512,
        intermediate_size: 1376,
        num_layers: 8,
        num_heads: 8,
        num_kv_heads: 8,
        head_dim: 64,
        ..tiny_llm()
    }
}

/// The vision tower and abstractor of `tests/fixtures/tiny-owl2`.
pub fn tiny_vision() -> (VisionConfig, AbstractorConfig) {
    let v = VisionConfig {
        hidden_size: 64,
        intermediate_size: 256,
        num_layers: 2,
        num_heads: 4,
        image_size: 56,
        patch_size: 14,
        layer_norm_eps: 1e-6,
        num_channels: 3,
    };
    let a = AbstractorConfig {
        hidden_size: 64,
        num_layers: 2,
        num_heads: 4,
        intermediate_size: 176,
        num_queries: 8,
        grid_size: 4,
        layer_norm_eps: 1e-6,
        output_size: 96,
    };
    (v, a)
}

/// The "small" vision side: ViT hidden 256, 6 layers at 224 px (patch 14); abstractor 256, 2 layers, 16 queries,
/// output 512 (the small LLM's hidden size).
pub fn small_vision() -> (VisionConfig, AbstractorConfig) {
    let v = VisionConfig {
        hidden_size: 256,
        intermediate_size: 1024,
        num_layers: 6,
        num_heads: 4,
        image_size: 224,
        patch_size: 14,
        layer_norm_eps: 1e-6,
        num_channels: 3,
    };
    let a = AbstractorConfig {
        hidden_size: 256,
        num_layers: 2,
        num_heads: 4,
        intermediate_size: 704,
        num_queries: 16,
        grid_size: 16,
        layer_norm_eps: 1e-6,
        output_size: 512,
    };
    (v, a)
}

/// The CLIP preprocessing at 224 px (the small vision side's input), padding to a square as Q-Align.
pub fn small_preprocessor() -> biqa::vision::Preprocessor {
    biqa::vision::Preprocessor::from_json_str(
        r#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "resample": 3, "size": 224}"#,
        biqa::vision::ResizeMode::Pad,
    )
    .expect("preprocessor")
}

#[path = "../crates/train/tests/shared/train_step_batch.rs"]
mod train_step_batch;

/// The batch of `tests/fixtures/train-step` (`--version v1`, `[single_image, text_only]`), as
/// `crates/train/tests/train_step.rs` builds it (the same file), expanded with `image_tokens` visual tokens.
pub fn fixture_batch(assets: &Owl2Assets, image_tokens: usize) -> ExpandedBatch {
    train_step_batch::fixture_batch(assets, image_tokens).expect("the train-step fixture batch")
}
