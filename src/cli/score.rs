//! `biqa score`: Q-Align scores of images.

use std::path::PathBuf;

use anyhow::Result;
use biqa::model::report::ScoreRow;
use biqa::model::{Scorer, ScoringPrompt};

use crate::cli::progress::Progress;
use crate::cli::runtime::Runtime;

/// Arguments of `biqa score`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory (config.json, weights, tokenizer, preprocessor_config.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Images (PNG, JPEG, BMP, TIFF, WebP).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Scoring prompt and level words: qalign (excellent…bad) or qinstruct (good/average/poor).
    #[arg(long, default_value = "qalign")]
    pub prompt: ScoringPrompt,
    /// Print a JSON array, one object per image: `{"image", "score", "score_1_5", "probs"}`, or
    /// `{"image", "error"}` for an image that could not be scored.
    #[arg(long)]
    pub json: bool,
    /// Print where the time went to stderr, as one JSON object: `load_s` (config, tokenizer and weights),
    /// `batches` (`{"images", "s"}` per forward batch, preprocessing included) and `total_s`.
    #[arg(long)]
    pub timings: bool,
}

/// Scoring went past images it could not score; each has its error in the output.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} images could not be scored (their errors are in the output)")]
pub struct SomeImagesFailed {
    /// Images not scored.
    pub failed: usize,
    /// Images given.
    pub total: usize,
}

/// Scores the images and prints a table (or a JSON array of [`ScoreRow`]s). An image that cannot be read or
/// scored does not stop the others: it gets a row with its error, and the command fails at the end.
///
/// # Errors
/// Loading errors, a text-only model; [`SomeImagesFailed`] after printing every row when an image could not be scored.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    // The scorer preprocesses as its prompt's released code does (`ScoringPrompt::resize_mode`: Q-Instruct
    // center-crops, Q-Align keeps the checkpoint's padding).
    let start = std::time::Instant::now();
    let m = rt.load(&args.model)?;
    let load_s = start.elapsed().as_secs_f64();
    let scorer = Scorer::new(m.tokenizer(), args.prompt, None)?;
    let images = &args.images;
    let bar = Progress::items_if(
        images.len() > args.batch_size && !args.json,
        images.len(),
        "images",
    );
    let mut marks = vec![(0, std::time::Instant::now())];
    let results = m.score_paths_each(images, &scorer, args.batch_size, |done| {
        marks.push((done, std::time::Instant::now()));
        bar.set(done);
    })?;
    bar.finish();
    if args.timings {
        let batches: Vec<serde_json::Value> = marks
            .windows(2)
            .map(|w| {
                let s = w[1].1.duration_since(w[0].1).as_secs_f64();
                serde_json::json!({"images": w[1].0 - w[0].0, "s": s})
            })
            .collect();
        let total_s = start.elapsed().as_secs_f64();
        eprintln!(
            "{}",
            serde_json::json!({"load_s": load_s, "batches": batches, "total_s": total_s})
        );
    }
    if args.json {
        let rows: Vec<ScoreRow> = images
            .iter()
            .zip(&results)
            .map(|(p, r)| ScoreRow::new(p.display().to_string(), r))
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        println!(
            "{:>8} {:>9}  {:<10} image",
            "score", "score_1_5", "top word"
        );
        for (p, r) in images.iter().zip(&results) {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    println!(
                        "{:>8} {:>9}  {:<10} {}  error: {e}",
                        "-",
                        "-",
                        "-",
                        p.display()
                    );
                    continue;
                }
            };
            let top = r
                .probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or("", |(i, _)| r.words[i].as_str());
            println!(
                "{:>8.4} {:>9.4}  {:<10} {}",
                r.score,
                r.score_1_5,
                top,
                p.display()
            );
        }
    }
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(SomeImagesFailed {
            failed,
            total: results.len(),
        }
        .into());
    }
    Ok(())
}
