//! Trainable-parameter policies: freezing, LoRA (Q-Align's targets) with and without adapter dropout, the merge
//! export, and the 7B count.

use std::path::PathBuf;

use anyhow::{Result, anyhow, ensure};
use biqa_data::{ConversationRecord, Turn};
use biqa_decoder::LlamaConfig;
use biqa_testkit::{fixture, host, max_abs_diff};
use biqa_train::batch::{ExpandedBatch, collate, expand, pad_id};
use biqa_train::conversation::{TokenizeOptions, tokenize_record};
use biqa_train::optim::{AdamW, AdamWConfig};
use biqa_train::params::{collect_grads, param_infos, trainable_count};
use biqa_train::policy::seed_dropout;
use biqa_train::{ForwardLoss, Owl2Assets, Owl2Net, ParamCounts, TrainablePolicy, load_model};
use biqa_vision::{AbstractorConfig, VisionConfig};
use burn::module::Module;
use burn::tensor::Device;

fn model_dir() -> PathBuf {
    fixture("tiny-owl2")
}

fn batch(assets: &Owl2Assets) -> Result<ExpandedBatch> {
    let options = TokenizeOptions {
        image_folder: Some(model_dir().join("images")),
        ..TokenizeOptions::default()
    };
    let rec = ConversationRecord {
        id: "a".into(),
        image: Some("astronaut_96x96.png".into()),
        conversations: vec![
            Turn {
                from: "human".into(),
                value: "How would you rate the quality of this image?\n<|image|>".into(),
            },
            Turn {
                from: "gpt".into(),
                value: "The quality of the image is poor.".into(),
            },
        ],
        gt_score: None,
    };
    let s = tokenize_record(&assets.tokenizer, &rec, 0, &options)?;
    let b = collate([&s], pad_id(&assets.tokenizer), 2048)?;
    Ok(expand(&b, 9)?)
}

fn loss(model: &Owl2Net, assets: &Owl2Assets, b: &ExpandedBatch) -> Result<(f32, Vec<f32>)> {
    let device = model.llm.device();
    let p = assets
        .preprocessor
        .as_ref()
        .ok_or_else(|| anyhow!("preprocessor"))?
        .preprocess_paths(&b.images)?
        .to_tensor(&device);
    let out = model.forward_loss(b, Some(p), 0.0)?;
    let l = out
        .loss
        .inner()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("{e:?}"))?[0];
    let n = out.tokens * out.logits.dims()[1];
    let logits = out
        .logits
        .inner()
        .reshape([n])
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok((l, logits))
}

fn counts(model: &Owl2Net, policy: &TrainablePolicy) -> Result<ParamCounts> {
    let v = model
        .vision_model
        .as_ref()
        .ok_or_else(|| anyhow!("vision"))?;
    let a = model
        .visual_abstractor
        .as_ref()
        .ok_or_else(|| anyhow!("abstractor"))?;
    Ok(ParamCounts::of(
        &model.llm.config,
        &v.config,
        &a.config,
        model.llm.modalities(),
        policy,
    ))
}

#[test]
fn freezing_policies_count_what_trains() -> Result<()> {
    let device = Device::flex().autodiff();
    for policy in [
        TrainablePolicy::default(),
        TrainablePolicy {
            freeze_vision: true,
            ..TrainablePolicy::default()
        },
        TrainablePolicy {
            freeze_vision: true,
            freeze_llm: true,
            ..TrainablePolicy::default()
        },
    ] {
        let (model, _) = load_model(model_dir(), &device)?;
        let total: usize = param_infos(&model).iter().map(|p| p.numel).sum();
        let c = counts(&model, &policy)?;
        ensure!(
            c.vision + c.abstractor + c.llm == total,
            "analytic total {c:?} vs {total}"
        );
        let model = policy.apply(model)?;
        ensure!(
            trainable_count(&model) == c.trainable,
            "{policy:?}: {} trainable, analytic {}",
            trainable_count(&model),
            c.trainable
        );
    }
    Ok(())
}

