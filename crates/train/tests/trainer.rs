//! The training loop on the tiny fixture model and a small synthetic set from `biqa-data`: both recipes lower the
//! loss, an interrupted-and-resumed run logs the same losses as an uninterrupted one, checkpoints survive an
//! interrupted write, a non-finite loss stops the run and leaves the last checkpoint loadable, and the exported
//! model scores images.

use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use biqa_model::{LoadOptions, Owl2, Scorer, ScoringPrompt};
use biqa_testkit::fixture;
use biqa_train::{
    DataConfig, EvalConfig, Recipe, Silent, StepLog, TrainConfig, TrainError, latest_checkpoint,
    train,
};
use burn::tensor::Device;

fn model_dir() -> PathBuf {
    fixture("tiny-owl2")
}

/// A small synthetic set (one crop per bundled photo), generated once per test binary.
fn synth_dir() -> Result<PathBuf> {
    static DIR: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut guard = DIR.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    if let Some(d) = guard.as_ref() {
        return Ok(d.clone());
    }
    let dir = std::env::temp_dir().join(format!("biqa-train-synth-{}", std::process::id()));
    biqa_data::synth(&dir, 1, 7, &mut |_, _| {})?;
    *guard = Some(dir.clone());
    Ok(dir)
}

fn config(out: &Path, recipe: Recipe) -> Result<TrainConfig> {
    let data = synth_dir()?;
    Ok(TrainConfig {
        model: model_dir(),
        output: out.to_owned(),
        recipe,
        data: DataConfig {
            one_stage: Some(data.join("one_stage_train.json")),
            image_folder: Some(data.clone()),
            ..DataConfig::default()
        },
        batch_size: 2,
        grad_accumulation: 1,
        lr: 2e-3,
        stage2_lr: None,
        schedule: biqa_train::Schedule::Constant,
        warmup_ratio: 0.0,
        max_grad_norm: Some(1.0),
        label_smoothing: 0.0,
        optimizer: biqa_train::AdamWConfig::default(),
        trainable: biqa_train::TrainablePolicy::default(),
        seed: 3,
        checkpoint_every: 0,
        keep_checkpoints: 2,
        eval: None,
        stop_after: None,
    })
}

fn mean(xs: &[StepLog]) -> f64 {
    xs.iter().map(|s| s.loss).sum::<f64>() / xs.len() as f64
}

#[test]
fn one_stage_lowers_the_loss_and_exports_a_loadable_model() -> Result<()> {
    let out = tempfile::tempdir()?;
    let mut c = config(out.path(), Recipe::OneStage { steps: 12 })?;
    c.eval = Some(EvalConfig {
        data: synth_dir()?.join("one_stage_test.json"),
        image_folder: None,
        every: 0,
        max_images: Some(6),
        instability: Some(biqa_train::InstabilityConfig {
            images: 2,
            samples: 3,
            sessions: 2,
            temperature: 1.0,
            max_new_tokens: 12,
        }),
        max_new_tokens: 12,
    });
    let report = train(&c, &Device::flex(), false, &mut Silent)?;
    ensure!(report.steps.len() == 12);
    // Validated through Direct and through the recipe's own pipeline.
    ensure!(report.evals[0].pipeline == Some(biqa_model::PipelineKind::OneStage));
    ensure!(
        report.evals[0]
            .pipeline_invalid_rate
            .is_some_and(|v| (0.0..=1.0).contains(&v))
    );
    let (first, last) = (mean(&report.steps[..3]), mean(&report.steps[9..]));
    ensure!(last < first, "loss did not go down: {first} → {last}");
    ensure!(report.evals.len() == 1 && report.evals[0].images == 6);
    let inst = report.evals[0].instability;
    ensure!(
        inst.is_some_and(|v| (0.0..=1.0).contains(&v)),
        "instability {inst:?}"
    );
    ensure!(out.path().join("metrics.csv").is_file() && out.path().join("metrics.jsonl").is_file());
    // The export is a checkpoint directory `biqa score` loads.
    let owl = Owl2::from_dir(
        &report.final_model,
        &Device::flex(),
        &LoadOptions::default(),
    )?;
    let scorer = Scorer::new(owl.tokenizer(), ScoringPrompt::Qalign, None)?;
    let img = model_dir().join("images/astronaut_96x96.png");
    let s = owl.score_paths(&[img], &scorer, 1, |_| {})?;
    ensure!((0.0..=1.0).contains(&s[0].score));
    Ok(())
}

