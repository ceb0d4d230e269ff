//! Loss, gradients and AdamW against the original mPLUG-Owl2 training code (`tests/fixtures/train-step`), in the
//! fixture README's recommended order, with its tolerances:
//! the CE formulas from the stored logits; AdamW alone from the stored gradients; the full forward and backward
//! (`loss.a`, `grad1/*`, every parameter's gradient norm, the global norm, the exact zeros); two optimiser steps;
//! the label-smoothed gradient; the frozen-vision run.

#[path = "shared/train_step_batch.rs"]
mod train_step_batch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Result, anyhow, ensure};
use biqa_testkit::{Arrays, ensure_rel_close, fixture, fixture_json, host, max_abs_diff};
use biqa_train::batch::ExpandedBatch;
use biqa_train::optim::global_grad_norm;
use biqa_train::params::{FlatGrad, ParamInfo, collect_grads, param_infos, param_values};
use biqa_train::{ForwardLoss, Owl2Assets, Owl2Net, label_smoothed_nll, load_model};
use burn::module::{Module, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

fn model_dir() -> PathBuf {
    fixture("tiny-owl2")
}

/// Every tensor of the fixture (the int64 ones as f32 too), by name.
fn expected() -> Result<Arrays> {
    Arrays::fixture("train-step/train_step.safetensors")
}

fn results() -> Result<Value> {
    Ok(fixture_json("train-step/index.json")?["results"].clone())
}

fn scalar(e: &Arrays, name: &str) -> Result<f64> {
    Ok(f64::from(e.f32(name)?[0]))
}

/// The fixture's batch: `--version v1`, `[single_image, text_only]`, expanded with 9 image tokens.
fn fixture_batch(assets: &Owl2Assets) -> Result<ExpandedBatch> {
    Ok(train_step_batch::fixture_batch(assets, 9)?)
}

fn pixels(assets: &Owl2Assets, batch: &ExpandedBatch, device: &Device) -> Result<Tensor<4>> {
    let p = assets
        .preprocessor
        .as_ref()
        .ok_or_else(|| anyhow!("no preprocessor"))?;
    Ok(p.preprocess_paths(&batch.images)?.to_tensor(device))
}

/// Parameter infos by checkpoint name.
fn by_name(model: &Owl2Net) -> BTreeMap<String, ParamInfo> {
    param_infos(model)
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect()
}

/// A gradient or value in the checkpoint's layout.
fn ckpt_values(info: &ParamInfo, flat: &[f32]) -> Vec<f32> {
    info.layout.to_checkpoint(flat, &info.shape).1
}

const SELECTED: [&str; 11] = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.multiway.0.weight",
    "model.layers.0.self_attn.k_proj.multiway.1.weight",
    "model.layers.1.mlp.down_proj.weight",
    "lm_head.weight",
    "model.visual_abstractor.query_embeds",
    "model.visual_abstractor.visual_fc.weight",
    "model.visual_abstractor.visual_fc.bias",
    "model.vision_model.embeddings.patch_embed.weight",
    "model.visual_abstractor.vit_eos",
];

const SMALL: [&str; 3] = [
    "model.visual_abstractor.vit_eos",
    "model.visual_abstractor.visual_fc.bias",
    "model.visual_abstractor.query_embeds",
];

#[test]
fn parameter_names_are_the_checkpoint_names() -> Result<()> {
    let (model, _) = load_model(model_dir(), &Device::flex())?;
    let names: Vec<String> = param_infos(&model).into_iter().map(|p| p.name).collect();
    let results = results()?;
    let per_param = results["per_param_grad_norm"]
        .as_object()
        .ok_or_else(|| anyhow!("per_param_grad_norm"))?;
    let mut want: Vec<&String> = per_param.keys().collect();
    let mut got: Vec<&String> = names.iter().collect();
    want.sort();
    got.sort();
    ensure!(got == want, "parameter names differ:\n{got:?}\n{want:?}");
    ensure!(names.len() == 108);
    Ok(())
}

