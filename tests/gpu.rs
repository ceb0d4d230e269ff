//! The model on the code a GPU runs: every path (score, describe, seeded sampling, probes, a full fine-tuning step
//! and a LoRA step) in f32 and in bf16, against the `tiny-owl2` and `train-step` fixtures, with their tolerances
//! (f32: scores, probabilities and level logits ≤ 1e-4, greedy tokens equal, the training loss ≤ 1e-5 relative;
//! bf16: scores within 2e-2 of the f32 fixture, the loss within 2e-2 relative).
//!
//! The fused flex kernels are switched off in this test binary ([`biqa_kernels::set_fused`]), so each case runs the
//! plain burn compositions that CUDA runs. Every case runs twice:
//! - `plain_flex`, always, on the CPU;
//! - `cuda`, on `cuda:0`: only in a build with `--features cuda` (otherwise it is listed as ignored, with the reason).
//!   In such a build, a host without a working CUDA device fails the case with the driver's message rather than
//!   passing it. `scripts/gpu-check.sh` runs these on a GPU host (`BIQA_FIXTURES` points the carried test binary
//!   at the fixtures).

#![allow(missing_docs)]

#[path = "../crates/train/tests/shared/train_step_batch.rs"]
mod train_step_batch;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, ensure};
use biqa_checkpoint::FloatPolicy;
use biqa_decoder::{GenerationConfig, Sampling};
use biqa_model::{LoadOptions, Owl2, Scorer, ScoringPrompt};
use biqa_probes::LensConfig;
use biqa_testkit::{Arrays, fixture, fixture_json, host};
use biqa_train::optim::{AdamWConfig, global_grad_norm};
use biqa_train::params::collect_grads;
use biqa_train::{ForwardLoss, Owl2Net, TrainablePolicy};
use burn::tensor::Device;
use serde_json::Value;

const IMAGES: [&str; 2] = ["astronaut_96x96", "coffee_96x64"];

/// The fused flex kernels off for this whole binary (idempotent; every case calls it first).
fn plain() {
    biqa_kernels::set_fused(false);
}

fn cuda() -> Result<Device> {
    biqa::device::DeviceKind::Cuda(0)
        .device()
        .map_err(|e| anyhow!("the cuda case needs a working CUDA device: {e}"))
}

/// One module per case, with a `plain_flex` and a `cuda` test.
macro_rules! on_devices {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn plain_flex() -> anyhow::Result<()> {
                super::plain();
                super::$case(&burn::tensor::Device::flex(), true)
            }

            #[test]
            #[cfg_attr(
                not(feature = "cuda"),
                ignore = "needs a build with --features cuda and a CUDA device (scripts/gpu-check.sh)"
            )]
            fn cuda() -> anyhow::Result<()> {
                super::plain();
                super::$case(&super::cuda()?, false)
            }
        }
    )*};
}

on_devices!(
    score_and_greedy_f32,
    score_describe_sample_bf16,
    probes_f32,
    probes_bf16,
    train_steps_f32,
    train_steps_bf16,
);

fn image(name: &str) -> PathBuf {
    fixture(&format!("tiny-owl2/images/{name}.png"))
}

fn expected() -> Result<Value> {
    fixture_json("tiny-owl2/expected/expected.json")
}

fn load(device: &Device, policy: FloatPolicy) -> Result<Owl2> {
    let options = LoadOptions {
        policy,
        ..Default::default()
    };
    Ok(Owl2::from_dir(fixture("tiny-owl2"), device, &options)?)
}