#[test]
fn direct_recipe_trains_on_conclusion_only_answers() -> Result<()> {
    let out = tempfile::tempdir()?;
    let c = config(out.path(), Recipe::Direct { steps: 6 })?;
    let report = train(&c, &Device::flex(), false, &mut Silent)?;
    ensure!(report.steps.len() == 6 && report.steps.iter().all(|s| s.loss.is_finite()));
    // Its records: the Q-Align question, and the level the one-stage answer concluded with as the only answer.
    let one = biqa_train::read_records(synth_dir()?.join("one_stage_train.json"))?;
    let direct = biqa_train::direct_records(&one[..3])?;
    for (d, o) in direct.iter().zip(&one) {
        ensure!(
            d.conversations[1]
                .value
                .starts_with("The quality of the image is ")
        );
        let (_, _, level) = biqa_train::split_answer(&o.conversations[1].value)?;
        ensure!(d.conversations[1].value == biqa_train::direct_answer(level));
    }
    Ok(())
}

#[test]
fn two_stage_lowers_both_losses() -> Result<()> {
    let out = tempfile::tempdir()?;
    let c = config(
        out.path(),
        Recipe::TwoStage {
            stage1_steps: 8,
            stage2_steps: 8,
        },
    )?;
    let report = train(&c, &Device::flex(), false, &mut Silent)?;
    ensure!(report.steps.len() == 16);
    for stage in [&report.steps[..8], &report.steps[8..]] {
        let (first, last) = (mean(&stage[..3]), mean(&stage[5..]));
        ensure!(last < first, "{:?}: {first} → {last}", stage[0].stage);
    }
    ensure!(report.steps[8].step == 1 && report.steps[8].global_step == 9);
    two_stage_pipeline_on_the_export(&report.final_model)
}

/// The exported two-stage model through the `TwoStage` pipeline (with the prompts the export records): the second
/// pass's input has no image token, its level probabilities equal an independent text-only forward of the same token
/// ids, and the first pass's answer is the model's own greedy answer.
fn two_stage_pipeline_on_the_export(dir: &Path) -> Result<()> {
    use biqa_decoder::{GenerationConfig, Sampling};
    use biqa_model::{PipelineConfig, PipelineKind, PipelinePrompts, ProbsAt};
    let owl = Owl2::from_dir(dir, &Device::flex(), &LoadOptions::default())?;
    let prompts = PipelinePrompts::for_checkpoint(dir)?;
    ensure!(
        prompts == PipelinePrompts::default(),
        "the export records its prompts"
    );
    let mut config = PipelineConfig::new(PipelineKind::TwoStage, prompts);
    config.max_new_tokens = 16;
    let scorer = Scorer::new(owl.tokenizer(), ScoringPrompt::Qalign, None)?;
    let img = model_dir().join("images/coffee_96x64.png");
    let a = owl
        .assess_paths(&config, &scorer, std::slice::from_ref(&img), 0, 1, |_| {})
        .remove(0)?;
    let (p1, p2) = (&a.passes[0], &a.passes[1]);
    ensure!(p1.prompt_ids.contains(&-200) && !p2.prompt_ids.contains(&-200));
    let eos = owl.net.llm.config.eos_token_ids.clone();
    let greedy = GenerationConfig {
        max_new_tokens: 16,
        stop_tokens: eos.clone(),
        sampling: Sampling::Greedy,
        seed: 0,
        keep_logits: false,
    };
    let g = owl.generate(
        &config.prompts.stage1_prompt(),
        Some(owl.pixels(&[&img])?),
        &greedy,
        |_| {},
    )?;
    ensure!(g.token_ids == p1.token_ids);
    let mut ids: Vec<u32> = p2.prompt_ids.iter().map(|&i| i as u32).collect();
    match a.probs_at {
        ProbsAt::Answer { token, .. } => ids.extend(&p2.token_ids[..token]),
        _ => {
            ids.extend(p2.token_ids.iter().filter(|t| !eos.contains(t)));
            ids.extend(
                owl.tokenizer()
                    .encode(&config.prompts.conclusion_probe, false),
            );
        }
    }
    let logits = owl.text_logits(&ids)?;
    let want = scorer.score(&logits).probs;
    for (p, q) in a.probs.iter().zip(&want) {
        ensure!((p - q).abs() <= 1e-4, "{:?} vs {want:?}", a.probs);
    }
    Ok(())
}

