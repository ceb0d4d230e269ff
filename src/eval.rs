//! The paper's evaluation on a dataset (`biqa eval`): a pipeline over every image, results appended as they come
//! (resumable), then the Table-2 metrics with bootstrap confidence intervals, level accuracy, time per image and per
//! pass, per-distortion rows, optional Table-1 instability (K sampled answers × S sessions), figures, and a
//! Table-2/Table-1-style comparison of several runs.
//!
//! Files of a run folder `OUT/`:
//! - `run.json`: what was run ([`RunSpec`]); a restart with another model, pipeline, dataset or seed is refused;
//! - `results.jsonl`: one [`ResultRow`] per image, appended (and synced) as soon as it is done; a killed run
//!   restarted with the same command continues after the last complete line (a torn last line is dropped);
//! - `instability.jsonl`: one [`SampleRow`] per sampled answer (with `--instability`), resumable the same way;
//! - `summary.json` ([`EvalSummary`]), `summary.md`, `scatter.png` (score vs MOS with the fitted logistic),
//!   `confusion.png` (levels), written atomically at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use biqa_core::SplitMix64;
use biqa_data::{KoniqScore, LiveChallengeOptions, Manifest, Scale};
use biqa_decoder::Sampling;
use biqa_metrics::{
    Answer, InstabilityReport, Interval, Level, MosBinning, bootstrap_ci, krcc, plcc,
    plcc_logistic, srcc,
};
use biqa_model::{Assessment, Owl2, PassKind, PipelineConfig, PipelineKind, Scorer};
use biqa_probes::SegmentShares;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The dataset formats `biqa eval` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// KonIQ-10k `koniq10k_scores_and_distributions.csv` (MOS 1–5).
    Koniq,
    /// SPAQ `MOS and Image attribute scores.xlsx` (0–100).
    Spaq,
    /// LIVE Challenge `Data/AllImages_release.mat` (with `AllMOS_release.mat` beside it; 0–100).
    Livec,
    /// CSIQ `csiq.DMOS.xlsx` (DMOS 0–1, lower is better).
    Csiq,
    /// KADID-10k `dmos.csv` (1–5).
    Kadid,
    /// A pyiqa meta-info CSV (scale from `--mos-range`).
    Pyiqa,
    /// A Q-Align test JSON (scale from `--mos-range`).
    QalignJson,
    /// The `manifest.csv` of `biqa synth` (1–5, with distortions).
    Synth,
}

impl DatasetKind {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Koniq => "koniq",
            DatasetKind::Spaq => "spaq",
            DatasetKind::Livec => "livec",
            DatasetKind::Csiq => "csiq",
            DatasetKind::Kadid => "kadid",
            DatasetKind::Pyiqa => "pyiqa",
            DatasetKind::QalignJson => "qalign-json",
            DatasetKind::Synth => "synth",
        }
    }
}

/// One image to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalItem {
    /// The image as the annotation file names it (the key of its result row).
    pub image: String,
    /// Its path on disk (the image folder joined with `image`).
    pub path: PathBuf,
    /// Its score on the dataset's scale.
    pub mos: f64,
    /// Its distortion, when the dataset records one.
    pub distortion: Option<String>,
}

/// A dataset ready to evaluate.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The format.
    pub kind: DatasetKind,
    /// The images, in file order.
    pub items: Vec<EvalItem>,
    /// The score scale and its MOS → level binning.
    pub scale: Scale,
}

