//! The report of a reproduction: `report.md` (tables, figures, the claims paragraph), `report.json` (every number)
//! and the PNG figures, every figure mean ± std over the seeds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use biqa_metrics::Level;
use biqa_model::PipelineKind;
use biqa_probes::figures::{self, Series};
use serde::Serialize;

use super::{ModelKind, Reproduction, RunResult};
use crate::Result;

/// Mean and sample standard deviation (n − 1; 0 for one value) of the finite values; `None` without any.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, std))
}

fn pm(values: &[f64], scale: f64, digits: usize) -> String {
    match mean_std(values) {
        Some((m, s)) => format!("{:.digits$} ± {:.digits$}", m * scale, s * scale),
        None => "n/a".into(),
    }
}

/// The headline numbers of one (model, pipeline) row, mean ± std over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    /// The model.
    pub model: ModelKind,
    /// The pipeline.
    pub pipeline: PipelineKind,
    /// SRCC per seed.
    pub srcc: Vec<f64>,
    /// PLCC per seed.
    pub plcc: Vec<f64>,
    /// Level accuracy per seed.
    pub accuracy: Vec<f64>,
    /// Invalid rate per seed.
    pub invalid_rate: Vec<f64>,
    /// Seconds per image per seed.
    pub seconds_per_image: Vec<f64>,
    /// Contradiction rate per seed (generating pipelines).
    pub contradiction: Vec<f64>,
    /// SRCC of the MOS the descriptions imply against the true MOS, per seed (generating pipelines; see
    /// [`super::Contradiction::description_srcc`]).
    pub description_srcc: Vec<f64>,
    /// SRCC of the second pass alone on the true descriptions, per seed (own pipelines; see
    /// [`super::RunResult::second_pass_on_truth`]).
    pub second_pass_on_truth: Vec<f64>,
    /// Sample-level instability per seed (own pipelines).
    pub instability_sample: Vec<f64>,
    /// Answer-level instability per seed.
    pub instability_answer: Vec<f64>,
    /// Invalid rate of the sampled answers per seed.
    pub instability_invalid: Vec<f64>,
    /// SRCC per distortion per seed.
    pub per_distortion: BTreeMap<String, Vec<f64>>,
}

/// The (model, pipeline) rows in protocol order, gathered over seeds.
pub fn headlines(r: &Reproduction) -> Vec<Headline> {
    let mut order: Vec<(ModelKind, PipelineKind)> = Vec::new();
    for s in &r.seeds {
        for run in &s.runs {
            if !order.contains(&(run.model, run.pipeline)) {
                order.push((run.model, run.pipeline));
            }
        }
    }
    order
        .into_iter()
        .map(|(model, pipeline)| {
            let runs: Vec<&RunResult> = r
                .seeds
                .iter()
                .flat_map(|s| s.runs.iter())
                .filter(|x| x.model == model && x.pipeline == pipeline)
                .collect();
            let metric = |f: &dyn Fn(&RunResult) -> Option<f64>| -> Vec<f64> {
                runs.iter().map(|x| f(x).unwrap_or(f64::NAN)).collect()
            };
            let mut per_distortion: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for x in &runs {
                for g in &x.summary.per_distortion {
                    per_distortion
                        .entry(g.group.clone())
                        .or_default()
                        .push(g.srcc.unwrap_or(f64::NAN));
                }
            }
            Headline {
                model,
                pipeline,
                srcc: metric(&|x| x.summary.srcc.value.as_ref().map(|v| v.estimate)),
                plcc: metric(&|x| x.summary.plcc.value.as_ref().map(|v| v.estimate)),
                accuracy: metric(&|x| x.summary.accuracy),
                invalid_rate: metric(&|x| Some(x.summary.invalid_rate)),
                seconds_per_image: metric(&|x| Some(x.summary.timing.per_image)),
                contradiction: metric(&|x| x.contradiction.map(|c| c.rate)),
                description_srcc: metric(&|x| x.contradiction.and_then(|c| c.description_srcc)),
                second_pass_on_truth: metric(&|x| x.second_pass_on_truth),
                instability_sample: metric(&|x| {
                    x.instability.as_ref().map(|i| i.sample_level_mean)
                }),
                instability_answer: metric(&|x| {
                    x.instability.as_ref().map(|i| i.answer_level_mean)
                }),
                instability_invalid: metric(&|x| x.instability.as_ref().map(|i| i.invalid_rate)),
                per_distortion,
            }
        })
        .collect()
}

