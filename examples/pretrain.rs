//! Pre-alignment of the miniature mPLUG-Owl2: the starting point of the main job (`examples/reproduce.rs`), which
//! stands in for the released mPLUG-Owl2 (image–text alignment, never taught quality).
//!
//! A randomly initialised miniature ([`biqa::miniature`]) is trained on the pre-alignment task — image + "Describe
//! this photo." → "A photo of {subject}. It was {processing}, strength {n}." — over clean and processed crops of
//! the training photos and of procedural dead-leaves pictures only (the validation and test photos are never seen). The captions name what was done to
//! the image in neutral words, never a quality level or judgement. Then the held-out photos' captions are
//! generated greedily and checked: the share whose processing and whose strength are right.
//!
//! ```text
//! cargo run --release --example pretrain -- [--out DIR] [--seed N] [--steps N] [--batch-size N] [--lr LR]
//!     [--crops N] [--dead-leaves N] [--patch N] [--vit-width N] [--vit-layers N] [--llm-width N] [--llm-layers N]
//!     [--llm-intermediate N] [--curriculum N] [--processing-question | --captions-only] [--check N] [--check-only DIR] [--bundle DIR]
//! ```
//! Defaults: `target/pretrain`, seed 0, [`PretrainSettings::default`] (3000 steps of 32 at lr 3e-4, cosine, 3 %
//! warmup, captions and the processing question; `--captions-only` drops the question), 100 crops per photo of the
//! six training photos and of 24 dead-leaves pictures (`--dead-leaves N`, [`biqa::data::dead_leaves`]); the check
//! generates the captions of 140 images of the training photos (not the pictures) and 140 of the held-out photos.
//! The final model is `DIR/seed<N>/train/final`. `--bundle data/miniature` also writes it, weights as bf16, to
//! `data/miniature/seed<N>/` with its loss log (`pretrain_loss.csv`) and `pretrain.json` (command, time, machine,
//! caption checks): the bundled starting points of the main job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use biqa::data::{DistortionKind, Split, SynthItem};
use biqa::miniature::{self, PretrainSettings};
use biqa::model::{Conversation, LoadOptions, Owl2};
use biqa::train::{Observer, StepLog};
use burn::tensor::Device;

struct Progress {
    every: usize,
    t0: Instant,
}

impl Observer for Progress {
    fn on_step(&mut self, s: &StepLog, _total: usize) {
        if s.global_step.is_multiple_of(self.every) || s.global_step == 1 {
            eprintln!(
                "  step {:>5}  loss {:.4}  lr {:.2e}  |g| {:.3}  {:.0} s",
                s.global_step,
                s.loss,
                s.lr,
                s.grad_norm,
                self.t0.elapsed().as_secs_f64()
            );
        }
    }
}

/// The processing and strength a generated caption states.
fn parse_caption(text: &str) -> (Option<DistortionKind>, Option<u8>, bool) {
    let unprocessed = text.contains("unprocessed");
    let kind = DistortionKind::ALL
        .into_iter()
        .find(|&k| text.contains(miniature::processing_words(k)));
    let strength = text
        .split("strength ")
        .nth(1)
        .and_then(|r| r.chars().next())
        .and_then(|c| c.to_digit(10))
        .map(|d| d as u8);
    (kind, strength, unprocessed)
}

fn check_captions(model: &Path, data: &Path, items: &[&SynthItem]) -> Result<(f64, f64)> {
    let m = Owl2::from_dir(model, &Device::flex(), &LoadOptions::default())?;
    let prompt = Conversation::MplugOwl2.render(&[(
        &format!("{}\n{}", biqa::data::IMAGE_TOKEN, miniature::CAPTION_PROMPT),
        None,
    )]);
    let (mut kind_ok, mut strength_ok) = (0usize, 0usize);
    // Per true processing (none first): [right processing, right strength, images].
    let mut per_kind: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for it in items {
        let pixels = m.pixels(&[data.join(&it.image).as_path()])?;
        let g = m.generate(
            &prompt,
            Some(pixels),
            &biqa::decoder::GenerationConfig {
                max_new_tokens: 24,
                stop_tokens: vec![2],
                ..Default::default()
            },
            |_| {},
        )?;
        let (kind, strength, unprocessed) = parse_caption(&g.text);
        let entry = per_kind
            .entry(it.distortion.map_or("none", DistortionKind::name))
            .or_default();
        entry[2] += 1;
        let (k0, s0) = (kind_ok, strength_ok);
        match it.distortion {
            None => {
                if unprocessed {
                    kind_ok += 1;
                    strength_ok += 1;
                }
            }
            Some(k) => {
                if kind == Some(k) {
                    kind_ok += 1;
                    if strength == Some(it.strength) {
                        strength_ok += 1;
                    }
                }
            }
        }
        entry[0] += kind_ok - k0;
        entry[1] += strength_ok - s0;
    }
    let n = items.len().max(1) as f64;
    let table: Vec<String> = per_kind
        .iter()
        .map(|(k, [a, b, n])| format!("{k} {a}/{b}/{n}"))
        .collect();
    eprintln!(
        "  per processing (processing right / strength right / images): {}",
        table.join(", ")
    );
    Ok((kind_ok as f64 / n, strength_ok as f64 / n))
}

