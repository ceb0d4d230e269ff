//! The inference pipelines on `tests/fixtures/tiny-owl2`: `Direct` equals the Q-Align scorer; the two-stage second
//! pass is text only and its level probabilities equal an independent text-only forward of the same ids; the
//! passes' answers are the model's own greedy tokens; a batch equals the images one by one (greedy and sampled);
//! an unreadable image fails only its own slot.

#![allow(missing_docs)]

use std::path::PathBuf;

use anyhow::{Result, ensure};
use biqa_decoder::{GenerationConfig, Sampling};
use biqa_model::{
    Assessment, LoadOptions, Owl2, PassKind, PipelineConfig, PipelineKind, PipelinePrompts,
    ProbsAt, Scorer, ScoringPrompt,
};
use burn::tensor::Device;

fn dir() -> PathBuf {
    biqa_testkit::fixture("tiny-owl2")
}

fn images() -> Vec<PathBuf> {
    ["astronaut_96x96", "coffee_96x64", "astronaut_96x96"]
        .iter()
        .map(|n| dir().join(format!("images/{n}.png")))
        .collect()
}

fn load() -> Result<(Owl2, Scorer)> {
    let m = Owl2::from_dir(dir(), &Device::flex(), &LoadOptions::default())?;
    let s = Scorer::new(m.tokenizer(), ScoringPrompt::Qalign, None)?;
    Ok((m, s))
}

fn config(kind: PipelineKind) -> PipelineConfig {
    let mut c = PipelineConfig::new(kind, PipelinePrompts::released());
    c.max_new_tokens = 12;
    c
}

fn run(
    m: &Owl2,
    s: &Scorer,
    c: &PipelineConfig,
    batch: usize,
    seed: u64,
) -> Result<Vec<Assessment>> {
    m.assess_paths(c, s, &images(), seed, batch, |_| {})
        .into_iter()
        .map(|r| r.map_err(Into::into))
        .collect()
}

/// The level-word softmax of `logits` over the scorer's ids.
fn level_probs(s: &Scorer, logits: &[f32]) -> Vec<f64> {
    s.score(logits).probs
}

#[test]
fn direct_equals_the_qalign_scorer() -> Result<()> {
    let (m, s) = load()?;
    let a = run(&m, &s, &config(PipelineKind::Direct), 2, 0)?;
    let want = m.score_paths(&images(), &s, 1, |_| {})?;
    for (a, w) in a.iter().zip(&want) {
        ensure!(
            (a.score - w.score).abs() <= 1e-6,
            "{} vs {}",
            a.score,
            w.score
        );
        for (p, q) in a.probs.iter().zip(&w.probs) {
            ensure!((p - q).abs() <= 1e-6);
        }
        ensure!(a.probs_at == ProbsAt::Direct && a.passes.len() == 1);
        ensure!(a.level.is_some() && a.conclusion.starts_with("The quality of the image is"));
    }
    Ok(())
}

#[test]
fn two_stage_second_pass_is_text_only_and_its_probs_are_a_text_forward() -> Result<()> {
    let (m, s) = load()?;
    let c = config(PipelineKind::TwoStage);
    for a in run(&m, &s, &c, 3, 0)? {
        ensure!(a.passes.len() == 2);
        let (p1, p2) = (&a.passes[0], &a.passes[1]);
        ensure!(p1.kind == PassKind::Image && p2.kind == PassKind::Text);
        ensure!(p1.prompt_ids.iter().filter(|&&i| i == -200).count() == 1);
        ensure!(
            !p2.prompt_ids.contains(&-200),
            "the second pass sees an image"
        );
        // An independent text-only forward of the same ids: prompt + answer prefix (+ probe).
        let mut ids: Vec<u32> = p2.prompt_ids.iter().map(|&i| i as u32).collect();
        match a.probs_at {
            ProbsAt::Answer { pass, token } => {
                ensure!(pass == 1);
                ids.extend(&p2.token_ids[..token]);
            }
            ProbsAt::Probe => {
                let eos = &m.net.llm.config.eos_token_ids;
                ids.extend(p2.token_ids.iter().filter(|t| !eos.contains(t)));
                ids.extend(m.tokenizer().encode(&c.prompts.conclusion_probe, false));
            }
            ProbsAt::Direct => anyhow::bail!("a generating pipeline read the direct position"),
        }
        let logits = m.text_logits(&ids)?;
        let want = level_probs(&s, &logits);
        for (p, q) in a.probs.iter().zip(&want) {
            ensure!((p - q).abs() <= 1e-4, "{:?} vs {want:?}", a.probs);
        }
        ensure!(a.description.as_deref() == Some(p1.text.trim()));
        ensure!(a.conclusion == p2.text.trim());
    }
    Ok(())
}

