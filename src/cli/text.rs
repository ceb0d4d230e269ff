//! What `biqa describe` and `biqa generate` share: the sampling flags and the output of a generation (streamed
//! tokens, or one JSON object).

use anyhow::Result;
use biqa::decoder::{GenerationConfig, Sampling, StopReason};
use biqa::model::{Generated, Owl2};

/// Sampling flags shared by `describe` and `generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
}

impl SamplingArgs {
    /// The generation configuration, stopping at `eos`.
    ///
    /// # Errors
    /// Invalid sampling parameters (a negative temperature, top-p outside (0, 1], top-k of 0).
    pub fn config(&self, eos: Vec<u32>) -> Result<GenerationConfig> {
        Ok(GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            stop_tokens: eos,
            sampling: Sampling::from_params(self.temperature, self.top_k, self.top_p)?,
            seed: self.seed,
            keep_logits: false,
        })
    }
}

/// Prints tokens as they are generated (text mode).
fn streamer(model: &Owl2) -> impl FnMut(&[Option<u32>]) + '_ {
    let mut decoder = model.tokenizer().incremental_decoder();
    move |step| {
        if let Some(t) = step[0] {
            let piece = decoder.push(t);
            print!("{piece}");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    }
}

/// Runs a generation, streaming its tokens (text mode) or printing the [`Generated`] text and ids as one JSON
/// object at the end.
///
/// # Errors
/// The generation's errors, or a failed serialisation.
pub fn emit(
    model: &Owl2,
    json: bool,
    run: impl FnOnce(&mut dyn FnMut(&[Option<u32>])) -> Result<Generated>,
) -> Result<()> {
    if json {
        let out = run(&mut |_| {})?;
        println!("{}", serde_json::to_string(&out)?);
    } else {
        let mut stream = streamer(model);
        let out = run(&mut stream)?;
        println!();
        if out.stop_reason == StopReason::ContextFull {
            eprintln!(
                "(stopped: the context is full, max_position_embeddings = {})",
                model.net.llm.config.max_position_embeddings
            );
        }
    }
    Ok(())
}
