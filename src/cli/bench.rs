//! `biqa bench`: what a user of a checkpoint feels on this device, in one table: load, the cold start before the
//! first score (load, kernel compilation and autotuning included), Q-Align score latency at batch 1, images/s at a
//! larger batch, greedy decode ms/token, and one LoRA training step. `scripts/gpu-check.sh` runs it on a 7B-shaped
//! random checkpoint on a GPU host; it runs on the CPU as well.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use biqa::data::{ConversationRecord, Turn};
use biqa::decoder::{GenerationConfig, Sampling};
use biqa::model::{LoadOptions, Owl2, ScoringPrompt};
use biqa::train::conversation::{TokenizeOptions, tokenize_record};
use biqa::train::optim::{AdamW, AdamWConfig};
use biqa::train::params::collect_grads;
use biqa::train::{ForwardLoss, TrainablePolicy, collate, expand, pad_id};
use serde::Serialize;

use super::runtime::Runtime;

/// `biqa bench` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The image scored, described and trained on.
    #[arg(long)]
    pub image: PathBuf,
    /// The larger scoring batch (images/s).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Generated tokens for the decode rate: (t(N) − t(1)) / (N − 1), no stop token.
    #[arg(long, default_value_t = 33)]
    pub tokens: usize,
    /// Timed repetitions of each measurement after one warm-up (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Skip the LoRA training step (it loads the model a second time, on the autodiff device).
    #[arg(long)]
    pub no_train: bool,
    /// When `--model` holds no `config.json`: first write there a random, seeded checkpoint with the released
    /// model's widths and this many LLM layers (32: the 7B), in the `--dtype` (see `biqa::realshape`).
    #[arg(long)]
    pub random_llm_layers: Option<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The measurements (seconds unless named otherwise).