#[test]
fn qalign_lora_trains_adapters_and_abstractor_then_merges() -> Result<()> {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    let (base, assets) = load_model(model_dir(), &device)?;
    let b = batch(&assets)?;
    let (loss0, logits0) = loss(&base, &assets, &b)?;

    let policy = TrainablePolicy::qalign_lora();
    let model = policy.apply(base)?;
    let c = counts(&model, &policy)?;
    ensure!(trainable_count(&model) == c.trainable);
    let infos = param_infos(&model);
    let lora: Vec<&str> = infos
        .iter()
        .filter(|p| p.is_lora)
        .map(|p| p.name.as_str())
        .collect();
    // 2 layers × (q_proj, v_proj.multiway.1) × (A, B).
    ensure!(lora.len() == 8, "{lora:?}");
    ensure!(lora.contains(&"model.layers.1.self_attn.v_proj.multiway.1.weight.lora_b"));
    // B = 0 at the start: the adapted model computes what the base did.
    let (loss1, _) = loss(&model, &assets, &b)?;
    ensure!((loss1 - loss0).abs() <= 1e-6, "{loss1} vs {loss0}");

    // Gradients reach exactly the trainable parameters.
    let out = {
        let p = assets
            .preprocessor
            .as_ref()
            .ok_or_else(|| anyhow!("preprocessor"))?
            .preprocess_paths(&b.images)?
            .to_tensor(&device);
        model.forward_loss(&b, Some(p), 0.0)?
    };
    let mut g = out.loss.backward();
    let grads = collect_grads(&model, &mut g);
    for p in &infos {
        ensure!(
            grads.contains_key(&p.id) == p.trainable,
            "{}: trainable {} but gradient {}",
            p.name,
            p.trainable,
            grads.contains_key(&p.id)
        );
    }
    let mut opt = AdamW::new(AdamWConfig::default());
    let model = opt.step(model, 1e-2, grads.clone());
    // Valid mode (Q-Align's default LoRA dropout 0.05 acts only in training mode).
    let (loss2, logits2) = loss(&model.valid(), &assets, &b)?;
    ensure!(
        loss2 < loss0,
        "one step did not lower the loss: {loss2} vs {loss0}"
    );
    ensure!(logits2 != logits0);

    // Merging folds the adapters into plain weights with the base names; the outputs stay.
    let merged = model.valid().merge_lora();
    let names: Vec<String> = param_infos(&merged).into_iter().map(|p| p.name).collect();
    ensure!(names.iter().all(|n| !n.contains("lora")));
    ensure!(names.len() == 108);
    let (loss3, logits3) = loss(&merged, &assets, &b)?;
    ensure!(
        (loss3 - loss2).abs() <= 1e-5,
        "merged loss {loss3} vs {loss2}"
    );
    let d = max_abs_diff(&logits3, &logits2);
    ensure!(d <= 1e-4, "merged logits differ by {d}");
    Ok(())
}

#[test]
fn qalign_lora_7b_trains_about_149m_parameters() -> Result<()> {
    let llm = LlamaConfig::mplug_owl2_7b();
    let vision = VisionConfig::vit_l14_448();
    let abstractor = AbstractorConfig::owl2_7b();
    let c = ParamCounts::of(
        &llm,
        &vision,
        &abstractor,
        2,
        &TrainablePolicy::qalign_lora(),
    );
    // LoRA r=128 on q_proj (4096→4096) and v_proj.multiway.1 (4096→4096) of 32 layers: 67,108,864; the whole
    // abstractor: 81,473,536 (6 layers of 1024 with a 2816 SwiGLU, 64 queries, visual_fc 1024→4096, vit_eos).
    ensure!(c.lora == 67_108_864, "{c:?}");
    ensure!(c.abstractor == 81_473_536, "{c:?}");
    ensure!(c.trainable == 148_582_400, "{c:?}");
    // The LLM: LLaMA-2-7B's 6,738,415,616 plus the image branches of k/v (32 × 2 × 4096²) and of the two norms
    // (32 × 2 × 4096); with the ViT-L/14-448 (303,966,208) and the abstractor, mPLUG-Owl2's 8.2 B.
    ensure!(
        c.llm == 6_738_415_616 + 32 * 2 * 4096 * 4096 + 32 * 2 * 4096,
        "{c:?}"
    );
    ensure!(c.vision == 303_966_208, "{c:?}");
    Ok(())
}