/// Copies a trained checkpoint directory to `dst` with its weights stored as bf16 (half the size; the loader
/// widens them back to f32).
fn write_bundle(src: &Path, dst: &Path) -> Result<()> {
    let ckpt = biqa::checkpoint::Checkpoint::open(src)?;
    let names: Vec<String> = ckpt.names().map(str::to_owned).collect();
    let mut entries = Vec::new();
    for n in &names {
        let (_, shape) = ckpt.f32(n)?;
        entries.push(biqa::checkpoint::TensorEntry {
            name: n.clone(),
            shape,
            dtype: burn::tensor::DType::BF16,
        });
    }
    let staging = biqa::core::AtomicDir::new(dst)?;
    biqa::checkpoint::write_sharded(
        staging.path(),
        &dst.display().to_string(),
        &entries,
        |name| {
            let (v, shape) = ckpt.f32(name)?;
            Ok(burn::tensor::TensorData::new(v, shape).convert_dtype(burn::tensor::DType::BF16))
        },
        u64::MAX,
    )?;
    for f in biqa::model::ASSET_FILES {
        if src.join(f).is_file() {
            std::fs::copy(src.join(f), staging.path().join(f))?;
        }
    }
    staging.commit()?;
    Ok(())
}

fn main() -> Result<()> {
    biqa::kernels::tune_allocator();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = root.join("target/pretrain");
    let mut settings = PretrainSettings::default();
    let mut seed = 0u64;
    let mut check = 140usize;
    let mut probe_crops = 20usize;
    let mut bundle: Option<PathBuf> = None;
    let mut check_only: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => out = PathBuf::from(value("--out")?),
            "--seed" => seed = value("--seed")?.parse()?,
            "--steps" => settings.steps = value("--steps")?.parse()?,
            "--batch-size" => settings.batch_size = value("--batch-size")?.parse()?,
            "--lr" => settings.lr = value("--lr")?.parse()?,
            "--curriculum" => settings.curriculum_steps = value("--curriculum")?.parse()?,
            "--processing-question" => settings.processing_question = true,
            "--captions-only" => settings.processing_question = false,
            "--crops" => settings.crops_per_photo = value("--crops")?.parse()?,
            "--dead-leaves" => settings.dead_leaves = value("--dead-leaves")?.parse()?,
            "--patch" => settings.size.patch = value("--patch")?.parse()?,
            "--vit-width" => settings.size.vit_width = value("--vit-width")?.parse()?,
            "--vit-layers" => settings.size.vit_layers = value("--vit-layers")?.parse()?,
            "--llm-width" => settings.size.llm_width = value("--llm-width")?.parse()?,
            "--llm-layers" => settings.size.llm_layers = value("--llm-layers")?.parse()?,
            "--llm-intermediate" => {
                settings.size.llm_intermediate = value("--llm-intermediate")?.parse()?
            }
            "--check" => check = value("--check")?.parse()?,
            "--probe-crops" => probe_crops = value("--probe-crops")?.parse()?,
            "--bundle" => bundle = Some(PathBuf::from(value("--bundle")?)),
            "--check-only" => check_only = Some(PathBuf::from(value("--check-only")?)),
            s => bail!("unknown argument {s}"),
        }
    }
    let t0 = Instant::now();
    let data = out.join("data");
    eprintln!(
        "building the miniature's synthetic set in {} …",
        data.display()
    );
    let (set, photos) = miniature::pretrain_set(&data, &settings)?;
    let train_items = set.items_in(Split::Train);
    eprintln!(
        "{} training images ({} photos, {} of them dead-leaves pictures); held out: {:?}",
        train_items.len(),
        set.splits.values().filter(|s| **s == Split::Train).count(),
        settings.dead_leaves,
        set.splits
            .iter()
            .filter(|(_, s)| **s != Split::Train)
            .collect::<Vec<_>>()
    );
    let run = out.join(format!("seed{seed}"));
    let PretrainSettings {
        steps,
        batch_size,
        lr,
        curriculum_steps,
        processing_question,
        crops_per_photo: crops,
        dead_leaves,
        size,
    } = settings;
    let size_flags = format!(
        " --patch {} --vit-width {} --vit-layers {} --llm-width {} --llm-layers {} --llm-intermediate {}",
        size.patch,
        size.vit_width,
        size.vit_layers,
        size.llm_width,
        size.llm_layers,
        size.llm_intermediate
    );
    let (final_model, losses) = match &check_only {
        Some(dir) => (dir.clone(), Vec::new()),
        None => {
            eprintln!(
                "pre-alignment, seed {seed}: {steps} steps ({curriculum_steps} on strengths 3–5 first), batch \
                 {batch_size}, lr {lr}, processing question {processing_question} …"
            );
            let report = miniature::pretrain(
                &data,
                &train_items,
                &photos,
                seed,
                &settings,
                &run,
                &mut Progress {
                    every: 50,
                    t0: Instant::now(),
                },
            )?;
            let losses: Vec<(usize, f64)> = report
                .steps
                .iter()
                .map(|s| (s.global_step, s.loss))
                .collect();
            (report.final_model, losses)
        }
    };
    let train_seconds = t0.elapsed().as_secs_f64();
    // A seeded draw of the images checked (every processing and strength equally likely).
    fn pick(mut items: Vec<&SynthItem>, check: usize) -> Vec<&SynthItem> {
        biqa::core::SplitMix64::new(0xC4EC).shuffle(&mut items);
        items.truncate(check);
        items
    }
    let held_out = pick(
        set.items
            .iter()
            .filter(|i| i.split != Split::Train)
            .collect(),
        check,
    );
    // The training photographs (not the dead-leaves pictures): what the check compares the held-out photos with.
    let pictures: std::collections::HashSet<&str> = photos
        .iter()
        .filter(|p| p.subject == biqa::data::DEAD_LEAVES_SUBJECT)
        .map(|p| p.name.as_str())
        .collect();
    let seen = pick(
        train_items
            .iter()
            .copied()
            .filter(|i| !pictures.contains(i.source.as_str()))
            .collect(),
        check,
    );
    let (k_seen, s_seen) = check_captions(&final_model, &data, &seen)?;
    let (k_held, s_held) = check_captions(&final_model, &data, &held_out)?;
    println!(
        "seed {seed}: {steps} steps in {train_seconds:.0} s; captions right (processing / and strength): training photos {:.1} % / {:.1} %, held-out photos {:.1} % / {:.1} % (chance 12.5 % / 2.9 %)",
        100.0 * k_seen,
        100.0 * s_seen,
        100.0 * k_held,
        100.0 * s_held
    );
    println!("model: {}", final_model.display());
    // The linear probe of the frozen image tokens (the perception ceiling of frozen-vision fine-tuning), and the
    // same probe tested on other crops of the training photos (seen content): the gap is what does not transfer.
    let probe = if probe_crops > 0 {
        let [fit, val, test] =
            miniature::probe_images(&data, &set.items, &pictures, 0..probe_crops);
        let [seen, _, _] =
            miniature::probe_images(&data, &set.items, &pictures, probe_crops..2 * probe_crops);
        let m = Owl2::from_dir(&final_model, &Device::flex(), &LoadOptions::default())?;
        let p = miniature::linear_probe(&m, &fit, &val, &[&test, &seen])?;
        println!(
            "linear probe of the image tokens ({} / {} / {} images): held-out photos SRCC {:.3} (validation {:.3}, ridge {}); other crops of the training photos ({} images) {:.3}; by ridge strength (λ, validation, held-out, seen): {}",
            p.images[0],
            p.images[1],
            p.test_images[0],
            p.test_srcc[0],
            p.val_srcc,
            p.lambda,
            p.test_images[1],
            p.test_srcc[1],
            p.by_lambda
                .iter()
                .map(|(l, v, t)| format!("({l}, {v:.3}, {:.3}, {:.3})", t[0], t[1]))
                .collect::<Vec<_>>()
                .join(" ")
        );
        Some(p)
    } else {
        None
    };
    if let Some(bundle) = bundle {
        let dst = bundle.join(format!("seed{seed}"));
        write_bundle(&final_model, &dst)?;
        biqa::reproduce::write_loss_csv(&dst.join("pretrain_loss.csv"), &losses)?;
        let note = format!(
            "{{\n  \"command\": \"cargo run --release --example pretrain -- --seed {seed} --steps {steps} --batch-size {batch_size} --lr {lr} --crops {crops} --dead-leaves {dead_leaves} --curriculum {curriculum_steps}{size_flags}{} --bundle {}\",\n  \"seed\": {seed},\n  \"train_seconds\": {train_seconds:.0},\n  \"machine\": \"{}\",\n  \"held_out_processing_right\": {k_held:.4},\n  \"held_out_strength_right\": {s_held:.4},\n  \"training_processing_right\": {k_seen:.4},\n  \"training_strength_right\": {s_seen:.4},\n  \"linear_probe\": {}\n}}\n",
            if processing_question {
                " --processing-question"
            } else {
                ""
            },
            bundle.display(),
            biqa::reproduce::machine_description(),
            serde_json::to_string(&probe)?
        );
        biqa::data::write_bytes_atomic(&dst.join("pretrain.json"), note.as_bytes())?;
        println!("bundled: {}", dst.display());
    }
    Ok(())
}
