//! Random, seeded mPLUG-Owl2 checkpoint directories with the released model's widths, written by biqa itself: the
//! input of the real-shape benchmarks (`benches/load.rs`, `benches/realshape.sh`) and of the 7B-in-bf16 run.
//!
//! Widths: ViT-L/14 at 448 px (hidden 1024, 16 heads, MLP 4096), the original abstractor (hidden 1024, 6 layers,
//! 16 heads, SwiGLU 2816, 64 queries, grid 32), LLaMA-2-7B (hidden 4096, 32 heads, MLP 11008, vocab 32 000) with
//! modality-adaptive layers; depth is chosen ([`RealShape::llm_layers`] 32 is the full 7B: 8.2 B parameters,
//! 16.4 GB in bf16). The config is the tiny-owl2 fixture's with these widths (what the original code's maker,
//! `make_realshape.py`, writes too), the tokenizer is the fixture's padded to 32 000 ids with unused pieces, the
//! preprocessor is Q-Align's (448, bicubic). The weights are [`Owl2Net::write_random_checkpoint`]'s: one shard in
//! memory at a time.

use std::path::{Path, PathBuf};

use biqa_model::{HfOwl2Config, Owl2Net};
use burn::tensor::DType;
use serde_json::{Value, json};

use crate::{Error, Result};

const TINY_CONFIG: &str = include_str!("../tests/fixtures/tiny-owl2/config.json");
const TINY_PREPROCESSOR: &str =
    include_str!("../tests/fixtures/tiny-owl2/preprocessor_config.json");
const TINY_TOKENIZER: &[u8] = include_bytes!("../tests/fixtures/tiny-owl2/tokenizer.model");
const TINY_TOKENIZER_PIECES: usize = 512;
const SMALL_FILES: [(&str, &str); 3] = [
    (
        "generation_config.json",
        include_str!("../tests/fixtures/tiny-owl2/generation_config.json"),
    ),
    (
        "special_tokens_map.json",
        include_str!("../tests/fixtures/tiny-owl2/special_tokens_map.json"),
    ),
    (
        "tokenizer_config.json",
        include_str!("../tests/fixtures/tiny-owl2/tokenizer_config.json"),
    ),
];
const VOCAB: usize = 32_000;

/// What to write: depth, dtype, seed and shard size (the widths are fixed: the released model's).
#[derive(Debug, Clone, Copy)]
pub struct RealShape {
    /// LLaMA decoder layers (32 in the released model; 2 in the real-shape comparison).
    pub llm_layers: usize,
    /// ViT layers (24 in the released model).
    pub vit_layers: usize,
    /// Stored dtype of the weights (f32 or bf16).
    pub dtype: DType,
    /// Seed of [`biqa_checkpoint::random_values`].
    pub seed: u64,
    /// Largest shard in bytes (more than one shard adds `model.safetensors.index.json`).
    pub max_shard_bytes: u64,
}

impl Default for RealShape {
    /// The real-shape comparison's checkpoint: 24 ViT layers, 2 LLM layers, f32, seed 48 000, 4 GiB shards
    /// (4.5 GB in two shards).
    fn default() -> Self {
        Self {
            llm_layers: 2,
            vit_layers: 24,
            dtype: DType::F32,
            seed: 48_000,
            max_shard_bytes: 4 << 30,
        }
    }
}

fn set(obj: &mut Value, pairs: &[(&str, Value)]) {
    for (k, v) in pairs {
        obj[*k] = v.clone();
    }
}

/// The fixture's SentencePiece model with unused pieces appended up to `n` ids. Protobuf lets repeated fields come
/// in any order, so each new piece is one `pieces` (field 1) record appended at the end: every existing id and
/// every tokenisation is unchanged (the same pieces as `pad_tokenizer.py` beside the original code's maker).
fn padded_tokenizer(mut model: Vec<u8>, have: usize, n: usize) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let pua = |k: usize| char::from_u32(0xE001 + k as u32).unwrap_or('\u{e001}');
    for i in have..n {
        let piece: String = ['\u{e000}', pua(i / 6000), pua(i % 6000)].iter().collect();
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

impl RealShape {
    /// The `config.json` text of this shape.
    pub fn config_json(&self) -> String {
        let mut config: Value = serde_json::from_str(TINY_CONFIG).unwrap_or_default();
        let torch_dtype = if self.dtype == DType::BF16 {
            "bfloat16"
        } else {
            "float32"
        };
        set(
            &mut config,
            &[
                ("hidden_size", json!(4096)),
                ("intermediate_size", json!(11008)),
                ("num_hidden_layers", json!(self.llm_layers)),
                ("num_attention_heads", json!(32)),
                ("num_key_value_heads", json!(32)),
                ("vocab_size", json!(VOCAB)),
                ("torch_dtype", json!(torch_dtype)),
            ],
        );
        set(
            &mut config["visual_config"]["visual_model"],
            &[
                ("hidden_size", json!(1024)),
                ("intermediate_size", json!(4096)),
                ("num_hidden_layers", json!(self.vit_layers)),
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
        serde_json::to_string_pretty(&config).unwrap_or_default()
    }

    /// Writes everything but the weights into `out` (an existing folder): `config.json`,
    /// `preprocessor_config.json`, the padded `tokenizer.model` and the fixture's other tokenizer and generation
    /// files, each atomically.
    ///
    /// # Errors
    /// An I/O error (named).
    pub fn write_assets(&self, out: &Path) -> Result<()> {
        let text = self.config_json();
        let mut pre: Value = serde_json::from_str(TINY_PREPROCESSOR).unwrap_or_default();
        set(&mut pre, &[("size", json!(448)), ("crop_size", json!(448))]);
        let pre = serde_json::to_string_pretty(&pre).unwrap_or_default();
        let tokenizer = padded_tokenizer(TINY_TOKENIZER.to_vec(), TINY_TOKENIZER_PIECES, VOCAB);
        let mut small: Vec<(&str, &[u8])> = vec![
            ("config.json", text.as_bytes()),
            ("preprocessor_config.json", pre.as_bytes()),
            ("tokenizer.model", &tokenizer),
        ];
        small.extend(SMALL_FILES.iter().map(|(n, t)| (*n, t.as_bytes())));
        for (name, bytes) in small {
            biqa_core::write_bytes_atomic(&out.join(name), bytes)?;
        }
        Ok(())
    }

    /// Writes the whole directory into `out` (which must not exist or be empty): config, preprocessor, tokenizer
    /// files and weights. Returns the weight files.
    ///
    /// # Errors
    /// A non-empty `out`, an invalid shape (zero layers), or an I/O error (named).
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let checkpoint = |source: biqa_model::ModelError| Error::Checkpoint {
            dir: out.to_path_buf(),
            source: Box::new(source),
        };
        let text = self.config_json();
        let config = HfOwl2Config::from_json(&text, &out.join("config.json"))
            .and_then(|c| c.to_config())
            .map_err(checkpoint)?;
        if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
            return Err(Error::Setting {
                key: "out",
                reason: format!("{} is not empty", out.display()),
            });
        }
        std::fs::create_dir_all(out).map_err(io(out))?;
        let files = Owl2Net::write_random_checkpoint(
            &config,
            self.seed,
            self.dtype,
            out,
            self.max_shard_bytes,
        )
        .map_err(checkpoint)?;
        self.write_assets(out)?;
        Ok(files)
    }
}
