//! The composed model on `tests/fixtures/tiny-owl2`, end to end from the PNGs: Q-Align scores, probabilities and
//! last logits ≤ 1e-4 (f32 safetensors, and the bf16 `.bin` alone against `bf16bin_as_f32`), greedy descriptions
//! (tokens exact, step logits ≤ 1e-4), batch = single runs; plain LLaMA generation; damaged directories.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use biqa_decoder::{GenerationConfig, Sampling};
use biqa_model::{LoadOptions, ModelError, Owl2, Scorer, ScoringPrompt};
use biqa_testkit::{Arrays, assert_close, fixture, fixture_json};
use burn::tensor::Device;
use serde_json::Value;

fn expected_json() -> Result<Value> {
    fixture_json("tiny-owl2/expected/expected.json")
}

/// Every tensor of the expected outputs as f32 values (token ids included), by name.
fn arrays() -> Result<HashMap<String, Vec<f32>>> {
    Ok(Arrays::fixture("tiny-owl2/expected/expected.safetensors")?.f32_map())
}

const IMAGES: [&str; 2] = ["astronaut_96x96", "coffee_96x64"];

fn image(name: &str) -> PathBuf {
    fixture(&format!("tiny-owl2/images/{name}.png"))
}

fn greedy12() -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: 12,
        stop_tokens: vec![2],
        sampling: Sampling::Greedy,
        seed: 0,
        keep_logits: true,
    }
}

/// A copy of tiny-owl2 without one of its weight files.
fn copy_without(skip: &str) -> Result<tempfile::TempDir> {
    let tmp = tempfile::tempdir()?;
    for entry in std::fs::read_dir(fixture("tiny-owl2"))? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.path().is_file() && name != skip {
            std::fs::copy(entry.path(), tmp.path().join(name))?;
        }
    }
    Ok(tmp)
}

fn check_variant(model: &Owl2, variant: &str, tol_score: f64) -> Result<()> {
    let exp = expected_json()?;
    let arr = arrays()?;
    let scorer = Scorer::new(model.tokenizer(), ScoringPrompt::Qalign, None)?;
    assert_eq!(scorer.ids, vec![355, 354, 351, 353, 352]);
    let paths: Vec<PathBuf> = IMAGES.iter().map(|n| image(n)).collect();
    // Single images.
    let mut singles = Vec::new();
    for (i, name) in IMAGES.iter().enumerate() {
        let r = model
            .score_paths(&paths[i..=i], &scorer, 1, |_| {})?
            .remove(0);
        let e = &exp["variants"][variant]["per_image"][*name]["qalign"];
        assert!(
            (r.score - e["score_0_1"].as_f64().context("score")?).abs() <= tol_score,
            "{variant}/{name}: {} vs {}",
            r.score,
            e["score_0_1"]
        );
        assert!((r.score_1_5 - e["score_1_5"].as_f64().context("score")?).abs() <= tol_score);
        let probs: Vec<f32> = r.probs.iter().map(|&p| p as f32).collect();
        let want: Vec<f32> = e["probs"]
            .as_array()
            .context("probs")?
            .iter()
            .filter_map(Value::as_f64)
            .map(|p| p as f32)
            .collect();
        assert_close(&format!("{variant}/{name} probs"), &probs, &want, 1e-4);
        singles.push(r);
        let key = format!("{variant}.{name}.qalign.last_logits");
        {
            let want = arr.get(&key).with_context(|| key.clone())?;
            let e_lvl: Vec<f32> = e["level_logits"]
                .as_array()
                .context("lvl")?
                .iter()
                .filter_map(Value::as_f64)
                .map(|p| p as f32)
                .collect();
            assert_close(
                &format!("{key} (levels)"),
                &singles[i].level_logits,
                &e_lvl,
                1e-4,
            );
            assert_eq!(want.len(), 512);
        }
    }
    // The full last-position logits of the batch forward.
    let images = model.encode_images(model.pixels(&paths)?)?;
    let prompt = model.prepare(
        &vec![ScoringPrompt::Qalign.text().to_string(); 2],
        Some(images),
    )?;
    let rows = model.last_logits(prompt)?;
    assert_close(
        &format!("{variant}.batch.qalign.last_logits"),
        &rows.concat(),
        &arr[&format!("{variant}.batch.qalign.last_logits")],
        1e-4,
    );
    // The batch of both equals the single runs.
    let batch = model.score_paths(&paths, &scorer, 2, |_| {})?;
    for (b, s) in batch.iter().zip(&singles) {
        assert!(
            (b.score - s.score).abs() < 1e-5,
            "batch {} vs single {}",
            b.score,
            s.score
        );
    }
    // Greedy descriptions.
    for name in IMAGES {
        let mut steps = Vec::new();
        let g = model.describe(&image(name), &greedy12(), |s| steps.push(s[0]))?;
        let want: Vec<u32> = arr[&format!("{variant}.{name}.generate.new_tokens")]
            .iter()
            .map(|&t| t as u32)
            .collect();
        assert_eq!(g.token_ids, want, "{variant}/{name} greedy tokens");
        let text = exp["variants"][variant]["per_image"][name]["generate"]["text_skip_special"]
            .as_str()
            .context("text")?;
        assert_eq!(g.text, text, "{variant}/{name} decoded text");
    }
    Ok(())
}

