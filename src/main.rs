//! The `biqa` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use biqa::decoder::{GenerationConfig, Sampling};
use biqa::device::{DeviceKind, cpu_has_avx512};
use biqa::metrics::{LevelParser, Summary, instability};
use biqa::model::{LoadOptions, Owl2, Scorer, ScoringPrompt};
use biqa::tables::{read_answers, read_predictions};
use clap::{Parser, Subcommand};
use serde::Serialize;

/// Blind image quality assessment with vision-language models.
#[derive(Debug, Parser)]
#[command(name = "biqa", version, about, propagate_version = true)]
struct Cli {
    /// Device for the model commands: flex (CPU), cuda or cuda:N (default: $BIQA_DEVICE, else flex).
    #[arg(long, global = true)]
    device: Option<String>,
    /// Parameter dtype for the model commands (bf16 keeps the released weights at their precision on GPUs).
    #[arg(long, global = true, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    #[command(subcommand)]
    command: Command,
}

/// `--dtype`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Dtype {
    /// 32-bit floats (CPU default).
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
}

impl Dtype {
    fn policy(self) -> biqa::checkpoint::FloatPolicy {
        match self {
            Dtype::F32 => biqa::checkpoint::FloatPolicy::F32,
            Dtype::Bf16 => biqa::checkpoint::FloatPolicy::Bf16,
            Dtype::F16 => biqa::checkpoint::FloatPolicy::F16,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SRCC, PLCC (raw and 4-parameter logistic), KRCC and RMSE of predictions against MOS in a CSV file.
    Metrics {
        /// CSV file with a header row.
        file: PathBuf,
        /// Column holding the predictions.
        #[arg(long, default_value = "pred")]
        pred: String,
        /// Column holding the subjective scores (MOS or DMOS).
        #[arg(long, default_value = "mos")]
        mos: String,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Instability ratios of repeated answers in a `sample,session,answer` CSV file.
    Instability {
        /// CSV file with the columns sample, session and answer (free text or a level word).
        file: PathBuf,
        /// Accept only the five level words (no synonyms such as "average").
        #[arg(long)]
        strict: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Q-Align scores of images (softmax over the level words after "The quality of the image is").
    Score {
        /// Checkpoint directory (config.json, weights, tokenizer, preprocessor_config.json).
        #[arg(long)]
        model: PathBuf,
        /// Images (PNG, JPEG, BMP, TIFF, WebP).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Images per forward pass.
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        /// Scoring prompt and level words: qalign (excellent…bad) or qinstruct (good/average/poor).
        #[arg(long, default_value = "qalign")]
        prompt: ScoringPrompt,
        /// Print a JSON array, one object per image.
        #[arg(long)]
        json: bool,
    },
    /// A free-text quality description of one image.
    Describe {
        /// Checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// The image.
        image: PathBuf,
        #[command(flatten)]
        sampling: SamplingArgs,
        /// Print one JSON object (`text`, `token_ids`).
        #[arg(long)]
        json: bool,
    },
    /// Text generation with a plain LLaMA (or mPLUG-Owl2, text only) checkpoint directory.
    Generate {
        /// Checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// The prompt text.
        #[arg(long)]
        prompt: String,
        #[command(flatten)]
        sampling: SamplingArgs,
        /// Print one JSON object (`text`, `token_ids`).
        #[arg(long)]
        json: bool,
    },
    /// Rewrites a checkpoint directory's weights (e.g. the released `pytorch_model*.bin`) as sharded safetensors
    /// and copies the other files, so that later loads are memory-mapped.
    Convert {
        /// Source checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Maximum shard size in bytes.
        #[arg(long, default_value_t = biqa::checkpoint::DEFAULT_SHARD_BYTES)]
        shard_size: u64,
    },
    /// Builds the embedded synthetic IQA set from the bundled photographs: distorted crops, manifest.csv and
    /// one-stage / stage-1 / stage-2 training JSON, split by source photo.
    Synth {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Random crops per photo (each gives 1 reference + 7 distortions × 5 levels = 36 images).
        #[arg(long, default_value_t = 7)]
        per_photo: usize,
        /// Seed (crops, noise, wording, split).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Trains a checkpoint directory with a TOML configuration (recipe, data, batch, schedule, ε, freezing/LoRA,
    /// checkpoints, validation): logs `metrics.csv` / `metrics.jsonl`, draws `loss.png`, writes the final model as
    /// a checkpoint directory (`<output>/final`) that `biqa score` loads.
    Train {
        /// The configuration file (see `examples/train.toml`).
        #[arg(long)]
        config: PathBuf,
        /// Continue from the latest checkpoint in the output directory.
        #[arg(long)]
        resume: bool,
        /// Data-parallel over these devices (comma-separated, e.g. `cuda:0,cuda:1`): each replica takes every
        /// n-th micro-batch, gradients are summed on the first. Default: the global `--device`.
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
    },
    /// The paper's probes: logit lens (Fig. 3), attention aggregation (Fig. 5), level-word trajectories (Fig. 6).
    Probe {
        #[command(subcommand)]
        what: ProbeCommand,
    },
    /// Version, compiled backends and the default device.
    Info,
}

#[derive(Debug, Subcommand)]
enum ProbeCommand {
    /// Logit lens at the position that predicts the quality word of the Q-Align prompt: lens.json, lens.csv,
    /// lens.png.
    Lens {
        /// Checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// The image.
        image: PathBuf,
        /// Hidden-state indices A..B (inclusive; 0 = embeddings, the last = the model's output); default all.
        #[arg(long)]
        layers: Option<String>,
        /// Candidates per layer.
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        /// Output directory.
        #[arg(long, default_value = "probe-lens")]
        out: PathBuf,
    },
    /// Attention of the quality token (and, with --describe, of every generated token) to the context, averaged
    /// over heads and layers, then over images by segment: attention.json, attention.csv, attention.png.
    Attention {
        /// Checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// Images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Decoder layers A..B (inclusive); default all.
        #[arg(long)]
        layers: Option<String>,
        /// First generate a (greedy) quality description, then ask for the quality after it.
        #[arg(long)]
        describe: bool,
        /// Maximum length of the description.
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// Output directory.
        #[arg(long, default_value = "probe-attention")]
        out: PathBuf,
    },
    /// Level-word trajectories over layers for many images: trajectories.json, trajectories.csv, trajectories.png.
    Trajectories {
        /// Checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// Images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Only aggregate the images whose final answer is this level word (e.g. poor).
        #[arg(long = "final")]
        final_word: Option<String>,
        /// Output directory.
        #[arg(long, default_value = "probe-trajectories")]
        out: PathBuf,
    },
}

/// Parses `A..B` (or `A..=B`) as an inclusive range.
fn parse_layers(s: &str) -> Result<std::ops::RangeInclusive<usize>> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| anyhow::anyhow!("--layers {s:?}: expected A..B"))?;
    let b = b.trim_start_matches('=');
    Ok(a.trim().parse()?..=b.trim().parse()?)
}

fn progress(n: usize, what: &str) -> Option<indicatif::ProgressBar> {
    (n > 1).then(|| {
        let b = indicatif::ProgressBar::new(n as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} {what}  {{elapsed}} < {{eta}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    })
}

/// Sampling flags shared by `describe` and `generate`.
#[derive(Debug, clap::Args)]
struct SamplingArgs {
    /// Temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long)]
    top_p: Option<f32>,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
}

impl SamplingArgs {
    fn config(&self, eos: Vec<u32>) -> Result<GenerationConfig> {
        Ok(GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            stop_tokens: eos,
            sampling: Sampling::from_params(self.temperature, self.top_k, self.top_p)?,
            seed: self.seed,
            keep_logits: false,
        })
    }
}

/// `biqa instability --json` output.
#[derive(Debug, Serialize)]
struct InstabilityOutput {
    sample_level_mean: f64,
    sample_level_std: Option<f64>,
    answer_level_mean: f64,
    answer_level_std: Option<f64>,
    invalid_rate: f64,
    sessions: Vec<SessionOutput>,
}

#[derive(Debug, Serialize)]
struct SessionOutput {
    session: String,
    samples: usize,
    answers: usize,
    sample_level: f64,
    answer_level: f64,
    invalid_rate: f64,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.6}"))
}

/// `biqa score --json` output, one per image.
#[derive(Debug, Serialize)]
struct ScoreOutput {
    image: String,
    score: f64,
    score_1_5: f64,
    probs: serde_json::Map<String, serde_json::Value>,
}

/// `biqa describe/generate --json` output.
#[derive(Debug, Serialize)]
struct TextOutput<'a> {
    text: &'a str,
    token_ids: &'a [u32],
}

fn device(name: Option<&str>) -> Result<burn::tensor::Device> {
    let kind = match name {
        Some(n) => n.parse::<DeviceKind>()?,
        None => DeviceKind::from_env()?,
    };
    Ok(kind.device()?)
}

/// Where a model command runs: device name and parameter dtype.
#[derive(Debug, Clone, Copy)]
struct Runtime<'a> {
    device: Option<&'a str>,
    dtype: Dtype,
}

