//! Parity of the decoder with the original PyTorch code: `owl2-components` (mPLUG-Owl2 with the modality-adaptive
//! module) and `tiny-llama-gqa` (plain HF LLaMA with GQA). Tolerances from the fixture READMEs: 1e-4 on hidden
//! states and logits, 1e-5 on attention probabilities, tokens exact.

use anyhow::Result;
use biqa_checkpoint::{Checkpoint, FloatPolicy, Weights};
use biqa_decoder::{
    DecoderInput, ForwardOptions, GenerationConfig, KvCache, Llama, LlamaConfig, LogitsMode,
    Modality, Prompt, Sampling,
};
use biqa_testkit::{Arrays, assert_close, fixtures, host};
use burn::tensor::Device;

fn owl2() -> Result<(Llama, Arrays, Arrays)> {
    let dir = fixtures().join("owl2-components");
    let config = LlamaConfig::from_file(&dir.join("config.json"))?;
    let ckpt = Checkpoint::open(dir.join("weights.safetensors"))?;
    let device = Device::flex();
    // The vision tensors belong to the other towers; the LLM's own tensors must all be used, and nothing missing.
    let weights = Weights::new(&ckpt, &device)
        .ignore_scope("model.vision_model")
        .ignore_scope("model.visual_abstractor")
        .ignore_unused("rotary_emb.inv_freq");
    let model = Llama::load(&weights, &config);
    weights.finish()?;
    Ok((
        model,
        Arrays::open(dir.join("inputs.safetensors"))?,
        Arrays::open(dir.join("expected.safetensors"))?,
    ))
}

fn all_traces() -> ForwardOptions {
    ForwardOptions {
        logits: LogitsMode::All,
        hidden_states: true,
        attentions: true,
    }
}

#[test]
fn owl2_multimodal_forward_matches() -> Result<()> {
    let (model, _inputs, exp) = owl2()?;
    assert_eq!(model.modalities(), 2);
    let device = model.device();
    let embeds = exp.tensor::<3>("inputs_embeds", &device)?;
    let modality: Vec<u8> = exp
        .i64("modality_indicators")?
        .into_iter()
        .map(|m| m as u8)
        .collect();
    assert_eq!(modality.iter().filter(|&&m| m == 1).count(), 9);
    let input = DecoderInput {
        embeds,
        modality: Modality::PerToken(modality),
        positions: None,
        padding: None,
    };
    let out = model.forward(input, &mut KvCache::new(), all_traces())?;
    let hs = out.hidden_states.expect("hidden states");
    assert_eq!(hs.len(), 3);
    for (i, h) in hs.into_iter().enumerate() {
        assert_close(
            &format!("llm.hidden_states.{i}"),
            &host(h),
            exp.f32(&format!("llm.hidden_states.{i}"))?,
            1e-4,
        );
    }
    for (i, h) in out
        .layer_outputs
        .expect("layer outputs")
        .into_iter()
        .enumerate()
    {
        assert_close(
            &format!("llm.layer_outputs.{i}"),
            &host(h),
            exp.f32(&format!("llm.layer_outputs.{i}"))?,
            1e-4,
        );
    }
    for (i, a) in out.attentions.expect("attentions").into_iter().enumerate() {
        assert_close(
            &format!("llm.attentions.{i}"),
            &host(a),
            exp.f32(&format!("llm.attentions.{i}"))?,
            1e-5,
        );
    }
    assert_close(
        "llm.logits",
        &host(out.logits.expect("logits")),
        exp.f32("llm.logits")?,
        1e-4,
    );
    Ok(())
}

#[test]
fn owl2_text_forward_matches() -> Result<()> {
    let (model, inputs, exp) = owl2()?;
    let ids: Vec<u32> = inputs
        .i64("text_input_ids")?
        .into_iter()
        .map(|t| t as u32)
        .collect();
    let embeds = model.embed_ids(&[ids])?;
    let out = model.forward(
        DecoderInput::text(embeds),
        &mut KvCache::new(),
        all_traces(),
    )?;
    for (i, h) in out.hidden_states.expect("hs").into_iter().enumerate() {
        let name = format!("text.llm.hidden_states.{i}");
        assert_close(&name, &host(h), exp.f32(&name)?, 1e-4);
    }
    for (i, h) in out.layer_outputs.expect("lo").into_iter().enumerate() {
        let name = format!("text.llm.layer_outputs.{i}");
        assert_close(&name, &host(h), exp.f32(&name)?, 1e-4);
    }
    for (i, a) in out.attentions.expect("att").into_iter().enumerate() {
        let name = format!("text.llm.attentions.{i}");
        assert_close(&name, &host(a), exp.f32(&name)?, 1e-5);
    }
    assert_close(
        "text.llm.logits",
        &host(out.logits.expect("logits")),
        exp.f32("text.llm.logits")?,
        1e-4,
    );
    Ok(())
}