#[test]
fn passes_are_the_models_own_greedy_answers() -> Result<()> {
    let (m, s) = load()?;
    for kind in [PipelineKind::OneStage, PipelineKind::TwoStage] {
        let c = config(kind);
        let a = run(&m, &s, &c, 1, 0)?;
        let prompt = match kind {
            PipelineKind::OneStage => c.prompts.one_stage_prompt(),
            _ => c.prompts.stage1_prompt(),
        };
        let greedy = GenerationConfig {
            max_new_tokens: 12,
            stop_tokens: m.net.llm.config.eos_token_ids.clone(),
            sampling: Sampling::Greedy,
            seed: 0,
            keep_logits: false,
        };
        for (img, a) in images().iter().zip(&a) {
            let g = m.generate(&prompt, Some(m.pixels(&[img])?), &greedy, |_| {})?;
            ensure!(a.passes[0].token_ids == g.token_ids, "{kind}");
            if kind == PipelineKind::TwoStage {
                let g2 = m.generate(
                    &c.prompts.stage2_prompt(&a.passes[0].text),
                    None,
                    &greedy,
                    |_| {},
                )?;
                ensure!(a.passes[1].token_ids == g2.token_ids);
            }
        }
    }
    Ok(())
}

#[test]
fn a_batch_equals_single_images_greedy_and_sampled() -> Result<()> {
    let (m, s) = load()?;
    for kind in [PipelineKind::OneStage, PipelineKind::TwoStage] {
        for sampling in [
            Sampling::Greedy,
            Sampling::Sample {
                temperature: 1.0,
                top_k: None,
                top_p: Some(0.9),
            },
        ] {
            let mut c = config(kind);
            c.sampling = sampling;
            let batch = run(&m, &s, &c, 3, 7)?;
            let single = run(&m, &s, &c, 1, 7)?;
            for (b, o) in batch.iter().zip(&single) {
                ensure!(b.description == o.description && b.conclusion == o.conclusion);
                for (pb, po) in b.passes.iter().zip(&o.passes) {
                    ensure!(pb.token_ids == po.token_ids, "{kind} {sampling:?}");
                }
                for (p, q) in b.probs.iter().zip(&o.probs) {
                    ensure!((p - q).abs() <= 1e-4);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn an_unreadable_image_fails_only_its_slot() -> Result<()> {
    let (m, s) = load()?;
    let tmp = tempfile::tempdir()?;
    let bad = tmp.path().join("broken.png");
    std::fs::write(&bad, b"not a png")?;
    let mut paths = images();
    paths.insert(1, bad.clone());
    let out = m.assess_paths(&config(PipelineKind::Direct), &s, &paths, 0, 4, |_| {});
    ensure!(out.len() == 4);
    ensure!(out[0].is_ok() && out[2].is_ok() && out[3].is_ok());
    let err = out[1]
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    ensure!(err.contains("broken.png"), "{err}");
    Ok(())
}

#[test]
fn passes_say_why_generation_stopped() -> Result<()> {
    let (m, s) = load()?;
    let a = run(&m, &s, &config(PipelineKind::TwoStage), 3, 0)?;
    for a in &a {
        for p in &a.passes {
            let reason = p
                .stop_reason
                .ok_or_else(|| anyhow::anyhow!("no stop_reason"))?;
            ensure!(p.stopped == (reason == biqa_model::StopReason::Eos));
            if reason == biqa_model::StopReason::MaxTokens {
                ensure!(p.token_ids.len() == 12);
            }
            let json = serde_json::to_value(p)?;
            ensure!(json["stop_reason"] == serde_json::to_value(reason)?);
        }
    }
    // Direct reads the answer without generating: no stop reason, none serialised.
    let d = run(&m, &s, &config(PipelineKind::Direct), 3, 0)?;
    ensure!(d[0].passes[0].stop_reason.is_none());
    ensure!(
        serde_json::to_value(&d[0].passes[0])?
            .get("stop_reason")
            .is_none()
    );
    Ok(())
}
