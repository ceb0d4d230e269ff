//! The probes on the `owl2-components` fixture and on hand-made examples.

#![allow(missing_docs)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use biqa_checkpoint::{Checkpoint, Weights};
use biqa_decoder::{
    DecoderInput, ForwardOptions, KvCache, Llama, LlamaConfig, LogitsMode, Modality,
};
use biqa_probes::attention::{aggregate, average_shares};
use biqa_probes::figures::{attention_heatmap, lens_figure_size, lens_table, trajectories_figure};
use biqa_probes::lens::lens_logits;
use biqa_probes::{LensConfig, Segment, logit_lens, segments_from_modality, trajectories};
use biqa_testkit::{Arrays, assert_close, fixture};
use burn::tensor::{Device, Tensor, TensorData};

fn dir() -> PathBuf {
    fixture("owl2-components")
}

fn setup() -> Result<(Llama, Vec<u8>, Arrays)> {
    let config = LlamaConfig::from_file(&dir().join("config.json"))?;
    let ckpt = Checkpoint::open(dir().join("weights.safetensors"))?;
    let w = Weights::new(&ckpt, &Device::flex());
    let llm = Llama::load(&w, &config);
    let exp = Arrays::open(dir().join("expected.safetensors"))?;
    let modality = lens_modality(&exp)?;
    Ok((llm, modality, exp))
}

fn levels() -> LensConfig {
    LensConfig {
        layers: None,
        top_k: 5,
        levels: (15..20).map(|i| (format!("w{i}"), i)).collect(),
    }
}

