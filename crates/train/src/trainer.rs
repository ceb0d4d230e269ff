//! The training loop: stages of a recipe, seeded data order, gradient accumulation, clipping, schedules, logs,
//! atomic checkpoints with exact resume, validation, and the export of the final model.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use biqa_data::{ConversationRecord, SplitMix64};
use biqa_model::{Scorer, ScoringPrompt};
use burn::module::{Module, ParamId};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::batch::{collate, expand, pad_id};
use crate::checkpoint::{Progress, export_model, load_checkpoint, save_checkpoint};
use crate::config::{DEFAULT_EVAL_NEW_TOKENS, EvalConfig, TrainConfig};
use crate::conversation::{
    DEFAULT_MODEL_MAX_LENGTH, TokenizeOptions, TokenizedSample, read_records, tokenize_records,
};
use crate::error::{Result, TrainError};
use crate::model::{ForwardLoss, load_model};
use crate::optim::{AdamW, Schedule, clip_grad_norm, global_grad_norm};
use crate::params::{FlatGrad, collect_grads, trainable_count};
use crate::recipe::{Recipe, StageKind, direct_records, two_stage_records};
use biqa_model::{Owl2, Owl2Assets, Owl2Net, PipelineConfig, PipelineKind, PipelinePrompts};

/// One optimiser step, as logged (`metrics.jsonl` / `metrics.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// The stage.
    pub stage: StageKind,
    /// Optimiser step within the stage (1-based).
    pub step: usize,
    /// Optimiser step over all stages (1-based).
    pub global_step: usize,
    /// The loss (mean over the micro-batches of their token-mean losses).
    pub loss: f64,
    /// The learning rate used.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// Supervised tokens in the step.
    pub tokens: usize,
    /// Supervised tokens per second.
    pub tokens_per_s: f64,
    /// Seconds since the (resumed) start.
    pub elapsed_s: f64,
}

/// A validation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLog {
    /// The stage after which (or during which) it ran.
    pub stage: StageKind,
    /// The global step.
    pub global_step: usize,
    /// Images scored.
    pub images: usize,
    /// SRCC of the Q-Align scores against the MOS.
    pub srcc: f64,
    /// PLCC (raw).
    pub plcc: f64,
    /// The pipeline that matches the recipe (one-stage → `one-stage`, two-stage → `two-stage`), when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineKind>,
    /// SRCC of that pipeline's scores (level-word probabilities where its conclusion states the level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_srcc: Option<f64>,
    /// PLCC of that pipeline's scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_plcc: Option<f64>,
    /// Share of that pipeline's conclusions stating no level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_invalid_rate: Option<f64>,
    /// The mean sample-level instability ratio over sessions, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instability: Option<f64>,
    /// The mean invalid-answer rate of those samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_rate: Option<f64>,
}

/// What a run reports along the way (a progress bar in the CLI).
pub trait Observer {
    /// A step finished.
    fn on_step(&mut self, _log: &StepLog, _total_steps: usize) {}
    /// A validation pass finished.
    fn on_eval(&mut self, _log: &EvalLog) {}
    /// A note (data counts, skipped samples, checkpoints).
    fn on_message(&mut self, _message: &str) {}
}

/// An observer that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}

/// What a finished run returns.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Every step logged in this process (after a resume, only the new ones).
    pub steps: Vec<StepLog>,
    /// Every validation pass.
    pub evals: Vec<EvalLog>,
    /// The exported model directory.
    pub final_model: PathBuf,
    /// Trainable parameters.
    pub trainable: usize,
    /// Whether `--resume` found the run already complete (every step done): no step ran in this process
    /// (`steps` is empty) and `final_model` is the run's existing final model.
    pub already_complete: bool,
}

/// The seeded sample order of one stage: epoch `e` is a Fisher–Yates permutation seeded by (seed, stage, e).
fn sample_index(n: usize, seed: u64, stage: usize, position: usize) -> usize {
    let epoch = position / n;
    let mut rng = SplitMix64::derive(seed, &[stage as u64, epoch as u64]);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    order[position % n]
}

