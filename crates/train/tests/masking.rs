//! Label masking, the collator and the image-token expansion against the original mPLUG-Owl2 train.py outputs
//! (`tests/fixtures/train-step`: `masking.safetensors`, `train_step.safetensors`, `index.json`), all exact; plus the
//! dataset-file error cases.

#[path = "shared/train_step_batch.rs"]
mod train_step_batch;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, ensure};
use biqa_data::{ConversationRecord, Turn};
use biqa_model::Tokenizer;
use biqa_testkit::{Arrays, fixture, read_json};
use biqa_train::batch::{Segment, collate, expand, pad_id};
use biqa_train::conversation::{
    MaskingVariant, Template, TokenizeOptions, load_dataset, prompt, read_records, tokenize_record,
};
use biqa_train::{IGNORE_INDEX, TrainError};
use serde_json::Value;

fn train_step() -> PathBuf {
    fixture("train-step")
}

fn tokenizer() -> Result<Tokenizer> {
    Ok(Tokenizer::from_dir(fixture("tiny-owl2"))?)
}

/// Every integer tensor of a safetensors file, by name.
fn int_tensors(path: &Path) -> Result<std::collections::HashMap<String, Vec<i64>>> {
    Ok(Arrays::open(path)?.i64_map())
}

fn index() -> Result<Value> {
    read_json(train_step().join("index.json"))
}

const Q1: &str = "How would you rate the quality of this image?\n<|image|>";

fn turn(from: &str, value: &str) -> Turn {
    Turn {
        from: from.into(),
        value: value.into(),
    }
}

/// The three conversations of the fixture (README, Part 1): the train-step batch's two, and a multi-turn one.
fn samples() -> Vec<(&'static str, ConversationRecord)> {
    let [single, text] = train_step_batch::fixture_records();
    vec![
        ("single_image", single),
        (
            "multi_turn_image",
            ConversationRecord {
                id: "multi_turn_image".into(),
                image: Some("coffee_96x64.png".into()),
                conversations: vec![
                    turn("human", Q1),
                    turn("gpt", "The quality of the image is fair."),
                    turn(
                        "human",
                        "What is the most obvious distortion in this image?",
                    ),
                    turn(
                        "gpt",
                        "The image is slightly blurry and the colors are dull.",
                    ),
                ],
                gt_score: None,
            },
        ),
        ("text_only", text),
    ]
}

fn template_key(t: Template) -> &'static str {
    match t {
        Template::V1 => "v1",
        Template::MplugOwl2 => "mplug_owl2",
    }
}

