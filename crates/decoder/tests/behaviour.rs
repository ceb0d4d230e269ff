//! Behaviour that no single fixture pins down: the KV cache equals the full forward, left-padded batch rows equal
//! their single runs, seeds reproduce, top-k / top-p never leave their allowed set, and every loader error.

use std::path::Path;

use anyhow::Result;
use biqa_checkpoint::{CheckpointError, FloatPolicy, TensorProblem};
use biqa_decoder::{
    DecoderError, DecoderInput, ForwardOptions, GenerationConfig, KvCache, Llama, LogitsMode,
    Modality, Prompt, Sampler, Sampling,
};
use biqa_testkit::{assert_close, fixtures, host, read_raw, write_f32_raw};
use burn::tensor::Device;
use proptest::prelude::*;

fn gqa() -> Result<Llama> {
    Ok(Llama::from_dir(
        &fixtures().join("tiny-llama-gqa"),
        &Device::flex(),
        FloatPolicy::F32,
    )?)
}

const PROMPT: [u32; 13] = [
    1, 327, 473, 381, 363, 365, 405, 262, 276, 271, 346, 290, 482,
];

#[test]
fn incremental_decoding_equals_full_forward() -> Result<()> {
    let model = gqa()?;
    let ids = PROMPT.to_vec();
    let all = ForwardOptions {
        logits: LogitsMode::All,
        ..Default::default()
    };
    let full = host(
        model
            .forward(
                DecoderInput::text(model.embed_ids(std::slice::from_ref(&ids))?),
                &mut KvCache::new(),
                all,
            )?
            .logits
            .expect("logits"),
    );
    let v = model.config.vocab_size;
    // Prefill 5 tokens, then feed the rest one by one.
    let mut cache = KvCache::new();
    let first = model.forward(
        DecoderInput::text(model.embed_ids(&[ids[..5].to_vec()])?),
        &mut cache,
        all,
    )?;
    let mut got = host(first.logits.expect("logits"));
    for &t in &ids[5..] {
        let out = model.forward(
            DecoderInput::text(model.embed_ids(&[vec![t]])?),
            &mut cache,
            all,
        )?;
        got.extend(host(out.logits.expect("logits")));
    }
    assert_eq!(cache.len(), ids.len());
    assert_eq!(got.len(), ids.len() * v);
    assert_close("cached vs full logits", &got, &full, 1e-5);
    Ok(())
}

#[test]
fn left_padded_batch_equals_single_runs() -> Result<()> {
    let model = gqa()?;
    let a = PROMPT.to_vec();
    let b = PROMPT[..8].to_vec();
    let config = GenerationConfig {
        max_new_tokens: 6,
        stop_tokens: vec![],
        keep_logits: true,
        ..Default::default()
    };
    let single = |ids: &Vec<u32>| -> Result<_> {
        let p = Prompt {
            embeds: model.embed_ids(std::slice::from_ref(ids))?,
            modality: Modality::Text,
            left_padding: vec![0],
        };
        Ok(model.generate(p, &config, |_| {})?)
    };
    let (ga, gb) = (single(&a)?, single(&b)?);
    // Row b is left-padded with 5 pad tokens (id 0 = <unk>, as the pad of LLaMA tokenizers).
    let mut b_padded = vec![0u32; a.len() - b.len()];
    b_padded.extend(&b);
    let p = Prompt {
        embeds: model.embed_ids(&[a.clone(), b_padded])?,
        modality: Modality::Text,
        left_padding: vec![0, a.len() - b.len()],
    };
    let gab = model.generate(p, &config, |_| {})?;
    assert_eq!(gab.tokens[0], ga.tokens[0]);
    assert_eq!(gab.tokens[1], gb.tokens[0]);
    assert_close(
        "row 0 logits",
        &gab.step_logits[0].concat(),
        &ga.step_logits[0].concat(),
        1e-4,
    );
    assert_close(
        "row 1 logits",
        &gab.step_logits[1].concat(),
        &gb.step_logits[0].concat(),
        1e-4,
    );
    Ok(())
}

#[test]
fn seeds_reproduce_and_differ() -> Result<()> {
    let model = gqa()?;
    let run = |seed: u64| -> Result<Vec<u32>> {
        let config = GenerationConfig {
            max_new_tokens: 24,
            stop_tokens: vec![],
            sampling: Sampling::Sample {
                temperature: 1.5,
                top_k: None,
                top_p: None,
            },
            seed,
            keep_logits: false,
        };
        let p = Prompt {
            embeds: model.embed_ids(&[PROMPT.to_vec()])?,
            modality: Modality::Text,
            left_padding: vec![0],
        };
        Ok(model.generate(p, &config, |_| {})?.tokens.remove(0))
    };
    assert_eq!(run(7)?, run(7)?);
    assert_ne!(run(7)?, run(8)?);
    Ok(())
}

