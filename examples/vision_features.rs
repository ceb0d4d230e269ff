//! Preprocesses an image and prints the shapes and norms of the vision-tower and abstractor outputs.
//!
//! ```text
//! cargo run --release --example vision_features -- [IMAGE] [--model DIR] [--mode pad|resize|shortest_edge_center_crop]
//! ```
//! Defaults: `tests/fixtures/tiny-owl2/images/coffee_96x64.png` with the tiny mPLUG-Owl2 checkpoint in
//! `tests/fixtures/tiny-owl2` and Q-Align's `pad` mode.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use biqa::checkpoint::{Checkpoint, Weights};
use biqa::model::Owl2Config;
use biqa::vision::{Preprocessor, ResizeMode, VisionModel, VisualAbstractor};
use burn::tensor::Tensor;

fn norm<const D: usize>(t: &Tensor<D>) -> f32 {
    t.clone().powi_scalar(2).sum().sqrt().into_scalar::<f32>()
}

fn main() -> Result<()> {
    biqa::kernels::tune_allocator();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut image = root.join("tests/fixtures/tiny-owl2/images/coffee_96x64.png");
    let mut dir = root.join("tests/fixtures/tiny-owl2");
    let mut mode = ResizeMode::Pad;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--model" => dir = PathBuf::from(value("--model")?),
            "--mode" => mode = value("--mode")?.parse()?,
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => image = PathBuf::from(s),
        }
    }
    let device = biqa::device::DeviceKind::from_env()?.device()?;
    let proc = Preprocessor::from_json_file(dir.join("preprocessor_config.json"), mode)?;
    let pre = proc.preprocess_path(&image)?;
    println!(
        "{}: resized to {}x{} ({mode})",
        image.display(),
        pre.resized().width(),
        pre.resized().height()
    );
    let pixels = pre.into_batch().to_tensor(&device);
    println!(
        "pixel_values     {:?}  norm {:.4}",
        pixels.dims(),
        norm(&pixels)
    );

    // config.json, parsed once: the LLM's fields and the vision half.
    let config = Owl2Config::from_file(&dir.join("config.json"))?;
    let visual = config
        .vision
        .ok_or_else(|| anyhow::anyhow!("{}: no visual_config", dir.display()))?;
    let (vcfg, acfg) = (visual.tower, visual.abstractor);
    let ckpt = Checkpoint::open(&dir)?;
    let weights = Weights::new(&ckpt, &device);
    let vision = VisionModel::load(&weights.scope("model.vision_model"), &vcfg);
    let abstractor = VisualAbstractor::load(&weights.scope("model.visual_abstractor"), &acfg);

    let v = vision.forward(pixels, true, false)?;
    for (i, h) in v.hidden_states.iter().flatten().enumerate() {
        let what = if i == 0 {
            "embeddings".to_string()
        } else {
            format!("layer {}", i - 1)
        };
        println!("vision {what:<10}{:?}  norm {:.4}", h.dims(), norm(h));
    }
    println!(
        "vision last      {:?}  norm {:.4}  (post-LayerNorm, CLS kept)",
        v.last_hidden_state.dims(),
        norm(&v.last_hidden_state)
    );
    let a = abstractor.forward(v.last_hidden_state, true)?;
    for (i, h) in a.layer_outputs.iter().flatten().enumerate() {
        println!("abstractor {i:<6}{:?}  norm {:.4}", h.dims(), norm(h));
    }
    println!(
        "image tokens     {:?}  norm {:.4}  ({} queries + vit_eos, in the LLM's width)",
        a.image_embeds.dims(),
        norm(&a.image_embeds),
        acfg.num_queries
    );
    Ok(())
}
