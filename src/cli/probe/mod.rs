//! `biqa probe`: the paper's probes, one module per figure.

pub mod attention;
pub mod lens;
pub mod trajectories;

use std::ops::RangeInclusive;
use std::path::Path;

use anyhow::Result;

use crate::cli::runtime::Runtime;

/// Arguments of `biqa probe`: which probe.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The probe.
    #[command(subcommand)]
    pub what: ProbeCommand,
}

/// The probes.
#[derive(Debug, clap::Subcommand)]
pub enum ProbeCommand {
    /// Logit lens at the position that predicts the quality word of the Q-Align prompt: lens.json, lens.csv,
    /// lens.png.
    Lens(lens::Args),
    /// Attention of the quality token (and, with --describe, of every generated token) to the context, averaged
    /// over heads and layers, then over images by segment: attention.json, attention.csv, attention.png.
    Attention(attention::Args),
    /// Level-word trajectories over layers for many images: trajectories.json, trajectories.csv, trajectories.png.
    Trajectories(trajectories::Args),
}

/// Runs the chosen probe.
///
/// # Errors
/// The probe's errors.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    match args.what {
        ProbeCommand::Lens(a) => lens::run(a, rt),
        ProbeCommand::Attention(a) => attention::run(a, rt),
        ProbeCommand::Trajectories(a) => trajectories::run(a, rt),
    }
}

/// Parses `A..B` (or `A..=B`) as an inclusive range.
fn parse_layers(s: &str) -> Result<RangeInclusive<usize>> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| anyhow::anyhow!("--layers {s:?}: expected A..B"))?;
    let b = b.trim_start_matches('=');
    Ok(a.trim().parse()?..=b.trim().parse()?)
}

/// Creates the output directory.
fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
}