#[test]
fn streaming_callback_sees_every_token() -> Result<()> {
    let model = gqa()?;
    let p = Prompt {
        embeds: model.embed_ids(&[PROMPT.to_vec()])?,
        modality: Modality::Text,
        left_padding: vec![0],
    };
    let mut seen = Vec::new();
    let g = model.generate(
        p,
        &GenerationConfig {
            max_new_tokens: 10,
            ..Default::default()
        },
        |s| seen.push(s[0]),
    )?;
    assert_eq!(seen.into_iter().flatten().collect::<Vec<_>>(), g.tokens[0]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn sampled_tokens_stay_in_the_allowed_set(
        logits in prop::collection::vec(-8.0f32..8.0, 2..60),
        temperature in 0.1f32..3.0,
        top_k in prop::option::of(1usize..20),
        top_p in prop::option::of(0.05f32..1.0),
        seed in 0u64..1000,
    ) {
        let mut s = Sampler::new(Sampling::Sample { temperature, top_k, top_p }, seed);
        let allowed = s.allowed(&logits);
        prop_assert!(!allowed.is_empty());
        if let Some(k) = top_k {
            let kth = { let mut v = logits.clone(); v.sort_by(|a, b| b.total_cmp(a)); v[(k - 1).min(v.len() - 1)] };
            prop_assert!(allowed.iter().all(|&i| logits[i] >= kth));
        }
        // The nucleus computed independently: the most likely tokens (after top-k) whose probability mass, with
        // temperature, first reaches top_p; every allowed token must be in it.
        if let Some(p) = top_p {
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
            if let Some(k) = top_k {
                let kth = logits[order[(k - 1).min(order.len() - 1)]];
                order.retain(|&i| logits[i] >= kth);
            }
            let w: Vec<f64> = order.iter().map(|&i| (f64::from(logits[i] - logits[order[0]]) / f64::from(temperature)).exp()).collect();
            let z: f64 = w.iter().sum();
            let (mut mass, mut nucleus) = (0.0, Vec::new());
            for (j, &i) in order.iter().enumerate() {
                nucleus.push(i);
                mass += w[j] / z;
                if mass >= f64::from(p) - 1e-9 {
                    break;
                }
            }
            prop_assert!(allowed.iter().all(|i| nucleus.contains(i)), "allowed {:?} outside nucleus {:?}", allowed, nucleus);
        }
        for _ in 0..20 {
            let t = s.sample(&logits);
            prop_assert!(allowed.contains(&t), "token {} not in {:?}", t, allowed);
        }
    }
}

/// Copies the tiny-llama-gqa directory with its weights rewritten by `edit`.
fn corrupted_copy(
    edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<u8>)>),
) -> Result<tempfile::TempDir> {
    let src = fixtures().join("tiny-llama-gqa");
    let tmp = tempfile::tempdir()?;
    for f in [
        "config.json",
        "tokenizer.model",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(f), tmp.path().join(f))?;
    }
    let mut tensors = read_raw(src.join("model.safetensors"))?;
    edit(&mut tensors);
    write_f32_raw(tmp.path().join("model.safetensors"), &tensors)?;
    Ok(tmp)
}

fn problems(dir: &Path) -> Vec<TensorProblem> {
    match Llama::from_dir(dir, &Device::flex(), FloatPolicy::F32) {
        Err(DecoderError::Checkpoint(CheckpointError::Tensors { problems, .. })) => problems,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a corrupted checkpoint loaded"),
    }
}