#[test]
fn resume_gives_the_same_losses_and_survives_a_torn_checkpoint() -> Result<()> {
    let a = tempfile::tempdir()?;
    let b = tempfile::tempdir()?;
    let mut ca = config(
        a.path(),
        Recipe::TwoStage {
            stage1_steps: 3,
            stage2_steps: 3,
        },
    )?;
    ca.checkpoint_every = 2;
    ca.grad_accumulation = 2;
    let full = train(&ca, &Device::flex(), false, &mut Silent)?;

    let mut cb = ca.clone();
    cb.output = b.path().to_owned();
    cb.stop_after = Some(5);
    let first = train(&cb, &Device::flex(), false, &mut Silent)?;
    ensure!(first.steps.len() == 5);
    // The last complete checkpoint is step 4; a write interrupted after it leaves a `.tmp` folder behind.
    let ckpts = b.path().join("checkpoints");
    std::fs::create_dir_all(ckpts.join("step-0000005.tmp"))?;
    std::fs::write(ckpts.join("step-0000005.tmp/params.safetensors"), b"torn")?;
    ensure!(latest_checkpoint(b.path()) == Some(ckpts.join("step-0000004")));
    cb.stop_after = None;
    let rest = train(&cb, &Device::flex(), true, &mut Silent)?;
    ensure!(
        rest.steps.len() == 2,
        "{} steps after resuming",
        rest.steps.len()
    );
    for (r, f) in rest.steps.iter().zip(&full.steps[4..]) {
        ensure!(r.global_step == f.global_step && r.stage == f.stage);
        ensure!(
            (r.loss - f.loss).abs() <= 1e-6 * f.loss.abs(),
            "step {}: resumed loss {} vs {}",
            r.global_step,
            r.loss,
            f.loss
        );
    }
    // The resumed run's log is the uninterrupted run's.
    let lines = std::fs::read_to_string(b.path().join("metrics.jsonl"))?;
    ensure!(lines.lines().count() == 6);
    Ok(())
}

#[test]
fn resuming_a_complete_run_says_so_and_trains_nothing() -> Result<()> {
    let out = tempfile::tempdir()?;
    let c = config(out.path(), Recipe::OneStage { steps: 2 })?;
    let done = train(&c, &Device::flex(), false, &mut Silent)?;
    ensure!(done.steps.len() == 2 && !done.already_complete);
    let log = std::fs::read_to_string(out.path().join("metrics.jsonl"))?;

    /// Collects the observer's messages.
    struct Messages(Vec<String>);
    impl biqa_train::Observer for Messages {
        fn on_message(&mut self, message: &str) {
            self.0.push(message.to_owned());
        }
    }
    let mut messages = Messages(Vec::new());
    let again = train(&c, &Device::flex(), true, &mut messages)?;
    ensure!(again.already_complete, "{:?}", messages.0);
    ensure!(again.steps.is_empty(), "{} new steps", again.steps.len());
    ensure!(again.final_model == done.final_model);
    ensure!(again.final_model.join("config.json").is_file());
    ensure!(
        messages.0.iter().any(|m| m.contains("already complete")),
        "{:?}",
        messages.0
    );
    // The log is untouched.
    ensure!(std::fs::read_to_string(out.path().join("metrics.jsonl"))? == log);
    Ok(())
}