#[test]
fn cross_entropy_formulas_from_the_stored_logits() -> Result<()> {
    let e = expected()?;
    let (shape, logits) = e.shaped_f32("sup.logits")?;
    let targets: Vec<u32> = e.f32("sup.targets")?.iter().map(|&t| t as u32).collect();
    let device = Device::flex();
    let t = Tensor::<2>::from_data(TensorData::new(logits, [shape[0], shape[1]]), &device);
    let a = host(label_smoothed_nll(t.clone(), &targets, 0.0)?)[0];
    let b = host(label_smoothed_nll(t, &targets, 0.1)?)[0];
    ensure_rel_close("loss a", f64::from(a), scalar(&e, "loss.a_plain_ce")?, 1e-5)?;
    ensure_rel_close(
        "loss b",
        f64::from(b),
        scalar(&e, "loss.b_label_smoothing_0.1")?,
        1e-5,
    )?;
    Ok(())
}

#[test]
fn adamw_alone_from_the_stored_gradients() -> Result<()> {
    let e = expected()?;
    let (model, _) = load_model(model_dir(), &Device::flex())?;
    let infos = by_name(&model);
    let before = param_values(&model);
    let mut grads: HashMap<ParamId, FlatGrad> = HashMap::new();
    for name in SELECTED {
        let info = &infos[name];
        let g = info.layout.from_checkpoint(
            &stored_grad(&e, &format!("grad1/{name}"), info)?,
            &info.shape,
        );
        grads.insert(
            info.id,
            Tensor::from_data(TensorData::new(g, [info.numel]), &Device::flex()),
        );
    }
    let mut opt = train_step_batch::fixture_adamw();
    let model = opt.step(model, 1e-3, grads.clone());
    let after = param_values(&model);
    check_values(&e, &infos, &after, "step1", &SELECTED, 3e-7)?;
    // Embedding rows without a gradient are only decayed: w0 · f32(1 − lr·wd), exactly.
    let emb = &infos["model.embed_tokens.weight"];
    let rows: Vec<usize> = e.f32("embed_rows")?.iter().map(|&r| r as usize).collect();
    let (w0, w1) = (host(before[&emb.id].clone()), host(after[&emb.id].clone()));
    let h = emb.shape[1];
    let f = (1.0f64 - 1e-3 * 0.01) as f32;
    for r in (0..emb.shape[0]).filter(|r| !rows.contains(r)) {
        for j in r * h..(r + 1) * h {
            ensure!(w1[j] == w0[j] * f, "embed row {r}: only decayed, exactly");
        }
    }
    // Parameters without a gradient are untouched (no weight decay either).
    for info in infos
        .values()
        .filter(|i| !SELECTED.contains(&i.name.as_str()))
    {
        ensure!(
            host(after[&info.id].clone()) == host(before[&info.id].clone()),
            "{} changed without a gradient",
            info.name
        );
    }
    for name in SMALL {
        let st = &opt.states[&infos[name].id];
        let m = ckpt_values(&infos[name], &host(st.exp_avg.clone()));
        let v = ckpt_values(&infos[name], &host(st.exp_avg_sq.clone()));
        for (got, key) in [(m, "adam1.exp_avg"), (v, "adam1.exp_avg_sq")] {
            let want = e.f32(&format!("{key}/{name}"))?;
            for (g, w) in got.iter().zip(want) {
                ensure!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1e-30),
                    "{key}/{name}: {g} vs {w}"
                );
            }
        }
    }
    Ok(())
}

/// Forward + backward on the autodiff device: (loss, grads by id, supervised logits).
fn forward_backward(
    model: &Owl2Net,
    assets: &Owl2Assets,
    batch: &ExpandedBatch,
    epsilon: f64,
) -> Result<(f64, HashMap<ParamId, FlatGrad>, Vec<f32>)> {
    let device = model.llm.device();
    let px = pixels(assets, batch, &device)?;
    let out = model.forward_loss(batch, Some(px), epsilon)?;
    let loss = f64::from(host(out.loss.clone().inner())[0]);
    let mut g = out.loss.backward();
    let grads = collect_grads(model, &mut g);
    let n = out.tokens;
    let v = out.logits.dims()[1];
    let logits = host(out.logits.inner().reshape([n * v]));
    Ok((loss, grads, logits))
}