/// The samples of each stage.
fn stage_samples(
    config: &TrainConfig,
    assets: &Owl2Assets,
    observer: &mut dyn Observer,
) -> Result<Vec<(StageKind, usize, Vec<TokenizedSample>)>> {
    let options = TokenizeOptions {
        template: config.data.template,
        variant: config.data.masking,
        model_max_length: config
            .data
            .model_max_length
            .unwrap_or(DEFAULT_MODEL_MAX_LENGTH),
        image_folder: config.data.image_folder.clone(),
    };
    let two_stage = matches!(config.recipe, Recipe::TwoStage { .. });
    // The stages are derived from the one-stage records only for a two-stage recipe without its own stage files (a
    // one-stage or direct recipe takes answers that are only a conclusion).
    let derived = match (
        &config.data.stage1,
        &config.data.stage2,
        &config.data.one_stage,
    ) {
        (Some(_), Some(_), _) => None,
        (_, _, Some(one)) if two_stage => Some(two_stage_records(&read_records(one)?).map_err(
            |e| TrainError::Data {
                path: one.clone(),
                reason: e.to_string(),
            },
        )?),
        _ => None,
    };
    let mut out = Vec::new();
    for (kind, steps) in config.recipe.stages() {
        let (path, records): (PathBuf, Vec<ConversationRecord>) = match kind {
            StageKind::Direct => match (&config.data.direct, &config.data.one_stage) {
                (Some(p), _) => (p.clone(), read_records(p)?),
                (None, Some(one)) => (one.clone(), direct_records(&read_records(one)?)?),
                (None, None) => return Err(TrainError::NoStageData { stage: kind.name() }),
            },
            StageKind::OneStage => {
                let p = config.data.one_stage.clone().unwrap_or_default();
                (p.clone(), read_records(&p)?)
            }
            StageKind::Stage1 | StageKind::Stage2 => {
                let given = if kind == StageKind::Stage1 {
                    &config.data.stage1
                } else {
                    &config.data.stage2
                };
                match (given, &derived) {
                    (Some(p), _)
                        if config.data.stage1.is_some() && config.data.stage2.is_some() =>
                    {
                        (p.clone(), read_records(p)?)
                    }
                    (_, Some((s1, s2))) => (
                        config.data.one_stage.clone().unwrap_or_default(),
                        if kind == StageKind::Stage1 {
                            s1.clone()
                        } else {
                            s2.clone()
                        },
                    ),
                    _ => {
                        return Err(TrainError::NoStageData { stage: kind.name() });
                    }
                }
            }
        };
        let ds = tokenize_records(&assets.tokenizer, &records, &options, &path)?;
        if !ds.skipped.is_empty() {
            observer.on_message(&format!(
                "{}: skipped {} of {} samples with a tokenization mismatch (first: {:?})",
                kind.name(),
                ds.skipped.len(),
                ds.n_records(),
                ds.skipped.first().map(|s| s.id.clone()).unwrap_or_default()
            ));
        }
        if ds.samples.is_empty() {
            return Err(TrainError::Data {
                path,
                reason: format!("no trainable sample for {}", kind.name()),
            });
        }
        observer.on_message(&format!(
            "{}: {} samples, {steps} steps",
            kind.name(),
            ds.samples.len()
        ));
        out.push((kind, steps, ds.samples));
    }
    Ok(out)
}