#[test]
fn f32_safetensors_end_to_end() -> Result<()> {
    let model = Owl2::from_dir(
        fixture("tiny-owl2"),
        &Device::flex(),
        &LoadOptions::default(),
    )?;
    check_variant(&model, "f32_safetensors", 1e-4)?;
    // Step logits of the greedy description, and the full last-logit vector of the scorer's forward.
    let arr = arrays()?;
    let name = "coffee_96x64";
    let mut config = greedy12();
    config.keep_logits = true;
    let pixels = model.pixels(&[image(name)])?;
    let images = model.encode_images(pixels)?;
    let prompt = model.prepare(&[biqa_model::prompt::describe_prompt()], Some(images))?;
    let g = model.net.llm.generate(prompt, &config, |_| {})?;
    assert_close(
        "step_logits",
        &g.step_logits[0].concat(),
        &arr[&format!("f32_safetensors.{name}.generate.step_logits")],
        1e-4,
    );
    Ok(())
}

#[test]
fn bf16_bin_alone_matches_bf16bin_as_f32() -> Result<()> {
    let dir = copy_without("model.safetensors")?;
    let model = Owl2::from_dir(dir.path(), &Device::flex(), &LoadOptions::default())?;
    check_variant(&model, "bf16bin_as_f32", 1e-4)
}

#[test]
fn plain_llama_directory_generates() -> Result<()> {
    let dir = fixture("tiny-llama-gqa");
    let model = Owl2::from_dir(&dir, &Device::flex(), &LoadOptions::default())?;
    assert!(!model.net.has_vision() && model.assets.preprocessor.is_none());
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(
        dir.join("expected/expected.json"),
    )?)?;
    let g = model.generate(
        "USER: How would you rate the quality of this image?",
        None,
        &GenerationConfig {
            max_new_tokens: 10,
            ..Default::default()
        },
        |_| {},
    )?;
    let want: Vec<u32> = exp["new_tokens"][0]
        .as_array()
        .context("tokens")?
        .iter()
        .filter_map(Value::as_u64)
        .map(|t| t as u32)
        .collect();
    assert_eq!(g.token_ids, want);
    Ok(())
}

fn load_err(dir: &Path) -> ModelError {
    Owl2::from_dir(dir, &Device::flex(), &LoadOptions::default())
        .expect_err("a damaged directory must not load")
}

#[test]
fn damaged_directories_give_clear_errors() -> Result<()> {
    // Config missing a field.
    let d = copy_without("pytorch_model.bin")?;
    let cfg = d.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)?;
    std::fs::write(&cfg, text.replacen("\"intermediate_size\": 160,", "", 1))?;
    let e = load_err(d.path()).to_string();
    assert!(
        e.contains("intermediate_size") && e.contains("config.json"),
        "{e}"
    );
    std::fs::write(&cfg, &text)?;
    // Truncated weights.
    let st = d.path().join("model.safetensors");
    let bytes = std::fs::read(&st)?;
    std::fs::write(&st, &bytes[..bytes.len() / 3])?;
    let e = load_err(d.path()).to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // Tokenizer with the wrong vocabulary size.
    let d = copy_without("pytorch_model.bin")?;
    let cfg = d.path().join("config.json");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)?.replace("\"vocab_size\": 512", "\"vocab_size\": 600"),
    )?;
    let err = load_err(d.path());
    assert!(
        matches!(
            err,
            ModelError::VocabSizeMismatch {
                actual: 512,
                expected: 600,
                ..
            }
        ),
        "{err}"
    );
    // An index naming a missing shard.
    let d = copy_without("model.safetensors")?;
    std::fs::remove_file(d.path().join("pytorch_model.bin"))?;
    std::fs::write(
        d.path().join("model.safetensors.index.json"),
        r#"{"metadata": {}, "weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}}"#,
    )?;
    let e = load_err(d.path()).to_string();
    assert!(e.contains("model-00001-of-00002.safetensors"), "{e}");
    // A level word that is two tokens.
    let model = Owl2::from_dir(
        fixture("tiny-owl2"),
        &Device::flex(),
        &LoadOptions::default(),
    )?;
    let err = Scorer::new(
        model.tokenizer(),
        ScoringPrompt::Qalign,
        Some(vec!["excellent".into(), "mediocrity".into()]),
    )
    .expect_err("two-token word");
    assert!(err.to_string().contains("mediocrity"), "{err}");
    Ok(())
}