#[derive(Debug, Default, Serialize)]
pub struct BenchResult {
    /// Device and dtype.
    pub device: String,
    /// Parameter dtype.
    pub dtype: String,
    /// Loading the checkpoint.
    pub load_s: f64,
    /// From the start of the command to the first score (load + the first forward, with its compilation).
    pub cold_start_s: f64,
    /// Q-Align score of one image (median), ms.
    pub score_batch1_ms: f64,
    /// Prompt length of that forward, tokens (image tokens included).
    pub score_tokens: usize,
    /// Scoring throughput at `batch`, images/s.
    pub score_batch_images_per_s: f64,
    /// The batch of that throughput.
    pub batch: usize,
    /// Greedy decode, ms per token.
    pub decode_ms_per_token: f64,
    /// One LoRA training step (forward, backward, AdamW), median, s; absent with --no-train.
    pub lora_step_s: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Runs `f` once to warm up, then `repeats` times, and returns the median time in seconds.
fn timed(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// Runs `biqa bench`.
///
/// # Errors
/// Loading, scoring, generation or training errors; an unwritable JSON file.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    ensure!(args.batch >= 1, "--batch must be at least 1");
    ensure!(args.tokens >= 2, "--tokens must be at least 2");
    if let Some(layers) = args.random_llm_layers
        && !args.model.join("config.json").is_file()
    {
        let t = Instant::now();
        let shape = biqa::realshape::RealShape {
            llm_layers: layers,
            dtype: rt.policy().dtype(),
            ..Default::default()
        };
        shape.write(&args.model)?;
        eprintln!(
            "wrote a random {layers}-layer checkpoint to {} in {:.1} s",
            args.model.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let start = Instant::now();
    let device = rt.device()?;
    let options = LoadOptions {
        policy: rt.policy(),
        resize_mode: None,
    };
    let mut r = BenchResult {
        device: rt.kind()?.to_string(),
        dtype: format!("{:?}", rt.dtype).to_lowercase(),
        batch: args.batch,
        ..BenchResult::default()
    };
    let model = Owl2::from_dir(&args.model, &device, &options)?;
    r.load_s = start.elapsed().as_secs_f64();
    let prompt = ScoringPrompt::Qalign.text().to_string();
    let score = |n: usize| -> Result<()> {
        let paths = vec![args.image.clone(); n];
        let images = model.encode_images(model.pixels(&paths)?)?;
        let p = model.prepare(&vec![prompt.clone(); n], Some(images))?;
        let rows = model.last_logits(p)?;
        ensure!(
            rows.len() == n && rows.iter().flatten().all(|x| x.is_finite()),
            "non-finite logits"
        );
        Ok(())
    };
    score(1)?;
    r.cold_start_s = start.elapsed().as_secs_f64();
    r.score_tokens = {
        let images = model.encode_images(model.pixels(std::slice::from_ref(&args.image))?)?;
        let p = model.prepare(std::slice::from_ref(&prompt), Some(images))?;
        p.embeds.dims()[1]
    };
    r.score_batch1_ms = 1e3 * timed(args.repeats, || score(1))?;
    let t = timed(args.repeats.min(3), || score(args.batch))?;
    r.score_batch_images_per_s = args.batch as f64 / t;
    let greedy = |n: usize| GenerationConfig {
        max_new_tokens: n,
        stop_tokens: Vec::new(),
        sampling: Sampling::Greedy,
        seed: 0,
        keep_logits: false,
    };
    let t1 = timed(args.repeats.min(3), || {
        model.describe(&args.image, &greedy(1), |_| {}).map(drop)?;
        Ok(())
    })?;
    let tn = timed(args.repeats.min(3), || {
        let g = model.describe(&args.image, &greedy(args.tokens), |_| {})?;
        ensure!(
            g.token_ids.len() == args.tokens,
            "{} tokens",
            g.token_ids.len()
        );
        Ok(())
    })?;
    r.decode_ms_per_token = 1e3 * (tn - t1) / (args.tokens - 1) as f64;
    drop(model);

    if !args.no_train {
        let ad = device.autodiff();
        let (net, assets) = Owl2::from_dir(&args.model, &ad, &options)?.into_parts();
        let image_tokens = net.image_tokens().unwrap_or(0);
        let net = {
            let _draws = biqa::train::policy::seed_generator(&ad, 0);
            TrainablePolicy::qalign_lora().apply(net)?
        };
        let record = ConversationRecord {
            id: "bench".into(),
            image: Some(args.image.to_string_lossy().into_owned()),
            conversations: vec![
                Turn {
                    from: "human".into(),
                    value: "How would you rate the quality of this image?\n<|image|>".into(),
                },
                Turn {
                    from: "gpt".into(),
                    value: "The quality of the image is good.".into(),
                },
            ],
            gt_score: None,
        };
        let tok = &assets.tokenizer;
        let options = TokenizeOptions::default();
        let sample = tokenize_record(tok, &record, 0, &options)?;
        let batch = expand(
            &collate([&sample], pad_id(tok), options.model_max_length)?,
            image_tokens.max(1),
        )?;
        let pre = assets
            .preprocessor
            .as_ref()
            .context("the checkpoint has no image preprocessor")?;
        let mut opt = AdamW::new(AdamWConfig::default());
        let mut model = Some(net);
        r.lora_step_s = Some(timed(args.repeats.min(3), || {
            let m = model.take().context("model")?;
            let pixels = pre.preprocess_paths(&batch.images)?.to_tensor(&ad);
            let out = m.forward_loss(&batch, Some(pixels), 0.0)?;
            let mut g = out.loss.backward();
            let grads = collect_grads(&m, &mut g);
            model = Some(opt.step(m, 1e-5, grads));
            Ok(())
        })?);
    }

    println!("| biqa bench: {} {} | value |", r.device, r.dtype);
    println!("|---|---|");
    println!("| load | {:.2} s |", r.load_s);
    println!(
        "| cold start to the first score (load included) | {:.2} s |",
        r.cold_start_s
    );
    println!(
        "| Q-Align score, batch 1 ({} tokens) | {:.1} ms |",
        r.score_tokens, r.score_batch1_ms
    );
    println!(
        "| Q-Align score, batch {} | {:.1} images/s |",
        r.batch, r.score_batch_images_per_s
    );
    println!(
        "| greedy decode, batch 1 | {:.2} ms/token |",
        r.decode_ms_per_token
    );
    if let Some(s) = r.lora_step_s {
        println!("| LoRA training step (r 128, batch 1) | {s:.3} s |");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&r)?;
        biqa::core::write_bytes_atomic(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