/// Reads a dataset's annotation `file`; images are looked up under `images`. `scale` is needed by the formats
/// that do not carry one (pyiqa, Q-Align JSON) and overrides the others.
///
/// # Errors
/// The reader's error (naming the file, line and column).
pub fn load_dataset(
    kind: DatasetKind,
    file: &Path,
    images: &Path,
    scale: Option<Scale>,
) -> Result<Dataset> {
    let manifest: Manifest = match kind {
        DatasetKind::Koniq => biqa_data::read_koniq(file, KoniqScore::Mos)?,
        DatasetKind::Spaq => biqa_data::read_spaq(file)?,
        DatasetKind::Livec => {
            let mos = file.with_file_name("AllMOS_release.mat");
            biqa_data::read_live_challenge(file, &mos, LiveChallengeOptions::default())?
        }
        DatasetKind::Csiq => biqa_data::read_csiq(file)?,
        DatasetKind::Kadid => biqa_data::read_kadid(file)?,
        DatasetKind::Pyiqa => {
            biqa_data::read_pyiqa(file, scale.unwrap_or_else(Scale::one_to_five), None)?
        }
        DatasetKind::QalignJson => {
            biqa_data::read_qalign_json(file, scale.unwrap_or_else(Scale::one_to_five))?
        }
        DatasetKind::Synth => biqa_data::read_synth_manifest(file)?,
    };
    let scale = scale.unwrap_or(manifest.scale);
    let items = manifest
        .entries
        .into_iter()
        .map(|e| EvalItem {
            path: images.join(&e.image),
            distortion: e.distortion,
            image: e.image,
            mos: e.mos,
        })
        .collect();
    Ok(Dataset { kind, items, scale })
}

/// A seeded random subset of `n` items (in file order), as the paper evaluates 20 % of LIVE / CSIQ; all items when
/// `n` is at least their number.
pub fn sample_items(items: Vec<EvalItem>, n: usize, seed: u64) -> Vec<EvalItem> {
    if n >= items.len() {
        return items;
    }
    let mut idx: Vec<usize> = (0..items.len()).collect();
    SplitMix64::derive(seed, &[0xE7A1]).shuffle(&mut idx);
    let mut keep: Vec<usize> = idx.into_iter().take(n).collect();
    keep.sort_unstable();
    let keep: HashSet<usize> = keep.into_iter().collect();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, it)| it)
        .collect()
}

/// What a run folder evaluates; a restart must match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The checkpoint directory.
    pub model: PathBuf,
    /// The pipeline.
    pub pipeline: PipelineKind,
    /// The dataset format.
    pub dataset: DatasetKind,
    /// The annotation file.
    pub file: PathBuf,
    /// The image folder.
    pub images: PathBuf,
    /// The seed (sampling, subsets, bootstrap).
    pub seed: u64,
    /// Temperature of the pipeline's answers (0 = greedy).
    pub temperature: f32,
    /// New tokens per generated pass.
    pub max_new_tokens: usize,
    /// `--sample N` (a seeded subset), if given.
    pub sample: Option<usize>,
    /// `--limit N` (the first N after sampling), if given.
    pub limit: Option<usize>,
}

/// One line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// The image, as the annotation file names it.
    pub image: String,
    /// Its score on the dataset's scale.
    pub mos: f64,
    /// Its distortion, when the dataset records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distortion: Option<String>,
    /// What the pipeline said (absent on error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Assessment>,
    /// Why the image could not be assessed (absent on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of `instability.jsonl`: one sampled answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRow {
    /// The session (0-based).
    pub session: usize,
    /// The sample within the session (0-based).
    pub sample: usize,
    /// The image.
    pub image: String,
    /// The answer's conclusion.
    pub conclusion: String,
    /// Its level (`None`: no level stated).
    pub level: Option<Level>,
}

/// A metric with its bootstrap 95 % interval (`None` when the metric is undefined, with the reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricCi {
    /// The value and interval.
    pub value: Option<Interval>,
    /// Why it is undefined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl MetricCi {
    fn of(
        pred: &[f64],
        mos: &[f64],
        metric: impl Fn(&[f64], &[f64]) -> biqa_metrics::Result<f64>,
        seed: u64,
    ) -> Self {
        match bootstrap_ci(pred, mos, metric, BOOTSTRAP_RESAMPLES, 0.95, seed) {
            Ok(v) => Self {
                value: Some(v),
                unavailable: None,
            },
            Err(e) => Self {
                value: None,
                unavailable: Some(e.to_string()),
            },
        }
    }

    fn estimate(&self) -> Option<f64> {
        self.value.map(|v| v.estimate)
    }
}

