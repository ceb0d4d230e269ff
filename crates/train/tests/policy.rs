//! Trainable-parameter policies: freezing, LoRA (Q-Align's targets), the merge export, and the 7B count.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, ensure};
use biqa_data::{ConversationRecord, Turn};
use biqa_decoder::LlamaConfig;
use biqa_train::batch::{ExpandedBatch, collate, expand, pad_id};
use biqa_train::conversation::{TokenizeOptions, tokenize_record};
use biqa_train::optim::{AdamW, AdamWConfig};
use biqa_train::params::{collect_grads, param_infos, trainable_count};
use biqa_train::{ModelAssets, Owl2Train, ParamCounts, TrainablePolicy, merge_lora};
use biqa_vision::{AbstractorConfig, VisionConfig};
use burn::module::Module;
use burn::tensor::Device;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-owl2")
}

fn batch(assets: &ModelAssets) -> Result<ExpandedBatch> {
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

fn loss(model: &Owl2Train, assets: &ModelAssets, b: &ExpandedBatch) -> Result<(f32, Vec<f32>)> {
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

fn counts(model: &Owl2Train, policy: &TrainablePolicy) -> Result<ParamCounts> {
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
        let (model, _) = Owl2Train::from_dir(model_dir(), &device)?;
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
    let device = Device::flex().autodiff();
    let (base, assets) = Owl2Train::from_dir(model_dir(), &device)?;
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
    let model = opt.step(model, 1e-2, &grads);
    let (loss2, logits2) = loss(&model, &assets, &b)?;
    ensure!(
        loss2 < loss0,
        "one step did not lower the loss: {loss2} vs {loss0}"
    );
    ensure!(logits2 != logits0);

    // Merging folds the adapters into plain weights with the base names; the outputs stay.
    let merged = merge_lora(model.valid());
    let names: Vec<String> = param_infos(&merged).into_iter().map(|p| p.name).collect();
    ensure!(names.iter().all(|n| !n.contains("lora")));
    ensure!(names.len() == 108);
    let (loss3, logits3) = loss(&merged, &assets, &b)?;
    ensure!(
        (loss3 - loss2).abs() <= 1e-5,
        "merged loss {loss3} vs {loss2}"
    );
    let d = logits3
        .iter()
        .zip(&logits2)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
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