fn greedy(n: usize, stop: Vec<u32>) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: n,
        stop_tokens: stop,
        sampling: Sampling::Greedy,
        seed: 0,
        keep_logits: true,
    }
}

#[test]
fn owl2_generation_matches() -> Result<()> {
    let (model, inputs, exp) = owl2()?;
    let device = model.device();
    // Multimodal: from the spliced embeddings, 8 greedy tokens with the cache.
    let modality: Vec<u8> = exp
        .i64("modality_indicators")?
        .into_iter()
        .map(|m| m as u8)
        .collect();
    let prompt = Prompt {
        embeds: exp.tensor::<3>("inputs_embeds", &device)?,
        modality: Modality::PerToken(modality),
        left_padding: vec![0],
    };
    let g = model.generate(prompt, &greedy(8, vec![]), |_| {})?;
    let want: Vec<u32> = exp
        .i64("generate.new_tokens")?
        .into_iter()
        .map(|t| t as u32)
        .collect();
    assert_eq!(g.tokens[0], want);
    let logits: Vec<f32> = g.step_logits[0].concat();
    assert_close(
        "generate.step_logits",
        &logits,
        exp.f32("generate.step_logits")?,
        1e-4,
    );

    // Text only.
    let ids: Vec<u32> = inputs
        .i64("text_input_ids")?
        .into_iter()
        .map(|t| t as u32)
        .collect();
    let prompt = Prompt {
        embeds: model.embed_ids(&[ids])?,
        modality: Modality::Text,
        left_padding: vec![0],
    };
    let g = model.generate(prompt, &greedy(8, vec![]), |_| {})?;
    let want: Vec<u32> = exp
        .i64("text.generate.new_tokens")?
        .into_iter()
        .map(|t| t as u32)
        .collect();
    assert_eq!(g.tokens[0], want);
    assert_close(
        "text.generate.step_logits",
        &g.step_logits[0].concat(),
        exp.f32("text.generate.step_logits")?,
        1e-4,
    );
    Ok(())
}

#[test]
fn plain_llama_gqa_matches() -> Result<()> {
    let dir = fixtures().join("tiny-llama-gqa");
    let model = Llama::from_dir(&dir, &Device::flex(), FloatPolicy::F32)?;
    assert_eq!(model.modalities(), 1);
    assert_eq!(
        (
            model.config.num_heads,
            model.config.num_kv_heads,
            model.config.head_dim
        ),
        (4, 2, 16)
    );
    let exp = Arrays::open(dir.join("expected/expected.safetensors"))?;
    let ids: Vec<u32> = exp
        .i64("input_ids")?
        .into_iter()
        .map(|t| t as u32)
        .collect();
    let out = model.forward(
        DecoderInput::text(model.embed_ids(std::slice::from_ref(&ids))?),
        &mut KvCache::new(),
        ForwardOptions {
            logits: LogitsMode::All,
            hidden_states: true,
            attentions: false,
        },
    )?;
    assert!(out.attentions.is_none());
    assert_close(
        "logits",
        &host(out.logits.expect("logits")),
        exp.f32("logits")?,
        1e-4,
    );
    let hs = out.hidden_states.expect("hs");
    assert_eq!(hs.len(), 3);
    for (i, h) in hs.into_iter().enumerate() {
        let name = format!("hidden_states.{i}");
        assert_close(&name, &host(h), exp.f32(&name)?, 1e-4);
    }
    let prompt = Prompt {
        embeds: model.embed_ids(&[ids])?,
        modality: Modality::Text,
        left_padding: vec![0],
    };
    let g = model.generate(
        prompt,
        &greedy(10, model.config.eos_token_ids.clone()),
        |_| {},
    )?;
    let want: Vec<u32> = exp
        .i64("new_tokens")?
        .into_iter()
        .map(|t| t as u32)
        .collect();
    assert_eq!(g.tokens[0], want, "greedy tokens, stopping at </s>");
    assert!(g.stopped[0]);
    assert_close(
        "step_logits",
        &g.step_logits[0].concat(),
        exp.f32("step_logits")?,
        1e-4,
    );
    Ok(())
}
