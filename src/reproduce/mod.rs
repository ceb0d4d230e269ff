//! The paper's experiment, as a protocol that runs at any scale: the main job (`examples/reproduce.rs`).
//!
//! From a starting point that has image–text alignment but was never taught quality (the pre-aligned miniature
//! of [`crate::miniature`], or a released mPLUG-Owl2 directory), the one-stage recipe (the Q-Instruct baseline) and
//! the two-stage recipe (the paper's) are fine-tuned with the same optimiser steps (two-stage split 2 : 1), per seed;
//! every model is evaluated on the held-out photos through its own pipeline and through `Direct` (the starting point
//! too: the paper's baseline column); and [`write_report`] writes the tables and figures of the paper's Tables 1 and
//! 2, Fig. 1 (contradictions), Fig. 3, 5 and 6 (lens and attention), with every number mean ± std over seeds.
//!
//! Outputs under `out`: `data/` (the synthetic set), `seed<N>/` (the starting point, both fine-tuned models, one
//! evaluation folder per model and pipeline as `biqa eval` writes them), `report.md`, `report.json` (every number)
//! and the PNG figures. A rerun resumes a seed's fine-tuning and evaluations only if they were made from the same
//! starting point and settings (`seed<N>/start.txt`); otherwise the seed's folder is cleared first. `--from-scratch`
//! also writes `pretrain_data/` (the pre-alignment set, [`miniature::pretrain_set`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use biqa_data::{DistortionKind, Split, SynthConfig, implied_mos};
use biqa_metrics::{Level, MosBinning};
use biqa_model::{
    LoadOptions, Owl2, PipelineConfig, PipelineKind, PipelinePrompts, Scorer, ScoringPrompt,
};
use biqa_probes::lens::{LensConfig, LensResult};
use biqa_train::{Observer, Recipe, StepLog, TrainConfig};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::eval::{DatasetKind, EvalItem, EvalOptions, EvalSummary, Evaluator, RunSpec, evaluate};
use crate::miniature::{self, PretrainSettings};
use crate::{Error, Result};

/// Where the models start from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Start {
    /// The bundled pre-aligned miniatures: `dir/seed<N>/` for each seed (made by `examples/pretrain.rs`).
    Bundled {
        /// The folder of the `seed<N>` checkpoint directories.
        dir: PathBuf,
    },
    /// Pre-align a random miniature per seed first (what `examples/pretrain.rs` does).
    FromScratch {
        /// Pre-alignment optimiser steps.
        steps: usize,
    },
    /// A released checkpoint directory (every seed starts from it; no pre-alignment).
    Model {
        /// The checkpoint directory.
        dir: PathBuf,
    },
}

/// The pre-alignment that [`Start::FromScratch`] with `steps` runs per seed: [`PretrainSettings::default`] with
/// those steps.
fn from_scratch_settings(steps: usize) -> PretrainSettings {
    PretrainSettings {
        steps,
        ..PretrainSettings::default()
    }
}

/// The settings of a reproduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproduceConfig {
    /// The output folder.
    pub out: PathBuf,
    /// The starting point.
    pub start: Start,
    /// The seeds (each changes the pre-alignment, the data order and the sampling).
    pub seeds: Vec<u64>,
    /// Crops per photo of the synthetic set (36 images each).
    pub crops_per_photo: usize,
    /// Crops per test photo evaluated (36 images each; the first ones).
    pub eval_crops: usize,
    /// Optimiser steps of each recipe (two-stage: 2/3 then 1/3).
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate (cosine, 3 % warmup).
    pub lr: f64,
    /// Peak learning rate of the two-stage recipe's stage 2 (`None`: `lr`).
    pub stage2_lr: Option<f64>,
    /// ε of the label-smoothed NLL (the paper's eq. 2).
    pub label_smoothing: f64,
    /// Which parts the recipes train (both recipes alike).
    pub trainable: biqa_train::TrainablePolicy,
    /// Table 1: `(K, S)` sampled answers per image and sessions.
    pub instability: (usize, usize),
    /// Images of Table 1 (evenly spread over the evaluated ones).
    pub instability_images: usize,
    /// Temperature of the sampled answers of Table 1.
    pub instability_temperature: f32,
    /// New tokens per generated pass.
    pub max_new_tokens: usize,
    /// Images per batch in evaluation.
    pub eval_batch: usize,
    /// The device of fine-tuning and evaluation (`flex`, `cuda`, `cuda:N`; see [`crate::device`]).
    pub device: String,
}

