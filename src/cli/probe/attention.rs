//! `biqa probe attention`: attention of the quality token to the context, by segment (Fig. 5).

use std::path::PathBuf;

use anyhow::Result;
use biqa::probes::{AttentionMap, figures, output, owl2};

use super::{mkdir, parse_layers};
use crate::cli::progress::Progress;
use crate::cli::runtime::Runtime;

/// Arguments of `biqa probe attention`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Decoder layers A..B (inclusive); default all.
    #[arg(long)]
    pub layers: Option<String>,
    /// First generate a (greedy) quality description, then ask for the quality after it.
    #[arg(long)]
    pub describe: bool,
    /// Maximum length of the description.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Output directory.
    #[arg(long, default_value = "probe-attention")]
    pub out: PathBuf,
}

/// Aggregates the attention of every image, writes attention.json, attention.csv and attention.png, and prints
/// the average share of each segment.
///
/// # Errors
/// A bad `--layers`, model, probe or I/O errors.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    let m = rt.load(&args.model)?;
    let n_layers = m.net.llm.config.num_layers;
    let layer_list: Vec<usize> = match args.layers.as_deref().map(parse_layers).transpose()? {
        // Clipped arithmetically (a range up to usize::MAX is not walked), and refused when it holds no layer.
        Some(r) => {
            let (start, end) = (*r.start(), (*r.end()).min(n_layers.saturating_sub(1)));
            if start > end {
                anyhow::bail!(
                    "--layers {}..{}: the model has layers 0..{}",
                    r.start(),
                    r.end(),
                    n_layers.saturating_sub(1)
                );
            }
            (start..=end).collect()
        }
        None => (0..n_layers).collect(),
    };
    let images = &args.images;
    let bar = Progress::items(images.len(), "images");
    let mut maps = Vec::new();
    for img in images {
        maps.push(owl2::quality_attention(
            &m,
            img,
            &layer_list,
            args.describe.then_some(args.max_new_tokens),
        )?);
        bar.inc();
    }
    bar.finish();
    let avg = biqa::probes::attention::average_shares(&maps)?;
    let out = &args.out;
    mkdir(out)?;
    output::write_json(
        &out.join("attention.json"),
        &biqa::probes::attention::AttentionReport {
            images: images.clone(),
            maps: maps.clone(),
            average: avg.clone(),
        },
    )?;
    let labelled: Vec<(String, AttentionMap)> = images
        .iter()
        .map(|p| p.display().to_string())
        .zip(maps.iter().cloned())
        .collect();
    output::write_attention_csv(&out.join("attention.csv"), &labelled)?;
    figures::attention_heatmap(
        &out.join("attention.png"),
        &maps[0],
        "image",
        "Attention of the generated tokens to the context",
    )?;
    for (name, share) in avg.segments.iter().zip(&avg.mean) {
        println!("{name:<12} {:>6.2}%", 100.0 * share);
    }
    eprintln!(
        "wrote attention.json, attention.csv, attention.png to {}",
        out.display()
    );
    Ok(())
}
