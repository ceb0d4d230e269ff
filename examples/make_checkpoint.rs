//! Writes a random, seeded mPLUG-Owl2 checkpoint directory with the released model's widths, made by biqa itself
//! (its own random initialisation, [`Owl2Net::write_random_checkpoint`], the sharded safetensors writer): the
//! input of the real-shape benchmarks (`benches/realshape.sh`) and of the 7B-in-bf16 run.
//!
//! ```text
//! cargo run --release --example make_checkpoint -- --out DIR [--llm-layers 2] [--vit-layers 24]
//!     [--dtype f32|bf16] [--seed 48000] [--shard-mb 4096]
//! ```
//! Widths: ViT-L/14 at 448 px (hidden 1024, 16 heads, MLP 4096), the original abstractor (hidden 1024, 6 layers,
//! 16 heads, SwiGLU 2816, 64 queries), LLaMA-2-7B (hidden 4096, 32 heads, MLP 11008, vocab 32000) with
//! modality-adaptive layers; `--llm-layers 32` is the full 7B (8.2 B parameters: 16.4 GB in bf16). The config is
//! the tiny-owl2 fixture's with these widths (the same as `benches/reference/make_realshape.py`, the original
//! code's maker, writes), the tokenizer is the fixture's padded to 32 000 ids with unused pieces, the preprocessor
//! is Q-Align's (448, bicubic). Memory: one shard plus one tensor.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use biqa::model::{HfOwl2Config, Owl2Net, Tokenizer};
use burn::tensor::DType;
use serde_json::{Value, json};

const VOCAB: usize = 32_000;

struct Args {
    out: PathBuf,
    llm_layers: usize,
    vit_layers: usize,
    dtype: DType,
    seed: u64,
    shard_mb: u64,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        out: PathBuf::new(),
        llm_layers: 2,
        vit_layers: 24,
        dtype: DType::F32,
        seed: 48_000,
        shard_mb: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(value()?),
            "--llm-layers" => a.llm_layers = value()?.parse()?,
            "--vit-layers" => a.vit_layers = value()?.parse()?,
            "--seed" => a.seed = value()?.parse()?,
            "--shard-mb" => a.shard_mb = value()?.parse()?,
            "--dtype" => {
                a.dtype = match value()?.as_str() {
                    "f32" => DType::F32,
                    "bf16" => DType::BF16,
                    other => bail!("--dtype f32|bf16, not {other}"),
                }
            }
            other => bail!(
                "unknown argument {other} (see the doc comment of examples/make_checkpoint.rs)"
            ),
        }
    }
    if a.out.as_os_str().is_empty() {
        bail!("--out DIR is required");
    }
    Ok(a)
}

fn set(obj: &mut Value, pairs: &[(&str, Value)]) {
    for (k, v) in pairs {
        obj[*k] = v.clone();
    }
}

/// The fixture's SentencePiece model with unused pieces appended up to `n` ids. Protobuf lets repeated fields
/// come in any order, so each piece is one `pieces` (field 1) record added at the end: every existing id and every
/// tokenisation is unchanged (the same as `pad_tokenizer.py` beside the original code's maker).
fn padded_tokenizer(mut model: Vec<u8>, have: usize, n: usize) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    for i in have..n {
        let piece: String = [
            '\u{e000}',
            char::from_u32(0xE001 + (i / 6000) as u32).unwrap_or('\u{e001}'),
            char::from_u32(0xE001 + (i % 6000) as u32).unwrap_or('\u{e001}'),
        ]
        .iter()
        .collect();
        let mut body = vec![0x0A];
        varint(&mut body, piece.len() as u64);
        body.extend_from_slice(piece.as_bytes());
        body.push(0x15); // score: fixed32
        body.extend_from_slice(&(-1.0e4f32 - i as f32 * 1e-3).to_le_bytes());
        body.extend_from_slice(&[0x18, 5]); // type: UNUSED
        model.push(0x0A);
        varint(&mut model, body.len() as u64);
        model.extend_from_slice(&body);
    }
    model
}

fn main() -> Result<()> {
    let args = parse()?;
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-owl2");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("config.json"))?)?;
    set(
        &mut config,
        &[
            ("hidden_size", json!(4096)),
            ("intermediate_size", json!(11008)),
            ("num_hidden_layers", json!(args.llm_layers)),
            ("num_attention_heads", json!(32)),
            ("num_key_value_heads", json!(32)),
            ("vocab_size", json!(VOCAB)),
            (
                "torch_dtype",
                json!(if args.dtype == DType::BF16 {
                    "bfloat16"
                } else {
                    "float32"
                }),
            ),
        ],
    );
    set(
        &mut config["visual_config"]["visual_model"],
        &[
            ("hidden_size", json!(1024)),
            ("intermediate_size", json!(4096)),
            ("num_hidden_layers", json!(args.vit_layers)),
            ("num_attention_heads", json!(16)),
            ("image_size", json!(448)),
        ],
    );
    set(
        &mut config["visual_config"]["visual_abstractor"],
        &[
            ("hidden_size", json!(1024)),
            ("encoder_hidden_size", json!(1024)),
            ("intermediate_size", json!(2816)),
            ("num_hidden_layers", json!(6)),
            ("num_attention_heads", json!(16)),
            ("num_learnable_queries", json!(64)),
            ("grid_size", json!(32)),
        ],
    );
    let text = serde_json::to_string_pretty(&config)?;
    let runtime = HfOwl2Config::from_json(&text, &args.out.join("config.json"))?.to_config()?;

    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} is not empty", args.out.display());
    }
    std::fs::create_dir_all(&args.out)?;
    let t0 = Instant::now();
    let files = Owl2Net::write_random_checkpoint(
        &runtime,
        args.seed,
        args.dtype,
        &args.out,
        args.shard_mb << 20,
    )?;
    std::fs::write(args.out.join("config.json"), text)?;
    let mut pre: Value = serde_json::from_str(&std::fs::read_to_string(
        fixture.join("preprocessor_config.json"),
    )?)?;
    set(&mut pre, &[("size", json!(448)), ("crop_size", json!(448))]);
    std::fs::write(
        args.out.join("preprocessor_config.json"),
        serde_json::to_string_pretty(&pre)?,
    )?;
    for f in [
        "generation_config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixture.join(f), args.out.join(f))?;
    }
    let tokenizer = std::fs::read(fixture.join("tokenizer.model"))?;
    std::fs::write(
        args.out.join("tokenizer.model"),
        padded_tokenizer(
            tokenizer,
            Tokenizer::from_dir(&fixture)?.vocab_size(),
            VOCAB,
        ),
    )?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "wrote {} ({} weight files, {:.2} GB) in {:.1} s",
        args.out.display(),
        files.len(),
        bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