fn greedy(n: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: n,
        stop_tokens: vec![2],
        sampling: Sampling::Greedy,
        seed: 0,
        keep_logits: false,
    }
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// f32: scores, probabilities and level logits of both images ≤ 1e-4 from the fixture, the batch of both equal to
/// the single runs, greedy tokens and text equal.
fn score_and_greedy_f32(device: &Device, _cpu: bool) -> Result<()> {
    let model = load(device, FloatPolicy::F32)?;
    let exp = expected()?;
    let scorer = Scorer::new(model.tokenizer(), ScoringPrompt::Qalign, None)?;
    let paths: Vec<PathBuf> = IMAGES.iter().map(|n| image(n)).collect();
    let singles: Vec<_> = paths
        .iter()
        .map(|p| {
            Ok(model
                .score_paths(std::slice::from_ref(p), &scorer, 1, |_| {})?
                .remove(0))
        })
        .collect::<Result<_>>()?;
    for (name, r) in IMAGES.iter().zip(&singles) {
        let e = &exp["variants"]["f32_safetensors"]["per_image"][*name]["qalign"];
        let want = e["score_0_1"].as_f64().context("score_0_1")?;
        ensure!(
            (r.score - want).abs() <= 1e-4,
            "{name}: score {} vs {want}",
            r.score
        );
        let d = max_diff(&r.probs, &f64s(&e["probs"]));
        ensure!(d <= 1e-4, "{name}: probabilities differ by {d}");
        let lvl: Vec<f64> = r.level_logits.iter().map(|&x| f64::from(x)).collect();
        let d = max_diff(&lvl, &f64s(&e["level_logits"]));
        ensure!(d <= 1e-4, "{name}: level logits differ by {d}");
    }
    let batch = model.score_paths(&paths, &scorer, 2, |_| {})?;
    for (b, s) in batch.iter().zip(&singles) {
        ensure!(
            (b.score - s.score).abs() <= 1e-5,
            "batch {} vs single {}",
            b.score,
            s.score
        );
    }
    let arr = Arrays::fixture("tiny-owl2/expected/expected.safetensors")?.f32_map();
    for name in IMAGES {
        let g = model.describe(&image(name), &greedy(12), |_| {})?;
        let want: Vec<u32> = arr[&format!("f32_safetensors.{name}.generate.new_tokens")]
            .iter()
            .map(|&t| t as u32)
            .collect();
        ensure!(
            g.token_ids == want,
            "{name}: greedy tokens {:?} vs {want:?}",
            g.token_ids
        );
        let text =
            exp["variants"]["f32_safetensors"]["per_image"][name]["generate"]["text_skip_special"]
                .as_str()
                .context("text")?;
        ensure!(g.text == text, "{name}: text {:?} vs {text:?}", g.text);
    }
    Ok(())
}

/// bf16 parameters and activations: scores within 2e-2 of the f32 fixture; greedy descriptions and seeded
/// sampling run, stay in the vocabulary, and the same seed gives the same tokens.
fn score_describe_sample_bf16(device: &Device, _cpu: bool) -> Result<()> {
    let model = load(device, FloatPolicy::Bf16)?;
    let exp = expected()?;
    let scorer = Scorer::new(model.tokenizer(), ScoringPrompt::Qalign, None)?;
    for name in IMAGES {
        let r = model
            .score_paths(&[image(name)], &scorer, 1, |_| {})?
            .remove(0);
        let want = exp["variants"]["f32_safetensors"]["per_image"][name]["qalign"]["score_0_1"]
            .as_f64()
            .context("score_0_1")?;
        ensure!(
            (r.score - want).abs() <= 2e-2,
            "{name}: bf16 score {} vs f32 {want}",
            r.score
        );
        ensure!(
            r.probs.iter().all(|p| p.is_finite()),
            "{name}: probabilities"
        );
        let g = model.describe(&image(name), &greedy(12), |_| {})?;
        ensure!(!g.token_ids.is_empty(), "{name}: no greedy token");
        ensure!(
            g.token_ids.iter().all(|&t| t < 512),
            "{name}: {:?}",
            g.token_ids
        );
        let sampled = GenerationConfig {
            sampling: Sampling::Sample {
                temperature: 1.0,
                top_k: Some(50),
                top_p: Some(0.9),
            },
            seed: 7,
            ..greedy(12)
        };
        let a = model.describe(&image(name), &sampled, |_| {})?;
        let b = model.describe(&image(name), &sampled, |_| {})?;
        ensure!(
            a.token_ids == b.token_ids,
            "{name}: the same seed sampled {:?} then {:?}",
            a.token_ids,
            b.token_ids
        );
        ensure!(
            a.token_ids.iter().all(|&t| t < 512),
            "{name}: {:?}",
            a.token_ids
        );
    }
    // Text-only generation (the second pass of the two-stage inference).
    let prompt = biqa_model::Conversation::MplugOwl2.render(&[(
        "The photo is sharp and well exposed. How would you rate its quality?",
        None,
    )]);
    let g = model.generate(&prompt, None, &greedy(8), |_| {})?;
    ensure!(
        !g.token_ids.is_empty() && g.token_ids.iter().all(|&t| t < 512),
        "text-only generation: {:?}",
        g.token_ids
    );
    Ok(())
}