fn load(model: &std::path::Path, rt: Runtime<'_>) -> Result<Owl2> {
    load_with(model, rt, None)
}

fn load_with(
    model: &std::path::Path,
    rt: Runtime<'_>,
    resize: Option<biqa::vision::ResizeMode>,
) -> Result<Owl2> {
    let options = LoadOptions {
        policy: rt.dtype.policy(),
        resize_mode: resize,
    };
    Ok(Owl2::from_dir(model, &device(rt.device)?, &options)?)
}

/// Prints tokens as they are generated (text mode).
fn streamer(model: &Owl2) -> impl FnMut(&[Option<u32>]) + '_ {
    let mut decoder = model.tokenizer.incremental_decoder();
    move |step| {
        if let Some(t) = step[0] {
            let piece = decoder.push(t);
            print!("{piece}");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    }
}

/// Runs a generation, streaming its tokens (text mode) or printing one JSON object at the end.
fn emit_text(
    m: &Owl2,
    json: bool,
    run: impl FnOnce(&mut dyn FnMut(&[Option<u32>])) -> Result<biqa::model::Generated>,
) -> Result<()> {
    if json {
        let out = run(&mut |_| {})?;
        println!(
            "{}",
            serde_json::to_string(&TextOutput {
                text: &out.text,
                token_ids: &out.token_ids
            })?
        );
    } else {
        let mut stream = streamer(m);
        run(&mut stream)?;
        println!();
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let dev = Runtime {
        device: cli.device.as_deref(),
        dtype: cli.dtype,
    };
    match cli.command {
        Command::Score {
            model,
            images,
            batch_size,
            prompt,
            json,
        } => {
            // The Q-Instruct scorer feeds CLIP's shortest-edge resize + centre crop, Q-Align pads to a square.
            let resize = match prompt {
                ScoringPrompt::Qinstruct => Some(biqa::vision::ResizeMode::ShortestEdgeCenterCrop),
                ScoringPrompt::Qalign => None,
            };
            let m = load_with(&model, dev, resize)?;
            let scorer = Scorer::new(&m.tokenizer, prompt, None)?;
            let bar = (images.len() > batch_size && !json).then(|| {
                let b = indicatif::ProgressBar::new(images.len() as u64);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} images  {elapsed} < {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b
            });
            let results = m.score_paths(&images, &scorer, batch_size, |done| {
                if let Some(b) = &bar {
                    b.set_position(done as u64);
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if json {
                let out: Vec<ScoreOutput> = images
                    .iter()
                    .zip(&results)
                    .map(|(p, r)| ScoreOutput {
                        image: p.display().to_string(),
                        score: r.score,
                        score_1_5: r.score_1_5,
                        probs: r
                            .words
                            .iter()
                            .cloned()
                            .zip(r.probs.iter().map(|&p| serde_json::json!(p)))
                            .collect(),
                    })
                    .collect();
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!(
                    "{:>8} {:>9}  {:<10} image",
                    "score", "score_1_5", "top word"
                );
                for (p, r) in images.iter().zip(&results) {
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
        }
        Command::Describe {
            model,
            image,
            sampling,
            json,
        } => {
            let m = load(&model, dev)?;
            let config = sampling.config(m.llm.config.eos_token_ids.clone())?;
            emit_text(&m, json, |on_token| {
                Ok(m.describe(&image, &config, on_token)?)
            })?;
        }
        Command::Generate {
            model,
            prompt,
            sampling,
            json,
        } => {
            let m = load(&model, dev)?;
            let config = sampling.config(m.llm.config.eos_token_ids.clone())?;
            emit_text(&m, json, |on_token| {
                Ok(m.generate(&prompt, None, &config, on_token)?)
            })?;
        }
        Command::Convert {
            model,
            out,
            shard_size,
        } => {
            let files = biqa::model::convert_dir(&model, &out, shard_size)?;
            for f in &files {
                println!("{}", f.display());
            }
            eprintln!("wrote {} files to {}", files.len(), out.display());
        }
        Command::Metrics {
            file,
            pred,
            mos,
            json,
        } => {
            let table = read_predictions(&file, &pred, &mos)?;
            let summary = Summary::compute(&table.pred, &table.mos).map_err(|source| {
                biqa::Error::Metrics {
                    path: file.clone(),
                    source,
                }
            })?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!("n              {}", summary.n);
                println!("srcc           {:.6}", summary.srcc);
                println!("plcc           {:.6}", summary.plcc);
                println!("plcc_logistic  {}", fmt_opt(summary.plcc_logistic));
                println!("krcc           {:.6}", summary.krcc);
                println!("rmse_logistic  {}", fmt_opt(summary.rmse_logistic));
            }
        }
        Command::Instability { file, strict, json } => {
            let parser = if strict {
                LevelParser::strict()
            } else {
                LevelParser::default()
            };
            let table = read_answers(&file, &parser)?;
            let report = instability(&table.answers).map_err(|source| biqa::Error::Metrics {
                path: file.clone(),
                source,
            })?;
            let out = InstabilityOutput {
                sample_level_mean: report.sample_level_mean,
                sample_level_std: report.sample_level_std,
                answer_level_mean: report.answer_level_mean,
                answer_level_std: report.answer_level_std,
                invalid_rate: report.invalid_rate,
                sessions: report
                    .sessions
                    .iter()
                    .zip(&table.sessions)
                    .map(|(s, name)| SessionOutput {
                        session: name.clone(),
                        samples: s.samples,
                        answers: s.answers,
                        sample_level: s.sample_level,
                        answer_level: s.answer_level,
                        invalid_rate: s.invalid_rate,
                    })
                    .collect(),
            };
            if json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!(
                    "{:<12} {:>8} {:>8} {:>13} {:>13} {:>13}",
                    "session", "samples", "answers", "sample-level", "answer-level", "invalid"
                );
                for s in &out.sessions {
                    println!(
                        "{:<12} {:>8} {:>8} {:>12.2}% {:>12.2}% {:>12.2}%",
                        s.session,
                        s.samples,
                        s.answers,
                        100.0 * s.sample_level,
                        100.0 * s.answer_level,
                        100.0 * s.invalid_rate
                    );
                }
                let pm = |m: f64, s: Option<f64>| match s {
                    Some(s) => format!("{:.2}% ± {:.2}%", 100.0 * m, 100.0 * s),
                    None => format!("{:.2}%", 100.0 * m),
                };
                println!(
                    "sample-level instability (primary): {}",
                    pm(out.sample_level_mean, out.sample_level_std)
                );
                println!(
                    "answer-level instability:           {}",
                    pm(out.answer_level_mean, out.answer_level_std)
                );
                println!(
                    "invalid answers:                    {:.2}%",
                    100.0 * out.invalid_rate
                );
                println!("(std over sessions with ddof = 1)");
            }
        }
        Command::Probe { what } => probe(what, dev)?,
        Command::Train {
            config,
            resume,
            devices,
        } => train_command(&config, resume, dev.device, &devices)?,
        Command::Synth {
            out,
            per_photo,
            seed,
        } => {
            let config = biqa::data::SynthConfig::default();
            let total = per_photo * 4 * config.images_per_crop();
            let bar = progress(total, "images");
            let t = std::time::Instant::now();
            let output = biqa::data::synth(&out, per_photo, seed, &mut |done, _| {
                if let Some(b) = &bar {
                    b.set_position(done as u64);
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            println!("{}", output.count_table());
            eprintln!(
                "wrote {} images and their manifests to {} in {:.1?}",
                output.items.len(),
                out.display(),
                t.elapsed()
            );
        }
        Command::Info => {
            let kind = match dev.device {
                Some(n) => n.parse::<DeviceKind>()?,
                None => DeviceKind::from_env()?,
            };
            println!("biqa {}", env!("CARGO_PKG_VERSION"));
            println!(
                "backends       {}",
                DeviceKind::compiled_backends().join(", ")
            );
            println!("device         {kind}  (set BIQA_DEVICE to change)");
            println!(
                "avx512         {}",
                if cpu_has_avx512() {
                    "yes (flex uses AVX-512 matmul kernels)"
                } else {
                    "no"
                }
            );
        }
    }
    Ok(())
}

fn probe(what: ProbeCommand, dev: Runtime<'_>) -> Result<()> {
    use biqa::probes::{figures, output};
    let mkdir = |d: &std::path::Path| {
        std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))
    };
    match what {
        ProbeCommand::Lens {
            model,
            image,
            layers,
            top_k,
            out,
        } => {
            let m = load(&model, dev)?;
            let config = biqa::probes::LensConfig {
                layers: layers.as_deref().map(parse_layers).transpose()?,
                top_k,
                levels: biqa::probes::owl2::qalign_levels(&m)?,
            };
            let lens = biqa::probes::owl2::qalign_lens(&m, &image, &config)?;
            mkdir(&out)?;
            output::write_json(&out.join("lens.json"), &lens)?;
            output::write_lens_csv(&out.join("lens.csv"), &lens)?;
            let title = format!(
                "Logit lens: {}",
                image
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
        }
        ProbeCommand::Trajectories {
            model,
            images,
            final_word,
            out,
        } => {
            let m = load(&model, dev)?;
            let config = biqa::probes::LensConfig {
                layers: None,
                top_k: 5,
                levels: biqa::probes::owl2::qalign_levels(&m)?,
            };
            let bar = progress(images.len(), "images");
            let mut lenses = Vec::new();
            for img in &images {
                lenses.push(biqa::probes::owl2::qalign_lens(&m, img, &config)?);
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let t = biqa::probes::trajectories(&lenses, final_word.as_deref())?;
            mkdir(&out)?;
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
        }
        ProbeCommand::Attention {
            model,
            images,
            layers,
            describe,
            max_new_tokens,
            out,
        } => {
            let m = load(&model, dev)?;
            let n_layers = m.llm.config.num_layers;
            let layer_list: Vec<usize> = match layers.as_deref().map(parse_layers).transpose()? {
                Some(r) => r.filter(|&l| l < n_layers).collect(),
                None => (0..n_layers).collect(),
            };
            let bar = progress(images.len(), "images");
            let mut maps = Vec::new();
            for img in &images {
                maps.push(biqa::probes::owl2::quality_attention(
                    &m,
                    img,
                    &layer_list,
                    describe.then_some(max_new_tokens),
                )?);
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let avg = biqa::probes::attention::average_shares(&maps)?;
            mkdir(&out)?;
            output::write_json(
                &out.join("attention.json"),
                &serde_json::json!({"images": images, "maps": maps, "average": avg}),
            )?;
            let labelled: Vec<(String, biqa::probes::AttentionMap)> = images
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
        }
    }
    Ok(())
}

/// Progress bar and messages of `biqa train`.
struct TrainProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl biqa::train::Observer for TrainProgress {
    fn on_step(&mut self, log: &biqa::train::StepLog, total: usize) {
        let bar = self.bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} step {pos}/{len}  {msg}  {elapsed} < {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        bar.set_position(log.global_step as u64);
        bar.set_message(format!(
            "{} loss {:.4}  lr {:.2e}  {:.0} tok/s",
            log.stage.name(),
            log.loss,
            log.lr,
            log.tokens_per_s
        ));
    }

    fn on_eval(&mut self, log: &biqa::train::EvalLog) {
        let mut line = format!(
            "validation after step {} ({}): SRCC {:.4}  PLCC {:.4} on {} images",
            log.global_step,
            log.stage.name(),
            log.srcc,
            log.plcc,
            log.images
        );
        if let (Some(i), Some(r)) = (log.instability, log.invalid_rate) {
            line.push_str(&format!("; instability {i:.4} (invalid answers {r:.3})"));
        }
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn on_message(&mut self, message: &str) {
        match &self.bar {
            Some(b) => b.println(message),
            None => eprintln!("{message}"),
        }
    }
}

fn train_command(config: &Path, resume: bool, dev: Option<&str>, devices: &[String]) -> Result<()> {
    let config = biqa::train::TrainConfig::from_toml_file(config)?;
    let devices: Vec<burn::tensor::Device> = if devices.is_empty() {
        vec![device(dev)?]
    } else {
        devices
            .iter()
            .map(|d| device(Some(d.as_str())))
            .collect::<Result<_>>()?
    };
    let mut obs = TrainProgress { bar: None };
    let report = biqa::train::train_data_parallel(&config, &devices, resume, &mut obs)?;
    if let Some(b) = obs.bar.take() {
        b.finish_and_clear();
    }
    let png = config.output.join("loss.png");
    biqa::training::loss_curve(&png, "training loss", &[("loss", &report.steps)])?;
    println!(
        "{} steps, {} trainable parameters; logs in {}, loss curve {}, final model {}",
        report.steps.len(),
        report.trainable,
        config.output.display(),
        png.display(),
        report.final_model.display()
    );
    Ok(())
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
