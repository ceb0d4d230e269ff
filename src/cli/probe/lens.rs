//! `biqa probe lens`: the logit lens of the Q-Align quality position (Fig. 3).

use std::path::PathBuf;

use anyhow::Result;
use biqa::probes::{LensConfig, figures, output, owl2};

use super::{mkdir, parse_layers};
use crate::cli::runtime::Runtime;

/// Arguments of `biqa probe lens`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The image.
    pub image: PathBuf,
    /// Hidden-state indices A..B (inclusive; 0 = embeddings, the last = the model's output); default all.
    #[arg(long)]
    pub layers: Option<String>,
    /// Candidates per layer.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Output directory.
    #[arg(long, default_value = "probe-lens")]
    pub out: PathBuf,
}

/// Writes lens.json, lens.csv and lens.png, and prints the top word and level probabilities per layer.
///
/// # Errors
/// A bad `--layers`, model or I/O errors.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    let m = rt.load(&args.model)?;
    let config = LensConfig {
        layers: args.layers.as_deref().map(parse_layers).transpose()?,
        top_k: args.top_k,
        levels: owl2::qalign_levels(&m)?,
    };
    let lens = owl2::qalign_lens(&m, &args.image, &config)?;
    let out = &args.out;
    mkdir(out)?;
    output::write_json(&out.join("lens.json"), &lens)?;
    output::write_lens_csv(&out.join("lens.csv"), &lens)?;
    let title = format!(
        "Logit lens: {}",
        args.image
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into())
    );
    figures::lens_table(&out.join("lens.png"), &lens, &title)?;
    println!(
        "{:>6}  {:<12} {:>8}  level probabilities ({})",
        "layer",
        "top-1",
        "p",
        lens.level_words.join(", ")
    );
    for l in &lens.layers {
        let top = l.top.first();
        let levels: Vec<String> = l.level_probs.iter().map(|p| format!("{p:.3}")).collect();
        println!(
            "{:>6}  {:<12} {:>8.4}  {}",
            l.layer,
            top.map_or(String::new(), |c| format!("{:?}", c.text)),
            top.map_or(0.0, |c| c.prob),
            levels.join(" ")
        );
    }
    eprintln!("wrote lens.json, lens.csv, lens.png to {}", out.display());
    Ok(())
}
