//! Loads a plain LLaMA checkpoint directory and streams a greedy or sampled continuation.
//!
//! ```text
//! cargo run --release --example llama_generate -- [DIR] [--ids 1,327,473,...] [--max-new-tokens N]
//!     [--temperature T] [--top-k K] [--top-p P] [--seed S]
//! ```
//! Without arguments it continues the tokens of "USER: How would you rate the quality of this image?" with the
//! bundled tiny GQA checkpoint (`tests/fixtures/tiny-llama-gqa`). The prompt is given as token ids (text
//! tokenisation lives in the model crate); the continuation is printed piece by piece from `tokenizer.json`'s
//! vocabulary as it is generated.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use biqa::checkpoint::FloatPolicy;
use biqa::decoder::{GenerationConfig, Llama, Modality, Prompt, Sampling};

/// id → piece from `tokenizer.json` (`model.vocab`), for display only.
fn vocabulary(dir: &std::path::Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join("tokenizer.json")) else {
        return Vec::new();
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mut vocab = Vec::new();
    if let Some(map) = json["model"]["vocab"].as_object() {
        vocab.resize(map.len(), String::new());
        for (piece, id) in map {
            if let Some(i) = id.as_u64().map(|i| i as usize).filter(|&i| i < vocab.len()) {
                vocab[i] = piece.clone();
            }
        }
    }
    vocab
}

fn show(vocab: &[String], id: u32) -> String {
    match vocab.get(id as usize) {
        Some(p) if p.starts_with("<0x") && p.len() == 6 => u8::from_str_radix(&p[3..5], 16)
            .map(|b| (b as char).escape_default().to_string())
            .unwrap_or_default(),
        Some(p) => p.replace('\u{2581}', " "),
        None => format!("<{id}>"),
    }
}

fn main() -> Result<()> {
    biqa::kernels::tune_allocator();
    let mut dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tiny-llama-gqa"
    ));
    let mut ids: Vec<u32> = vec![
        1, 327, 473, 381, 363, 365, 405, 262, 276, 271, 346, 290, 482,
    ];
    let (mut max_new, mut temperature, mut top_k, mut top_p, mut seed) =
        (32usize, 0.0f32, None, None, 0u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--ids" => {
                ids = value("--ids")?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--ids")?
            }
            "--max-new-tokens" => max_new = value("--max-new-tokens")?.parse()?,
            "--temperature" => temperature = value("--temperature")?.parse()?,
            "--top-k" => top_k = Some(value("--top-k")?.parse()?),
            "--top-p" => top_p = Some(value("--top-p")?.parse()?),
            "--seed" => seed = value("--seed")?.parse()?,
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => dir = PathBuf::from(s),
        }
    }
    let device = biqa::device::DeviceKind::from_env()?.device()?;
    let model = Llama::from_dir(&dir, &device, FloatPolicy::F32)?;
    let vocab = vocabulary(&dir);
    let c = &model.config;
    println!(
        "{}: {} layers, hidden {}, heads {}/{} (q/kv), vocab {}, {} modality branch(es)",
        dir.display(),
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        c.num_kv_heads,
        c.vocab_size,
        model.modalities()
    );
    let prompt_text: String = ids.iter().map(|&t| show(&vocab, t)).collect();
    print!("prompt:{prompt_text}\ncontinuation:");
    std::io::stdout().flush()?;
    let config = GenerationConfig {
        max_new_tokens: max_new,
        stop_tokens: c.eos_token_ids.clone(),
        sampling: Sampling::from_params(temperature, top_k, top_p)?,
        seed,
        keep_logits: false,
    };
    let prompt = Prompt {
        embeds: model.embed_ids(&[ids])?,
        modality: Modality::Text,
        left_padding: vec![0],
    };
    let generation = model.generate(prompt, &config, |step| {
        if let Some(t) = step[0] {
            print!("{}", show(&vocab, t));
            let _ = std::io::stdout().flush();
        }
    })?;
    println!(
        "\nids: {:?}{}",
        generation.tokens[0],
        if generation.stopped[0] {
            " (stopped at </s>)"
        } else {
            ""
        }
    );
    Ok(())
}