#[test]
fn loader_reports_missing_misshaped_and_unexpected_tensors() -> Result<()> {
    let dir = corrupted_copy(|t| {
        t.retain(|(n, _, _)| n != "model.layers.1.mlp.up_proj.weight");
        for (n, s, d) in t.iter_mut() {
            if n == "model.norm.weight" {
                *s = vec![32];
                d.truncate(32 * 4);
            }
        }
        t.push((
            "model.layers.0.self_attn.q_norm.weight".into(),
            vec![16],
            vec![0; 64],
        ));
    })?;
    let p = problems(dir.path());
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p.contains(&TensorProblem::Missing {
        name: "model.layers.1.mlp.up_proj.weight".into(),
        expected: vec![128, 64]
    }));
    assert!(p.contains(&TensorProblem::Shape {
        name: "model.norm.weight".into(),
        expected: vec![64],
        actual: vec![32]
    }));
    assert!(p.contains(&TensorProblem::Unexpected {
        name: "model.layers.0.self_attn.q_norm.weight".into(),
        actual: vec![16]
    }));
    // A stored rotary inv_freq is recomputed, never an error.
    let ok = corrupted_copy(|t| {
        t.push((
            "model.layers.0.self_attn.rotary_emb.inv_freq".into(),
            vec![8],
            vec![0; 32],
        ))
    })?;
    Llama::from_dir(ok.path(), &Device::flex(), FloatPolicy::F32)?;
    Ok(())
}

#[test]
fn config_errors_name_the_problem() -> Result<()> {
    let dir = corrupted_copy(|_| {})?;
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)?;
    std::fs::write(&cfg, text.replace("\"hidden_size\": 64,", ""))?;
    let err = Llama::from_dir(dir.path(), &Device::flex(), FloatPolicy::F32).expect_err("error");
    assert!(
        err.to_string().contains("hidden_size") && err.to_string().contains("config.json"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        text.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
    )?;
    let err = Llama::from_dir(dir.path(), &Device::flex(), FloatPolicy::F32).expect_err("error");
    assert!(
        matches!(
            err,
            DecoderError::NotMultiple {
                key: "num_attention_heads",
                divisor_key: "num_key_value_heads",
                divisor: 3,
                ..
            }
        ),
        "{err}"
    );
    std::fs::write(
        &cfg,
        text.replace("\"rope_type\": \"default\"", "\"rope_type\": \"yarn\""),
    )?;
    let err = Llama::from_dir(dir.path(), &Device::flex(), FloatPolicy::F32).expect_err("error");
    assert!(err.to_string().contains("yarn"), "{err}");
    Ok(())
}

/// Floats outside their domain and sizes past the documented bounds are refused before anything is built (issue
/// #16: a negative `rms_norm_eps` or `rope_theta` = 0 gave NaN scores; `hidden_size` 10¹², `max_position_embeddings`
/// 2⁶², `num_hidden_layers` 10⁹ aborted on allocation).
#[test]
fn config_floats_and_sizes_are_validated_before_building() -> Result<()> {
    let dir = corrupted_copy(|_| {})?;
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    for (key, pointer, value) in [
        ("rms_norm_eps", "/rms_norm_eps", serde_json::json!(-1e-6)),
        (
            "rope_theta",
            "/rope_parameters/rope_theta",
            serde_json::json!(0.0),
        ),
        (
            "hidden_size",
            "/hidden_size",
            serde_json::json!(1_000_000_000_000u64),
        ),
        (
            "max_position_embeddings",
            "/max_position_embeddings",
            serde_json::json!(1u64 << 62),
        ),
        (
            "num_hidden_layers",
            "/num_hidden_layers",
            serde_json::json!(1_000_000_000u64),
        ),
    ] {
        let mut j = json.clone();
        *j.pointer_mut(pointer).expect("the fixture has the key") = value;
        std::fs::write(&cfg, serde_json::to_string(&j)?)?;
        let err =
            Llama::from_dir(dir.path(), &Device::flex(), FloatPolicy::F32).expect_err("refused");
        assert!(
            matches!(&err, DecoderError::InvalidConfig { key: k, .. } if *k == key),
            "{key}: {err}"
        );
    }
    Ok(())
}

#[test]
fn bad_inputs_are_errors() -> Result<()> {
    let model = gqa()?;
    let e = model.embed_ids(&[vec![1, 9999]]).expect_err("error");
    assert!(e.to_string().contains("9999"));
    let input = DecoderInput {
        embeds: model.embed_ids(&[vec![1, 2, 3]])?,
        modality: Modality::PerToken(vec![0, 1]),
        positions: None,
        padding: None,
    };
    assert!(
        model
            .forward(input, &mut KvCache::new(), ForwardOptions::default())
            .is_err()
    );
    let input = DecoderInput {
        embeds: model.embed_ids(&[vec![1, 2]])?,
        modality: Modality::Text,
        positions: Some(vec![0, 100_000]),
        padding: None,
    };
    assert!(
        model
            .forward(input, &mut KvCache::new(), ForwardOptions::default())
            .is_err()
    );
    Ok(())
}

