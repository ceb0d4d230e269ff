//! `biqa synth`: the embedded synthetic IQA set.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::progress::Progress;

/// Arguments of `biqa synth`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Random crops per photo (each gives 1 reference + 7 distortions × 5 levels = 36 images).
    #[arg(long, default_value_t = 7)]
    pub per_photo: usize,
    /// Seed (crops, noise, wording, split).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Writes the images, the manifest and the training JSON, and prints the count table.
///
/// # Errors
/// Decoding or writing errors.
pub fn run(args: Args) -> Result<()> {
    let config = biqa::data::SynthConfig::default();
    let total = args
        .per_photo
        .saturating_mul(4)
        .saturating_mul(config.images_per_crop());
    let bar = Progress::items(total, "images");
    let t = std::time::Instant::now();
    let output = biqa::data::synth(&args.out, args.per_photo, args.seed, &mut |done, _| {
        bar.set(done);
    })?;
    bar.finish();
    println!("{}", output.count_table());
    eprintln!(
        "wrote {} images and their manifests to {} in {:.1?}",
        output.items.len(),
        args.out.display(),
        t.elapsed()
    );
    Ok(())
}