#[test]
fn lens_agrees_with_logits_and_with_stored_hidden_states() -> Result<()> {
    let (llm, modality, st) = setup()?;
    let (shape, emb) = st.shaped_f32("inputs_embeds")?;
    let device = llm.device();
    let embeds = Tensor::<3>::from_data(
        TensorData::new(emb, [shape[0], shape[1], shape[2]]),
        &device,
    );
    let input = DecoderInput {
        embeds,
        modality: Modality::PerToken(modality),
        positions: None,
        padding: None,
    };
    let out = llm.forward(
        input,
        &mut KvCache::new(),
        ForwardOptions {
            logits: LogitsMode::All,
            hidden_states: true,
            attentions: true,
        },
    )?;
    let hs = out.hidden_states.context("hidden states")?;
    let logits: Vec<f32> = out
        .logits
        .context("logits")?
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let v = llm.config.vocab_size;
    let pos = 21;
    // The last layer of the lens is the model's own logits.
    let last = lens_logits(&llm, &hs, hs.len() - 1, 0, pos)?;
    assert_close(
        "last-layer lens vs logits",
        &last,
        &logits[pos * v..(pos + 1) * v],
        1e-5,
    );
    // An intermediate layer equals lm_head(norm(h)) of the original code's stored hidden state.
    let (s1, h1) = st.shaped_f32("llm.hidden_states.1")?;
    let stored = Tensor::<3>::from_data(TensorData::new(h1, [s1[0], s1[1], s1[2]]), &device)
        .narrow(1, pos, 1);
    let want: Vec<f32> = llm
        .unembed(stored)
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let got = lens_logits(&llm, &hs, 1, 0, pos)?;
    assert_close("layer-1 lens vs stored hidden state", &got, &want, 1e-4);

    let lens = logit_lens(&llm, &hs, 0, pos, &levels(), &|id| format!("t{id}"))?;
    assert_eq!(lens.layers.len(), 3);
    let final_layer = lens.layers.last().context("layer")?;
    assert_eq!(final_layer.final_rank, 0);
    assert!(final_layer.kl_to_final.abs() < 1e-9);
    assert_eq!(final_layer.top[0].id, lens.final_token);
    for l in &lens.layers {
        let p: f64 = l.top.iter().map(|c| c.prob).sum();
        assert!(p <= 1.0 + 1e-9 && l.entropy >= 0.0);
    }

    // Trajectories over two "samples" (the same lens twice) and the figures.
    let t = trajectories(&[lens.clone(), lens.clone()], None)?;
    for row in &t.share {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    let tmp = tempfile::tempdir()?;
    let lens_png = tmp.path().join("lens.png");
    lens_table(&lens_png, &lens, "logit lens")?;
    let traj_png = tmp.path().join("trajectories.png");
    trajectories_figure(&traj_png, &t, "trajectories")?;
    // Documented sizes: the lens table is 130 + 110·k + 90 by 70 + 34·layers + 50; trajectories 800×480.
    let img = image::open(&lens_png)?;
    assert_eq!(
        (img.width(), img.height()),
        (130 + 110 * 5 + 90, 70 + 34 * 3 + 50)
    );
    assert_eq!(lens_figure_size(3, 5), (img.width(), img.height()));
    let traj = image::open(&traj_png)?;
    assert_eq!((traj.width(), traj.height()), (800, 480));

    // Attention of the last two positions over both layers: rows sum to 1, the image segment is exact.
    let atts = out.attentions.context("attentions")?;
    let segments = segments_from_modality(&lens_modality(&st)?, 0, 0);
    assert_eq!(
        segments,
        vec![
            Segment {
                name: "prompt".into(),
                start: 0,
                end: 6
            },
            Segment {
                name: "image".into(),
                start: 6,
                end: 15
            },
            Segment {
                name: "prompt".into(),
                start: 15,
                end: 22
            },
        ]
    );
    let map = aggregate(&atts, &[0, 1], 0, &[20, 21], segments)?;
    for row in &map.map {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    }
    let heat = tmp.path().join("attention.png");
    attention_heatmap(&heat, &map, "image", "attention")?;
    let hm = image::open(&heat)?;
    // 2 queries × 22 keys: width max(900, 160 + 4·22), height clamp(120 + 18·2, 260, 900).
    assert_eq!((hm.width(), hm.height()), (900, 260));
    Ok(())
}

fn lens_modality(st: &Arrays) -> Result<Vec<u8>> {
    Ok(st
        .i64("modality_indicators")?
        .into_iter()
        .map(|m| m as u8)
        .collect())
}

#[test]
fn aggregation_matches_a_hand_computation() -> Result<()> {
    let device = Device::flex();
    // One layer, two heads, 3 queries × 3 keys; query 2 sees everything.
    let a = [
        [1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.2, 0.3, 0.5],
        [1.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.6, 0.1, 0.3],
    ];
    let flat: Vec<f32> = a.iter().flatten().copied().collect();
    let t = Tensor::<4>::from_data(TensorData::new(flat, [1, 2, 3, 3]), &device);
    let segs = vec![
        Segment {
            name: "a".into(),
            start: 0,
            end: 1,
        },
        Segment {
            name: "b".into(),
            start: 1,
            end: 3,
        },
    ];
    let m = aggregate(&[t.clone(), t], &[0, 1], 0, &[2], segs.clone())?;
    let want = [0.4, 0.2, 0.4];
    for (g, w) in m.map[0].iter().zip(want) {
        assert!((g - w).abs() < 1e-7, "{g} vs {w}");
    }
    assert!((m.shares[0][0] - 0.4).abs() < 1e-7 && (m.shares[0][1] - 0.6).abs() < 1e-7);
    // Averaging over samples of different lengths by segment name.
    let mut other = m.clone();
    other.segments = vec![
        Segment {
            name: "a".into(),
            start: 0,
            end: 2,
        },
        Segment {
            name: "b".into(),
            start: 2,
            end: 3,
        },
    ];
    other.shares = vec![vec![0.8, 0.2]];
    let avg = average_shares(&[m, other])?;
    assert_eq!(avg.segments, vec!["a", "b"]);
    assert!((avg.mean[0] - 0.6).abs() < 1e-7 && (avg.mean[1] - 0.4).abs() < 1e-7);
    assert!(aggregate(&[], &[0], 0, &[0], segs).is_err());
    Ok(())
}

#[test]
fn segment_bookkeeping_with_a_generated_description_is_exact() -> Result<()> {
    let root = fixture("tiny-owl2");
    let m =
        biqa_model::Owl2::from_dir(&root, &Device::flex(), &biqa_model::LoadOptions::default())?;
    let image = root.join("images/coffee_96x64.png");
    let seq = biqa_probes::owl2::probe_sequence(&m, &image, Some(12))?;
    // The fixture's greedy description of this image: 12 tokens, no </s>.
    assert_eq!(
        seq.description,
        vec![433, 88, 81, 195, 441, 277, 88, 81, 232, 4, 335, 414]
    );
    // Describe prompt: 20 ids → 28 positions, the image at 4..13 (tiny-owl2 README).
    let tail = m
        .tokenizer()
        .encode(biqa_probes::owl2::CONCLUSION_PROMPT, false)
        .len();
    let names: Vec<(&str, usize, usize)> = seq
        .segments
        .iter()
        .map(|s| (s.name.as_str(), s.start, s.end))
        .collect();
    assert_eq!(
        names,
        vec![
            ("prompt", 0, 4),
            ("image", 4, 13),
            ("prompt", 13, 28),
            ("description", 28, 40),
            ("conclusion", 40, 40 + tail)
        ]
    );
    assert_eq!(seq.queries.len(), 13);
    assert_eq!(seq.queries[0], 27);
    assert_eq!(*seq.queries.last().context("q")?, 40 + tail - 1);
    let map = biqa_probes::owl2::quality_attention(&m, &image, &[0, 1], Some(12))?;
    for row in &map.shares {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    }
    Ok(())
}

fn hand_lens(levels_per_layer: &[[f64; 3]]) -> biqa_probes::LensResult {
    use biqa_probes::{LayerLens, LensResult};
    let layers = levels_per_layer
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut order: Vec<usize> = (0..3).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            let mut ranks = vec![0; 3];
            for (r, &w) in order.iter().enumerate() {
                ranks[w] = r;
            }
            LayerLens {
                layer: i,
                top: Vec::new(),
                level_probs: p.to_vec(),
                level_ranks: ranks,
                final_rank: 0,
                entropy: 0.0,
                kl_to_final: 0.0,
            }
        })
        .collect();
    LensResult {
        position: 0,
        final_token: 0,
        level_words: vec!["good".into(), "fair".into(), "poor".into()],
        layers,
    }
}

#[test]
fn trajectories_settle_and_restrict() -> Result<()> {
    // Sample A: poor from layer 1 on; sample B: good, then fair, then good again at the end (settles at layer 2).
    let a = hand_lens(&[[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8]]);
    let b = hand_lens(&[[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.8, 0.1, 0.1]]);
    let t = trajectories(&[a.clone(), b.clone()], None)?;
    assert_eq!(t.settle_layer, vec![Some(1), Some(2)]);
    assert_eq!(t.share[0], vec![1.0, 0.0, 0.0]);
    assert_eq!(t.share[1], vec![0.0, 0.5, 0.5]);
    assert_eq!(t.share[2], vec![0.5, 0.0, 0.5]);
    let only_poor = trajectories(&[a, b], Some("poor"))?;
    assert_eq!(only_poor.samples, 1);
    assert_eq!(only_poor.share[1], vec![0.0, 0.0, 1.0]);
    assert!(trajectories(&[], None).is_err());
    Ok(())
}
