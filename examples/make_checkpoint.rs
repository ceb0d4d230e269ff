//! Writes a random, seeded mPLUG-Owl2 checkpoint directory with the released model's widths (see
//! [`biqa::realshape`]): the input of the real-shape benchmarks (`benches/realshape.sh`) and of the 7B-in-bf16 run.
//!
//! ```text
//! cargo run --release --example make_checkpoint -- --out DIR [--llm-layers 2] [--vit-layers 24]
//!     [--dtype f32|bf16] [--seed 48000] [--shard-mb 4096]
//! ```
//! `--llm-layers 32` is the full 7B (8.2 B parameters, 16.4 GB in bf16). Memory: one shard plus one block of
//! tensors being drawn.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use biqa::realshape::RealShape;
use burn::tensor::DType;

fn main() -> Result<()> {
    let mut shape = RealShape::default();
    let mut out = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--llm-layers" => shape.llm_layers = value()?.parse()?,
            "--vit-layers" => shape.vit_layers = value()?.parse()?,
            "--seed" => shape.seed = value()?.parse()?,
            "--shard-mb" => shape.max_shard_bytes = value()?.parse::<u64>()? << 20,
            "--dtype" => {
                shape.dtype = match value()?.as_str() {
                    "f32" => DType::F32,
                    "bf16" => DType::BF16,
                    other => bail!("--dtype f32|bf16, not {other}"),
                }
            }
            other => bail!("unknown argument {other} (see examples/make_checkpoint.rs)"),
        }
    }
    let out = out.context("--out DIR is required")?;
    let t0 = Instant::now();
    let files = shape.write(&out)?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "wrote {} ({} weight files, {:.2} GB) in {:.1} s",
        out.display(),
        files.len(),
        bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