/// The logit lens and the quality token's attention: finite, level mass at most 1, and (off the CPU) equal to the
/// plain CPU run's to 1e-4.
fn probes_f32(device: &Device, cpu: bool) -> Result<()> {
    probes(device, cpu, FloatPolicy::F32, 1e-4)
}

/// As [`probes_f32`] with bf16 parameters; off the CPU within 5e-2 of the plain CPU bf16 run.
fn probes_bf16(device: &Device, cpu: bool) -> Result<()> {
    probes(device, cpu, FloatPolicy::Bf16, 5e-2)
}

fn probes(device: &Device, cpu: bool, policy: FloatPolicy, tol: f64) -> Result<()> {
    let run = |device: &Device| -> Result<(Vec<f64>, Vec<f64>)> {
        let model = load(device, policy)?;
        let config = LensConfig {
            layers: None,
            top_k: 3,
            levels: biqa_probes::owl2::qalign_levels(&model)?,
        };
        let lens = biqa_probes::owl2::qalign_lens(&model, &image(IMAGES[0]), &config)?;
        let mut probs = Vec::new();
        for layer in &lens.layers {
            let s: f64 = layer.level_probs.iter().sum();
            ensure!(
                layer.level_probs.iter().all(|p| p.is_finite()),
                "lens layer {}",
                layer.layer
            );
            ensure!(
                s <= 1.0 + 1e-6,
                "lens layer {}: level mass {s}",
                layer.layer
            );
            probs.extend(&layer.level_probs);
        }
        let map = biqa_probes::owl2::quality_attention(&model, &image(IMAGES[0]), &[0, 1], None)?;
        let shares: Vec<f64> = map.map.iter().flatten().copied().collect();
        ensure!(shares.iter().all(|s| s.is_finite()), "attention shares");
        Ok((probs, shares))
    };
    let (lens, att) = run(device)?;
    if !cpu {
        let (lens_cpu, att_cpu) = run(&Device::flex())?;
        let d = max_diff(&lens, &lens_cpu);
        ensure!(
            d <= tol,
            "lens level probabilities differ from the CPU's by {d}"
        );
        let d = max_diff(&att, &att_cpu);
        ensure!(d <= tol, "attention shares differ from the CPU's by {d}");
    }
    Ok(())
}

/// One step of each kind on the autodiff `device`: its loss (the fixture's `loss.a_plain_ce` to `tol` relative),
/// the global gradient norm (LoRA: finite and positive; full: the fixture's to `tol`), and the loss after one
/// AdamW step (finite, and different).
fn train_steps(device: &Device, policy: FloatPolicy, tol: f64) -> Result<()> {
    let e = Arrays::fixture("train-step/train_step.safetensors")?;
    let want_loss = f64::from(e.f32("loss.a_plain_ce")?[0]);
    let want_norm = f64::from(e.f32("grad_norm.step1")?[0]);
    let ad = device.clone().autodiff();
    let options = LoadOptions {
        policy,
        ..Default::default()
    };
    let (net, assets) = Owl2::from_dir(fixture("tiny-owl2"), &ad, &options)?.into_parts();
    let batch = train_step_batch::fixture_batch(&assets, 9)?;
    let pixels = || -> Result<_> {
        let p = assets.preprocessor.as_ref().context("preprocessor")?;
        Ok(p.preprocess_paths(&batch.images)?.to_tensor(&ad))
    };
    let step = |model: Owl2Net, full: bool| -> Result<()> {
        let what = if full { "full" } else { "LoRA" };
        let out = model.forward_loss(&batch, Some(pixels()?), 0.0)?;
        let loss = f64::from(host(out.loss.clone().inner())[0]);
        ensure!(
            ((loss - want_loss) / want_loss).abs() <= tol,
            "{what}: loss {loss} vs the fixture's {want_loss}"
        );
        let mut g = out.loss.backward();
        let grads = collect_grads(&model, &mut g);
        let norm = global_grad_norm(&grads);
        ensure!(
            norm.is_finite() && norm > 0.0,
            "{what}: gradient norm {norm} over {} gradients",
            grads.len()
        );
        if full {
            ensure!(
                ((norm - want_norm) / want_norm).abs() <= tol.max(1e-4),
                "{what}: gradient norm {norm} vs the fixture's {want_norm}"
            );
        }
        let model = train_step_batch::fixture_adamw().step(model, 1e-3, grads);
        let after = model.forward_loss(&batch, Some(pixels()?), 0.0)?;
        let after = f64::from(host(after.loss.inner())[0]);
        ensure!(
            after.is_finite() && after != loss,
            "{what}: loss after one step {after} (before {loss})"
        );
        Ok(())
    };
    step(net.clone(), true)?;
    // Q-Align's LoRA without dropout: B starts at 0, so the first loss is the base model's.
    let mut lora = TrainablePolicy::qalign_lora();
    if let Some(l) = lora.lora.as_mut() {
        l.dropout = 0.0;
        l.rank = 8;
        l.alpha = 16.0;
    }
    step(lora.apply(net)?, false)
}