/// Bootstrap resamples of every interval.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// The metrics of one group of images (the whole set, or one distortion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// The group (`all` or the distortion).
    pub group: String,
    /// Images with a score.
    pub n: usize,
    /// SRCC.
    pub srcc: Option<f64>,
    /// PLCC.
    pub plcc: Option<f64>,
}

/// Mean seconds per image, overall and per pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// All passes.
    pub per_image: f64,
    /// Per pass kind (`direct`, `image`, `text`), in the pipeline's order.
    pub per_pass: Vec<(PassKind, f64)>,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    /// What was run.
    pub spec: RunSpec,
    /// Images assessed (with a score).
    pub n: usize,
    /// Images that failed (error rows).
    pub errors: usize,
    /// Spearman, with its bootstrap 95 % interval.
    pub srcc: MetricCi,
    /// Pearson (raw scores).
    pub plcc: MetricCi,
    /// Pearson after the 4-parameter logistic.
    pub plcc_logistic: MetricCi,
    /// Kendall tau-b.
    pub krcc: MetricCi,
    /// RMSE after the logistic, on the MOS scale.
    pub rmse_logistic: MetricCi,
    /// Share of images whose stated level equals the MOS-binned level (an unstated level counts as wrong).
    pub accuracy: Option<f64>,
    /// Share of images whose answer states no level.
    pub invalid_rate: f64,
    /// `confusion[true][answered]` over excellent … bad, then "none" as the last column.
    pub confusion: Vec<Vec<usize>>,
    /// Mean time per image and per pass.
    pub timing: Timing,
    /// One row per distortion, when the dataset records them.
    pub per_distortion: Vec<GroupMetrics>,
    /// Table 1: instability of K sampled answers × S sessions (with `--instability`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instability: Option<InstabilityReport>,
    /// Relation estimation (with `--attention`): the mean attention share of the quality token per segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<SegmentShares>,
    /// The logistic's parameters, when it was fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logistic_betas: Option<[f64; 4]>,
}

impl EvalSummary {
    /// The headline values keyed as the issue of `biqa eval` names them (`n`, `srcc`, `plcc`, `plcc_logistic`,
    /// `krcc`, `rmse_logistic`, `accuracy`, `errors`), as a flat JSON object.
    pub fn headline(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n,
            "srcc": self.srcc.estimate(),
            "plcc": self.plcc.estimate(),
            "plcc_logistic": self.plcc_logistic.estimate(),
            "krcc": self.krcc.estimate(),
            "rmse_logistic": self.rmse_logistic.estimate(),
            "accuracy": self.accuracy,
            "errors": self.errors,
        })
    }
}

/// Options of [`evaluate`].
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Stop at the first image that cannot be assessed (default: record an error row and go on).
    pub strict: bool,
    /// `(K, S)`: K sampled answers per image in each of S sessions (Table 1), at `instability_temperature`.
    pub instability: Option<(usize, usize)>,
    /// The temperature of the instability samples.
    pub instability_temperature: f32,
    /// Relation estimation (Fig. 5): the attention share of the quality token over its context segments, averaged
    /// over the assessed images.
    pub attention: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the complete lines of a JSONL file, dropping (and truncating away) a torn last line; missing = empty.
fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = biqa_core::read_text(path, biqa_core::DATA_LIMIT).map_err(io(path))?;
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        // A torn last line from a killed run: cut it off so appends start on a clean line.
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(complete as u64).map_err(io(path))?;
    }
    text[..complete]
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::RunFile {
                path: path.to_path_buf(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// The result rows of a run folder (`results.jsonl`; a torn last line is dropped).
///
/// # Errors
/// An unreadable file or a malformed line (named).
pub fn read_results(out: &Path) -> Result<Vec<ResultRow>> {
    read_jsonl(&out.join("results.jsonl"))
}

/// Appends one JSON line and syncs it to disk.
fn append_jsonl<T: Serialize>(path: &Path, row: &T) -> Result<()> {
    let mut line = serde_json::to_string(row).map_err(|e| Error::RunFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    line.push('\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(line.as_bytes()).map_err(io(path))?;
    f.sync_data().map_err(io(path))
}

/// Runs of consecutive indices (a resumed run's pending images), so that seeds stay a function of the index.
fn contiguous_runs(idx: &[usize]) -> Vec<Vec<usize>> {
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for &i in idx {
        match runs.last_mut() {
            Some(r) if r.last().is_some_and(|&l| l + 1 == i) => r.push(i),
            _ => runs.push(vec![i]),
        }
    }
    runs
}

/// What [`evaluate`] runs: the model, its pipeline and level words, and what the run folder records.
#[derive(Debug, Clone, Copy)]
pub struct Evaluator<'a> {
    /// The model.
    pub model: &'a Owl2,
    /// The pipeline and its settings.
    pub pipeline: &'a PipelineConfig,
    /// The level words.
    pub scorer: &'a Scorer,
    /// What the run folder records (`run.json`).
    pub spec: &'a RunSpec,
}

/// Evaluates `items` with the evaluator's pipeline into the run folder `out` (see the [module docs](self)),
/// resuming what a previous run with the same spec left there; levels are the MOS binned by `binning`.
/// `progress(done, total)` is called after each batch.
///
/// # Errors
/// A run folder made by another spec, unwritable files, or (with `strict`) the first failed image.
pub fn evaluate(
    ev: Evaluator<'_>,
    items: &[EvalItem],
    binning: MosBinning,
    options: &EvalOptions,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalSummary> {
    let Evaluator {
        model,
        pipeline,
        scorer,
        spec,
    } = ev;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let spec_path = out.join("run.json");
    if spec_path.exists() {
        let text =
            biqa_core::read_text(&spec_path, biqa_core::CONFIG_LIMIT).map_err(io(&spec_path))?;
        let old: RunSpec = serde_json::from_str(&text).map_err(|e| Error::RunFile {
            path: spec_path.clone(),
            reason: e.to_string(),
        })?;
        if &old != spec {
            return Err(Error::RunFile {
                path: spec_path,
                reason: format!(
                    "the folder holds another run ({old:?}); use another --out, or the same command"
                ),
            });
        }
    } else {
        let text = serde_json::to_string_pretty(spec).unwrap_or_default();
        biqa_core::write_bytes_atomic(&spec_path, text.as_bytes())?;
    }
    let results_path = out.join("results.jsonl");
    let mut rows: Vec<ResultRow> = read_jsonl(&results_path)?;
    let done: HashSet<String> = rows.iter().map(|r| r.image.clone()).collect();
    let pending: Vec<usize> = (0..items.len())
        .filter(|&i| !done.contains(&items[i].image))
        .collect();
    let total = items.len();
    progress(total - pending.len(), total);
    for run in contiguous_runs(&pending) {
        for chunk in run.chunks(options.batch_size.max(1)) {
            let paths: Vec<&Path> = chunk.iter().map(|&i| items[i].path.as_path()).collect();
            let seed = spec.seed.wrapping_add(chunk[0] as u64);
            let results = model.assess_paths(pipeline, scorer, &paths, seed, chunk.len(), |_| {});
            for (&i, r) in chunk.iter().zip(results) {
                let it = &items[i];
                let row = match r {
                    Ok(a) => ResultRow {
                        image: it.image.clone(),
                        mos: it.mos,
                        distortion: it.distortion.clone(),
                        assessment: Some(a),
                        error: None,
                    },
                    Err(e) => {
                        if options.strict {
                            return Err(Error::Model {
                                image: it.path.clone(),
                                source: Box::new(e),
                            });
                        }
                        ResultRow {
                            image: it.image.clone(),
                            mos: it.mos,
                            distortion: it.distortion.clone(),
                            assessment: None,
                            error: Some(e.to_string()),
                        }
                    }
                };
                append_jsonl(&results_path, &row)?;
                rows.push(row);
            }
            progress(rows.len().min(total), total);
        }
    }
    let instability = match options.instability {
        Some((k, s)) if k > 0 && s > 0 => Some(run_instability(ev, items, options, (k, s), out)?),
        _ => None,
    };
    // Only the rows of the current item set count (a folder may hold more after a change of --limit).
    let wanted: HashSet<&str> = items.iter().map(|i| i.image.as_str()).collect();
    rows.retain(|r| wanted.contains(r.image.as_str()));
    let mut summary = summarise(spec, &rows, binning, instability);
    if options.attention {
        let paths: HashMap<&str, &Path> = items
            .iter()
            .map(|i| (i.image.as_str(), i.path.as_path()))
            .collect();
        let mut maps = Vec::new();
        for r in &rows {
            let (Some(a), Some(&path)) = (&r.assessment, paths.get(r.image.as_str())) else {
                continue;
            };
            let map = biqa_probes::owl2::answer_attention(
                model,
                Some(path),
                a,
                &pipeline.prompts.conclusion_probe,
            )?;
            maps.push(map);
        }
        if !maps.is_empty() {
            summary.attention = Some(biqa_probes::attention::average_shares(&maps)?);
        }
    }
    write_outputs(out, &summary, &rows)?;
    Ok(summary)
}

fn run_instability(
    ev: Evaluator<'_>,
    items: &[EvalItem],
    options: &EvalOptions,
    (k, s): (usize, usize),
    out: &Path,
) -> Result<InstabilityReport> {
    let Evaluator {
        model,
        pipeline,
        scorer,
        spec,
    } = ev;
    let path = out.join("instability.jsonl");
    let mut rows: Vec<SampleRow> = read_jsonl(&path)?;
    let done: HashSet<(usize, usize, String)> = rows
        .iter()
        .map(|r| (r.session, r.sample, r.image.clone()))
        .collect();
    let mut sampled = pipeline.clone();
    sampled.sampling =
        Sampling::from_params(options.instability_temperature, None, None).map_err(|e| {
            Error::Setting {
                key: "instability temperature",
                reason: e.to_string(),
            }
        })?;
    for session in 0..s {
        for sample in 0..k {
            let pending: Vec<usize> = (0..items.len())
                .filter(|&i| !done.contains(&(session, sample, items[i].image.clone())))
                .collect();
            for run in contiguous_runs(&pending) {
                for chunk in run.chunks(options.batch_size.max(1)) {
                    let paths: Vec<&Path> =
                        chunk.iter().map(|&i| items[i].path.as_path()).collect();
                    // A different stream per (session, sample), and within it per image.
                    let base =
                        SplitMix64::derive(spec.seed, &[0x1_57AB, session as u64, sample as u64])
                            .next_u64();
                    let seed = base.wrapping_add(chunk[0] as u64);
                    let results =
                        model.assess_paths(&sampled, scorer, &paths, seed, chunk.len(), |_| {});
                    for (&i, r) in chunk.iter().zip(results) {
                        // An image that cannot be read has no answers: it is left out of Table 1.
                        let Ok(a) = r else { continue };
                        let row = SampleRow {
                            session,
                            sample,
                            image: items[i].image.clone(),
                            conclusion: a.conclusion,
                            level: a.level,
                        };
                        append_jsonl(&path, &row)?;
                        rows.push(row);
                    }
                }
            }
        }
    }
    let mut sessions = vec![BTreeMap::<String, Vec<Answer>>::new(); s];
    for r in rows.iter().filter(|r| r.session < s && r.sample < k) {
        sessions[r.session]
            .entry(r.image.clone())
            .or_default()
            .push(Answer::from(r.level));
    }
    let sessions: Vec<Vec<Vec<Answer>>> = sessions
        .into_iter()
        .map(|m| m.into_values().collect())
        .collect();
    biqa_metrics::instability(&sessions).map_err(|source| Error::Metrics { path, source })
}

/// The index of a level in [`Level::BEST_FIRST`] (excellent = 0 … bad = 4), the order of the confusion matrix.
fn best_first(l: Level) -> usize {
    Level::BEST_FIRST.iter().position(|&x| x == l).unwrap_or(0)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The summary of result rows: metrics with bootstrap intervals, accuracy, confusion, timing, per-distortion rows.
pub fn summarise(
    spec: &RunSpec,
    rows: &[ResultRow],
    binning: MosBinning,
    instability: Option<InstabilityReport>,
) -> EvalSummary {
    let ok: Vec<(&ResultRow, &Assessment)> = rows
        .iter()
        .filter_map(|r| r.assessment.as_ref().map(|a| (r, a)))
        .filter(|(_, a)| a.score_1_5.is_finite())
        .collect();
    let pred: Vec<f64> = ok.iter().map(|(_, a)| a.score_1_5).collect();
    let mos: Vec<f64> = ok.iter().map(|(r, _)| r.mos).collect();
    let seed = spec.seed;
    let logistic = plcc_logistic(&pred, &mos);
    let mut confusion = vec![vec![0usize; 6]; 5];
    let mut right = 0usize;
    let mut invalid = 0usize;
    for (r, a) in &ok {
        let t = best_first(binning.level(r.mos));
        match a.level {
            Some(l) => {
                confusion[t][best_first(l)] += 1;
                right += usize::from(best_first(l) == t);
            }
            None => {
                confusion[t][5] += 1;
                invalid += 1;
            }
        }
    }
    let mut per_pass: Vec<(PassKind, Vec<f64>)> = Vec::new();
    for (_, a) in &ok {
        for p in &a.passes {
            match per_pass.iter_mut().find(|(k, _)| *k == p.kind) {
                Some((_, v)) => v.push(p.seconds),
                None => per_pass.push((p.kind, vec![p.seconds])),
            }
        }
    }
    let mut groups: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (r, a) in &ok {
        if let Some(d) = &r.distortion {
            let g = groups.entry(d.clone()).or_default();
            g.0.push(a.score_1_5);
            g.1.push(r.mos);
        }
    }
    let per_distortion = groups
        .into_iter()
        .map(|(group, (p, m))| GroupMetrics {
            group,
            n: p.len(),
            srcc: srcc(&p, &m).ok(),
            plcc: plcc(&p, &m).ok(),
        })
        .collect();
    EvalSummary {
        spec: spec.clone(),
        n: ok.len(),
        errors: rows.iter().filter(|r| r.assessment.is_none()).count(),
        srcc: MetricCi::of(&pred, &mos, srcc, seed),
        plcc: MetricCi::of(&pred, &mos, plcc, seed),
        plcc_logistic: MetricCi::of(&pred, &mos, |p, m| Ok(plcc_logistic(p, m)?.plcc), seed),
        krcc: MetricCi::of(&pred, &mos, krcc, seed),
        rmse_logistic: MetricCi::of(&pred, &mos, |p, m| Ok(plcc_logistic(p, m)?.rmse), seed),
        accuracy: (!ok.is_empty()).then(|| right as f64 / ok.len() as f64),
        invalid_rate: if ok.is_empty() {
            0.0
        } else {
            invalid as f64 / ok.len() as f64
        },
        confusion,
        timing: Timing {
            per_image: mean(&ok.iter().map(|(_, a)| a.seconds).collect::<Vec<_>>()),
            per_pass: per_pass.into_iter().map(|(k, v)| (k, mean(&v))).collect(),
        },
        per_distortion,
        instability,
        attention: None,
        logistic_betas: logistic.ok().map(|f| f.betas),
    }
}

fn fmt_ci(m: &MetricCi) -> String {
    match (&m.value, &m.unavailable) {
        (Some(v), _) => format!("{:.4} [{:.4}, {:.4}]", v.estimate, v.lo, v.hi),
        (None, Some(r)) => format!("n/a ({r})"),
        (None, None) => "n/a".into(),
    }
}

fn pass_name(k: PassKind) -> &'static str {
    match k {
        PassKind::Direct => "direct",
        PassKind::Image => "image pass",
        PassKind::Text => "text pass",
    }
}

/// `summary.md`.
pub fn summary_markdown(s: &EvalSummary) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "# {} on {} ({})\n\n",
        s.spec.pipeline,
        s.spec.dataset.name(),
        s.spec.file.display()
    ));
    md.push_str(&format!(
        "Model `{}`, seed {}, temperature {}; {} images assessed, {} errors.\n\n",
        s.spec.model.display(),
        s.spec.seed,
        s.spec.temperature,
        s.n,
        s.errors
    ));
    md.push_str("| metric | value [95 % bootstrap CI] |\n|---|---|\n");
    for (name, m) in [
        ("SRCC", &s.srcc),
        ("PLCC", &s.plcc),
        ("PLCC (logistic)", &s.plcc_logistic),
        ("KRCC", &s.krcc),
        ("RMSE (logistic)", &s.rmse_logistic),
    ] {
        md.push_str(&format!("| {name} | {} |\n", fmt_ci(m)));
    }
    md.push_str(&format!(
        "| level accuracy | {} |\n| no level stated | {:.2} % |\n",
        s.accuracy
            .map_or_else(|| "n/a".into(), |a| format!("{:.2} %", 100.0 * a)),
        100.0 * s.invalid_rate
    ));
    md.push_str(&format!(
        "| time per image | {:.4} s |\n",
        s.timing.per_image
    ));
    for (k, t) in &s.timing.per_pass {
        md.push_str(&format!(
            "| time per image, {} | {t:.4} s |\n",
            pass_name(*k)
        ));
    }
    if let Some(i) = &s.instability {
        md.push_str(&format!(
            "\n## Instability ({} sessions)\n\n| ratio | mean ± std |\n|---|---|\n| sample level | {:.2} % ± {} |\n| answer level | {:.2} % ± {} |\n| invalid answers | {:.2} % |\n",
            i.sessions.len(),
            100.0 * i.sample_level_mean,
            i.sample_level_std
                .map_or_else(|| "–".into(), |v| format!("{:.2} %", 100.0 * v)),
            100.0 * i.answer_level_mean,
            i.answer_level_std
                .map_or_else(|| "–".into(), |v| format!("{:.2} %", 100.0 * v)),
            100.0 * i.invalid_rate
        ));
    }
    if let Some(att) = &s.attention {
        md.push_str("\n## Attention of the quality token (relation estimation)\n\n| segment | mean share | images |\n|---|---|---|\n");
        for ((name, v), n) in att.segments.iter().zip(&att.mean).zip(&att.samples) {
            md.push_str(&format!("| {name} | {:.2} % | {n} |\n", 100.0 * v));
        }
    }
    if !s.per_distortion.is_empty() {
        md.push_str("\n## Per distortion\n\n| distortion | n | SRCC | PLCC |\n|---|---|---|---|\n");
        let f = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |x| format!("{x:.4}"));
        for g in &s.per_distortion {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                g.group,
                g.n,
                f(g.srcc),
                f(g.plcc)
            ));
        }
    }
    md.push_str("\n## Levels (rows: MOS-binned level; columns: stated level)\n\n| | excellent | good | fair | poor | bad | none |\n|---|---|---|---|---|---|---|\n");
    for (t, row) in s.confusion.iter().enumerate() {
        let name = Level::BEST_FIRST.get(t).map_or("?", |l| l.word());
        md.push_str(&format!(
            "| {name} | {} |\n",
            row.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    md
}

fn write_outputs(out: &Path, s: &EvalSummary, rows: &[ResultRow]) -> Result<()> {
    let json = serde_json::to_string_pretty(s).unwrap_or_default();
    biqa_core::write_bytes_atomic(&out.join("summary.json"), json.as_bytes())?;
    biqa_core::write_bytes_atomic(&out.join("summary.md"), summary_markdown(s).as_bytes())?;
    let points: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.assessment.as_ref().map(|a| (a.score_1_5, r.mos)))
        .collect();
    if !points.is_empty() {
        biqa_probes::figures::scatter_with_fit(
            &out.join("scatter.png"),
            &format!("{} on {}", s.spec.pipeline, s.spec.dataset.name()),
            "score (1–5)",
            "MOS",
            &points,
            s.logistic_betas,
        )?;
        let rows_l: Vec<&str> = Level::BEST_FIRST.iter().map(|l| l.word()).collect();
        let mut cols = rows_l.clone();
        cols.push("none");
        biqa_probes::figures::confusion_matrix(
            &out.join("confusion.png"),
            "MOS-binned level (rows) vs stated level (columns)",
            &rows_l,
            &cols,
            &s.confusion,
        )?;
    }
    if let Some(att) = &s.attention {
        biqa_probes::figures::share_bars(
            &out.join("attention.png"),
            &format!("attention of the quality token ({})", s.spec.pipeline),
            &att.segments,
            &att.mean,
        )?;
    }
    Ok(())
}

/// Reads a run folder's `summary.json`.
///
/// # Errors
/// An unreadable or malformed file (named).
pub fn read_summary(run: &Path) -> Result<EvalSummary> {
    let path = run.join("summary.json");
    let text = biqa_core::read_text(&path, biqa_core::CONFIG_LIMIT).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| Error::RunFile {
        path,
        reason: e.to_string(),
    })
}

