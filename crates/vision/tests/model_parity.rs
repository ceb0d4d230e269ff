//! Parity of the vision tower and the abstractor with the original PyTorch code (`owl2-components`):
//! every `vision.*` and `abstractor.*` tensor ≤ 1e-4 (attention probabilities ≤ 1e-5), including
//! `abstractor.small_input.output`, which a wrong LayerNorm eps misses by ~1.5.

#![allow(missing_docs)]

use std::path::PathBuf;

use anyhow::Result;
use biqa_checkpoint::{Checkpoint, CheckpointError, TensorProblem, Weights};
use biqa_testkit::{Arrays, assert_close, fixture, host, read_raw, write_f32_raw};
use biqa_vision::abstractor::{VisualAbstractor, key_pos_table, query_pos_table};
use biqa_vision::encoder::VisionModel;
use biqa_vision::read_visual_config;
use burn::tensor::Device;

fn dir() -> PathBuf {
    fixture("owl2-components")
}

fn load() -> Result<(VisionModel, VisualAbstractor, Device)> {
    let (hv, ha) = read_visual_config(&dir().join("config.json"))?;
    let vcfg = hv.to_config()?;
    let acfg = ha.to_config(vcfg.grid(), 96)?;
    let ckpt = Checkpoint::open(dir().join("weights.safetensors"))?;
    let device = Device::flex();
    let w = Weights::new(&ckpt, &device);
    let (vw, aw) = (
        w.scope("model.vision_model"),
        w.scope("model.visual_abstractor"),
    );
    let vision = VisionModel::load(&vw, &vcfg);
    let abstractor = VisualAbstractor::load(&aw, &acfg);
    // Each tower reports alone: the LLM's tensors in the file are none of their business.
    vw.finish()?;
    aw.finish()?;
    Ok((vision, abstractor, device))
}

#[test]
fn vision_tower_matches() -> Result<()> {
    let (vision, _, device) = load()?;
    let inputs = Arrays::fixture("owl2-components/inputs.safetensors")?;
    let exp = Arrays::fixture("owl2-components/expected.safetensors")?;
    let out = vision.forward(inputs.tensor::<4>("pixel_values", &device)?, true, true)?;
    for (i, h) in out.hidden_states.expect("hidden").into_iter().enumerate() {
        let n = format!("vision.hidden_states.{i}");
        assert_close(&n, &host(h), exp.f32(&n)?, 1e-4);
    }
    for (i, a) in out.attentions.expect("attn").into_iter().enumerate() {
        let n = format!("vision.attentions.{i}");
        assert_close(&n, &host(a), exp.f32(&n)?, 1e-5);
    }
    assert_close(
        "vision.last_hidden_state",
        &host(out.last_hidden_state),
        exp.f32("vision.last_hidden_state")?,
        1e-4,
    );
    Ok(())
}

#[test]
fn abstractor_matches_including_the_eps_trap() -> Result<()> {
    let (_, abstractor, device) = load()?;
    let inputs = Arrays::fixture("owl2-components/inputs.safetensors")?;
    let exp = Arrays::fixture("owl2-components/expected.safetensors")?;
    let out = abstractor.forward(exp.tensor::<3>("vision.last_hidden_state", &device)?, true)?;
    for (i, h) in out.layer_outputs.expect("layers").into_iter().enumerate() {
        let n = format!("abstractor.layer_outputs.{i}");
        assert_close(&n, &host(h), exp.f32(&n)?, 1e-4);
    }
    assert_close(
        "abstractor.output",
        &host(out.image_embeds),
        exp.f32("abstractor.output")?,
        1e-4,
    );
    let small = abstractor.forward(
        inputs.tensor::<3>("abstractor_small_input", &device)?,
        false,
    )?;
    assert_close(
        "abstractor.small_input.output",
        &host(small.image_embeds),
        exp.f32("abstractor.small_input.output")?,
        1e-4,
    );
    Ok(())
}

#[test]
fn computed_position_tables_equal_the_stored_ones() -> Result<()> {
    let w = Arrays::fixture("owl2-components/weights.safetensors")?;
    let q =
        w.f32("model.visual_abstractor.encoder.layers.0.crossattention.attention.q_pos_embed")?;
    let k =
        w.f32("model.visual_abstractor.encoder.layers.0.crossattention.attention.k_pos_embed")?;
    assert_close("q_pos_embed", &query_pos_table(64, 8), q, 1e-6);
    assert_close("k_pos_embed", &key_pos_table(64, 4), k, 1e-6);
    Ok(())
}

#[test]
fn batch_of_two_images() -> Result<()> {
    let (vision, abstractor, device) = load()?;
    let inputs = Arrays::fixture("owl2-components/inputs.safetensors")?;
    let exp = Arrays::fixture("owl2-components/expected.safetensors")?;
    let feats = vision
        .forward(
            inputs.tensor::<4>("batch_pixel_values", &device)?,
            false,
            false,
        )?
        .last_hidden_state;
    let tokens = host(abstractor.forward(feats, false)?.image_embeds);
    // Row 0 is image.png: the single-image output.
    let single = exp.f32("abstractor.output")?;
    assert_close("batch row 0", &tokens[..single.len()], single, 1e-4);
    Ok(())
}

#[test]
fn loader_lists_missing_and_misshaped_vision_tensors() -> Result<()> {
    // A corrupted copy of the weights: one vision tensor dropped, the position embedding cut short.
    let mut kept = Vec::new();
    for (name, mut shape, mut data) in read_raw(dir().join("weights.safetensors"))? {
        if name == "model.vision_model.encoder.layers.1.mlp.fc2.bias" {
            continue;
        }
        if name == "model.vision_model.embeddings.position_embedding" {
            shape = vec![1, 16, 64];
            data.truncate(16 * 64 * 4);
        }
        kept.push((name, shape, data));
    }
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("model.safetensors");
    write_f32_raw(&path, &kept)?;
    let (hv, ha) = read_visual_config(&dir().join("config.json"))?;
    let vcfg = hv.to_config()?;
    let acfg = ha.to_config(vcfg.grid(), 96)?;
    let ckpt = Checkpoint::open(&path)?;
    let w = Weights::new(&ckpt, &Device::flex());
    let _v = VisionModel::load(&w.scope("model.vision_model"), &vcfg);
    let _a = VisualAbstractor::load(&w.scope("model.visual_abstractor"), &acfg);
    let Err(CheckpointError::Tensors { problems, .. }) = w.finish() else {
        anyhow::bail!("a corrupted vision tower loaded")
    };
    assert!(problems.contains(&TensorProblem::Missing {
        name: "model.vision_model.encoder.layers.1.mlp.fc2.bias".into(),
        expected: vec![64]
    }));
    assert!(problems.contains(&TensorProblem::Shape {
        name: "model.vision_model.embeddings.position_embedding".into(),
        expected: vec![1, 17, 64],
        actual: vec![1, 16, 64]
    }));
    Ok(())
}