fn train_steps_f32(device: &Device, _cpu: bool) -> Result<()> {
    train_steps(device, FloatPolicy::F32, 1e-5)
}

fn train_steps_bf16(device: &Device, _cpu: bool) -> Result<()> {
    train_steps(device, FloatPolicy::Bf16, 2e-2)
}

/// burn's all-reduce (NCCL) over two CUDA devices gives the steps of gradient accumulation on one: same tokens,
/// losses and gradient norms to 1e-4 relative, over 3 steps of the one-stage recipe on a small synthetic set.
#[test]
#[ignore = "needs --features cuda and two CUDA devices (scripts/gpu-check.sh runs it with --ignored when the host has two)"]
fn all_reduce_over_two_gpus_equals_accumulation() -> Result<()> {
    use biqa_train::{GradientSync, Recipe, Silent, TrainConfig};
    plain();
    let d0 = cuda()?;
    let d1 = biqa::device::DeviceKind::Cuda(1)
        .device()
        .map_err(|e| anyhow!("needs a second CUDA device: {e}"))?;
    let data = tempfile::tempdir()?;
    biqa_data::synth(data.path(), 1, 7, &mut |_, _| {})?;
    let outs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let config = |out: &std::path::Path, accumulation: usize| TrainConfig {
        model: fixture("tiny-owl2"),
        output: out.to_owned(),
        recipe: Recipe::OneStage { steps: 3 },
        data: biqa_train::DataConfig {
            one_stage: Some(data.path().join("one_stage_train.json")),
            image_folder: Some(data.path().to_owned()),
            ..biqa_train::DataConfig::default()
        },
        batch_size: 2,
        grad_accumulation: accumulation,
        lr: 2e-3,
        stage2_lr: None,
        schedule: biqa_train::Schedule::Constant,
        warmup_ratio: 0.0,
        max_grad_norm: Some(1.0),
        label_smoothing: 0.0,
        optimizer: AdamWConfig::default(),
        trainable: TrainablePolicy::default(),
        seed: 3,
        checkpoint_every: 0,
        keep_checkpoints: 2,
        eval: None,
        stop_after: None,
    };
    let one = biqa_train::train(&config(outs[0].path(), 2), &d0, false, &mut Silent)?;
    let two = biqa_train::train_distributed(
        &config(outs[1].path(), 1),
        &[d0, d1],
        GradientSync::AllReduce,
        false,
        &mut Silent,
    )?;
    ensure!(one.steps.len() == 3 && two.steps.len() == 3, "step counts");
    for (x, y) in one.steps.iter().zip(&two.steps) {
        ensure!(x.tokens == y.tokens, "step {}: tokens", x.global_step);
        ensure!(
            (x.loss - y.loss).abs() <= 1e-4 * x.loss.abs(),
            "step {}: loss {} (accumulation) vs {} (all-reduce)",
            x.global_step,
            x.loss,
            y.loss
        );
        ensure!(
            (x.grad_norm - y.grad_norm).abs() <= 1e-4 * x.grad_norm.abs(),
            "step {}: gradient norm {} vs {}",
            x.global_step,
            x.grad_norm,
            y.grad_norm
        );
    }
    Ok(())
}