impl ReproduceConfig {
    /// The full miniature: 3 seeds, 12 crops per photo (2,592 training images), 300 steps of 16 per recipe at lr 1e-3
    /// (two-stage: stage 2 at 1e-4, so that the model keeps its stage-1 skill), the vision tower frozen (as
    /// mPLUG-Owl2's and Q-Align's recipes do; the perception is the pre-alignment's), 3 crops per test photo (216
    /// images), Table 1 as the paper (5 answers × 3 sessions) on 36 images at temperature 0.2 (`biqa eval`'s
    /// default).
    pub fn full(out: PathBuf, start: Start) -> Self {
        Self {
            out,
            start,
            seeds: vec![0, 1, 2],
            crops_per_photo: 12,
            eval_crops: 3,
            steps: 300,
            batch_size: 16,
            lr: 1e-3,
            stage2_lr: Some(1e-4),
            label_smoothing: 0.1,
            trainable: biqa_train::TrainablePolicy {
                freeze_vision: true,
                ..biqa_train::TrainablePolicy::default()
            },
            instability: (5, 3),
            instability_images: 36,
            instability_temperature: 0.2,
            max_new_tokens: 96,
            eval_batch: 12,
            device: "flex".into(),
        }
    }

    /// The `--quick` path (for CI): the full run's training on seed 0 only, evaluated on one crop per test photo
    /// (72 images), Table 1 on 12 of them.
    pub fn quick(out: PathBuf, start: Start) -> Self {
        Self {
            seeds: vec![0],
            eval_crops: 1,
            instability: (5, 3),
            instability_images: 12,
            ..Self::full(out, start)
        }
    }
}

/// Which model of a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The starting point (never taught quality).
    Baseline,
    /// Fine-tuned one-stage.
    OneStage,
    /// Fine-tuned two-stage.
    TwoStage,
}

impl ModelKind {
    /// A display name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Baseline => "starting point",
            ModelKind::OneStage => "one-stage",
            ModelKind::TwoStage => "two-stage",
        }
    }

    /// Its own pipeline.
    pub fn own_pipeline(self) -> PipelineKind {
        match self {
            ModelKind::Baseline => PipelineKind::Direct,
            ModelKind::OneStage => PipelineKind::OneStage,
            ModelKind::TwoStage => PipelineKind::TwoStage,
        }
    }
}

/// One model through one pipeline on the test images of one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The model.
    pub model: ModelKind,
    /// The pipeline.
    pub pipeline: PipelineKind,
    /// What `biqa eval` reports (metrics, accuracy, confusion, timing, per distortion, attention).
    pub summary: EvalSummary,
    /// Table 1 on the instability images (own pipelines of the fine-tuned models).
    pub instability: Option<biqa_metrics::InstabilityReport>,
    /// Share of answers whose conclusion's level differs from the level their description implies (generating
    /// pipelines; answers with both a description in the grammar and a stated level).
    pub contradiction: Option<Contradiction>,
    /// The reasoning half alone (own pipelines): the SRCC against the true MOS of the scores that the model's
    /// second pass (text only: the stage-2 prompt with a description, then [`PipelinePrompts::conclusion_probe`])
    /// gives each test image's **true** description (the synthetic set's own text), so that perception plays no
    /// part. See [`second_pass_on_true_descriptions`].
    #[serde(default)]
    pub second_pass_on_truth: Option<f64>,
}

/// Fig. 1's failure, counted: answers whose conclusion contradicts their own description.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Contradiction {
    /// Answers with a stated level and a description whose implied level could be read.
    pub answers: usize,
    /// Of those, the ones whose stated level differs from the implied one.
    pub contradicting: usize,
    /// `contradicting / answers`.
    pub rate: f64,
    /// Descriptions whose implied level could not be read (not in the grammar).
    pub unreadable: usize,
    /// How much quality the descriptions themselves carry: the SRCC between the pseudo-MOS that each readable
    /// description implies ([`implied_mos`]) and the image's true MOS, over every answer
    /// with a readable description (with or without a stated level). `None` with fewer than two such answers or
    /// when either side is constant. Against the pipeline's own SRCC it shows where the quality information is
    /// lost: in the description (perception put into words) or between the description and the conclusion.
    #[serde(default)]
    pub description_srcc: Option<f64>,
}

/// The logit lens of the fine-tuned models' conclusion position, averaged over the test images of true level poor
/// or bad (the paper's Fig. 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LensCurves {
    /// The model.
    pub model: ModelKind,
    /// Images averaged.
    pub images: usize,
    /// The level words (excellent … bad).
    pub words: Vec<String>,
    /// `mean_prob[layer][word]`: mean probability of each level word at each hidden-state index.
    pub mean_prob: Vec<Vec<f64>>,
    /// `top_share[layer][word]`: share of images where the word is the likeliest level word at that layer.
    pub top_share: Vec<Vec<f64>>,
}

/// A Fig. 3 case: the model, the image, and its lens.
pub type LensExample = (ModelKind, String, LensResult);