/// The flex generator is process-wide: the tests that draw random numbers (LoRA's A, dropout masks) take turns,
/// so that a seeded draw is not interleaved with another test's.
fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lora_policy(dropout: f64) -> TrainablePolicy {
    let mut policy = TrainablePolicy::qalign_lora();
    if let Some(l) = policy.lora.as_mut() {
        l.dropout = dropout;
    }
    policy
}

fn pixels(
    assets: &Owl2Assets,
    b: &ExpandedBatch,
    device: &Device,
) -> Result<burn::tensor::Tensor<4>> {
    Ok(assets
        .preprocessor
        .as_ref()
        .ok_or_else(|| anyhow!("preprocessor"))?
        .preprocess_paths(&b.images)?
        .to_tensor(device))
}

#[test]
fn lora_attaches_to_the_checkpoint_names_and_checks_its_config() -> Result<()> {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    let (mut model, _) = load_model(model_dir(), &device)?;
    // The projections the adapters can attach to are the LLM's `Linear` weights of the checkpoint.
    let infos = param_infos(&model);
    let names: Vec<String> = model
        .llm
        .projections_mut()
        .into_iter()
        .map(|(n, _)| format!("{n}.weight"))
        .collect();
    // 2 layers × (q, k×2, v×2, o, gate, up, down).
    ensure!(names.len() == 2 * 9, "{names:?}");
    for n in &names {
        ensure!(
            infos
                .iter()
                .any(|p| &p.name == n && p.layout == biqa_train::ParamLayout::Transposed),
            "{n} is not a transposed checkpoint weight"
        );
    }
    for bad in [1.0, -0.1, f64::NAN] {
        ensure!(
            lora_policy(bad).apply(model.clone()).is_err(),
            "dropout {bad} accepted"
        );
    }
    let mut policy = lora_policy(0.1);
    if let Some(l) = policy.lora.as_mut() {
        l.targets = vec!["lm_head".into(), "visual_fc".into()];
    }
    ensure!(policy.apply(model.clone()).is_err(), "no target matched");

    // Every factor is named after its weight, in the module's layout ([d_in, r] / [r, d_out]).
    let model = lora_policy(0.5).apply(model)?;
    let infos = param_infos(&model);
    for p in infos.iter().filter(|p| p.is_lora) {
        ensure!(p.trainable && p.layout == biqa_train::ParamLayout::Same);
        let (base, factor) = p
            .name
            .rsplit_once('.')
            .ok_or_else(|| anyhow!("{}", p.name))?;
        let w = infos
            .iter()
            .find(|q| q.name == base)
            .ok_or_else(|| anyhow!("no base for {}", p.name))?;
        ensure!(!w.trainable, "{base} trains under LoRA");
        let [d_in, d_out] = [w.shape[0], w.shape[1]];
        let want = match factor {
            "lora_a" => vec![d_in, 128],
            "lora_b" => vec![128, d_out],
            _ => return Err(anyhow!("{}", p.name)),
        };
        ensure!(p.shape == want, "{}: {:?} vs {want:?}", p.name, p.shape);
    }
    Ok(())
}

