//! `biqa describe`: a free-text quality description of one image.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::runtime::Runtime;
use crate::cli::text::{SamplingArgs, emit};

/// Arguments of `biqa describe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The image.
    pub image: PathBuf,
    /// Sampling flags.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print one JSON object (`text`, `token_ids`, `stop_reason`: `eos`, `max_tokens` or `context_full`).
    #[arg(long)]
    pub json: bool,
}

/// Describes the image, streaming the tokens (or printing one JSON object).
///
/// # Errors
/// Loading, preprocessing or generation errors.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    let m = rt.load(&args.model)?;
    let config = args
        .sampling
        .config(m.net.llm.config.eos_token_ids.clone())?;
    emit(&m, args.json, |on_token| {
        Ok(m.describe(&args.image, &config, on_token)?)
    })
}
