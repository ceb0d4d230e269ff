//! The `biqa` command line: the top-level parser and the dispatch to the commands, one module each in `cli/`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

use cli::runtime::Runtime;

/// Blind image quality assessment with vision-language models.
#[derive(Debug, Parser)]
#[command(name = "biqa", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    runtime: Runtime,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SRCC, PLCC (raw and 4-parameter logistic), KRCC and RMSE of predictions against MOS in a CSV file.
    Metrics(cli::metrics::Args),
    /// Instability ratios of repeated answers in a `sample,session,answer` CSV file.
    Instability(cli::instability::Args),
    /// Q-Align scores of images (softmax over the level words after "The quality of the image is"). Scoring
    /// continues past images that cannot be read or scored: each gets a row with its error (`{"image", "error"}`
    /// with --json), and the exit status is 1 at the end if any failed.
    Score(cli::score::Args),
    /// The paper's inference on images: direct (Q-Align), one-stage, or two-stage (image → description, then text
    /// only → conclusion); description, conclusion, level and score per image.
    Assess(cli::assess::Args),
    /// The paper's evaluation on a dataset (SRCC/PLCC with CIs, level accuracy, time per image, instability),
    /// resumable; or --compare run folders side by side.
    Eval(cli::eval::Args),
    /// A free-text quality description of one image.
    Describe(cli::describe::Args),
    /// Text generation with a plain LLaMA (or mPLUG-Owl2, text only) checkpoint directory.
    Generate(cli::generate::Args),
    /// Rewrites a checkpoint directory's weights (e.g. the released `pytorch_model*.bin`) as sharded safetensors
    /// and copies the other files, so that later loads are memory-mapped. The output directory must be new or
    /// empty; it is written under a temporary name and renamed into place when complete.
    Convert(cli::convert::Args),
    /// Builds the embedded synthetic IQA set from the bundled photographs: distorted crops, manifest.csv and
    /// one-stage / stage-1 / stage-2 training JSON, split by source photo.
    Synth(cli::synth::Args),
    /// Trains a checkpoint directory with a TOML configuration (recipe, data, batch, schedule, ε, freezing/LoRA,
    /// checkpoints, validation): logs `metrics.csv` / `metrics.jsonl`, draws `loss.png`, writes the final model as
    /// a checkpoint directory (`<output>/final`) that `biqa score` loads.
    Train(cli::train::Args),
    /// The paper's probes: logit lens (Fig. 3), attention aggregation (Fig. 5), level-word trajectories (Fig. 6).
    Probe(cli::probe::Args),
    /// Version, compiled backends and the default device.
    Info(cli::info::Args),
    /// Load, cold start, Q-Align score latency and throughput, greedy decode ms/token and one LoRA training step
    /// of a checkpoint on this device (one table; `scripts/gpu-check.sh` runs it on a GPU host).
    Bench(cli::bench::Args),
}

fn run(cli: Cli) -> Result<()> {
    let rt = &cli.runtime;
    match cli.command {
        Command::Metrics(args) => cli::metrics::run(args),
        Command::Instability(args) => cli::instability::run(args),
        Command::Score(args) => cli::score::run(args, rt),
        Command::Assess(args) => cli::assess::run(args, rt),
        Command::Eval(args) => cli::eval::run(args, rt),
        Command::Describe(args) => cli::describe::run(args, rt),
        Command::Generate(args) => cli::generate::run(args, rt),
        Command::Convert(args) => cli::convert::run(args),
        Command::Synth(args) => cli::synth::run(args),
        Command::Train(args) => cli::train::run(args, rt),
        Command::Probe(args) => cli::probe::run(args, rt),
        Command::Info(args) => cli::info::run(args, rt),
        Command::Bench(args) => cli::bench::run(args, rt),
    }
}

fn main() -> ExitCode {
    biqa::kernels::tune_allocator();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