#[test]
fn a_non_finite_loss_stops_and_keeps_the_last_checkpoint() -> Result<()> {
    let out = tempfile::tempdir()?;
    let mut c = config(out.path(), Recipe::OneStage { steps: 6 })?;
    c.lr = 1e9;
    c.max_grad_norm = None;
    c.checkpoint_every = 1;
    match train(&c, &Device::flex(), false, &mut Silent) {
        Err(TrainError::NonFiniteLoss { step, .. }) => {
            ensure!(step >= 2);
            let last = latest_checkpoint(out.path());
            ensure!(last.is_some(), "no checkpoint left");
            // It still loads: resuming reaches the same failure, not a load error.
            c.stop_after = Some(1);
            match train(&c, &Device::flex(), true, &mut Silent) {
                Ok(_) | Err(TrainError::NonFiniteLoss { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Ok(r) => anyhow::bail!(
            "expected a non-finite loss, got {:?}",
            r.steps.iter().map(|s| s.loss).collect::<Vec<_>>()
        ),
        Err(e) => Err(e.into()),
    }
}

#[test]
fn data_parallel_equals_accumulation_on_one_device() -> Result<()> {
    let a = tempfile::tempdir()?;
    let b = tempfile::tempdir()?;
    let mut single = config(a.path(), Recipe::OneStage { steps: 4 })?;
    single.grad_accumulation = 2;
    let one = train(&single, &Device::flex(), false, &mut Silent)?;
    let mut parallel = single.clone();
    parallel.output = b.path().to_owned();
    parallel.grad_accumulation = 1;
    let two = biqa_train::train_data_parallel(
        &parallel,
        &[Device::flex(), Device::flex()],
        false,
        &mut Silent,
    )?;
    ensure!(one.steps.len() == 4 && two.steps.len() == 4);
    for (x, y) in one.steps.iter().zip(&two.steps) {
        ensure!(
            x.tokens == y.tokens,
            "step {}: tokens differ",
            x.global_step
        );
        ensure!(
            (x.loss - y.loss).abs() <= 1e-5 * x.loss.abs(),
            "step {}: {} (accumulation) vs {} (2 replicas)",
            x.global_step,
            x.loss,
            y.loss
        );
        ensure!((x.grad_norm - y.grad_norm).abs() <= 1e-5 * x.grad_norm.abs());
    }
    Ok(())
}

#[test]
fn lora_dropout_resumes_exactly_and_matches_across_replicas() -> Result<()> {
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let mut c = config(dirs[0].path(), Recipe::OneStage { steps: 4 })?;
    c.trainable = biqa_train::TrainablePolicy {
        freeze_vision: true,
        lora: Some(biqa_train::LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.3,
            targets: vec!["q_proj".into(), "v_proj.multiway.1".into()],
        }),
        ..biqa_train::TrainablePolicy::default()
    };
    c.checkpoint_every = 1;
    c.grad_accumulation = 2;
    let full = train(&c, &Device::flex(), false, &mut Silent)?;
    // Interrupted after 2 steps, then resumed.
    let mut r = c.clone();
    r.output = dirs[1].path().to_owned();
    r.stop_after = Some(2);
    train(&r, &Device::flex(), false, &mut Silent)?;
    r.stop_after = None;
    let rest = train(&r, &Device::flex(), true, &mut Silent)?;
    // Two replicas with one micro-batch each draw the same masks as accumulation over two.
    let mut p = c.clone();
    p.output = dirs[2].path().to_owned();
    p.grad_accumulation = 1;
    let par =
        biqa_train::train_data_parallel(&p, &[Device::flex(), Device::flex()], false, &mut Silent)?;
    // The interruption came after step 2 but before its checkpoint: the run resumes from step 1.
    ensure!(rest.steps.first().map(|s| s.global_step) == Some(2));
    for y in &rest.steps {
        let x = &full.steps[y.global_step - 1];
        ensure!(
            x.loss == y.loss,
            "step {}: {} vs resumed {}",
            x.global_step,
            x.loss,
            y.loss
        );
    }
    for (x, y) in full.steps.iter().zip(&par.steps) {
        ensure!(
            (x.loss - y.loss).abs() <= 1e-5 * x.loss.abs(),
            "step {}: {} vs 2 replicas {}",
            x.global_step,
            x.loss,
            y.loss
        );
    }
    Ok(())
}

/// Optimiser settings outside their domain are refused before anything runs, naming the key (issue #16:
/// `max_grad_norm` −1 flipped the gradients, β1 = 1.5 and ε < 0 were accepted).
#[test]
fn optimiser_settings_outside_their_domain_are_refused() -> Result<()> {
    let out = tempfile::tempdir()?;
    let base = config(out.path(), Recipe::OneStage { steps: 1 })?;
    type Set = Box<dyn Fn(&mut TrainConfig)>;
    let cases: Vec<(&str, Set)> = vec![
        ("max_grad_norm", Box::new(|c| c.max_grad_norm = Some(-1.0))),
        ("optimizer.beta1", Box::new(|c| c.optimizer.beta1 = 1.5)),
        ("optimizer.beta2", Box::new(|c| c.optimizer.beta2 = -0.1)),
        ("optimizer.eps", Box::new(|c| c.optimizer.eps = -1e-6)),
        (
            "optimizer.weight_decay",
            Box::new(|c| c.optimizer.weight_decay = f64::NAN),
        ),
    ];
    for (key, set) in cases {
        let mut c = base.clone();
        set(&mut c);
        let err = train(&c, &Device::flex(), false, &mut Silent)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        ensure!(err.contains(key), "{key}: {err:?}");
    }
    base.validate()?;
    Ok(())
}

/// What can be checked before the first step is (issue #16): a missing image is found before any step (with no
/// checkpoint or log written), a batch larger than the data is refused, and a bad validation set too.
#[test]
fn images_and_settings_are_checked_before_the_first_step() -> Result<()> {
    let out = tempfile::tempdir()?;
    let data = tempfile::tempdir()?;
    // A copy of the training records with one image that does not exist.
    let mut records = biqa_train::read_records(synth_dir()?.join("one_stage_train.json"))?;
    records.truncate(6);
    records[4].image = Some("images/missing.png".into());
    let file = data.path().join("one_stage_train.json");
    std::fs::write(&file, serde_json::to_string(&records)?)?;
    let mut c = config(out.path(), Recipe::OneStage { steps: 50 })?;
    c.data.one_stage = Some(file.clone());
    let err = train(&c, &Device::flex(), false, &mut Silent)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    ensure!(
        err.contains("missing.png") && err.contains("not found"),
        "{err}"
    );
    ensure!(
        !out.path().join("metrics.csv").exists(),
        "a step ran before the check"
    );
    records.truncate(4);
    std::fs::write(&file, serde_json::to_string(&records)?)?;
    c.batch_size = 100_000;
    let err = train(&c, &Device::flex(), false, &mut Silent)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    ensure!(err.contains("batch_size"), "{err}");
    c.batch_size = 2;
    c.eval = Some(EvalConfig {
        data: data.path().join("no-such-eval.json"),
        image_folder: None,
        every: 0,
        max_images: None,
        instability: None,
        max_new_tokens: 8,
    });
    let err = train(&c, &Device::flex(), false, &mut Silent)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    ensure!(err.contains("no-such-eval.json"), "{err}");
    ensure!(!out.path().join("metrics.csv").exists());
    Ok(())
}

/// An endless TOML configuration is refused at the read cap (issue #16).
#[test]
fn an_endless_training_config_is_refused() -> Result<()> {
    let err = TrainConfig::from_toml_file(Path::new("/dev/zero"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    ensure!(err.contains("longer than"), "{err}");
    Ok(())
}