#[test]
fn converted_directory_loads_the_same() -> Result<()> {
    let src = copy_without("model.safetensors")?; // only the bf16 .bin
    let out = tempfile::tempdir()?;
    biqa_model::convert_dir(src.path(), out.path(), 600_000)?;
    assert!(out.path().join("model.safetensors.index.json").is_file());
    assert!(out.path().join("tokenizer.model").is_file());
    assert!(!out.path().join("pytorch_model.bin").exists());
    let a = Owl2::from_dir(src.path(), &Device::flex(), &LoadOptions::default())?;
    let b = Owl2::from_dir(out.path(), &Device::flex(), &LoadOptions::default())?;
    let scorer = Scorer::new(a.tokenizer(), ScoringPrompt::Qalign, None)?;
    let p = [image("coffee_96x64")];
    let (ra, rb) = (
        a.score_paths(&p, &scorer, 1, |_| {})?,
        b.score_paths(&p, &scorer, 1, |_| {})?,
    );
    assert_eq!(
        ra, rb,
        "sharded bf16 safetensors give exactly the .bin results"
    );
    Ok(())
}

#[test]
fn bf16_parameters_score_close_to_f32() -> Result<()> {
    let options = LoadOptions {
        policy: biqa_checkpoint::FloatPolicy::Bf16,
        ..Default::default()
    };
    let model = Owl2::from_dir(fixture("tiny-owl2"), &Device::flex(), &options)?;
    let scorer = Scorer::new(model.tokenizer(), ScoringPrompt::Qalign, None)?;
    let exp = expected_json()?;
    for name in IMAGES {
        let r = model
            .score_paths(&[image(name)], &scorer, 1, |_| {})?
            .remove(0);
        let want = exp["variants"]["f32_safetensors"]["per_image"][name]["qalign"]["score_0_1"]
            .as_f64()
            .context("score")?;
        // bf16 compute: about 2e-2 (fixture README).
        assert!(
            (r.score - want).abs() <= 2e-2,
            "{name}: bf16 {} vs f32 {want}",
            r.score
        );
    }
    Ok(())
}

/// The layout of `biqa_model::names` is the exact inverse of loading: a loaded network's `checkpoint_tensors` are the
/// checkpoint's tensors again, name for name and bit for bit (position tables and RoPE buffers are not parameters).
#[test]
fn checkpoint_layout_inverts_loading() -> Result<()> {
    let dir = fixture("tiny-owl2");
    let model = Owl2::from_dir(&dir, &Device::flex(), &LoadOptions::default())?;
    let exported = model.net.checkpoint_tensors()?;
    let ckpt = biqa_checkpoint::Checkpoint::open(&dir)?;
    let mut buffers = Vec::new();
    for name in ckpt.names() {
        let (values, shape) = ckpt.f32(name)?;
        match exported.get(name) {
            Some((s, v)) => {
                assert_eq!(s, &shape, "{name}: shape");
                assert!(
                    v.iter()
                        .zip(&values)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name}: values differ"
                );
            }
            None => buffers.push(name.to_string()),
        }
    }
    assert!(
        buffers
            .iter()
            .all(|n| n.ends_with("rotary_emb.inv_freq") || n.contains("pos_embed")),
        "tensors without a parameter: {buffers:?}"
    );
    assert_eq!(exported.len() + buffers.len(), ckpt.len());
    Ok(())
}

/// `config.json` is one serde mirror: parsed once into the LLaMA fields, `visual_config` and the preprocessing.
#[test]
fn whole_config_mirror() -> Result<()> {
    let path = fixture("tiny-owl2/config.json");
    let hf = biqa_model::HfOwl2Config::from_file(&path)?;
    let config = hf.to_config()?;
    assert!(config.multiway());
    assert_eq!(config.image_tokens(), Some(9));
    // A mistyped LLaMA key is located and named by serde.
    let text = std::fs::read_to_string(&path)?.replace(
        &format!("\"hidden_size\": {}", config.llm.hidden_size),
        "\"hidden_size\": \"wide\"",
    );
    let err = biqa_model::HfOwl2Config::from_json(&text, &path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("config.json") && msg.contains("line"), "{msg}");
    Ok(())
}