/// One seed's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The starting point's directory.
    pub start: PathBuf,
    /// The fine-tuned models.
    pub models: BTreeMap<String, PathBuf>,
    /// `(step, loss)` of the pre-alignment (when it ran here or its log is bundled), the one-stage run and the
    /// two-stage run (its global steps).
    pub losses: BTreeMap<String, Vec<(usize, f64)>>,
    /// Every evaluation.
    pub runs: Vec<RunResult>,
    /// Fig. 6.
    pub lens: Vec<LensCurves>,
    /// Fig. 3: the lens of one image where an intermediate layer's likeliest level word differs from the final one
    /// (model, image, lens), if any.
    pub lens_example: Option<LensExample>,
    /// Seconds of fine-tuning per recipe.
    pub train_seconds: BTreeMap<String, f64>,
}

/// The whole reproduction (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reproduction {
    /// The settings.
    pub config: ReproduceConfig,
    /// The machine: CPU model and flags, cores.
    pub machine: String,
    /// Training / test images and photos.
    pub data: DataSummary,
    /// Per seed.
    pub seeds: Vec<SeedResult>,
    /// Wall seconds of the whole run.
    pub wall_seconds: f64,
}

/// The data of a reproduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Training images.
    pub train_images: usize,
    /// Evaluated test images.
    pub test_images: usize,
    /// The photos of each split.
    pub photos: BTreeMap<String, Vec<String>>,
    /// Crop side in pixels.
    pub crop_size: u32,
}

/// A one-line description of the CPU: model name, cores, and the SIMD flags that matter (AVX2, FMA, AVX-512F,
/// AMX).
pub fn machine_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"];
    let have: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| flags.contains(w))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cores} cores, flags: {}", have.join(" "))
}

struct Logger<'a> {
    label: String,
    every: usize,
    progress: &'a mut dyn FnMut(&str),
}

impl Observer for Logger<'_> {
    fn on_step(&mut self, s: &StepLog, total: usize) {
        if s.global_step.is_multiple_of(self.every) || s.global_step == total {
            (self.progress)(&format!(
                "  {} step {}/{total}: loss {:.4}",
                self.label, s.global_step, s.loss
            ));
        }
    }
}

fn losses(steps: &[StepLog]) -> Vec<(usize, f64)> {
    steps.iter().map(|s| (s.global_step, s.loss)).collect()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a seed's fine-tuned models and evaluations are made from: the settings of the run (all but the output folder
/// and the list of seeds) and the starting point — each file of its directory by name, size and modification time
/// (cheap for a 7B directory; rewriting the weights, as `examples/pretrain.rs --bundle` does, changes it), or the
/// pre-alignment settings for `--from-scratch`.
fn seed_fingerprint(config: &ReproduceConfig, seed: u64) -> Result<String> {
    let settings = ReproduceConfig {
        out: PathBuf::new(),
        seeds: Vec::new(),
        ..config.clone()
    };
    let mut text = format!(
        "seed {seed}\n{}\n",
        serde_json::to_string(&settings).unwrap_or_default()
    );
    let start_dir = match &config.start {
        Start::Bundled { dir } => Some(dir.join(format!("seed{seed}"))),
        Start::Model { dir } => Some(dir.clone()),
        Start::FromScratch { steps } => {
            let _ = writeln!(text, "{:?}", from_scratch_settings(*steps));
            None
        }
    };
    // A missing directory is reported by the run itself, with how to make it.
    if let Some(dir) = start_dir.filter(|d| d.is_dir()) {
        let mut files: Vec<(String, u64, u128)> = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let meta = entry.metadata().map_err(io_err(&entry.path()))?;
            if meta.is_file() {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                files.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    meta.len(),
                    modified,
                ));
            }
        }
        files.sort();
        for (name, len, modified) in files {
            let _ = writeln!(text, "{name} {len} {modified}");
        }
    }
    Ok(text)
}

/// Makes `dir` (a seed's folder) hold only work made from `fingerprint` ([`seed_fingerprint`]): if its
/// `start.txt` differs (another starting point, other settings, or a folder from before the stamp existed),
/// everything in it is removed first — fine-tuning resumes from its checkpoints and evaluations from their results,
/// which would otherwise be stale.
fn claim_seed_dir(dir: &Path, fingerprint: &str, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let stamp = dir.join("start.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(fingerprint) {
        return Ok(());
    }
    let mut cleared = 0usize;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
        } else {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
        cleared += 1;
    }
    if cleared > 0 {
        progress(&format!(
            "{}: made from another starting point or other settings; cleared",
            dir.display()
        ));
    }
    biqa_core::write_bytes_atomic(&stamp, fingerprint.as_bytes())?;
    Ok(())
}

fn load(dir: &Path, device: &Device) -> Result<Owl2> {
    Owl2::from_dir(dir, device, &LoadOptions::default()).map_err(|e| Error::Checkpoint {
        dir: dir.to_owned(),
        source: Box::new(e),
    })
}

