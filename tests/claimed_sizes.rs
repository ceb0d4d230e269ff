//! Issue #16: memory is bounded by what the checkpoint contains, not by what `config.json` claims. The tiny
//! checkpoint's tensors under a config with 7B widths (ViT-L/14-448, the 64-query abstractor, a 32-layer 4096-wide
//! LLaMA) must fail with shape errors naming the tensors, without allocating the ~33 GB the config describes.
//! Alone in its own test binary, so that the process's peak resident set is this load's.

use anyhow::Result;
use biqa::model::{LoadOptions, Owl2};
use biqa::realshape::RealShape;
use biqa_testkit::{fixtures, peak_rss_bytes};
use burn::tensor::Device;
use serde_json::{Value, json};

#[test]
fn seven_b_widths_over_tiny_weights_fail_without_allocating_the_claimed_sizes() -> Result<()> {
    let src = fixtures().join("tiny-owl2");
    let dir = tempfile::tempdir()?;
    for f in std::fs::read_dir(&src)? {
        let f = f?;
        if f.file_type()?.is_file() && f.file_name() != "pytorch_model.bin" {
            std::fs::copy(f.path(), dir.path().join(f.file_name()))?;
        }
    }
    // The released widths at full depth (`biqa::realshape`, the benchmarks' config). The vocabulary stays the
    // tokenizer's (512), so that the weights, not the tokenizer check, are what fails.
    let shape = RealShape {
        llm_layers: 32,
        ..RealShape::default()
    };
    let mut config: Value = serde_json::from_str(&shape.config_json())?;
    config["vocab_size"] = json!(512);
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(&config)?,
    )?;

    let Err(err) = Owl2::from_dir(dir.path(), &Device::flex(), &LoadOptions::default()) else {
        panic!("7B widths over the tiny tensors must not load");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("model.layers.0.self_attn.q_proj.weight") || msg.contains("shape"),
        "the error names the mis-shaped tensors: {msg}"
    );
    assert!(
        msg.len() < 20_000,
        "the problem list is summarised ({} bytes)",
        msg.len()
    );
    if let Some(peak) = peak_rss_bytes() {
        // The configured model is ~33 GB in f32; the checkpoint is 2.2 MB. 1 GiB leaves room for the test
        // harness and the allocator, and none for any stand-in of a claimed size.
        assert!(peak < 1 << 30, "peak RSS {:.1} MB", peak as f64 / 1e6);
    }
    Ok(())
}