/// A Table-2-style markdown (a column per run: SRCC / PLCC / accuracy / time per image) with Table-1-style
/// instability rows, from run folders' summaries.
pub fn compare_markdown(runs: &[(String, EvalSummary)]) -> String {
    let mut md = String::from("| | ");
    md.push_str(
        &runs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    md.push_str(" |\n|---|");
    md.push_str(&"---|".repeat(runs.len()));
    md.push('\n');
    let f = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |x| format!("{x:.4}"));
    let pct = |v: Option<f64>| v.map_or_else(|| "–".into(), |x| format!("{:.2} %", 100.0 * x));
    type Cell = Box<dyn Fn(&EvalSummary) -> String>;
    let rows: Vec<(&str, Cell)> = vec![
        ("pipeline", Box::new(|s| s.spec.pipeline.to_string())),
        ("dataset", Box::new(|s| s.spec.dataset.name().to_string())),
        ("n", Box::new(|s| s.n.to_string())),
        ("SRCC", Box::new(move |s| f(s.srcc.estimate()))),
        ("PLCC", Box::new(move |s| f(s.plcc.estimate()))),
        (
            "PLCC (logistic)",
            Box::new(move |s| f(s.plcc_logistic.estimate())),
        ),
        ("level accuracy", Box::new(move |s| pct(s.accuracy))),
        (
            "instability, sample level",
            Box::new(move |s| pct(s.instability.as_ref().map(|i| i.sample_level_mean))),
        ),
        (
            "instability, answer level",
            Box::new(move |s| pct(s.instability.as_ref().map(|i| i.answer_level_mean))),
        ),
        (
            "invalid answers",
            Box::new(move |s| pct(s.instability.as_ref().map(|i| i.invalid_rate))),
        ),
        (
            "time per image (s)",
            Box::new(|s| format!("{:.4}", s.timing.per_image)),
        ),
    ];
    for (name, cell) in rows {
        md.push_str(&format!(
            "| {name} | {} |\n",
            runs.iter()
                .map(|(_, s)| cell(s))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    md
}
