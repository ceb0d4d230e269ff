//! `biqa generate`: text generation with a plain LLaMA (or mPLUG-Owl2, text only) checkpoint directory.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::runtime::Runtime;
use crate::cli::text::{SamplingArgs, emit};

/// Arguments of `biqa generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The prompt text.
    #[arg(long)]
    pub prompt: String,
    /// Sampling flags.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print one JSON object (`text`, `token_ids`, `stop_reason`: `eos`, `max_tokens` or `context_full`).
    #[arg(long)]
    pub json: bool,
}

/// Continues the prompt, streaming the tokens (or printing one JSON object).
///
/// # Errors
/// Loading or generation errors.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    let m = rt.load(&args.model)?;
    let config = args
        .sampling
        .config(m.net.llm.config.eos_token_ids.clone())?;
    emit(&m, args.json, |on_token| {
        Ok(m.generate(&args.prompt, None, &config, on_token)?)
    })
}