/// What can be checked before the first step is checked then, not when a batch draws it minutes later: every
/// stage's images exist, the batch fits the data, and the validation set is usable.
fn check_before_training(
    config: &TrainConfig,
    stages: &[(StageKind, usize, Vec<TokenizedSample>)],
) -> Result<()> {
    for (kind, _, samples) in stages {
        if config.batch_size > samples.len() {
            return Err(TrainError::InvalidSetting {
                key: "batch_size",
                value: config.batch_size.to_string(),
                reason: if *kind == StageKind::Stage2 {
                    "exceeds the number of stage-2 samples"
                } else {
                    "exceeds the number of training samples of a stage"
                },
            });
        }
        if let Some(s) = samples
            .iter()
            .find(|s| s.image.as_ref().is_some_and(|p| !p.is_file()))
        {
            return Err(TrainError::Record {
                index: Some(s.index),
                id: s.id.clone(),
                problem: crate::error::RecordProblem::ImageNotFound {
                    path: s.image.clone().unwrap_or_default(),
                },
            });
        }
    }
    if let Some(e) = &config.eval {
        let records = read_records(&e.data)?;
        let folder = e
            .image_folder
            .as_ref()
            .or(config.data.image_folder.as_ref());
        let mut usable = 0;
        for (i, r) in records.iter().enumerate() {
            if let (Some(img), Some(_)) = (&r.image, r.gt_score) {
                let p = folder.map_or_else(|| PathBuf::from(img), |f| f.join(img));
                if !p.is_file() {
                    return Err(TrainError::Record {
                        index: Some(i),
                        id: r.id.clone(),
                        problem: crate::error::RecordProblem::ImageNotFound { path: p },
                    });
                }
                usable += 1;
            }
        }
        if usable < 2 {
            return Err(TrainError::Data {
                path: e.data.clone(),
                reason: "the validation set needs at least two images with image and gt_score"
                    .into(),
            });
        }
    }
    Ok(())
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| TrainError::Io {
            path: path.to_owned(),
            source,
        })?;
    writeln!(f, "{line}").map_err(|source| TrainError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Keeps the log lines of steps up to `global_step` (after a resume, later ones are recomputed).
fn truncate_log(path: &Path, global_step: usize, csv: bool) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            if csv {
                *i == 0
                    || l.split(',')
                        .nth(2)
                        .and_then(|s| s.parse::<usize>().ok())
                        .is_some_and(|g| g <= global_step)
            } else {
                serde_json::from_str::<StepLog>(l).is_ok_and(|s| s.global_step <= global_step)
            }
        })
        .map(|(_, l)| l)
        .collect();
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    biqa_data::write_bytes_atomic(path, body.as_bytes()).map_err(|e| TrainError::Data {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

const CSV_HEADER: &str = "stage,step,global_step,loss,lr,grad_norm,tokens,tokens_per_s,elapsed_s";

/// What [`evaluate`] measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Images scored.
    pub images: usize,
    /// SRCC of the Q-Align scores against the MOS.
    pub srcc: f64,
    /// PLCC (raw).
    pub plcc: f64,
    /// The recipe's own pipeline, when one was given.
    pub pipeline: Option<PipelineScores>,
    /// The instability report of sampled descriptions, when configured.
    pub instability: Option<biqa_metrics::InstabilityReport>,
}

/// The validation scores of a generating pipeline (greedy answers).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineScores {
    /// The pipeline.
    pub kind: PipelineKind,
    /// SRCC of its scores against the MOS (NaN when undefined, e.g. constant scores).
    pub srcc: f64,
    /// PLCC (raw; NaN when undefined).
    pub plcc: f64,
    /// Share of conclusions that state no level.
    pub invalid_rate: f64,
}

/// The validation pipeline of a recipe: the generating pipeline whose passes the recipe trains (the direct recipe
/// has none beyond `Direct`, which every validation runs).
pub fn recipe_pipeline(recipe: Recipe) -> Option<PipelineKind> {
    match recipe {
        Recipe::Direct { .. } => None,
        Recipe::OneStage { .. } => Some(PipelineKind::OneStage),
        Recipe::TwoStage { .. } => Some(PipelineKind::TwoStage),
    }
}