#[test]
fn lora_dropout_is_off_in_valid_mode_and_the_adapter_starts_as_the_identity() -> Result<()> {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    let (base, assets) = load_model(model_dir(), &device)?;
    let b = batch(&assets)?;
    let (loss0, logits0) = loss(&base.valid(), &assets, &b)?;

    let policy = lora_policy(0.5);
    let model = policy.apply(base)?;
    let c = counts(&model, &policy)?;
    ensure!(trainable_count(&model) == c.trainable);
    // Valid mode never drops: two forwards agree, and with B = 0 they are the base model's, bit for bit.
    let valid = model.valid();
    let (loss1, logits1) = loss(&valid, &assets, &b)?;
    let (loss2, logits2) = loss(&valid, &assets, &b)?;
    ensure!(loss1 == loss2 && logits1 == logits2);
    ensure!(loss1 == loss0 && logits1 == logits0, "{loss1} vs {loss0}");
    // So does the merged model.
    let merged = model.valid().merge_lora();
    ensure!(param_infos(&merged).iter().all(|p| !p.is_lora));
    let (loss3, logits3) = loss(&merged, &assets, &b)?;
    ensure!(loss3 == loss0 && logits3 == logits0, "{loss3} vs {loss0}");
    // In training mode the mask changes the adapter's input only, which B = 0 still cancels.
    device.seed(1);
    let (loss4, _) = loss(&model, &assets, &b)?;
    ensure!((loss4 - loss0).abs() <= 1e-6, "{loss4} vs {loss0}");
    Ok(())
}

#[test]
fn lora_gradient_of_a_is_zero_at_init_and_of_b_is_not() -> Result<()> {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    let (base, assets) = load_model(model_dir(), &device)?;
    let b = batch(&assets)?;
    let model = lora_policy(0.5).apply(base)?;
    device.seed(7);
    let out = model.forward_loss(&b, Some(pixels(&assets, &b, &device)?), 0.0)?;
    let mut g = out.loss.backward();
    let grads = collect_grads(&model, &mut g);
    let infos = param_infos(&model);
    let mut seen = (0, 0);
    for p in infos.iter().filter(|p| p.is_lora) {
        let v = host(
            grads
                .get(&p.id)
                .ok_or_else(|| anyhow!("{} has no gradient", p.name))?
                .clone(),
        );
        if p.name.ends_with("lora_a") {
            ensure!(v.iter().all(|x| *x == 0.0), "{}: non-zero gradient", p.name);
            seen.0 += 1;
        } else {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            ensure!(norm > 0.0, "{}: zero gradient", p.name);
            seen.1 += 1;
        }
    }
    ensure!(seen == (4, 4), "{seen:?}");
    Ok(())
}

#[test]
fn lora_dropout_masks_follow_the_seed_and_the_merge_is_exact() -> Result<()> {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    let (base, assets) = load_model(model_dir(), &device)?;
    let b = batch(&assets)?;
    let model = lora_policy(0.5).apply(base)?;
    // One optimiser step makes B ≠ 0.
    device.seed(11);
    let out = model.forward_loss(&b, Some(pixels(&assets, &b, &device)?), 0.0)?;
    let mut g = out.loss.backward();
    let grads = collect_grads(&model, &mut g);
    let mut opt = AdamW::new(AdamWConfig::default());
    let model = opt.step(model, 1e-2, grads.clone());

    // Training mode: the masks are a function of (run seed, step, micro-batch).
    let train_loss = |step: usize, micro: usize| -> Result<f32> {
        let _masks = seed_dropout(&device, 3, step, micro);
        Ok(loss(&model, &assets, &b)?.0)
    };
    let (a1, a2) = (train_loss(1, 0)?, train_loss(1, 0)?);
    let (b1, c1) = (train_loss(1, 1)?, train_loss(2, 0)?);
    ensure!(a1 == a2, "same seed, different losses: {a1} vs {a2}");
    ensure!(
        a1 != b1 && a1 != c1 && b1 != c1,
        "different seeds, same loss: {a1}, {b1}, {c1}"
    );
    let (v, logits_v) = loss(&model.valid(), &assets, &b)?;
    ensure!(v != a1 && v != b1, "training mode did not drop: {v}");

    // The merged model is the adapted one in valid mode, in memory and through the export.
    let (m, logits_m) = loss(&model.valid().merge_lora(), &assets, &b)?;
    ensure!((m - v).abs() <= 1e-5, "merged loss {m} vs {v}");
    let d = max_abs_diff(&logits_m, &logits_v);
    ensure!(d <= 1e-5, "merged logits differ by {d}");
    let dir = tempfile::tempdir()?;
    let out = biqa_train::checkpoint::export_model(
        &model,
        &assets,
        &biqa_model::PipelinePrompts::default(),
        &dir.path().join("final"),
    )?;
    let (exported, _) = load_model(&out, &Device::flex())?;
    let infos = param_infos(&exported);
    ensure!(infos.len() == 108 && infos.iter().all(|p| !p.is_lora));
    let (e, logits_e) = loss(&exported, &assets, &b)?;
    let d = max_abs_diff(&logits_e, &logits_v);
    ensure!(d <= 1e-5, "exported logits differ by {d} (loss {e} vs {v})");
    Ok(())
}

