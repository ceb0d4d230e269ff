//! `biqa assess`: the paper's inference on images — `direct` (Q-Align), `one-stage` (description and conclusion in
//! one answer) or `two-stage` (image → description, then text only → conclusion).

use std::path::PathBuf;

use anyhow::Result;
use biqa::metrics::Level;
use biqa::model::{
    Assessment, PipelineConfig, PipelineKind, PipelinePrompts, Scorer, ScoringPrompt,
};
use serde::Serialize;

use crate::cli::progress::Progress;
use crate::cli::runtime::Runtime;
use crate::cli::text::SamplingArgs;

/// Arguments of `biqa assess`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The pipeline: direct (Q-Align), one-stage or two-stage.
    #[arg(long, default_value = "two-stage")]
    pub pipeline: PipelineKind,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// A prompts file (JSON, as `biqa_prompts.json`); default: the checkpoint's own, else the released defaults.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Sampled answers per image (with --temperature > 0): each is printed, with the majority level and whether
    /// the answers agree.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Temperature, top-p, top-k, seed (image i, sample k: seed + k · 1 000 003 + i), new tokens per pass.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Images per batch.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Print JSON (one object per image, with every sample).
    #[arg(long)]
    pub json: bool,
}

/// One image's answers.
#[derive(Debug, Serialize)]
struct ImageAnswers {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    samples: Vec<Assessment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    majority: Option<Level>,
    agree: bool,
}

fn majority(levels: &[Option<Level>]) -> (Option<Level>, bool) {
    let mut counts = [0usize; 5];
    for l in levels.iter().flatten() {
        counts[*l as usize] += 1;
    }
    let best = (0..5).max_by_key(|&i| (counts[i], std::cmp::Reverse(i)));
    let level = best.filter(|&i| counts[i] > 0).and_then(Level::from_index);
    let agree = !levels.is_empty() && levels.iter().all(|l| l.is_some() && *l == levels[0]);
    (level, agree)
}

/// Assesses the images and prints a table per image (or JSON). Exits non-zero when an image failed (after the
/// others are done).
///
/// # Errors
/// Loading errors, invalid sampling settings, or failed images (counted at the end).
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    let m = rt.load(&args.model)?;
    let prompts = match &args.prompts {
        Some(p) => PipelinePrompts::from_file(p)?,
        None => PipelinePrompts::for_checkpoint(&args.model)?,
    };
    let mut config = PipelineConfig::new(args.pipeline, prompts);
    let g = args.sampling.config(Vec::new())?;
    config.sampling = g.sampling;
    config.max_new_tokens = g.max_new_tokens;
    let scorer = Scorer::new(m.tokenizer(), ScoringPrompt::Qalign, None)?;
    let n = args.images.len();
    let samples = args.samples.max(1);
    let bar = Progress::items_if(n * samples > 1 && !args.json, n * samples, "answers");
    let mut per_image: Vec<ImageAnswers> = args
        .images
        .iter()
        .map(|p| ImageAnswers {
            image: p.display().to_string(),
            error: None,
            samples: Vec::new(),
            majority: None,
            agree: false,
        })
        .collect();
    for k in 0..samples {
        let seed = args.sampling.seed.wrapping_add(k as u64 * 1_000_003);
        let results = m.assess_paths(&config, &scorer, &args.images, seed, args.batch_size, |d| {
            bar.set(k * n + d);
        });
        for (slot, r) in per_image.iter_mut().zip(results) {
            match r {
                Ok(a) => slot.samples.push(a),
                Err(e) => slot.error = Some(e.to_string()),
            }
        }
    }
    bar.finish();
    let mut failed = 0;
    for slot in &mut per_image {
        let levels: Vec<Option<Level>> = slot.samples.iter().map(|a| a.level).collect();
        (slot.majority, slot.agree) = majority(&levels);
        failed += usize::from(slot.error.is_some());
    }
    if args.json {
        println!("{}", serde_json::to_string(&per_image)?);
    } else {
        for slot in &per_image {
            println!("== {}", slot.image);
            if let Some(e) = &slot.error {
                println!("   error: {e}");
                continue;
            }
            for (k, a) in slot.samples.iter().enumerate() {
                if samples > 1 {
                    println!("-- sample {}", k + 1);
                }
                if let Some(d) = &a.description {
                    println!("   description: {d}");
                }
                println!("   conclusion:  {}", a.conclusion);
                println!(
                    "   level: {:<9}  score: {:.4} (1–5: {:.3})  {:.3} s",
                    a.level.map_or("none", Level::word),
                    a.score,
                    a.score_1_5,
                    a.seconds
                );
            }
            if samples > 1 {
                println!(
                    "   majority: {}  ({})",
                    slot.majority.map_or("none", Level::word),
                    if slot.agree {
                        "all answers agree"
                    } else {
                        "the answers disagree"
                    }
                );
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {n} image(s) could not be assessed");
    }
    Ok(())
}