fn row_name(h: &Headline) -> String {
    format!("{} → {}", h.model.name(), h.pipeline.name())
}

fn mean(v: &[f64]) -> f64 {
    mean_std(v).map_or(f64::NAN, |m| m.0)
}

/// The headline table (Table 2 analogue): SRCC, PLCC, accuracy, invalid rate, time per image.
pub fn headline_table(r: &Reproduction) -> String {
    let mut md = String::from(
        "| model → pipeline | SRCC | PLCC | level accuracy (%) | invalid (%) | ms / image |\n|---|---|---|---|---|---|\n",
    );
    for h in headlines(r) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            row_name(&h),
            pm(&h.srcc, 1.0, 3),
            pm(&h.plcc, 1.0, 3),
            pm(&h.accuracy, 100.0, 1),
            pm(&h.invalid_rate, 100.0, 1),
            pm(&h.seconds_per_image, 1000.0, 1),
        );
    }
    md
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> crate::Error + '_ {
    move |source| crate::Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Which parts a fine-tuning policy trains, in words ("the vision tower frozen; the abstractor and the LLM
/// trained").
fn trained_parts(p: &biqa_train::TrainablePolicy) -> String {
    let parts = [
        ("the vision tower", p.freeze_vision),
        ("the abstractor", p.freeze_abstractor),
        ("the LLM", p.freeze_llm),
    ];
    let list = |frozen: bool| {
        parts
            .iter()
            .filter(|(_, f)| *f == frozen)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let (trained, frozen) = (list(false), list(true));
    let lora = if p.lora.is_some() { " (LoRA)" } else { "" };
    let vision_rate = if !p.freeze_vision && p.vision_lr_scale != 1.0 {
        format!(
            ", the vision tower at {} times the learning rate",
            p.vision_lr_scale
        )
    } else {
        String::new()
    };
    match (trained.is_empty(), frozen.is_empty()) {
        (_, true) => format!("everything trained{lora}{vision_rate}"),
        (true, _) => "everything frozen".to_owned(),
        _ => format!("{frozen} frozen; {trained} trained{lora}{vision_rate}"),
    }
}

/// Writes `report.md`, `report.json` and the figures into `out`; returns the path of `report.md`.
///
/// # Errors
/// I/O or drawing errors (named).
pub fn write_report(r: &Reproduction, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let hs = headlines(r);
    let n_seeds = r.seeds.len();
    let seeds: Vec<String> = r.seeds.iter().map(|s| s.seed.to_string()).collect();
    let c = &r.config;
    let mut md =
        String::from("# One-stage vs two-stage tuning: the paper's experiment in miniature\n\n");
    let start = match &c.start {
        super::Start::Bundled { dir } => format!(
            "the bundled pre-aligned miniature mPLUG-Owl2 (`{}`, made by `examples/pretrain.rs`)",
            dir.display()
        ),
        super::Start::FromScratch { steps } => {
            format!("a miniature mPLUG-Owl2 pre-aligned here ({steps} steps per seed)")
        }
        super::Start::Model { dir } => format!("the checkpoint `{}`", dir.display()),
    };
    let _ = writeln!(
        md,
        "Starting point: {start}. Seeds {} (each changes the pre-alignment, the data order and the sampling); every \
         number is mean ± std over the {n_seeds} seed(s). Machine: {}. Wall time {:.0} s.\n",
        seeds.join(", "),
        r.machine,
        r.wall_seconds
    );
    let _ = writeln!(
        md,
        "**Data.** The synthetic set of the bundled photographs ({} px crops, 7 distortions × 5 levels + the \
         reference per crop, pseudo-MOS 1–5, Q-Pathway-style descriptions), split by source photo: training {:?}, \
         validation {:?}, test {:?}. {} training images; {} test images evaluated (photos never seen in \
         pre-alignment or fine-tuning).\n",
        r.data.crop_size,
        r.data.photos.get("train").cloned().unwrap_or_default(),
        r.data.photos.get("val").cloned().unwrap_or_default(),
        r.data.photos.get("test").cloned().unwrap_or_default(),
        r.data.train_images,
        r.data.test_images
    );
    let _ = writeln!(
        md,
        "**Fine-tuning.** One-stage (image → description + conclusion, the Q-Instruct baseline) and two-stage \
         (stage 1: image → description, {} steps; stage 2: text-only description → conclusion, {} steps) with the \
         same {} optimiser steps of {} images, peak lr {}{}, cosine with 3 % warmup, AdamW (β 0.9 / 0.98, ε 1e-6), \
         label-smoothed NLL (eq. 2, ε = {}); {}, in both recipes alike. Evaluation greedy; Table 1 samples at \
         temperature {}.\n",
        c.steps * 2 / 3,
        c.steps - c.steps * 2 / 3,
        c.steps,
        c.batch_size,
        c.lr,
        c.stage2_lr
            .map(|lr| format!(" (two-stage's stage 2: {lr})"))
            .unwrap_or_default(),
        c.label_smoothing,
        trained_parts(&c.trainable),
        c.instability_temperature
    );

    md.push_str("## Table 2 analogue: quality prediction on the held-out photos\n\n");
    md.push_str(&headline_table(r));
    md.push_str(
        "\nSRCC / PLCC of the score (the level words' probabilities where the answer states its level, weighted \
         1 … 0 as Q-Align) against the pseudo-MOS. Level accuracy: the stated level equals the binned pseudo-MOS \
         (an answer stating no level counts as wrong). ms / image: the pipeline's passes, batched as evaluated, on \
         this machine (the paper's last row of Table 2).\n\n",
    );
    let dists = super::distortion_names();
    md.push_str("### SRCC per distortion\n\n| model → pipeline |");
    for d in &dists {
        let _ = write!(md, " {d} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(dists.len()));
    md.push('\n');
    for h in &hs {
        let _ = write!(md, "| {} |", row_name(h));
        for d in &dists {
            let v = h.per_distortion.get(*d).cloned().unwrap_or_default();
            let _ = write!(md, " {} |", pm(&v, 1.0, 2));
        }
        md.push('\n');
    }
    md.push_str(
        "\nWithin one distortion the five levels (and, for `none`, the references alone: n/a, constant MOS) are \
         ranked.\n\n",
    );

    md.push_str("## Table 1 analogue: instability of sampled answers\n\n");
    let _ = writeln!(
        md,
        "{} sampled answers per image in each of {} sessions (the paper's protocol), on {} test images spread over \
         the set, at temperature {}.\n",
        c.instability.0, c.instability.1, c.instability_images, c.instability_temperature
    );
    md.push_str("| model → pipeline | sample-level instability (%) | answer-level instability (%) | invalid answers (%) |\n|---|---|---|---|\n");
    for h in hs
        .iter()
        .filter(|h| h.instability_sample.iter().any(|v| v.is_finite()))
    {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            row_name(h),
            pm(&h.instability_sample, 100.0, 1),
            pm(&h.instability_answer, 100.0, 1),
            pm(&h.instability_invalid, 100.0, 1)
        );
    }
    md.push_str(
        "\nSample-level: the share of images whose answers are not all the same level within a session (averaged \
         over sessions); answer-level: the share of answers that differ from their image's most common level \
         (see `biqa_metrics::instability`).\n\n",
    );

    md.push_str("## Contradictions (the paper's Fig. 1 failure)\n\n");
    md.push_str(
        "The share of greedy answers whose conclusion states another level than the one their own description \
         implies. The rule: the first sentence of the description that holds a strength word (barely, slightly, \
         noticeably, heavily, severely; faint, mild, moderate, strong, severe) names a distortion and its strength \
         1–5; the implied level is the set's own pseudo-MOS of that distortion and strength, binned as the \
         dataset (`biqa_data::implied_level`); a description with no strength sentence describes an undistorted \
         image (MOS 5, excellent).\n\nWhere the quality information goes: *description SRCC* ranks the images by the \
         pseudo-MOS that their own description implies (the same rule, before binning) against the true MOS; \
         *answer SRCC* is the pipeline's own (Table 2). A description SRCC near the answer SRCC with few \
         contradictions is a conclusion that follows its description; an answer SRCC above the description SRCC \
         is a conclusion that reads the image past its description (one-stage); a description SRCC above the \
         answer SRCC is information that the description holds and the conclusion loses. *Second pass on true \
         descriptions* is the reasoning half alone: the model's text-only second pass (the stage-2 prompt with \
         each test image's true description from the synthetic set, then the conclusion probe), its level-word \
         score ranked against the true MOS — how well the model maps a description to a level when perception \
         plays no part (the descriptions state distortion and strength, so a model that learned the mapping \
         ranks them near 1).\n\n\
         | model → pipeline | contradiction rate (%) | description SRCC | answer SRCC | second pass on true \
         descriptions (SRCC) |\n|---|---|---|---|---|\n",
    );
    for h in hs.iter().filter(|h| {
        h.contradiction.iter().any(|v| v.is_finite())
            || h.second_pass_on_truth.iter().any(|v| v.is_finite())
    }) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            row_name(h),
            pm(&h.contradiction, 100.0, 1),
            pm(&h.description_srcc, 1.0, 3),
            pm(&h.srcc, 1.0, 3),
            pm(&h.second_pass_on_truth, 1.0, 3)
        );
    }
    md.push('\n');

    md.push_str("## Level accuracy and confusion matrices\n\n");
    let levels: Vec<&str> = Level::BEST_FIRST.iter().map(|l| l.word()).collect();
    let mut cols = levels.clone();
    cols.push("none");
    for h in &hs {
        if h.model.own_pipeline() != h.pipeline {
            continue;
        }
        let mut counts = vec![vec![0usize; cols.len()]; levels.len()];
        for s in &r.seeds {
            for run in s
                .runs
                .iter()
                .filter(|x| x.model == h.model && x.pipeline == h.pipeline)
            {
                for (t, row) in run.summary.confusion.iter().enumerate().take(levels.len()) {
                    for (p, v) in row.iter().enumerate().take(cols.len()) {
                        counts[t][p] += v;
                    }
                }
            }
        }
        let file = format!("confusion_{}.png", h.model.name().replace(' ', "_"));
        figures::confusion_matrix(
            &out.join(&file),
            &format!("{} (all seeds): true level × answered level", row_name(h)),
            &levels,
            &cols,
            &counts,
        )?;
        let _ = writeln!(
            md,
            "**{}**: level accuracy {} %.\n\n![confusion]({file})\n",
            row_name(h),
            pm(&h.accuracy, 100.0, 1)
        );
    }

    md.push_str("## Fig. 5 analogue: where the quality token looks\n\n");
    md.push_str(
        "The attention of the position that produces the conclusion's level word over its context, averaged over \
         heads, layers, test images and seeds: one-stage (image, question, its own description) vs the second \
         pass of two-stage (question with the description as text; no image).\n\n| model | segment | share (%) |\n|---|---|---|\n",
    );
    let mut bars = Vec::new();
    for kind in [ModelKind::OneStage, ModelKind::TwoStage] {
        let mut shares: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for s in &r.seeds {
            for run in s
                .runs
                .iter()
                .filter(|x| x.model == kind && x.pipeline == kind.own_pipeline())
            {
                if let Some(a) = &run.summary.attention {
                    for (name, v) in a.segments.iter().zip(&a.mean) {
                        shares.entry(name.clone()).or_default().push(*v);
                    }
                }
            }
        }
        if shares.is_empty() {
            continue;
        }
        let labels: Vec<String> = shares.keys().cloned().collect();
        let values: Vec<f64> = shares.values().map(|v| mean(v)).collect();
        for (l, v) in shares.iter() {
            let _ = writeln!(md, "| {} | {l} | {} |", kind.name(), pm(v, 100.0, 1));
        }
        let file = format!("attention_{}.png", kind.name());
        figures::share_bars(
            &out.join(&file),
            &format!("{}: attention share of the quality token", kind.name()),
            &labels,
            &values,
        )?;
        bars.push(file);
    }
    md.push('\n');
    for file in bars {
        let _ = writeln!(md, "![attention]({file})\n");
    }

    md.push_str("## Fig. 6 analogue: the level word across the decoder's layers\n\n");
    md.push_str(
        "The logit lens at the conclusion position (each hidden state through the final norm and `lm_head`), for \
         the test images whose true level is poor or bad: the mean probability of each level word per layer \
         (0 = embeddings, the last = the model's output), averaged over images and seeds.\n\n",
    );
    for kind in [ModelKind::OneStage, ModelKind::TwoStage] {
        let curves: Vec<&super::LensCurves> = r
            .seeds
            .iter()
            .flat_map(|s| s.lens.iter())
            .filter(|l| l.model == kind && !l.mean_prob.is_empty())
            .collect();
        let Some(first) = curves.first() else {
            continue;
        };
        let layers = first.mean_prob.len();
        let mut series = Vec::new();
        let _ = write!(
            md,
            "**{}** ({} images per seed)\n\n| layer |",
            kind.name(),
            first.images
        );
        for w in &first.words {
            let _ = write!(md, " P({w}) |");
        }
        md.push_str("\n|---|");
        md.push_str(&"---|".repeat(first.words.len()));
        md.push('\n');
        for (wi, w) in first.words.iter().enumerate() {
            let points: Vec<(f64, f64)> = (0..layers)
                .map(|li| {
                    let v: Vec<f64> = curves
                        .iter()
                        .filter_map(|c| c.mean_prob.get(li).and_then(|x| x.get(wi)).copied())
                        .collect();
                    (li as f64, mean(&v))
                })
                .collect();
            series.push(Series {
                label: w.clone(),
                points,
            });
        }
        for li in 0..layers {
            let _ = write!(md, "| {li} |");
            for s in &series {
                let _ = write!(md, " {:.3} |", s.points[li].1);
            }
            md.push('\n');
        }
        let file = format!("lens_{}.png", kind.name());
        figures::line_chart(
            &out.join(&file),
            &format!(
                "{}: level-word probability by layer (true poor/bad)",
                kind.name()
            ),
            "hidden-state index (layer)",
            "mean probability",
            &series,
        )?;
        let _ = writeln!(md, "\n![lens]({file})\n");
    }
    let example = r.seeds.iter().find_map(|s| s.lens_example.as_ref());
    md.push_str("### Fig. 3 analogue: one lens table\n\n");
    match example {
        Some((kind, image, lens)) => {
            figures::lens_table(
                &out.join("lens_example.png"),
                lens,
                &format!("{}: {image}", kind.name()),
            )?;
            let _ = writeln!(
                md,
                "An image ({image}, {}) where an intermediate layer's likeliest level word differs from the final \
                 layer's:\n\n![lens table](lens_example.png)\n",
                kind.name()
            );
        }
        None => md.push_str(
            "No test image of true level poor or bad had an intermediate layer whose likeliest level word differs \
             from the final layer's.\n\n",
        ),
    }

    md.push_str("## Loss curves\n\n");
    let mut names: Vec<String> = Vec::new();
    for s in &r.seeds {
        for k in s.losses.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    for name in &names {
        let series: Vec<Series> = r
            .seeds
            .iter()
            .filter_map(|s| {
                s.losses.get(name).map(|l| Series {
                    label: format!("seed {}", s.seed),
                    points: l.iter().map(|&(x, y)| (x as f64, y)).collect(),
                })
            })
            .collect();
        let file = format!("loss_{}.png", name.replace(' ', "_"));
        figures::line_chart(
            &out.join(&file),
            &format!("{name} loss"),
            "step",
            "loss",
            &series,
        )?;
        let _ = writeln!(md, "![{name} loss]({file})\n");
    }

    md.push_str("## What the miniature reproduces\n\n");
    md.push_str(&claims(r, &hs));
    md.push('\n');

    let md_path = out.join("report.md");
    biqa_core::write_bytes_atomic(&md_path, md.as_bytes())?;
    let json = serde_json::json!({
        "reproduction": r,
        "headlines": hs,
    });
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    biqa_core::write_bytes_atomic(&out.join("report.json"), text.as_bytes())?;
    Ok(md_path)
}

/// The paragraph that states, from the numbers, which of the paper's claims hold here.
fn claims(r: &Reproduction, hs: &[Headline]) -> String {
    let find = |m: ModelKind, p: PipelineKind| hs.iter().find(|h| h.model == m && h.pipeline == p);
    let one = find(ModelKind::OneStage, PipelineKind::OneStage);
    let two = find(ModelKind::TwoStage, PipelineKind::TwoStage);
    let base = find(ModelKind::Baseline, PipelineKind::Direct);
    let (Some(one), Some(two)) = (one, two) else {
        return "The fine-tuned models were not evaluated.\n".into();
    };
    let mut s = String::new();
    let verdict = |better: bool| {
        if better {
            "reproduced"
        } else {
            "not reproduced"
        }
    };
    let cmp = |name: &str,
               a: &[f64],
               b: &[f64],
               lower_is_better: bool,
               scale: f64,
               s: &mut String| {
        let (ma, mb) = (mean(a), mean(b));
        if !(ma.is_finite() && mb.is_finite()) {
            let _ = writeln!(s, "- {name}: not measurable here (n/a).");
            return;
        }
        let better = if lower_is_better { mb < ma } else { mb > ma };
        // A difference within the seeds' spread (the larger std) is no finding either way.
        let spread = mean_std(a)
            .map_or(0.0, |x| x.1)
            .max(mean_std(b).map_or(0.0, |x| x.1));
        let within = (ma - mb).abs() <= spread || (a.len() < 2 && (ma - mb).abs() < 1e-12);
        let _ = writeln!(
            s,
            "- {name}: one-stage {} vs two-stage {} — the paper's direction (two-stage {}) is **{}**{}.",
            pm(a, scale, if scale == 1.0 { 3 } else { 1 }),
            pm(b, scale, if scale == 1.0 { 3 } else { 1 }),
            if lower_is_better { "lower" } else { "higher" },
            verdict(better),
            if within {
                " (the difference is within the spread over seeds: not a finding)"
            } else {
                ""
            }
        );
    };
    if let Some(b) = base {
        let _ = writeln!(
            s,
            "- Starting point through `direct` (never taught quality): SRCC {}; the paper's baseline column is a \
             model that was.",
            pm(&b.srcc, 1.0, 3)
        );
    }
    cmp("SRCC (Table 2)", &one.srcc, &two.srcc, false, 1.0, &mut s);
    cmp("PLCC (Table 2)", &one.plcc, &two.plcc, false, 1.0, &mut s);
    cmp(
        "Sample-level instability (Table 1, %)",
        &one.instability_sample,
        &two.instability_sample,
        true,
        100.0,
        &mut s,
    );
    cmp(
        "Level accuracy (%; the paper: 52.50 → 61.20)",
        &one.accuracy,
        &two.accuracy,
        false,
        100.0,
        &mut s,
    );
    cmp(
        "Contradiction rate (%, Fig. 1)",
        &one.contradiction,
        &two.contradiction,
        true,
        100.0,
        &mut s,
    );
    let _ = writeln!(
        s,
        "- Quality in the descriptions themselves (description SRCC, see Contradictions): one-stage {} vs \
         two-stage {}, against their answers' {} vs {}; the second pass alone on the true descriptions: one-stage \
         {} vs two-stage {} (the two-stage recipe trains this mapping in its stage 2).",
        pm(&one.description_srcc, 1.0, 3),
        pm(&two.description_srcc, 1.0, 3),
        pm(&one.srcc, 1.0, 3),
        pm(&two.srcc, 1.0, 3),
        pm(&one.second_pass_on_truth, 1.0, 3),
        pm(&two.second_pass_on_truth, 1.0, 3)
    );
    let (t1, t2) = (mean(&one.seconds_per_image), mean(&two.seconds_per_image));
    let _ = writeln!(
        s,
        "- Time per image: one-stage {:.1} ms, two-stage {:.1} ms (the paper reports two-stage slower: two passes).",
        1000.0 * t1,
        1000.0 * t2
    );
    let best = mean(&one.srcc).max(mean(&two.srcc));
    let worst = mean(&one.srcc).min(mean(&two.srcc));
    let _ = writeln!(
        s,
        "\nPerception bar (held-out photos, own pipelines): best fine-tuned mean SRCC {best:.3} (bar ≥ 0.80), \
         worst {worst:.3} (bar ≥ 0.60) — {}. {} seed(s); with this few the std above is the spread of the \
         outcome, and a difference smaller than it is not a finding.",
        if best >= 0.8 && worst >= 0.6 {
            "met"
        } else {
            "not met"
        },
        r.seeds.len()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::trained_parts;
    use biqa_train::TrainablePolicy;

    #[test]
    fn the_report_names_the_parts_that_train() {
        let default = TrainablePolicy::default();
        assert_eq!(trained_parts(&default), "everything trained");
        let frozen_vision = TrainablePolicy {
            freeze_vision: true,
            ..TrainablePolicy::default()
        };
        assert_eq!(
            trained_parts(&frozen_vision),
            "the vision tower frozen; the abstractor and the LLM trained"
        );
        let slow_vision = TrainablePolicy {
            vision_lr_scale: 0.1,
            ..TrainablePolicy::default()
        };
        assert_eq!(
            trained_parts(&slow_vision),
            "everything trained, the vision tower at 0.1 times the learning rate"
        );
        assert_eq!(
            trained_parts(&TrainablePolicy::qalign_lora()),
            "the vision tower and the LLM frozen; the abstractor trained (LoRA)"
        );
    }
}