/// A stored gradient in the checkpoint layout, whole: `grad1/model.embed_tokens.weight` holds only the rows in
/// `embed_rows`, every other row is exactly 0.
fn stored_grad(e: &Arrays, key: &str, info: &ParamInfo) -> Result<Vec<f32>> {
    let stored = e.f32(key)?;
    if stored.len() == info.numel {
        return Ok(stored.to_vec());
    }
    let rows: Vec<usize> = e.f32("embed_rows")?.iter().map(|&r| r as usize).collect();
    let h = info.shape[1];
    ensure!(stored.len() == rows.len() * h, "{key}: unexpected size");
    let mut full = vec![0.0; info.numel];
    for (i, r) in rows.iter().enumerate() {
        full[r * h..(r + 1) * h].copy_from_slice(&stored[i * h..(i + 1) * h]);
    }
    Ok(full)
}

/// Our whole value (checkpoint layout) cut to what the fixture stores under `key` (the `embed_rows` rows of the
/// embedding, everything otherwise).
fn as_stored(e: &Arrays, key: &str, info: &ParamInfo, ours: Vec<f32>) -> Result<Vec<f32>> {
    if e.f32(key)?.len() == ours.len() {
        return Ok(ours);
    }
    let rows: Vec<usize> = e.f32("embed_rows")?.iter().map(|&r| r as usize).collect();
    let h = info.shape[1];
    Ok(rows
        .iter()
        .flat_map(|r| ours[r * h..(r + 1) * h].iter().copied())
        .collect())
}

/// Compares the parameters in `names` after a step with the fixture's `{prefix}/{name}`.
fn check_values(
    e: &Arrays,
    infos: &BTreeMap<String, ParamInfo>,
    values: &HashMap<ParamId, Tensor<1>>,
    prefix: &str,
    names: &[&str],
    tol: f32,
) -> Result<()> {
    for name in names {
        let info = &infos[*name];
        let key = format!("{prefix}/{name}");
        let got = as_stored(
            e,
            &key,
            info,
            ckpt_values(info, &host(values[&info.id].clone())),
        )?;
        let d = max_abs_diff(&got, e.f32(&key)?);
        ensure!(d <= tol, "{key} differs by {d}");
    }
    Ok(())
}

fn check_grads(
    e: &Arrays,
    infos: &BTreeMap<String, ParamInfo>,
    grads: &HashMap<ParamId, FlatGrad>,
    prefix: &str,
    names: &[&str],
) -> Result<()> {
    for name in names {
        let info = &infos[*name];
        let g = grads
            .get(&info.id)
            .ok_or_else(|| anyhow!("{name} has no gradient"))?;
        let got = ckpt_values(info, &host(g.clone()));
        let want = &stored_grad(e, &format!("{prefix}/{name}"), info)?;
        let max_ref = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let tol = (1e-4 * max_ref).max(1e-5);
        let d = max_abs_diff(&got, want);
        ensure!(d <= tol, "{prefix}/{name}: max |Δ| {d} > {tol}");
    }
    Ok(())
}

