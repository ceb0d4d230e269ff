//! `biqa eval`: the paper's evaluation of a model and pipeline on a dataset (Table 2: SRCC / PLCC with bootstrap
//! CIs, level accuracy, time per image; Table 1 with `--instability`), resumable; `--compare` puts run folders
//! side by side.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use biqa::data::Scale;
use biqa::decoder::Sampling;
use biqa::eval::{
    DatasetKind, EvalOptions, Evaluator, RunSpec, compare_markdown, evaluate, load_dataset,
    read_summary, sample_items, summary_markdown,
};
use biqa::model::{PipelineConfig, PipelineKind, PipelinePrompts, Scorer, ScoringPrompt};

use crate::cli::progress::Progress;
use crate::cli::runtime::Runtime;

/// Arguments of `biqa eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long, required_unless_present = "compare")]
    pub model: Option<PathBuf>,
    /// The pipeline: direct (Q-Align), one-stage or two-stage.
    #[arg(long, default_value = "direct")]
    pub pipeline: PipelineKind,
    /// The annotation format.
    #[arg(long, value_enum, required_unless_present = "compare")]
    pub dataset: Option<DatasetKind>,
    /// The annotation file (koniq: koniq10k_scores_and_distributions.csv; spaq: the xlsx; livec:
    /// Data/AllImages_release.mat; csiq: csiq.DMOS.xlsx; kadid: dmos.csv; pyiqa: a meta-info CSV; qalign-json: a
    /// test JSON; synth: manifest.csv).
    #[arg(required_unless_present = "compare")]
    pub file: Option<PathBuf>,
    /// The image folder (default: the annotation file's folder).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// The run folder (results.jsonl, summary.json/.md, scatter.png, confusion.png).
    #[arg(long, required_unless_present = "compare")]
    pub out: Option<PathBuf>,
    /// The score range `LO,HI` of formats without one (pyiqa, qalign-json), or to override the format's.
    #[arg(long)]
    pub mos_range: Option<String>,
    /// Lower scores are better (DMOS) for --mos-range.
    #[arg(long)]
    pub lower_better: bool,
    /// A prompts file (JSON, as `biqa_prompts.json`); default: the checkpoint's own, else the released defaults.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Evaluate only the first N images (after --sample).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Evaluate a seeded random subset of N images (the paper: 20 % of LIVE / CSIQ, 3,000 of SPAQ + KonIQ).
    #[arg(long)]
    pub sample: Option<usize>,
    /// Seed (subset, sampling, bootstrap).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Temperature of the pipeline's answers (0 = greedy, the default).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// New tokens per generated pass.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Table 1: `K,S` = K sampled answers per image in each of S sessions (the paper: 5,3).
    #[arg(long)]
    pub instability: Option<String>,
    /// Temperature of the instability samples (default: the checkpoint's generation_config.json, else 0.2).
    #[arg(long)]
    pub instability_temperature: Option<f32>,
    /// Relation estimation (Fig. 5): the attention share of the quality token over image / prompt / description /
    /// conclusion, averaged over the images (summary and attention.png).
    #[arg(long)]
    pub attention: bool,
    /// Stop at the first image that cannot be assessed (default: record it as an error row and go on).
    #[arg(long)]
    pub strict: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compare run folders instead: one Table-2-style markdown with a column per run (and Table-1 rows).
    #[arg(long, num_args = 1.., conflicts_with_all = ["model", "dataset", "file"])]
    pub compare: Vec<PathBuf>,
}

fn parse_pair<T: std::str::FromStr>(s: &str, what: &str) -> Result<(T, T)> {
    let (a, b) = s
        .split_once(',')
        .with_context(|| format!("{what} must be two values A,B (got {s:?})"))?;
    let parse = |x: &str| {
        x.trim()
            .parse::<T>()
            .map_err(|_| anyhow::anyhow!("{what}: {x:?} is not a number"))
    };
    Ok((parse(a)?, parse(b)?))
}

/// The checkpoint's sampling temperature (`generation_config.json`), if it sets one.
fn checkpoint_temperature(model: &std::path::Path) -> Option<f32> {
    let text = std::fs::read_to_string(model.join("generation_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("temperature")?.as_f64().map(|t| t as f32)
}

/// Runs (or resumes) an evaluation, or compares run folders.
///
/// # Errors
/// Bad arguments, loading errors, unreadable datasets, or a run folder of another run.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    if !args.compare.is_empty() {
        let runs = args
            .compare
            .iter()
            .map(|d| Ok((d.display().to_string(), read_summary(d)?)))
            .collect::<Result<Vec<_>>>()?;
        print!("{}", compare_markdown(&runs));
        return Ok(());
    }
    let (Some(model), Some(dataset), Some(file), Some(out)) =
        (&args.model, args.dataset, &args.file, &args.out)
    else {
        bail!("--model, --dataset, FILE and --out are required (or --compare RUN...)");
    };
    let kind = dataset;
    let images = args.images.clone().unwrap_or_else(|| {
        file.parent()
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
    });
    let scale = match &args.mos_range {
        Some(r) => {
            let (lo, hi) = parse_pair::<f64>(r, "--mos-range")?;
            Some(Scale::new(lo, hi, !args.lower_better)?)
        }
        None => None,
    };
    let data = load_dataset(kind, file, &images, scale)?;
    let mut items = data.items;
    if let Some(n) = args.sample {
        items = sample_items(items, n, args.seed);
    }
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    if items.is_empty() {
        bail!("{}: no image to evaluate", file.display());
    }
    let instability = args
        .instability
        .as_deref()
        .map(|s| parse_pair::<usize>(s, "--instability"))
        .transpose()?;
    let m = rt.load(model)?;
    let prompts = match &args.prompts {
        Some(p) => PipelinePrompts::from_file(p)?,
        None => PipelinePrompts::for_checkpoint(model)?,
    };
    let mut pipeline = PipelineConfig::new(args.pipeline, prompts);
    pipeline.sampling = Sampling::from_params(args.temperature, None, None)?;
    pipeline.max_new_tokens = args.max_new_tokens;
    let scorer = Scorer::new(m.tokenizer(), ScoringPrompt::Qalign, None)?;
    let spec = RunSpec {
        model: model.clone(),
        pipeline: args.pipeline,
        dataset: kind,
        file: file.clone(),
        images,
        seed: args.seed,
        temperature: args.temperature,
        max_new_tokens: args.max_new_tokens,
        sample: args.sample,
        limit: args.limit,
    };
    let options = EvalOptions {
        batch_size: args.batch_size,
        strict: args.strict,
        instability,
        instability_temperature: args
            .instability_temperature
            .or_else(|| checkpoint_temperature(model))
            .unwrap_or(0.2),
        attention: args.attention,
    };
    let bar = Progress::items_if(!args.json, items.len(), "images");
    let evaluator = Evaluator {
        model: &m,
        pipeline: &pipeline,
        scorer: &scorer,
        spec: &spec,
    };
    let summary = evaluate(
        evaluator,
        &items,
        data.scale.binning,
        &options,
        out,
        &mut |done, _| bar.set(done),
    )?;
    bar.finish();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary_markdown(&summary));
        println!("\n(written to {})", out.display());
    }
    if summary.errors > 0 {
        bail!(
            "{} of {} image(s) could not be assessed (error rows in {})",
            summary.errors,
            items.len(),
            out.join("results.jsonl").display()
        );
    }
    Ok(())
}
