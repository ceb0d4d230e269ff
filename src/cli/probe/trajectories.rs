//! `biqa probe trajectories`: level-word trajectories over layers for many images (Fig. 6).

use std::path::PathBuf;

use anyhow::Result;
use biqa::probes::{LensConfig, figures, output, owl2};

use super::mkdir;
use crate::cli::progress::Progress;
use crate::cli::runtime::Runtime;

/// Arguments of `biqa probe trajectories`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Only aggregate the images whose final answer is this level word (e.g. poor).
    #[arg(long = "final")]
    pub final_word: Option<String>,
    /// Output directory.
    #[arg(long, default_value = "probe-trajectories")]
    pub out: PathBuf,
}

/// Runs the lens on every image and writes trajectories.json, trajectories.csv and trajectories.png.
///
/// # Errors
/// Model, probe or I/O errors.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    let m = rt.load(&args.model)?;
    let config = LensConfig {
        layers: None,
        top_k: 5,
        levels: owl2::qalign_levels(&m)?,
    };
    let bar = Progress::items(args.images.len(), "images");
    let mut lenses = Vec::new();
    for img in &args.images {
        lenses.push(owl2::qalign_lens(&m, img, &config)?);
        bar.inc();
    }
    bar.finish();
    let t = biqa::probes::trajectories(&lenses, args.final_word.as_deref())?;
    let out = &args.out;
    mkdir(out)?;
    output::write_json(&out.join("trajectories.json"), &t)?;
    output::write_trajectories_csv(&out.join("trajectories.csv"), &t)?;
    figures::trajectories_figure(
        &out.join("trajectories.png"),
        &t,
        &format!("Top level word per layer ({} images)", t.samples),
    )?;
    eprintln!(
        "wrote trajectories.json, trajectories.csv, trajectories.png to {}",
        out.display()
    );
    Ok(())
}