#[test]
fn full_forward_backward_and_two_adamw_steps() -> Result<()> {
    let e = expected()?;
    let results = results()?;
    let device = Device::flex().autodiff();
    let (model, assets) = load_model(model_dir(), &device)?;
    let batch = fixture_batch(&assets)?;
    let infos = by_name(&model);

    // The batch's image is the fixture's pixels exactly.
    let px = pixels(&assets, &batch, &Device::flex())?;
    let px: Vec<f32> = px
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("{e:?}"))?;
    ensure!(px == e.f32("batch.images_row0")?, "pixels differ");

    // Step 1: loss (a), supervised logits, gradients.
    let (loss, grads, logits) = forward_backward(&model, &assets, &batch, 0.0)?;
    ensure_rel_close("loss a", loss, scalar(&e, "loss.a_plain_ce")?, 1e-5)?;
    let d = max_abs_diff(&logits, e.f32("sup.logits")?);
    ensure!(d <= 1e-4, "sup.logits differ by {d}");
    check_grads(&e, &infos, &grads, "grad1", &SELECTED)?;
    ensure_rel_close(
        "grad norm 1",
        global_grad_norm(&grads),
        scalar(&e, "grad_norm.step1")?,
        1e-5,
    )?;
    let per_param = results["per_param_grad_norm"]
        .as_object()
        .ok_or_else(|| anyhow!("per_param_grad_norm"))?;
    ensure!(grads.len() == 108, "{} gradients", grads.len());
    for (name, norms) in per_param {
        let want = norms[0].as_f64().ok_or_else(|| anyhow!("{name}"))?;
        let g = host(grads[&infos[name].id].clone());
        let got = g.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        if want == 0.0 {
            ensure!(
                g.iter().all(|&x| x == 0.0),
                "{name}: the gradient must be exactly 0"
            );
        } else {
            // Mathematically zero gradients (the abstractor's key bias shifts every score of a query
            // equally) are rounding noise of ~1e-9 in both implementations: an absolute floor.
            ensure!(
                (got - want).abs() <= 1e-4 * want + 1e-6,
                "grad norm of {name}: got {got}, want {want}"
            );
        }
    }
    // Embedding rows outside the batch, and row 0 (pad), get exactly 0.
    let rows: Vec<usize> = e.f32("embed_rows")?.iter().map(|&r| r as usize).collect();
    let emb = &infos["model.embed_tokens.weight"];
    let g = host(grads[&emb.id].clone());
    let h = emb.shape[1];
    for r in 0..emb.shape[0] {
        if r == 0 || !rows.contains(&r) {
            ensure!(
                g[r * h..(r + 1) * h].iter().all(|&x| x == 0.0),
                "embed row {r} has a gradient"
            );
        }
    }

    // Step 1 of AdamW, then the forward of step 2.
    let mut opt = train_step_batch::fixture_adamw();
    let model = opt.step(model, 1e-3, grads.clone());
    check_values(&e, &infos, &param_values(&model), "step1", &SELECTED, 1e-4)?;
    let (loss2, grads2, _) = forward_backward(&model, &assets, &batch, 0.0)?;
    ensure_rel_close(
        "loss after step 1",
        loss2,
        scalar(&e, "loss.after_step1")?,
        1e-5,
    )?;
    ensure_rel_close(
        "grad norm 2",
        global_grad_norm(&grads2),
        scalar(&e, "grad_norm.step2")?,
        1e-5,
    )?;
    check_grads(&e, &infos, &grads2, "grad2", &SMALL)?;
    let model = opt.step(model, 1e-3, grads2.clone());
    check_values(&e, &infos, &param_values(&model), "step2", &SELECTED, 1e-4)?;
    for name in SMALL {
        let st = &opt.states[&infos[name].id];
        ensure!(st.step == 2);
        let m = ckpt_values(&infos[name], &host(st.exp_avg.clone()));
        let d = max_abs_diff(&m, e.f32(&format!("adam2.exp_avg/{name}"))?);
        ensure!(d <= 1e-6, "adam2.exp_avg/{name} differs by {d}");
    }
    let (loss3, _, _) = forward_backward(&model, &assets, &batch, 0.0)?;
    ensure_rel_close(
        "loss after step 2",
        loss3,
        scalar(&e, "loss.after_step2")?,
        1e-5,
    )?;
    Ok(())
}

