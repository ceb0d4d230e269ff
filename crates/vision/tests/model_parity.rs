//! Parity of the vision tower and the abstractor with the original PyTorch code (`owl2-components`):
//! every `vision.*` and `abstractor.*` tensor ≤ 1e-4 (attention probabilities ≤ 1e-5), including
//! `abstractor.small_input.output`, which a wrong LayerNorm eps misses by ~1.5.

#![allow(missing_docs)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use biqa_checkpoint::{Checkpoint, CheckpointError, TensorProblem, Weights};
use biqa_vision::abstractor::{VisualAbstractor, key_pos_table, query_pos_table};
use biqa_vision::encoder::{VisionModel, read_visual_config};
use burn::tensor::{Device, Tensor, TensorData};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/owl2-components")
}

struct Arrays(std::collections::HashMap<String, (Vec<f32>, Vec<usize>)>);

impl Arrays {
    fn open(name: &str) -> Result<Self> {
        let bytes = std::fs::read(dir().join(name))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)?;
        let mut map = std::collections::HashMap::new();
        for (n, v) in st.tensors() {
            if v.dtype() == safetensors::Dtype::F32 {
                let vals = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                map.insert(n, (vals, v.shape().to_vec()));
            }
        }
        Ok(Self(map))
    }
    fn get(&self, n: &str) -> Result<&(Vec<f32>, Vec<usize>)> {
        self.0.get(n).with_context(|| format!("fixture tensor {n}"))
    }
    fn t3(&self, n: &str, device: &Device) -> Result<Tensor<3>> {
        let (v, s) = self.get(n)?;
        Ok(Tensor::from_data(
            TensorData::new(v.clone(), [s[0], s[1], s[2]]),
            device,
        ))
    }
    fn t4(&self, n: &str, device: &Device) -> Result<Tensor<4>> {
        let (v, s) = self.get(n)?;
        Ok(Tensor::from_data(
            TensorData::new(v.clone(), [s[0], s[1], s[2], s[3]]),
            device,
        ))
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec_as::<f32>().expect("f32")
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: max |diff| = {worst} > {tol}");
}

fn load() -> Result<(VisionModel, VisualAbstractor, Device)> {
    let (hv, ha) = read_visual_config(&dir().join("config.json"))?;
    let vcfg = hv.to_config()?;
    let acfg = ha.to_config(vcfg.grid(), 96)?;
    let ckpt = Checkpoint::open(dir().join("weights.safetensors"))?;
    let device = Device::flex();
    let w = Weights::new(&ckpt, &device);
    let vision = VisionModel::load(&w, &vcfg, "model.vision_model");
    let abstractor = VisualAbstractor::load(&w, &acfg, "model.visual_abstractor");
    // Everything else in the file belongs to the LLM.
    if let Err(CheckpointError::Tensors { problems, .. }) = w.finish() {
        for p in problems {
            assert!(
                matches!(&p, TensorProblem::Unexpected { name, .. } if name.starts_with("model.layers.") || name.starts_with("model.embed_tokens") || name == "model.norm.weight" || name == "lm_head.weight"),
                "{p}"
            );
        }
    }
    Ok((vision, abstractor, device))
}

#[test]
fn vision_tower_matches() -> Result<()> {
    let (vision, _, device) = load()?;
    let inputs = Arrays::open("inputs.safetensors")?;
    let exp = Arrays::open("expected.safetensors")?;
    let out = vision.forward(inputs.t4("pixel_values", &device)?, true, true)?;
    for (i, h) in out.hidden_states.expect("hidden").into_iter().enumerate() {
        let n = format!("vision.hidden_states.{i}");
        close(&n, &host(h), &exp.get(&n)?.0, 1e-4);
    }
    for (i, a) in out.attentions.expect("attn").into_iter().enumerate() {
        let n = format!("vision.attentions.{i}");
        close(&n, &host(a), &exp.get(&n)?.0, 1e-5);
    }
    close(
        "vision.last_hidden_state",
        &host(out.last_hidden_state),
        &exp.get("vision.last_hidden_state")?.0,
        1e-4,
    );
    Ok(())
}

#[test]
fn abstractor_matches_including_the_eps_trap() -> Result<()> {
    let (_, abstractor, device) = load()?;
    let inputs = Arrays::open("inputs.safetensors")?;
    let exp = Arrays::open("expected.safetensors")?;
    let out = abstractor.forward(exp.t3("vision.last_hidden_state", &device)?, true)?;
    for (i, h) in out.layer_outputs.expect("layers").into_iter().enumerate() {
        let n = format!("abstractor.layer_outputs.{i}");
        close(&n, &host(h), &exp.get(&n)?.0, 1e-4);
    }
    close(
        "abstractor.output",
        &host(out.image_embeds),
        &exp.get("abstractor.output")?.0,
        1e-4,
    );
    let small = abstractor.forward(inputs.t3("abstractor_small_input", &device)?, false)?;
    close(
        "abstractor.small_input.output",
        &host(small.image_embeds),
        &exp.get("abstractor.small_input.output")?.0,
        1e-4,
    );
    Ok(())
}

#[test]
fn computed_position_tables_equal_the_stored_ones() -> Result<()> {
    let w = Arrays::open("weights.safetensors")?;
    let (q, _) =
        w.get("model.visual_abstractor.encoder.layers.0.crossattention.attention.q_pos_embed")?;
    let (k, _) =
        w.get("model.visual_abstractor.encoder.layers.0.crossattention.attention.k_pos_embed")?;
    close("q_pos_embed", &query_pos_table(64, 8), q, 1e-6);
    close("k_pos_embed", &key_pos_table(64, 4), k, 1e-6);
    Ok(())
}

#[test]
fn batch_of_two_images() -> Result<()> {
    let (vision, abstractor, device) = load()?;
    let inputs = Arrays::open("inputs.safetensors")?;
    let exp = Arrays::open("expected.safetensors")?;
    let feats = vision
        .forward(inputs.t4("batch_pixel_values", &device)?, false, false)?
        .last_hidden_state;
    let tokens = host(abstractor.forward(feats, false)?.image_embeds);
    // Row 0 is image.png: the single-image output.
    let single = &exp.get("abstractor.output")?.0;
    close("batch row 0", &tokens[..single.len()], single, 1e-4);
    Ok(())
}

#[test]
fn loader_lists_missing_and_misshaped_vision_tensors() -> Result<()> {
    // A corrupted copy of the weights: one vision tensor dropped, the position embedding cut short.
    let bytes = std::fs::read(dir().join("weights.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let mut kept: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        if name == "model.vision_model.encoder.layers.1.mlp.fc2.bias" {
            continue;
        }
        let (mut shape, mut data) = (view.shape().to_vec(), view.data().to_vec());
        if name == "model.vision_model.embeddings.position_embedding" {
            shape = vec![1, 16, 64];
            data.truncate(16 * 64 * 4);
        }
        kept.push((name, shape, data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = kept
        .iter()
        .map(|(n, s, d)| {
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)?,
            ))
        })
        .collect::<Result<_>>()?;
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path)?;
    let (hv, ha) = read_visual_config(&dir().join("config.json"))?;
    let vcfg = hv.to_config()?;
    let acfg = ha.to_config(vcfg.grid(), 96)?;
    let ckpt = Checkpoint::open(&path)?;
    let w = Weights::new(&ckpt, &Device::flex());
    let _v = VisionModel::load(&w, &vcfg, "model.vision_model");
    let _a = VisualAbstractor::load(&w, &acfg, "model.visual_abstractor");
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