#[test]
fn lora_dropout_leaves_the_7b_count() -> Result<()> {
    let c = ParamCounts::of(
        &LlamaConfig::mplug_owl2_7b(),
        &VisionConfig::vit_l14_448(),
        &AbstractorConfig::owl2_7b(),
        2,
        &lora_policy(0.05),
    );
    ensure!(c.lora == 67_108_864 && c.trainable == 148_582_400, "{c:?}");
    Ok(())
}

#[test]
fn the_vision_learning_rate_scale_applies_to_the_vision_tower_alone() -> Result<()> {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    let (model, assets) = load_model(model_dir(), &device)?;
    let b = batch(&assets)?;
    let out = model.forward_loss(&b, Some(pixels(&assets, &b, &device)?), 0.0)?;
    let mut g = out.loss.backward();
    let grads = collect_grads(&model, &mut g);
    let policy = TrainablePolicy {
        vision_lr_scale: 0.25,
        ..TrainablePolicy::default()
    };
    let scales = policy.lr_scales(&model)?;
    let infos = param_infos(&model);
    let vision: std::collections::HashSet<_> = infos
        .iter()
        .filter(|p| p.name.starts_with("model.vision_model."))
        .map(|p| p.id)
        .collect();
    ensure!(!vision.is_empty() && vision.len() < infos.len());
    ensure!(
        scales.len() == vision.len()
            && scales
                .iter()
                .all(|(id, s)| vision.contains(id) && *s == 0.25),
        "{} scales for {} vision parameters",
        scales.len(),
        vision.len()
    );
    // Scaled at 1e-2 = the vision tower as at 2.5e-3 and everything else as at 1e-2, bit for bit.
    let step = |lr: f64, scales| {
        let mut opt = AdamW::with_lr_scale(AdamWConfig::default(), scales);
        biqa_train::params::param_values(&opt.step(model.clone(), lr, grads.clone()))
    };
    let scaled = step(1e-2, scales);
    let full = step(1e-2, Default::default());
    let slow = step(2.5e-3, Default::default());
    for p in &infos {
        let want = if vision.contains(&p.id) { &slow } else { &full };
        ensure!(
            host(&scaled[&p.id]) == host(&want[&p.id]),
            "{}: the scaled step is not the expected rate's",
            p.name
        );
    }
    ensure!(host(&full[&infos[0].id]) != host(&slow[&infos[0].id]));
    // No scale: no table; a scale that is not finite and positive: an error naming the key.
    ensure!(TrainablePolicy::default().lr_scales(&model)?.is_empty());
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = TrainablePolicy {
            vision_lr_scale: bad,
            ..TrainablePolicy::default()
        }
        .lr_scales(&model)
        .err()
        .ok_or_else(|| anyhow!("{bad} accepted"))?;
        ensure!(e.to_string().contains("vision_lr_scale"), "{e}");
    }
    Ok(())
}