#[test]
fn label_smoothed_gradient_and_frozen_vision() -> Result<()> {
    let e = expected()?;
    let device = Device::flex().autodiff();
    let (model, assets) = load_model(model_dir(), &device)?;
    let batch = fixture_batch(&assets)?;
    let infos = by_name(&model);

    let (loss_b, grads_b, _) = forward_backward(&model, &assets, &batch, 0.1)?;
    ensure_rel_close(
        "loss b",
        loss_b,
        scalar(&e, "loss.b_label_smoothing_0.1")?,
        1e-5,
    )?;
    check_grads(&e, &infos, &grads_b, "ls_grad1", &SMALL)?;
    let want = results()?["loss_b_backward_grad_norm"]
        .as_f64()
        .ok_or_else(|| anyhow!("loss_b_backward_grad_norm"))?;
    ensure_rel_close(
        "grad norm of loss b",
        global_grad_norm(&grads_b),
        want,
        1e-5,
    )?;

    // Frozen vision tower: 31 parameters without gradients, bit-identical after the step.
    let mut model = model;
    model.vision_model = model.vision_model.map(Module::no_grad);
    let before = param_values(&model);
    let (loss, grads, _) = forward_backward(&model, &assets, &batch, 0.0)?;
    ensure_rel_close("frozen loss", loss, scalar(&e, "loss.a_plain_ce")?, 1e-5)?;
    ensure!(
        grads.len() == 77,
        "{} gradients with the tower frozen",
        grads.len()
    );
    ensure_rel_close(
        "frozen norm",
        global_grad_norm(&grads),
        scalar(&e, "grad_norm.frozen_step1")?,
        1e-5,
    )?;
    check_grads(&e, &infos, &grads, "frozen_grad1", &SMALL)?;
    let mut opt = train_step_batch::fixture_adamw();
    let model = opt.step(model, 1e-3, grads.clone());
    let after = param_values(&model);
    let mut frozen = 0;
    for info in infos.values() {
        if info.name.starts_with("model.vision_model.") {
            frozen += 1;
            ensure!(
                host(after[&info.id].clone()) == host(before[&info.id].clone()),
                "{} changed while frozen",
                info.name
            );
        }
    }
    ensure!(frozen == 31);
    check_values(&e, &infos, &after, "frozen_step1", &SMALL, 1e-4)?;
    Ok(())
}

/// Tower and abstractor both frozen (they then run without autodiff, on the fused CPU kernels): the loss and the
/// LLM's gradients are the original's full-model ones, and the vision half has no gradient at all.
#[test]
fn frozen_vision_half_runs_outside_autodiff_with_the_same_loss_and_llm_gradients() -> Result<()> {
    let e = expected()?;
    let device = Device::flex().autodiff();
    let (mut model, assets) = load_model(model_dir(), &device)?;
    let batch = fixture_batch(&assets)?;
    let infos = by_name(&model);
    model.vision_model = model.vision_model.map(Module::no_grad);
    model.visual_abstractor = model.visual_abstractor.map(Module::no_grad);
    let (loss, grads, _) = forward_backward(&model, &assets, &batch, 0.0)?;
    ensure_rel_close("loss", loss, scalar(&e, "loss.a_plain_ce")?, 1e-5)?;
    let vision: Vec<&ParamInfo> = infos
        .values()
        .filter(|i| {
            i.name.starts_with("model.vision_model.")
                || i.name.starts_with("model.visual_abstractor.")
        })
        .collect();
    ensure!(
        vision.iter().all(|i| !grads.contains_key(&i.id)),
        "a frozen vision parameter has a gradient"
    );
    ensure!(
        grads.len() == infos.len() - vision.len(),
        "{} gradients for {} LLM parameters",
        grads.len(),
        infos.len() - vision.len()
    );
    let llm: Vec<&str> = SELECTED
        .iter()
        .copied()
        .filter(|n| {
            !n.starts_with("model.vision_model.") && !n.starts_with("model.visual_abstractor.")
        })
        .collect();
    ensure!(!llm.is_empty());
    check_grads(&e, &infos, &grads, "grad1", &llm)
}