#[test]
fn convert_refuses_a_missing_source_and_a_non_empty_target() -> Result<()> {
    let root = tempfile::tempdir()?;
    // A missing source is named as missing (not "must differ").
    let missing = root.path().join("no-such-model");
    let err = biqa_model::convert_dir(&missing, &root.path().join("out"), 600_000)
        .expect_err("missing source");
    assert!(
        matches!(err, ModelError::ConvertSourceMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!err.to_string().contains("must differ"), "{err}");
    assert!(!root.path().join("out").exists());

    // A folder that already holds weights is refused and left exactly as it was.
    let src = copy_without("model.safetensors")?;
    let stale = root.path().join("stale");
    std::fs::create_dir(&stale)?;
    std::fs::write(stale.join("model.safetensors"), b"old weights")?;
    let err = biqa_model::convert_dir(src.path(), &stale, 600_000).expect_err("non-empty");
    assert!(
        matches!(err, ModelError::ConvertTargetNotEmpty { entries: 1, .. }),
        "{err}"
    );
    let names: Vec<_> = std::fs::read_dir(&stale)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, ["model.safetensors"]);
    assert_eq!(
        std::fs::read(stale.join("model.safetensors"))?,
        b"old weights"
    );

    // An empty folder is filled; every file returned is in it, nothing is left beside it, and the weights are
    // readable by others like every other file (not tempfile's 0600).
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty)?;
    let files = biqa_model::convert_dir(src.path(), &empty, 600_000)?;
    assert!(
        files.iter().all(|f| f.starts_with(&empty) && f.is_file()),
        "{files:?}"
    );
    assert!(empty.join("model.safetensors.index.json").is_file());
    let mut beside: Vec<_> = std::fs::read_dir(root.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    beside.sort();
    assert_eq!(beside, ["empty", "stale"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "safetensors"))
        {
            let mode = std::fs::metadata(f)?.permissions().mode() & 0o777;
            assert_ne!(mode, 0o600, "{}: {mode:o}", f.display());
            assert_ne!(mode & 0o044, 0, "{}: {mode:o}", f.display());
        }
    }
    // Converting into the same (now non-empty) folder again is refused rather than mixing old and new files.
    assert!(matches!(
        biqa_model::convert_dir(src.path(), &empty, 600_000),
        Err(ModelError::ConvertTargetNotEmpty { .. })
    ));
    Ok(())
}

#[test]
fn one_broken_image_fails_only_its_own_slot() -> Result<()> {
    let model = Owl2::from_dir(
        fixture("tiny-owl2"),
        &Device::flex(),
        &LoadOptions::default(),
    )?;
    let scorer = Scorer::new(model.tokenizer(), ScoringPrompt::Qalign, None)?;
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really a png")?;
    let paths = [image(IMAGES[0]), broken.clone(), image(IMAGES[1])];
    let good = model.score_paths(&[image(IMAGES[0]), image(IMAGES[1])], &scorer, 1, |_| {})?;
    for batch_size in [1, 3] {
        let mut done = Vec::new();
        let got = model.score_paths_each(&paths, &scorer, batch_size, |n| done.push(n))?;
        assert_eq!(got.len(), 3);
        assert_eq!(done.last(), Some(&3));
        let err = got[1].as_ref().expect_err("broken image");
        assert!(err.to_string().contains("broken.png"), "{err}");
        for (g, want) in [&got[0], &got[2]].into_iter().zip(&good) {
            let g = g.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
            biqa_testkit::assert_close_f64("score", g.score, want.score, 1e-5);
        }
    }
    Ok(())
}

/// NaN weights give an error naming the first non-finite stage, not a NaN score with exit 0 (issue #16).
#[test]
fn nan_weights_are_an_error_naming_the_stage() -> Result<()> {
    let dir = copy_without("pytorch_model.bin")?;
    let st = dir.path().join("model.safetensors");
    let mut tensors = biqa_testkit::read_raw(&st)?;
    let (_, _, bytes) = tensors
        .iter_mut()
        .find(|(n, _, _)| n == "model.visual_abstractor.vit_eos")
        .ok_or_else(|| anyhow::anyhow!("no vit_eos"))?;
    bytes[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    biqa_testkit::write_f32_raw(&st, &tensors)?;
    let m = Owl2::from_dir(dir.path(), &Device::flex(), &LoadOptions::default())?;
    let scorer = Scorer::new(m.tokenizer(), ScoringPrompt::Qalign, None)?;
    let img = fixture("tiny-owl2/images/astronaut_96x96.png");
    let err = m.score_paths(&[img], &scorer, 1, |_| {}).unwrap_err();
    assert!(
        matches!(err, ModelError::NonFinite { stage } if stage.starts_with("image tokens")),
        "{err}"
    );
    Ok(())
}

/// An endless `config.json` (a link to `/dev/zero`) is refused at the read cap instead of growing until killed
/// (issue #16), and the error names the file.
#[test]
fn an_endless_config_is_refused_at_the_cap() -> Result<()> {
    let dir = copy_without("config.json")?;
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("config.json"))?;
    let err = Owl2::from_dir(dir.path(), &Device::flex(), &LoadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("config.json") && msg.contains("longer than"),
        "{msg}"
    );
    Ok(())
}