/// Reads a bundled pre-alignment log (`pretrain_loss.csv`: `step,loss`), if present.
fn read_loss_csv(path: &Path) -> Vec<(usize, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (a, b) = l.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect()
}

/// Writes `step,loss` lines.
pub fn write_loss_csv(path: &Path, losses: &[(usize, f64)]) -> Result<()> {
    let mut s = String::from("step,loss\n");
    for (step, loss) in losses {
        let _ = writeln!(s, "{step},{loss}");
    }
    Ok(biqa_core::write_bytes_atomic(path, s.as_bytes())?)
}

/// Counts contradictions among result rows: the description's implied level ([`biqa_data::implied_level`]: its
/// [`implied_mos`], binned) against the
/// conclusion's stated level.
fn contradictions(rows: &[crate::eval::ResultRow], binning: &MosBinning) -> Option<Contradiction> {
    let (mut answers, mut contradicting, mut unreadable) = (0, 0, 0);
    let (mut implied, mut truth) = (Vec::new(), Vec::new());
    for r in rows {
        let Some(a) = r.assessment.as_ref() else {
            continue;
        };
        let Some(description) = a.description.as_deref() else {
            continue;
        };
        // One reading of the description serves both counts: its implied MOS ranks it, and binned it is the
        // level that a stated conclusion is compared with.
        let mos = implied_mos(description);
        if let Some(m) = mos {
            implied.push(m);
            truth.push(r.mos);
        }
        let Some(stated) = a.level else {
            continue;
        };
        match mos {
            Some(m) => {
                answers += 1;
                if binning.level(m) != stated {
                    contradicting += 1;
                }
            }
            None => unreadable += 1,
        }
    }
    (answers + unreadable > 0 || !implied.is_empty()).then(|| Contradiction {
        answers,
        contradicting,
        rate: if answers == 0 {
            f64::NAN
        } else {
            contradicting as f64 / answers as f64
        },
        unreadable,
        description_srcc: biqa_metrics::srcc(&implied, &truth)
            .ok()
            .filter(|v| v.is_finite()),
    })
}

/// The second pass of the two-stage pipeline alone, on given descriptions: for each `(description, mos)`, the
/// text-only prompt [`PipelinePrompts::stage2_prompt`] followed by [`PipelinePrompts::conclusion_probe`], scored
/// by `scorer` at the next token (batches of `batch`); the SRCC of those scores against the MOS. `None` when fewer
/// than two or the scores are constant.
///
/// # Errors
/// Model errors of the forward.
pub fn second_pass_on_true_descriptions(
    model: &Owl2,
    prompts: &PipelinePrompts,
    scorer: &Scorer,
    items: &[(String, f64)],
    batch: usize,
) -> biqa_model::Result<Option<f64>> {
    let mut scores = Vec::with_capacity(items.len());
    for chunk in items.chunks(batch.max(1)) {
        let texts: Vec<String> = chunk
            .iter()
            .map(|(d, _)| prompts.stage2_prompt(d) + &prompts.conclusion_probe)
            .collect();
        let prompt = model.prepare(&texts, None)?;
        for row in model.last_logits(prompt)? {
            scores.push(scorer.score(&row).score);
        }
    }
    let mos: Vec<f64> = items.iter().map(|(_, m)| *m).collect();
    Ok(biqa_metrics::srcc(&scores, &mos)
        .ok()
        .filter(|v| v.is_finite()))
}