/// Scores the validation images through the `Direct` pipeline (the Q-Align prompt) and, with `pipeline`, through
/// that generating pipeline too (greedy, `eval.max_new_tokens` per pass; the paper's numbers for a one- or
/// two-stage model), and correlates both with their MOS; with [`crate::config::InstabilityConfig`], also samples
/// K descriptions × S sessions of the first images and computes their instability.
///
/// # Errors
/// Unreadable records or images, or fewer than two images.
pub fn evaluate(
    model: &Owl2Net,
    assets: &Owl2Assets,
    eval: &EvalConfig,
    pipeline: Option<&PipelineConfig>,
) -> Result<Evaluation> {
    let records = read_records(&eval.data)?;
    let mut paths = Vec::new();
    let mut mos = Vec::new();
    for r in &records {
        if let (Some(img), Some(s)) = (&r.image, r.gt_score) {
            let p = match &eval.image_folder {
                Some(f) => f.join(img),
                None => PathBuf::from(img),
            };
            paths.push(p);
            mos.push(s);
        }
    }
    if let Some(m) = eval.max_images {
        paths.truncate(m);
        mos.truncate(m);
    }
    if paths.len() < 2 {
        return Err(TrainError::Data {
            path: eval.data.clone(),
            reason: "the validation set needs at least two images with image and gt_score".into(),
        });
    }
    // The same network type, outside autodiff with LoRA folded in (a copy: training goes on with the original).
    let owl = Owl2::from_parts(model.valid().merge_lora(), assets.clone());
    let scorer = Scorer::new(owl.tokenizer(), ScoringPrompt::Qalign, None)?;
    let scores = owl.score_paths(&paths, &scorer, 8, |_| {})?;
    let pred: Vec<f64> = scores.iter().map(|s| s.score).collect();
    let srcc = biqa_metrics::srcc(&pred, &mos).unwrap_or(f64::NAN);
    let plcc = biqa_metrics::plcc(&pred, &mos).unwrap_or(f64::NAN);
    let pipeline = match pipeline {
        Some(config) => {
            let mut scored = Vec::with_capacity(paths.len());
            for r in owl.assess_paths(config, &scorer, &paths, 0, 8, |_| {}) {
                scored.push(r?);
            }
            let p: Vec<f64> = scored.iter().map(|a| a.score).collect();
            let invalid = scored.iter().filter(|a| a.level.is_none()).count();
            Some(PipelineScores {
                kind: config.kind,
                srcc: biqa_metrics::srcc(&p, &mos).unwrap_or(f64::NAN),
                plcc: biqa_metrics::plcc(&p, &mos).unwrap_or(f64::NAN),
                invalid_rate: invalid as f64 / scored.len().max(1) as f64,
            })
        }
        None => None,
    };
    let instability = match &eval.instability {
        Some(ic) if ic.images > 0 && ic.samples > 0 && ic.sessions > 0 => {
            let parser = biqa_metrics::LevelParser::default();
            let eos = vec![owl.tokenizer().eos_id()];
            let mut sessions = Vec::with_capacity(ic.sessions);
            for s in 0..ic.sessions {
                let mut per_image = Vec::new();
                for (i, p) in paths.iter().take(ic.images).enumerate() {
                    let mut answers = Vec::with_capacity(ic.samples);
                    for k in 0..ic.samples {
                        let config = biqa_decoder::GenerationConfig {
                            max_new_tokens: ic.max_new_tokens,
                            stop_tokens: eos.clone(),
                            sampling: biqa_decoder::Sampling::from_params(
                                ic.temperature,
                                None,
                                None,
                            )?,
                            seed: ((s * 1_000_003 + i) * 1_009 + k) as u64,
                            keep_logits: false,
                        };
                        let text = owl.describe(p, &config, |_| {})?.text;
                        answers.push(match parser.parse(&text) {
                            Some(l) => biqa_metrics::Answer::Level(l),
                            None => biqa_metrics::Answer::Invalid,
                        });
                    }
                    per_image.push(answers);
                }
                sessions.push(per_image);
            }
            biqa_metrics::instability(&sessions).ok()
        }
        _ => None,
    };
    Ok(Evaluation {
        images: paths.len(),
        srcc,
        plcc,
        pipeline,
        instability,
    })
}

/// What one replica computes in a step: its micro-batches' losses, supervised tokens and summed gradients.
#[derive(Default)]
struct MicroResult {
    losses: Vec<f64>,
    tokens: usize,
    grads: HashMap<ParamId, FlatGrad>,
}

/// The most recent complete checkpoint under `output/checkpoints` (named by `latest`), if any.
pub fn latest_checkpoint(output: &Path) -> Option<PathBuf> {
    let latest = std::fs::read_to_string(output.join("checkpoints").join("latest")).ok()?;
    let dir = output.join("checkpoints").join(latest.trim());
    dir.join("state.json").is_file().then_some(dir)
}

/// Runs a training configuration on `device` (pass a plain device: autodiff is enabled here). With `resume`, the
/// run continues from the latest checkpoint in the output directory and reproduces the losses an uninterrupted
/// run would have logged.
///
/// # Errors
/// Bad data or model, a non-finite loss (the last checkpoint is left intact), I/O errors.
pub fn train(
    config: &TrainConfig,
    device: &Device,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<TrainReport> {
    train_data_parallel(config, std::slice::from_ref(device), resume, observer)
}

/// How the replicas of [`train_distributed`] add up their gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradientSync {
    /// Each replica's gradients are copied to the first device and summed there: any backend (flex included,
    /// where burn 0.22 has no collective operation).
    #[default]
    FirstDevice,
    /// burn's collective `all_reduce` (sum) over the replicas' devices, inside a `DistributedContext`: NCCL on CUDA
    /// devices. burn 0.22.1 implements collectives for CUDA (and remote) devices only; the caller picks this for
    /// CUDA devices (the CLI does when every `--devices` entry is `cuda:N`).
    AllReduce,
}