#[test]
fn masking_matches_the_original_for_both_templates_and_variants() -> Result<()> {
    let tok = tokenizer()?;
    let expected = int_tensors(&train_step().join("masking.safetensors"))?;
    let index = index()?;
    let mut checked = 0;
    for template in [Template::V1, Template::MplugOwl2] {
        let key = template_key(template);
        for (name, record) in samples() {
            let facts = &index["masking"][key]["samples"][name];
            let text = prompt(&record, template)?;
            ensure!(
                facts["prompt"].as_str() == Some(text.as_str()),
                "{key}/{name}: prompt {text:?}"
            );
            for (variant, label_key, mismatch_key) in [
                (MaskingVariant::MplugOwl2, "labels", None),
                (
                    MaskingVariant::QalignTrainMem,
                    "labels_qalign_train_mem",
                    Some("qalign_train_mem_variant"),
                ),
            ] {
                let options = TokenizeOptions {
                    template,
                    variant,
                    ..TokenizeOptions::default()
                };
                let s = tokenize_record(&tok, &record, 0, &options)?;
                let ids = &expected[&format!("{key}/{name}/input_ids")];
                let labels = &expected[&format!("{key}/{name}/{label_key}")];
                ensure!(&s.input_ids == ids, "{key}/{name}: input_ids differ");
                ensure!(
                    &s.labels == labels,
                    "{key}/{name}/{label_key}: labels differ\n ours {:?}\n ref  {:?}",
                    s.labels,
                    labels
                );
                let facts = match mismatch_key {
                    Some(k) => &facts[k],
                    None => facts,
                };
                let want_mismatch = facts["tokenization_mismatch"].as_bool();
                ensure!(
                    Some(s.mismatch.is_some()) == want_mismatch,
                    "{key}/{name}/{label_key}: mismatch {:?}",
                    s.mismatch
                );
                if let Some(m) = s.mismatch {
                    ensure!(
                        facts["printed"]
                            .as_str()
                            .is_some_and(|p| p.contains(&m.to_string())),
                        "{key}/{name}: {m} not in {}",
                        facts["printed"]
                    );
                }
                ensure!(
                    Some(s.n_supervised() as u64) == facts["n_supervised"].as_u64(),
                    "{key}/{name}/{label_key}: {} supervised",
                    s.n_supervised()
                );
                ensure!(s.n_image_tokens() == usize::from(record.image.is_some()));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 12);
    Ok(())
}

#[test]
fn batch_and_expansion_match_the_original() -> Result<()> {
    let tok = tokenizer()?;
    let expected = int_tensors(&train_step().join("train_step.safetensors"))?;
    let options = TokenizeOptions::default();
    let all = samples();
    let single = tokenize_record(&tok, &all[0].1, 0, &options)?;
    let text = tokenize_record(&tok, &all[2].1, 2, &options)?;

    let batch = collate([&single, &text], pad_id(&tok), options.model_max_length)?;
    assert_eq!((batch.batch, batch.len), (2, 168));
    assert_eq!(batch.pad_id, 0);
    assert_eq!(batch.input_ids, expected["batch.input_ids"]);
    assert_eq!(batch.labels, expected["batch.labels"]);
    let mask: Vec<i64> = batch.attention_mask.iter().map(|&m| i64::from(m)).collect();
    assert_eq!(mask, expected["batch.attention_mask"]);

    let e = expand(&batch, 9)?;
    assert_eq!((e.batch, e.len), (2, 176));
    assert_eq!(e.labels, expected["expanded.labels"]);
    let modality: Vec<i64> = e.modality.iter().map(|&m| i64::from(m)).collect();
    assert_eq!(modality, expected["expanded.modality_indicators"]);
    let mask: Vec<i64> = e.attention_mask.iter().map(|&m| i64::from(m)).collect();
    assert_eq!(mask, expected["expanded.attention_mask"]);

    // Layout: row 0 = 101 text, the image, 24 text + 42 pads (embedded); row 1 = 168 text, 8 zero vectors.
    let lens: Vec<Vec<usize>> = e
        .rows
        .iter()
        .map(|r| r.iter().map(|s| s.len(e.image_tokens)).collect())
        .collect();
    assert_eq!(lens, [vec![101, 9, 66], vec![168, 8]]);
    assert!(matches!(e.rows[0][1], Segment::Image(0)));
    assert!(matches!(&e.rows[0][2], Segment::Text(ids) if ids[24..].iter().all(|&t| t == 0)));
    assert!(matches!(e.rows[1][1], Segment::Zeros(8)));
    assert_eq!(e.images, [PathBuf::from("astronaut_96x96.png")]);
    assert_eq!(e.n_supervised(), 18);
    let positions = e.position_ids();
    assert_eq!(positions.len(), 2 * 176);
    assert_eq!(positions[176..], (0..176).collect::<Vec<i64>>()[..]);
    // Supervised expanded positions 125–133 (row 0) and 159–167 (row 1).
    let sup: Vec<usize> = (0..e.batch * e.len)
        .filter(|&i| e.labels[i] != IGNORE_INDEX)
        .collect();
    let want: Vec<usize> = (125..134).chain((159..168).map(|p| 176 + p)).collect();
    assert_eq!(sup, want);
    Ok(())
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn data_reason(e: TrainError, file: &Path) -> Result<String> {
    match e {
        TrainError::Data { path, reason } => {
            ensure!(
                path == file,
                "error names {} not {}",
                path.display(),
                file.display()
            );
            let shown = TrainError::Data {
                path,
                reason: reason.clone(),
            }
            .to_string();
            ensure!(shown.contains(&file.display().to_string()));
            Ok(reason)
        }
        other => Err(anyhow!("expected a Data error, got {other}")),
    }
}

#[test]
fn dataset_files_real_world_variants_and_report() -> Result<()> {
    let tok = tokenizer()?;
    let dir = tempfile::tempdir()?;
    // LLaVA `<image>`, `img_path`, numeric id, missing gt_score, unknown keys, a leading gpt turn (dropped).
    let path = write(
        dir.path(),
        "mixed.json",
        r#"[
          {"id": 7, "img_path": "a.png", "extra": [1, 2],
           "conversations": [{"from": "gpt", "value": "Hello."},
                             {"from": "human", "value": "How would you rate the quality of this image?\n<image>"},
                             {"from": "gpt", "value": "The quality of the image is poor."}]},
          {"image": "b.png", "gt_score": 3.5,
           "conversations": [{"from": "human", "value": "How would you rate the quality of this image?\n<|image|>"},
                             {"from": "gpt", "value": "The quality of the image is fair."},
                             {"from": "human", "value": "What is the most obvious distortion in this image?"},
                             {"from": "gpt", "value": "The image is slightly blurry and the colors are dull."}]}
        ]"#,
    )?;
    let records = read_records(&path)?;
    assert_eq!(records[0].id, "7");
    assert_eq!(records[0].image.as_deref(), Some("a.png"));
    assert_eq!(records[1].id, "#1");
    assert_eq!(records[1].gt_score, Some(3.5));

    let options = TokenizeOptions {
        image_folder: Some(PathBuf::from("/data/images")),
        ..TokenizeOptions::default()
    };
    let ds = load_dataset(&path, &tok, &options)?;
    assert_eq!(
        (ds.samples.len(), ds.skipped.len(), ds.n_records()),
        (2, 0, 2)
    );
    assert_eq!(ds.n_truncated(), 0);
    // Record 0 is the fixture's single_image sample once the leading gpt turn is dropped.
    let expected = int_tensors(&train_step().join("masking.safetensors"))?;
    assert_eq!(
        ds.samples[0].input_ids,
        expected["v1/single_image/input_ids"]
    );
    assert_eq!(ds.samples[0].labels, expected["v1/single_image/labels"]);
    assert_eq!(
        ds.samples[0].image.as_deref(),
        Some(Path::new("/data/images/a.png"))
    );
    assert_eq!(ds.samples[1].labels, expected["v1/multi_turn_image/labels"]);

    // Q-Align's train_mem.py masking flags the multi-turn sample: it is set aside, not trained on.
    let qalign = TokenizeOptions {
        variant: MaskingVariant::QalignTrainMem,
        ..TokenizeOptions::default()
    };
    let ds = load_dataset(&path, &tok, &qalign)?;
    assert_eq!((ds.samples.len(), ds.skipped.len()), (1, 1));
    let skipped = &ds.skipped[0];
    assert_eq!((skipped.index, skipped.id.as_str()), (1, "#1"));
    assert_eq!(
        skipped.mismatch.map(|m| m.to_string()).as_deref(),
        Some("tokenization mismatch: 172 vs. 173")
    );
    assert!(skipped.labels.iter().all(|&l| l == IGNORE_INDEX));
    Ok(())
}

#[test]
fn text_only_truncation() -> Result<()> {
    let tok = tokenizer()?;
    let record = samples().remove(2).1;
    let options = TokenizeOptions {
        model_max_length: 50,
        ..TokenizeOptions::default()
    };
    let s = tokenize_record(&tok, &record, 0, &options)?;
    assert!(s.truncated);
    assert_eq!(s.input_ids.len(), 50);
    let full = tokenize_record(&tok, &record, 0, &TokenizeOptions::default())?;
    assert_eq!(s.input_ids[..], full.input_ids[..50]);
    // cur_len (168) >= model_max_length: no mismatch check, and the answer lies past the cut.
    assert!(s.mismatch.is_none());
    assert_eq!(s.n_supervised(), 0);
    Ok(())
}

#[test]
fn error_cases_name_the_file_and_the_record() -> Result<()> {
    let tok = tokenizer()?;
    let dir = tempfile::tempdir()?;
    let options = TokenizeOptions::default();

    let bad_json = write(dir.path(), "bad.json", "[{\"id\": 1,")?;
    let reason = data_reason(
        read_records(&bad_json).err().context("bad JSON accepted")?,
        &bad_json,
    )?;
    assert!(reason.contains("invalid JSON"), "{reason}");

    let empty = write(dir.path(), "empty.json", "[]")?;
    let reason = data_reason(read_records(&empty).err().context("empty")?, &empty)?;
    assert!(reason.contains("no records"), "{reason}");

    let not_list = write(dir.path(), "obj.json", "{\"id\": 1}")?;
    data_reason(read_records(&not_list).err().context("object")?, &not_list)?;

    let missing = write(
        dir.path(),
        "missing.json",
        r#"[{"id": "ok", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
            {"id": "broken", "image": "x.png"}]"#,
    )?;
    let reason = data_reason(read_records(&missing).err().context("missing")?, &missing)?;
    assert!(
        reason.contains("record 1")
            && reason.contains("broken")
            && reason.contains("conversations"),
        "{reason}"
    );

    let bad_turn = write(
        dir.path(),
        "turn.json",
        r#"[{"conversations": [{"from": "human"}]}]"#,
    )?;
    let reason = data_reason(read_records(&bad_turn).err().context("turn")?, &bad_turn)?;
    assert!(reason.contains("value"), "{reason}");

    // Role order: two human turns in a row (an assertion in the original).
    let order = write(
        dir.path(),
        "order.json",
        r#"[{"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
            {"id": "b", "conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "q2"}]}]"#,
    )?;
    let reason = data_reason(
        load_dataset(&order, &tok, &options)
            .err()
            .context("order")?,
        &order,
    )?;
    assert!(
        reason.contains("record 1") && reason.contains("\"b\"") && reason.contains("alternate"),
        "{reason}"
    );

    // Unknown role.
    let role = write(
        dir.path(),
        "role.json",
        r#"[{"conversations": [{"from": "system", "value": "q"}, {"from": "gpt", "value": "a"}]}]"#,
    )?;
    let reason = data_reason(
        load_dataset(&role, &tok, &options).err().context("role")?,
        &role,
    )?;
    assert!(reason.contains("system"), "{reason}");

    // Two image turns in one image sample.
    let two = write(
        dir.path(),
        "two.json",
        r#"[{"image": "a.png", "conversations": [{"from": "human", "value": "<|image|>q"}, {"from": "gpt", "value": "a"},
                                                 {"from": "human", "value": "<image>r"}, {"from": "gpt", "value": "b"}]}]"#,
    )?;
    let reason = data_reason(
        load_dataset(&two, &tok, &options).err().context("two")?,
        &two,
    )?;
    assert!(reason.contains("2 <|image|>"), "{reason}");

    let missing_file = dir.path().join("nope.json");
    assert!(matches!(
        read_records(&missing_file),
        Err(TrainError::Io { path, .. }) if path == missing_file
    ));
    Ok(())
}