/// Runs the reproduction; `progress` receives one line per step of the protocol (stderr in the example).
///
/// # Errors
/// I/O, training, model and evaluation errors, naming the file; a missing bundled starting point names the
/// command that makes it.
pub fn run(config: &ReproduceConfig, progress: &mut dyn FnMut(&str)) -> Result<Reproduction> {
    let t0 = Instant::now();
    let device = config
        .device
        .parse::<crate::device::DeviceKind>()?
        .device()?;
    let out = &config.out;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let data = out.join("data");
    let photos = biqa_data::bundled_photos()?;
    let synth_config = match &config.start {
        // A released model sees 448-px images: crops of 224 px (upscaled by its preprocessing, as the KADID-like
        // sets are).
        Start::Model { .. } => SynthConfig {
            crop_size: 224,
            ..miniature::synth_config(config.crops_per_photo, 0)
        },
        _ => miniature::synth_config(config.crops_per_photo, 0),
    };
    progress(&format!(
        "synthetic set: {} photos × {} crops × 36 images of {} px in {}",
        photos.len(),
        config.crops_per_photo,
        synth_config.crop_size,
        data.display()
    ));
    let set = biqa_data::synth_with(&data, &photos, &synth_config, &mut |_, _| {})?;
    let train_items = set.items_in(Split::Train);
    let evaluated: Vec<&biqa_data::SynthItem> = set
        .items
        .iter()
        .filter(|i| i.split == Split::Test && i.crop < config.eval_crops)
        .collect();
    let test_names: std::collections::HashSet<&str> =
        evaluated.iter().map(|i| i.image.as_str()).collect();
    let true_descriptions: Vec<(String, f64)> = evaluated
        .iter()
        .map(|i| (i.text.description.clone(), i.mos))
        .collect();
    let manifest = data.join("manifest.csv");
    let dataset = crate::eval::load_dataset(DatasetKind::Synth, &manifest, &data, None)?;
    let binning = dataset.scale.binning;
    let test: Vec<EvalItem> = dataset
        .items
        .into_iter()
        .filter(|i| test_names.contains(i.image.as_str()))
        .collect();
    let mut photo_splits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (photo, split) in &set.splits {
        photo_splits
            .entry(split.to_string())
            .or_default()
            .push(photo.clone());
    }
    let data_summary = DataSummary {
        train_images: train_items.len(),
        test_images: test.len(),
        photos: photo_splits,
        crop_size: synth_config.crop_size,
    };
    progress(&format!(
        "{} training images, {} test images (photos: {:?})",
        data_summary.train_images, data_summary.test_images, data_summary.photos
    ));

    let mut seeds = Vec::new();
    let mut pretrain_set: Option<(biqa_data::SynthOutput, Vec<biqa_data::Photo>)> = None;
    for &seed in &config.seeds {
        let dir = out.join(format!("seed{seed}"));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        claim_seed_dir(&dir, &seed_fingerprint(config, seed)?, progress)?;
        let mut loss_map: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
        let start = match &config.start {
            Start::Bundled { dir: bundle } => {
                let d = bundle.join(format!("seed{seed}"));
                if !d.join("config.json").is_file() {
                    return Err(Error::Setting {
                        key: "starting point",
                        reason: format!(
                            "{} has no pre-aligned miniature; make it with `cargo run --release --example \
                             pretrain -- --seed {seed} --bundle {}`, or run with --from-scratch",
                            d.display(),
                            bundle.display()
                        ),
                    });
                }
                let l = read_loss_csv(&d.join("pretrain_loss.csv"));
                if !l.is_empty() {
                    loss_map.insert("pre-alignment".into(), l);
                }
                d
            }
            Start::FromScratch { steps } => {
                progress(&format!("seed {seed}: pre-alignment, {steps} steps"));
                let settings = from_scratch_settings(*steps);
                // The pre-alignment set (more crops, and the dead-leaves pictures): built once, for every seed.
                let pre_data = out.join("pretrain_data");
                let (pre_set, pre_photos) = match pretrain_set.take() {
                    Some(built) => built,
                    None => {
                        progress(&format!(
                            "pre-alignment set: {} crops per photo, {} dead-leaves pictures, in {}",
                            settings.crops_per_photo,
                            settings.dead_leaves,
                            pre_data.display()
                        ));
                        miniature::pretrain_set(&pre_data, &settings)?
                    }
                };
                let report = miniature::pretrain(
                    &pre_data,
                    &pre_set.items_in(Split::Train),
                    &pre_photos,
                    seed,
                    &settings,
                    &dir.join("pretrain"),
                    &mut Logger {
                        label: "pre-alignment".into(),
                        every: 100,
                        progress,
                    },
                )?;
                pretrain_set = Some((pre_set, pre_photos));
                loss_map.insert("pre-alignment".into(), losses(&report.steps));
                report.final_model
            }
            Start::Model { dir } => dir.clone(),
        };
        let recipes = [
            (
                ModelKind::OneStage,
                Recipe::OneStage {
                    steps: config.steps,
                },
            ),
            (
                ModelKind::TwoStage,
                Recipe::TwoStage {
                    stage1_steps: config.steps * 2 / 3,
                    stage2_steps: config.steps - config.steps * 2 / 3,
                },
            ),
        ];
        let mut models = BTreeMap::new();
        let mut train_seconds = BTreeMap::new();
        for (kind, recipe) in recipes {
            let tc = TrainConfig {
                model: start.clone(),
                output: dir.join(kind.name()),
                recipe,
                data: biqa_train::DataConfig {
                    one_stage: Some(data.join("one_stage_train.json")),
                    image_folder: Some(data.clone()),
                    template: biqa_train::Template::MplugOwl2,
                    ..biqa_train::DataConfig::default()
                },
                batch_size: config.batch_size,
                grad_accumulation: 1,
                lr: config.lr,
                stage2_lr: config.stage2_lr,
                schedule: biqa_train::Schedule::Cosine,
                warmup_ratio: 0.03,
                max_grad_norm: Some(1.0),
                label_smoothing: config.label_smoothing,
                optimizer: biqa_train::AdamWConfig::default(),
                trainable: config.trainable.clone(),
                seed,
                checkpoint_every: 0,
                keep_checkpoints: 1,
                eval: None,
                stop_after: None,
            };
            progress(&format!(
                "seed {seed}: {} fine-tuning, {} steps",
                kind.name(),
                recipe.total_steps()
            ));
            let t = Instant::now();
            let report = biqa_train::train(
                &tc,
                &device,
                true,
                &mut Logger {
                    label: kind.name().into(),
                    every: 50,
                    progress,
                },
            )?;
            train_seconds.insert(kind.name().to_owned(), t.elapsed().as_secs_f64());
            loss_map.insert(kind.name().to_owned(), losses(&report.steps));
            models.insert(kind, report.final_model);
        }

        let mut runs = Vec::new();
        let mut lens = Vec::new();
        let mut lens_example = None;
        let plan: Vec<(ModelKind, PathBuf, PipelineKind)> = [
            (ModelKind::Baseline, start.clone(), PipelineKind::Direct),
            (
                ModelKind::OneStage,
                models[&ModelKind::OneStage].clone(),
                PipelineKind::OneStage,
            ),
            (
                ModelKind::OneStage,
                models[&ModelKind::OneStage].clone(),
                PipelineKind::Direct,
            ),
            (
                ModelKind::TwoStage,
                models[&ModelKind::TwoStage].clone(),
                PipelineKind::TwoStage,
            ),
            (
                ModelKind::TwoStage,
                models[&ModelKind::TwoStage].clone(),
                PipelineKind::Direct,
            ),
        ]
        .into_iter()
        .collect();
        for (kind, model_dir, pipeline_kind) in plan {
            let m = load(&model_dir, &device)?;
            let prompts =
                PipelinePrompts::for_checkpoint(&model_dir).map_err(|e| Error::Checkpoint {
                    dir: model_dir.clone(),
                    source: Box::new(e),
                })?;
            let scorer = Scorer::new(m.tokenizer(), ScoringPrompt::Qalign, None).map_err(|e| {
                Error::Checkpoint {
                    dir: model_dir.clone(),
                    source: Box::new(e),
                }
            })?;
            let mut pipeline = PipelineConfig::new(pipeline_kind, prompts);
            pipeline.max_new_tokens = config.max_new_tokens;
            let own = kind.own_pipeline() == pipeline_kind;
            let generating = pipeline_kind != PipelineKind::Direct;
            let name = format!("{}_{}", kind.name().replace(' ', "-"), pipeline_kind.name());
            let spec = RunSpec {
                model: model_dir.clone(),
                pipeline: pipeline_kind,
                dataset: DatasetKind::Synth,
                file: manifest.clone(),
                images: data.clone(),
                seed,
                temperature: 0.0,
                max_new_tokens: config.max_new_tokens,
                sample: None,
                limit: None,
            };
            progress(&format!(
                "seed {seed}: {} through {} on {} images",
                kind.name(),
                pipeline_kind.name(),
                test.len()
            ));
            let ev = Evaluator {
                model: &m,
                pipeline: &pipeline,
                scorer: &scorer,
                spec: &spec,
            };
            let options = EvalOptions {
                batch_size: config.eval_batch,
                strict: false,
                instability: None,
                instability_temperature: config.instability_temperature,
                attention: own && generating,
            };
            let summary = evaluate(
                ev,
                &test,
                binning,
                &options,
                &dir.join(&name),
                &mut |_, _| {},
            )?;
            let rows = crate::eval::read_results(&dir.join(&name))?;
            let contradiction = if generating {
                contradictions(&rows, &binning)
            } else {
                None
            };
            let instability = if own && generating && config.instability_images > 0 {
                let step = (test.len() / config.instability_images).max(1);
                let subset: Vec<EvalItem> = test
                    .iter()
                    .step_by(step)
                    .take(config.instability_images)
                    .cloned()
                    .collect();
                progress(&format!(
                    "seed {seed}: {} Table 1, {} × {} answers on {} images",
                    kind.name(),
                    config.instability.0,
                    config.instability.1,
                    subset.len()
                ));
                let options = EvalOptions {
                    instability: Some(config.instability),
                    attention: false,
                    ..options.clone()
                };
                let s = evaluate(
                    ev,
                    &subset,
                    binning,
                    &options,
                    &dir.join(format!("{name}_instability")),
                    &mut |_, _| {},
                )?;
                s.instability
            } else {
                None
            };
            if own && generating {
                let (curves, example) = lens_curves(&m, kind, &rows, &test, &pipeline, &binning)?;
                lens.push(curves);
                if lens_example.is_none() {
                    lens_example = example;
                }
            }
            let second_pass_on_truth = if own {
                second_pass_on_true_descriptions(
                    &m,
                    &pipeline.prompts,
                    &scorer,
                    &true_descriptions,
                    config.eval_batch,
                )
                .map_err(|e| Error::Checkpoint {
                    dir: model_dir.clone(),
                    source: Box::new(e),
                })?
            } else {
                None
            };
            runs.push(RunResult {
                model: kind,
                pipeline: pipeline_kind,
                summary,
                instability,
                contradiction,
                second_pass_on_truth,
            });
        }
        seeds.push(SeedResult {
            seed,
            start,
            models: models
                .into_iter()
                .map(|(k, v)| (k.name().to_owned(), v))
                .collect(),
            losses: loss_map,
            runs,
            lens,
            lens_example,
            train_seconds,
        });
    }
    let reproduction = Reproduction {
        config: config.clone(),
        machine: machine_description(),
        data: data_summary,
        seeds,
        wall_seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(reproduction)
}

/// Fig. 6 for one fine-tuned model: the lens at the conclusion position of every test image of true level poor or
/// bad, averaged; and the first image whose likeliest level word at some intermediate layer differs from the final
/// layer's (Fig. 3).
fn lens_curves(
    m: &Owl2,
    kind: ModelKind,
    rows: &[crate::eval::ResultRow],
    test: &[EvalItem],
    pipeline: &PipelineConfig,
    binning: &MosBinning,
) -> Result<(LensCurves, Option<LensExample>)> {
    let levels = biqa_probes::owl2::qalign_levels(m)?;
    let words: Vec<String> = levels.iter().map(|(w, _)| w.clone()).collect();
    let config = LensConfig {
        layers: None,
        top_k: 5,
        levels,
    };
    let paths: BTreeMap<&str, &Path> = test
        .iter()
        .map(|i| (i.image.as_str(), i.path.as_path()))
        .collect();
    let mut results: Vec<(String, LensResult)> = Vec::new();
    for r in rows {
        let Some(a) = &r.assessment else { continue };
        if !matches!(binning.level(r.mos), Level::Poor | Level::Bad) {
            continue;
        }
        let Some(&path) = paths.get(r.image.as_str()) else {
            continue;
        };
        let lens = biqa_probes::owl2::answer_lens(
            m,
            Some(path),
            a,
            &pipeline.prompts.conclusion_probe,
            &config,
        )?;
        results.push((r.image.clone(), lens));
    }
    let n_layers = results.first().map_or(0, |(_, l)| l.layers.len());
    let mut mean_prob = vec![vec![0.0; words.len()]; n_layers];
    let mut top_share = vec![vec![0.0; words.len()]; n_layers];
    for (_, l) in &results {
        for (li, layer) in l.layers.iter().enumerate().take(n_layers) {
            let mut best = 0;
            for (w, &p) in layer.level_probs.iter().enumerate().take(words.len()) {
                mean_prob[li][w] += p / results.len() as f64;
                if p > layer.level_probs[best] {
                    best = w;
                }
            }
            top_share[li][best] += 1.0 / results.len() as f64;
        }
    }
    let top = |l: &biqa_probes::lens::LayerLens| {
        l.level_probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    let example = results
        .iter()
        .find(|(_, l)| {
            let last = l.layers.last().and_then(top);
            l.layers.len() > 2
                && l.layers[1..l.layers.len() - 1]
                    .iter()
                    .any(|x| top(x) != last)
        })
        .map(|(img, l)| (kind, img.clone(), l.clone()));
    Ok((
        LensCurves {
            model: kind,
            images: results.len(),
            words,
            mean_prob,
            top_share,
        },
        example,
    ))
}

/// Distortions in manifest order, by name.
pub fn distortion_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = DistortionKind::ALL.iter().map(|k| k.name()).collect();
    v.push("none");
    v
}

mod report;
pub use report::{Headline, headline_table, headlines, mean_std, write_report};

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mos: f64, description: Option<&str>, level: Option<&str>) -> crate::eval::ResultRow {
        let assessment = serde_json::json!({
            "pipeline": "two-stage",
            "description": description,
            "conclusion": level.map(|l| format!("Therefore, the quality of the image is {l}.")).unwrap_or_default(),
            "level": level,
            "words": ["excellent", "good", "fair", "poor", "bad"],
            "probs": [0.2, 0.2, 0.2, 0.2, 0.2],
            "probs_at": {"at": "probe"},
            "score": 0.5,
            "score_1_5": 3.0,
            "passes": [],
            "seconds": 0.01
        });
        serde_json::from_value(serde_json::json!({
            "image": "x.png",
            "mos": mos,
            "assessment": assessment
        }))
        .expect("a result row")
    }

    #[test]
    fn contradictions_and_the_descriptions_own_srcc_follow_the_grammar() -> anyhow::Result<()> {
        let binning = MosBinning::equal_width(1.0, 5.0)?;
        // Implied pseudo-MOS: no strength sentence → 5; blur strength 2 → 5 − 4·0.2 = 4.2; blur strength 5 →
        // 5 − 4·0.9 = 1.4; noise strength 4 → 5 − 4·0.65 = 2.4.
        let rows = vec![
            row(
                4.9,
                Some("The details are sharp and clear."),
                Some("excellent"),
            ),
            row(
                4.0,
                Some("The image is slightly blurred, and fine details are softened."),
                Some("bad"),
            ),
            row(
                1.2,
                Some("Severe blur affects the whole picture, smearing edges and textures."),
                Some("bad"),
            ),
            // No stated level: not a contradiction candidate, but its description still ranks.
            row(
                2.6,
                Some("There is strong grain noise throughout the image."),
                None,
            ),
            // A strength sentence without a distortion: unreadable, left out of both.
            row(3.0, Some("It is severely odd."), Some("fair")),
        ];
        let c = contradictions(&rows, &binning).expect("generating rows");
        assert_eq!((c.answers, c.contradicting, c.unreadable), (3, 1, 1));
        // Implied 5, 4.2, 1.4, 2.4 against true 4.9, 4.0, 1.2, 2.6: the same order.
        assert!(c.description_srcc.is_some_and(|v| (v - 1.0).abs() < 1e-12));
        // Reversed truths rank the other way.
        let rows: Vec<_> = [
            (1.0, "The details are sharp and clear."),
            (
                5.0,
                "Severe blur affects the whole picture, smearing edges and textures.",
            ),
        ]
        .into_iter()
        .map(|(m, d)| row(m, Some(d), None))
        .collect();
        let c = contradictions(&rows, &binning).expect("descriptions");
        assert_eq!(c.answers, 0);
        assert!(c.rate.is_nan());
        assert!(c.description_srcc.is_some_and(|v| (v + 1.0).abs() < 1e-12));
        // Direct answers (no description) give nothing.
        assert!(contradictions(&[row(3.0, None, Some("fair"))], &binning).is_none());
        Ok(())
    }

    #[test]
    fn a_seed_folder_made_from_another_starting_point_is_cleared() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let bundle = tmp.path().join("bundle");
        std::fs::create_dir_all(bundle.join("seed0"))?;
        std::fs::write(bundle.join("seed0/model.safetensors"), b"weights v1")?;
        let config = ReproduceConfig::quick(
            tmp.path().join("out"),
            Start::Bundled {
                dir: bundle.clone(),
            },
        );
        let seed_dir = tmp.path().join("out/seed0");
        std::fs::create_dir_all(seed_dir.join("one-stage/checkpoints"))?;
        let mut lines = Vec::new();
        let mut progress = |l: &str| lines.push(l.to_owned());

        // A folder without a stamp (made before it existed, or by hand) is cleared and stamped.
        let first = seed_fingerprint(&config, 0)?;
        claim_seed_dir(&seed_dir, &first, &mut progress)?;
        assert!(!seed_dir.join("one-stage").exists());
        assert_eq!(std::fs::read_to_string(seed_dir.join("start.txt"))?, first);

        // The same starting point and settings: the work done is kept (to be resumed).
        std::fs::create_dir_all(seed_dir.join("one-stage/final"))?;
        claim_seed_dir(&seed_dir, &seed_fingerprint(&config, 0)?, &mut progress)?;
        assert!(seed_dir.join("one-stage/final").is_dir());

        // Other settings: another fingerprint (so the folder would be cleared).
        let other = ReproduceConfig {
            steps: config.steps + 1,
            ..config.clone()
        };
        let f = seed_fingerprint(&other, 0)?;
        assert_ne!(f, first);
        // Rewritten weights: cleared.
        std::fs::write(
            bundle.join("seed0/model.safetensors"),
            b"weights v2, retrained",
        )?;
        let rewritten = seed_fingerprint(&config, 0)?;
        assert_ne!(rewritten, first);
        claim_seed_dir(&seed_dir, &rewritten, &mut progress)?;
        assert!(!seed_dir.join("one-stage").exists());
        assert_eq!(lines.len(), 2, "{lines:?}");

        // Another seed list or output folder alone does not change a seed's fingerprint.
        let more_seeds = ReproduceConfig {
            seeds: vec![0, 1, 2],
            out: tmp.path().join("elsewhere"),
            ..config.clone()
        };
        assert_eq!(seed_fingerprint(&more_seeds, 0)?, rewritten);
        // A seed with no bundled starting point: no error here (the run reports it, with how to make it).
        assert!(seed_fingerprint(&config, 7)?.starts_with("seed 7\n"));
        Ok(())
    }
}