/// A tiny random decoder whose RoPE table covers only `max_positions` positions.
fn short_context(max_positions: usize) -> Llama {
    let config = biqa_decoder::LlamaConfig {
        vocab_size: 64,
        hidden_size: 16,
        intermediate_size: 32,
        num_layers: 2,
        num_heads: 2,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-6,
        rope_theta: 10_000.0,
        max_position_embeddings: max_positions,
        tie_word_embeddings: false,
        bos_token_id: 1,
        eos_token_ids: vec![2],
    };
    Llama::init(&config, 1, &Device::flex(), 3)
}

#[test]
fn generation_stops_cleanly_when_the_context_is_full() -> Result<()> {
    let model = short_context(40);
    let long: Vec<u32> = (0..30).map(|i| 3 + i % 50).collect();
    let config = GenerationConfig {
        max_new_tokens: 50,
        stop_tokens: vec![],
        ..Default::default()
    };
    let p = Prompt {
        embeds: model.embed_ids(std::slice::from_ref(&long))?,
        modality: Modality::Text,
        left_padding: vec![0],
    };
    let g = model.generate(p, &config, |_| {})?;
    // Positions 30..39 are the ten the table still holds.
    assert!(g.tokens[0].len() <= 10, "{:?}", g.tokens[0]);
    assert_eq!(g.tokens[0].len(), 10);
    assert_eq!(g.stop_reasons, [biqa_decoder::StopReason::ContextFull]);
    assert_eq!(g.stopped, [false]);

    // In a left-padded batch the longer row stops first; the shorter one goes on to its own limit, and both
    // equal their single runs.
    let short: Vec<u32> = long[..20].to_vec();
    let single_short = model.generate(
        Prompt {
            embeds: model.embed_ids(std::slice::from_ref(&short))?,
            modality: Modality::Text,
            left_padding: vec![0],
        },
        &config,
        |_| {},
    )?;
    assert_eq!(single_short.tokens[0].len(), 20);
    let mut padded = vec![0u32; 10];
    padded.extend(&short);
    let batch = model.generate(
        Prompt {
            embeds: model.embed_ids(&[long.clone(), padded])?,
            modality: Modality::Text,
            left_padding: vec![0, 10],
        },
        &config,
        |_| {},
    )?;
    assert_eq!(batch.tokens[0], g.tokens[0]);
    assert_eq!(batch.tokens[1], single_short.tokens[0]);
    assert_eq!(
        batch.stop_reasons,
        [
            biqa_decoder::StopReason::ContextFull,
            biqa_decoder::StopReason::ContextFull
        ]
    );

    // A prompt that fills the table exactly leaves room for no token: an empty, clean result.
    let full: Vec<u32> = (0..40).map(|i| 3 + i % 50).collect();
    let g = model.generate(
        Prompt {
            embeds: model.embed_ids(&[full])?,
            modality: Modality::Text,
            left_padding: vec![0],
        },
        &config,
        |_| {},
    )?;
    assert!(g.tokens[0].is_empty());
    assert_eq!(g.stop_reasons, [biqa_decoder::StopReason::ContextFull]);
    Ok(())
}

#[test]
fn generation_reports_eos_and_max_tokens() -> Result<()> {
    let model = gqa()?;
    let prompt = || -> Result<Prompt> {
        Ok(Prompt {
            embeds: model.embed_ids(&[PROMPT.to_vec()])?,
            modality: Modality::Text,
            left_padding: vec![0],
        })
    };
    let free = model.generate(
        prompt()?,
        &GenerationConfig {
            max_new_tokens: 5,
            stop_tokens: vec![],
            ..Default::default()
        },
        |_| {},
    )?;
    assert_eq!(free.tokens[0].len(), 5);
    assert_eq!(free.stop_reasons, [biqa_decoder::StopReason::MaxTokens]);
    assert_eq!(free.stopped, [false]);
    // Making the third greedy token a stop token ends the row there, as `Eos`.
    let stop = free.tokens[0][2];
    let first = free.tokens[0].iter().position(|&t| t == stop).unwrap_or(2);
    let eos = model.generate(
        prompt()?,
        &GenerationConfig {
            max_new_tokens: 5,
            stop_tokens: vec![stop],
            ..Default::default()
        },
        |_| {},
    )?;
    assert_eq!(eos.tokens[0], free.tokens[0][..=first]);
    assert_eq!(eos.stop_reasons, [biqa_decoder::StopReason::Eos]);
    assert_eq!(eos.stopped, [true]);
    assert_eq!(
        serde_json::to_string(&biqa_decoder::StopReason::ContextFull)?,
        "\"context_full\""
    );
    Ok(())
}