/// [`train`] data-parallel over `devices` with [`GradientSync::FirstDevice`] (see [`train_distributed`]).
///
/// # Errors
/// As [`train`]; no device.
pub fn train_data_parallel(
    config: &TrainConfig,
    devices: &[Device],
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<TrainReport> {
    train_distributed(config, devices, GradientSync::FirstDevice, resume, observer)
}

/// [`train`] data-parallel over `devices` (for example `cuda:0, cuda:1`): every optimiser step runs
/// `devices.len() × grad_accumulation` micro-batches of `batch_size`, replica r taking every r-th one on its own
/// device, in parallel threads; their gradients are added up as `sync` says, the first device steps the optimiser,
/// and the updated weights go back to every replica. The result equals `grad_accumulation × devices.len()` on one
/// device (same data order, same loss), up to the order of floating-point sums.
///
/// # Errors
/// As [`train`]; no device.
pub fn train_distributed(
    config: &TrainConfig,
    devices: &[Device],
    sync: GradientSync,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<TrainReport> {
    let device = devices.first().ok_or(TrainError::NoDevice)?;
    config.validate()?;
    let ad = device.clone().autodiff();
    let (model, assets) = load_model(&config.model, &ad)?;
    let image_tokens = model.image_tokens().unwrap_or(0);
    // LoRA factors are drawn from the device's generator: seed it for reproducible runs.
    let mut model = {
        let _draws = crate::policy::seed_generator(&ad, config.seed);
        config.trainable.apply(model)?
    };
    let trainable = trainable_count(&model);
    observer.on_message(&format!("{trainable} trainable parameters"));
    let stages = stage_samples(config, &assets, observer)?;
    check_before_training(config, &stages)?;
    let out = &config.output;
    let ckpt_root = out.join("checkpoints");
    std::fs::create_dir_all(&ckpt_root).map_err(|source| TrainError::Io {
        path: ckpt_root.clone(),
        source,
    })?;
    let jsonl = out.join("metrics.jsonl");
    let csv = out.join("metrics.csv");
    let evals_path = out.join("eval.jsonl");

    let mut opt = AdamW::with_lr_scale(config.optimizer, config.trainable.lr_scales(&model)?);
    let mut progress = Progress {
        global_step: 0,
        stage: 0,
        stage_step: 0,
        seed: config.seed,
    };
    if resume {
        match latest_checkpoint(out) {
            Some(dir) => {
                let (m, p) = load_checkpoint(&dir, model, &mut opt)?;
                model = m;
                progress = p;
                observer.on_message(&format!(
                    "resumed from {} at step {}",
                    dir.display(),
                    progress.global_step
                ));
            }
            None => observer.on_message("no checkpoint to resume from: starting afresh"),
        }
        truncate_log(&jsonl, progress.global_step, false)?;
        truncate_log(&csv, progress.global_step, true)?;
        let total = config.recipe.total_steps();
        let final_dir = out.join("final");
        if progress.global_step >= total && final_dir.join("config.json").is_file() {
            // Nothing left to train: the run is complete and its final model is in place.
            observer.on_message(&format!(
                "the run is already complete ({total} steps): final model {}",
                final_dir.display()
            ));
            return Ok(TrainReport {
                steps: Vec::new(),
                evals: Vec::new(),
                final_model: final_dir,
                trainable,
                already_complete: true,
            });
        }
    } else {
        for p in [&jsonl, &csv, &evals_path] {
            if p.exists() {
                std::fs::remove_file(p).map_err(|source| TrainError::Io {
                    path: p.clone(),
                    source,
                })?;
            }
        }
    }
    if !csv.exists() {
        append_line(&csv, CSV_HEADER)?;
    }
    let pad = pad_id(&assets.tokenizer);
    let max_len = config
        .data
        .model_max_length
        .unwrap_or(DEFAULT_MODEL_MAX_LENGTH);
    let preprocessor = assets.preprocessor.clone();
    let total_steps = config.recipe.total_steps();
    // The prompts the export records, and the recipe's validation pipeline over them.
    let prompts = PipelinePrompts::synthetic(config.data.template.conversation());
    let validation = recipe_pipeline(config.recipe).map(|kind| {
        let mut p = PipelineConfig::new(kind, prompts.clone());
        p.max_new_tokens = config
            .eval
            .as_ref()
            .map_or(DEFAULT_EVAL_NEW_TOKENS, |e| e.max_new_tokens);
        p
    });
    let mut replicas: Vec<(Owl2Net, Device)> = devices
        .iter()
        .map(|d| {
            let d = d.clone().autodiff();
            (model.clone().fork(&d), d)
        })
        .collect();
    // Collective gradient sums: every replica reduces the same parameters in the same order (a gradient the
    // replica's micro-batches did not reach is reduced as zeros), and the first replica's sums step the optimiser.
    let collective = sync == GradientSync::AllReduce && replicas.len() > 1;
    let inner_devices: Vec<Device> = devices.iter().map(|d| d.clone().inner()).collect();
    // Only the collective path needs the parameters' order and dtypes.
    let reduce_order: Vec<(ParamId, usize, burn::tensor::DType)> = if collective {
        let dtypes = crate::params::param_dtypes(&model);
        crate::params::param_infos(&model)
            .into_iter()
            .filter(|p| p.trainable)
            .map(|p| {
                let dtype = dtypes
                    .get(&p.id)
                    .copied()
                    .unwrap_or(burn::tensor::DType::F32);
                (p.id, p.numel, dtype)
            })
            .collect()
    } else {
        Vec::new()
    };
    let _context = collective.then(|| {
        burn::tensor::distributed::DistributedContext::init(
            inner_devices.clone(),
            burn::tensor::distributed::DistributedConfig {
                all_reduce_op: burn::tensor::distributed::ReduceOperation::Sum,
            },
        )
    });
    if replicas.len() > 1 {
        observer.on_message(&format!(
            "data-parallel over {} devices ({})",
            replicas.len(),
            if collective {
                "all-reduce"
            } else {
                "gradients summed on the first device"
            }
        ));
    }
    let start = Instant::now();
    let mut logs = Vec::new();
    let mut evals = Vec::new();
    let mut last_ckpt: Vec<PathBuf> = Vec::new();

    for (si, (kind, steps, samples)) in stages.iter().enumerate() {
        if si < progress.stage {
            continue;
        }
        progress.stage = si;
        if progress.stage_step == 0 {
            // A stage starts from the previous stage's weights with a fresh optimiser and schedule.
            opt = AdamW::with_lr_scale(config.optimizer, config.trainable.lr_scales(&model)?);
        }
        let warmup = Schedule::warmup_steps(*steps, config.warmup_ratio);
        while progress.stage_step < *steps {
            let t0 = Instant::now();
            let step = progress.stage_step;
            // Micro-batch m of this step: positions (step·M + m)·batch_size … of the stage's sample order, with
            // M = replicas × accumulation; replica r takes the micro-batches m ≡ r (mod replicas).
            let micro_total = config.grad_accumulation * replicas.len();
            let global_step = progress.global_step;
            let work = |r: usize, replica: &Owl2Net, device: &Device| -> Result<MicroResult> {
                let mut acc = MicroResult::default();
                for micro in (r..micro_total).step_by(replicas.len()) {
                    let first = (step * micro_total + micro) * config.batch_size;
                    let picked: Vec<&TokenizedSample> = (0..config.batch_size)
                        .map(|k| &samples[sample_index(samples.len(), config.seed, si, first + k)])
                        .collect();
                    let batch = expand(&collate(picked, pad, max_len)?, image_tokens.max(1))?;
                    let pixels = match (&preprocessor, batch.images.is_empty()) {
                        (Some(p), false) => {
                            Some(p.preprocess_paths(&batch.images)?.to_tensor(device))
                        }
                        _ => None,
                    };
                    let out = {
                        // Dropout masks keyed by (seed, step, micro-batch): exact on resume, and the same
                        // draws data-parallel as with accumulation.
                        let _masks = config.trainable.draws_dropout().then(|| {
                            crate::policy::seed_dropout(device, config.seed, global_step, micro)
                        });
                        replica.forward_loss(&batch, pixels, config.label_smoothing)?
                    };
                    let loss: f64 = out
                        .loss
                        .clone()
                        .inner()
                        .into_data()
                        .try_into_vec_as::<f32>()
                        .ok()
                        .and_then(|v| v.first().copied())
                        .map_or(f64::NAN, f64::from);
                    acc.losses.push(loss);
                    if !loss.is_finite() {
                        // Refused after the collective (which every replica must join).
                        break;
                    }
                    acc.tokens += out.tokens;
                    let scaled = if micro_total > 1 {
                        out.loss / micro_total as f64
                    } else {
                        out.loss
                    };
                    let mut g = scaled.backward();
                    for (id, grad) in collect_grads(replica, &mut g) {
                        match acc.grads.remove(&id) {
                            Some(sum) => acc.grads.insert(id, sum + grad),
                            None => acc.grads.insert(id, grad),
                        };
                    }
                }
                if collective {
                    use burn::tensor::distributed::{ReduceOperation, all_reduce};
                    let inner = device.clone().inner();
                    // Which parameters some replica reached: only those get a gradient (and an optimiser
                    // update), as with the sums on the first device.
                    let reached: Vec<f32> = reduce_order
                        .iter()
                        .map(|(id, _, _)| f32::from(u8::from(acc.grads.contains_key(id))))
                        .collect();
                    let reached =
                        burn::tensor::Tensor::<1>::from_floats(reached.as_slice(), &inner);
                    let reached = all_reduce(reached, ReduceOperation::Sum, inner_devices.clone())
                        .resolve()
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap_or_default();
                    let mut reduced = HashMap::with_capacity(reduce_order.len());
                    for (k, &(id, numel, dtype)) in reduce_order.iter().enumerate() {
                        if reached.get(k).is_none_or(|&r| r == 0.0) {
                            continue;
                        }
                        let g = acc.grads.remove(&id).unwrap_or_else(|| {
                            let zeros = burn::tensor::Tensor::<1>::zeros([numel], &inner);
                            if dtype == burn::tensor::DType::F32 {
                                zeros
                            } else {
                                zeros.cast(burn::tensor::FloatDType::from(dtype))
                            }
                        });
                        let sum =
                            all_reduce(g, ReduceOperation::Sum, inner_devices.clone()).resolve();
                        reduced.insert(id, sum);
                    }
                    acc.grads = reduced;
                }
                Ok(acc)
            };
            let results: Vec<Result<MicroResult>> = if replicas.len() == 1 {
                vec![work(0, &model, &ad)]
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = replicas
                        .iter()
                        .enumerate()
                        .map(|(r, (replica, device))| {
                            let replica = if r == 0 { &model } else { replica };
                            let work = &work;
                            scope.spawn(move || work(r, replica, device))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .enumerate()
                        .map(|(replica, h)| {
                            h.join()
                                .unwrap_or_else(|_| Err(TrainError::ReplicaPanicked { replica }))
                        })
                        .collect()
                })
            };
            let mut grads: HashMap<ParamId, FlatGrad> = HashMap::new();
            let mut losses = Vec::with_capacity(micro_total);
            let mut tokens = 0;
            let main_device = replicas[0].1.clone().inner();
            for (r_index, result) in results.into_iter().enumerate() {
                let r = result?;
                losses.extend(r.losses);
                tokens += r.tokens;
                if collective && r_index > 0 {
                    // Replica 0 already holds the all-reduced sums.
                    continue;
                }
                for (id, g) in r.grads {
                    let g = g.to_device(&main_device);
                    match grads.remove(&id) {
                        Some(sum) => grads.insert(id, sum + g),
                        None => grads.insert(id, g),
                    };
                }
            }
            if let Some(&loss) = losses.iter().find(|l| !l.is_finite()) {
                return Err(TrainError::NonFiniteLoss {
                    step: progress.global_step + 1,
                    loss,
                });
            }
            let loss_sum: f64 = losses.iter().sum();
            let grad_norm = match config.max_grad_norm {
                Some(max) => clip_grad_norm(&mut grads, max),
                None => global_grad_norm(&grads),
            };
            if !grad_norm.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    step: progress.global_step + 1,
                    loss: grad_norm,
                });
            }
            let peak = match (kind, config.stage2_lr) {
                (StageKind::Stage2, Some(lr)) => lr,
                _ => config.lr,
            };
            let lr = config.schedule.lr(peak, step, warmup, *steps);
            model = opt.step(model, lr, grads);
            for (replica, device) in replicas.iter_mut().skip(1) {
                *replica = model.clone().fork(device);
            }
            progress.stage_step += 1;
            progress.global_step += 1;
            let dt = t0.elapsed().as_secs_f64();
            let log = StepLog {
                stage: *kind,
                step: progress.stage_step,
                global_step: progress.global_step,
                loss: loss_sum / micro_total as f64,
                lr,
                grad_norm,
                tokens,
                tokens_per_s: tokens as f64 / dt.max(1e-9),
                elapsed_s: start.elapsed().as_secs_f64(),
            };
            append_line(&jsonl, &serde_json::to_string(&log).unwrap_or_default())?;
            append_line(
                &csv,
                &format!(
                    "{},{},{},{},{},{},{},{:.1},{:.3}",
                    kind.name(),
                    log.step,
                    log.global_step,
                    log.loss,
                    log.lr,
                    log.grad_norm,
                    log.tokens,
                    log.tokens_per_s,
                    log.elapsed_s
                ),
            )?;
            observer.on_step(&log, total_steps);
            logs.push(log);
            if config.stop_after.is_some_and(|n| logs.len() >= n) {
                observer.on_message("stopped (stop_after) without a final checkpoint");
                return Ok(TrainReport {
                    steps: logs,
                    evals,
                    final_model: PathBuf::new(),
                    trainable,
                    already_complete: false,
                });
            }

            let stage_end = progress.stage_step == *steps;
            if stage_end && si + 1 < stages.len() {
                // The checkpoint at a stage boundary belongs to the next stage.
                progress.stage = si + 1;
                progress.stage_step = 0;
            }
            let every = config.checkpoint_every;
            if stage_end || (every > 0 && progress.global_step.is_multiple_of(every)) {
                let name = format!("step-{:07}", progress.global_step);
                let dir = ckpt_root.join(&name);
                save_checkpoint(&dir, &model, &opt, &progress)?;
                biqa_data::write_bytes_atomic(&ckpt_root.join("latest"), name.as_bytes()).map_err(
                    |e| TrainError::Data {
                        path: ckpt_root.join("latest"),
                        reason: e.to_string(),
                    },
                )?;
                last_ckpt.push(dir);
                while last_ckpt.len() > config.keep_checkpoints.max(1) {
                    let old = last_ckpt.remove(0);
                    let _ = std::fs::remove_dir_all(old);
                }
            }
            if let Some(e) = &config.eval {
                let due =
                    stage_end || (e.every > 0 && progress.global_step.is_multiple_of(e.every));
                if due {
                    let mut e = e.clone();
                    if e.image_folder.is_none() {
                        e.image_folder.clone_from(&config.data.image_folder);
                    }
                    let ev = evaluate(&model, &assets, &e, validation.as_ref())?;
                    let log = EvalLog {
                        stage: *kind,
                        global_step: progress.global_step,
                        images: ev.images,
                        srcc: ev.srcc,
                        plcc: ev.plcc,
                        pipeline: ev.pipeline.as_ref().map(|p| p.kind),
                        pipeline_srcc: ev.pipeline.as_ref().map(|p| p.srcc),
                        pipeline_plcc: ev.pipeline.as_ref().map(|p| p.plcc),
                        pipeline_invalid_rate: ev.pipeline.as_ref().map(|p| p.invalid_rate),
                        instability: ev.instability.as_ref().map(|r| r.sample_level_mean),
                        invalid_rate: ev.instability.as_ref().map(|r| r.invalid_rate),
                    };
                    append_line(
                        &evals_path,
                        &serde_json::to_string(&log).unwrap_or_default(),
                    )?;
                    observer.on_eval(&log);
                    evals.push(log);
                }
            }
            if stage_end {
                break;
            }
        }
    }
    let final_model = export_model(&model, &assets, &prompts, &out.join("final"))?;
    observer.on_message(&format!("final model: {}", final_model.display()));
    Ok(TrainReport {
        already_complete: resume && logs.is_empty() && progress.global_step >= total_steps,
        steps: logs,
        evals,
        final_model,
        trainable,
    })
}
