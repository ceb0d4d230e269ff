//! The main job: the paper's experiment in miniature, from the bundled photographs and the bundled pre-aligned
//! miniature mPLUG-Owl2, with no download (see [`biqa::reproduce`]).
//!
//! ```text
//! cargo run --release --example reproduce -- [--quick] [--out DIR] [--from-scratch [STEPS]] [--model DIR]
//!     [--seeds 0,1,2] [--steps N] [--batch-size N] [--lr LR] [--crops N] [--eval-crops N] [--device D]
//!     [--train-vision] [--vision-lr-scale F] [--freeze-abstractor] [--stage2-lr LR]
//! ```
//! `--vision-lr-scale F` trains the vision tower too, at `F` times the learning rate of the rest.
//! - default ([`ReproduceConfig::full`](biqa::reproduce::ReproduceConfig::full)): 3 seeds from `data/miniature/seed<N>` (made by `examples/pretrain.rs`),
//!   300 fine-tuning steps of 16 per recipe at lr 1e-3 (two-stage's stage 2 at 1e-4), vision tower frozen, report
//!   in `target/reproduce/` (`report.md`, `report.json`, PNGs);
//! - `--quick` ([`ReproduceConfig::quick`](biqa::reproduce::ReproduceConfig::quick)): seed 0 only, 72 test images (the CI test runs it);
//! - `--bundled DIR`: the pre-aligned miniatures from `DIR/seed<N>` instead of `data/miniature`;
//! - `--from-scratch [STEPS]`: pre-align a random miniature per seed here first (default 3000 steps);
//! - `--model DIR`: the same protocol from a released mPLUG-Owl2 / Q-Align directory (no pre-alignment; 224-px
//!   crops; raise `--steps` and use `--device cuda` in a `cuda` build for a 7B model).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use biqa::reproduce::{ReproduceConfig, Start, run, write_report};

fn main() -> Result<()> {
    biqa::kernels::tune_allocator();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = root.join("target/reproduce");
    let mut quick = false;
    let mut start = Start::Bundled {
        dir: root.join("data/miniature"),
    };
    let mut overrides: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--train-vision" | "--freeze-abstractor" => overrides.push((arg, String::new())),
            "--out" => out = PathBuf::from(args.next().context("--out needs a value")?),
            "--model" => {
                start = Start::Model {
                    dir: PathBuf::from(args.next().context("--model needs a value")?),
                }
            }
            "--bundled" => {
                start = Start::Bundled {
                    dir: PathBuf::from(args.next().context("--bundled needs a value")?),
                }
            }
            "--from-scratch" => {
                let steps = match args.peek() {
                    Some(v) if !v.starts_with("--") => args.next().unwrap_or_default().parse()?,
                    _ => biqa::miniature::PretrainSettings::default().steps,
                };
                start = Start::FromScratch { steps };
            }
            "--seeds" | "--steps" | "--batch-size" | "--lr" | "--crops" | "--eval-crops"
            | "--device" | "--stage2-lr" | "--vision-lr-scale" => {
                let v = args
                    .next()
                    .with_context(|| format!("{arg} needs a value"))?;
                overrides.push((arg, v));
            }
            s => bail!("unknown argument {s} (see the doc comment of examples/reproduce.rs)"),
        }
    }
    let mut config = if quick {
        ReproduceConfig::quick(out.clone(), start)
    } else {
        ReproduceConfig::full(out.clone(), start)
    };
    for (k, v) in overrides {
        match k.as_str() {
            "--seeds" => {
                config.seeds = v
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--steps" => config.steps = v.parse()?,
            "--batch-size" => config.batch_size = v.parse()?,
            "--lr" => config.lr = v.parse()?,
            "--crops" => config.crops_per_photo = v.parse()?,
            "--eval-crops" => config.eval_crops = v.parse()?,
            "--device" => config.device = v,
            "--stage2-lr" => config.stage2_lr = Some(v.parse()?),
            "--train-vision" => config.trainable.freeze_vision = false,
            "--vision-lr-scale" => {
                config.trainable.freeze_vision = false;
                config.trainable.vision_lr_scale = v.parse()?
            }
            "--freeze-abstractor" => config.trainable.freeze_abstractor = true,
            _ => unreachable!("only the keys above are collected"),
        }
    }
    let t0 = std::time::Instant::now();
    let reproduction = run(&config, &mut |line| {
        eprintln!("[{:>6.1} s] {line}", t0.elapsed().as_secs_f64())
    })?;
    let report = write_report(&reproduction, &out)?;
    println!("{}", biqa::reproduce::headline_table(&reproduction));
    println!(
        "report: {} ({:.0} s on {})",
        report.display(),
        reproduction.wall_seconds,
        reproduction.machine
    );
    Ok(())
}
