//! Criterion benchmarks of one mPLUG-Owl2 training step on the CPU (flex backend, f32, autodiff): the forward with
//! labels, the backward, and one AdamW step (β = (0.9, 0.98), ε = 1e-6, no weight decay), each also timed alone
//! (`forward`, `forward_backward`, `step` = all three).
//!
//! - `tiny`: the `tests/fixtures/tiny-owl2` checkpoint on the batch of `tests/fixtures/train-step` (2 rows,
//!   Vicuna v1 prompt: one image sample + one text-only sample, 176 expanded tokens, 9 of them image tokens,
//!   18 supervised). The setup checks the fixture's loss 6.80948448 before timing.
//! - `small`: a random model of the decoder bench's small LLM (hidden 512, 8 layers, 8 heads, MLP 1376,
//!   vocab 32000, modality-adaptive k/v and norms) with the vision bench's small tower (ViT 256 × 6 layers at
//!   224 px, patch 14; abstractor 256 × 2 layers, 16 queries → 17 image tokens), on the same two conversations
//!   (184 expanded tokens, 17 of them image tokens, 18 supervised).
//!
//! `benches/reference/train_torch.py` times the same steps in PyTorch.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use biqa::decoder::Llama;
use biqa::vision::{VisionModel, VisualAbstractor};
use biqa_train::batch::ExpandedBatch;
use biqa_train::optim::{AdamW, AdamWConfig, DecayExclusion};
use biqa_train::params::{collect_grads, param_infos};
use biqa_train::{ForwardLoss, Owl2Net, load_model};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use common::{fixture_batch, model_dir, small_llm, small_preprocessor, small_vision};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

/// The learning rate of the timed steps (the timing does not depend on it).
const LR: f64 = 1e-4;

fn adamw() -> AdamW {
    AdamW::new(AdamWConfig {
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-6,
        weight_decay: 0.0,
        decay_exclusion: DecayExclusion::None,
    })
}

fn loss_value(model: &Owl2Net, batch: &ExpandedBatch, pixels: &Tensor<4>) -> f32 {
    let out = model
        .forward_loss(batch, Some(pixels.clone()), 0.0)
        .expect("forward");
    out.loss
        .inner()
        .into_data()
        .try_to_vec::<f32>()
        .expect("loss")[0]
}

/// The number of parameter tensors and of parameters.
fn param_count(model: &Owl2Net) -> (usize, usize) {
    let infos = param_infos(model);
    let n = infos.iter().map(|p| p.numel).sum();
    (infos.len(), n)
}

/// Times the forward, the forward + backward, and the whole step of `model` on `batch` (only the step for a
/// `*_frozen_vision` group).
fn bench_steps(
    c: &mut Criterion,
    name: &str,
    model: Owl2Net,
    batch: &ExpandedBatch,
    pixels: &Tensor<4>,
    measurement: Duration,
) {
    let device = model.llm.device();
    let sync = || common::sync(&device);
    let n_params = param_infos(&model).iter().filter(|p| p.trainable).count();
    let mut g = c.benchmark_group(format!("train_{name}"));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(measurement);
    let step_only = name.ends_with("_frozen_vision");
    if !step_only {
        // The forward alone, recording the graph. burn frees an autodiff graph only in a backward pass (a graph
        // whose loss is dropped stays registered until the next `backward()` sweeps it), so a loop of bare
        // forwards keeps every iteration's graph and saved activations: its resident memory grew to 7.9 GB on the
        // small config (1.0 GB with backwards) and it timed the page faults of that growth (0.9 s against
        // 1.0 s for forward + backward). Each timed forward is therefore followed by an untimed backward that
        // releases its graph, as in training.
        g.bench_function("forward", |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    let out = model
                        .forward_loss(batch, Some(pixels.clone()), 0.0)
                        .expect("forward");
                    sync();
                    timed += t0.elapsed();
                    black_box(out.loss.backward());
                }
                timed
            })
        });
        g.bench_function("forward_backward", |b| {
            b.iter(|| {
                let out = model
                    .forward_loss(batch, Some(pixels.clone()), 0.0)
                    .expect("forward");
                let mut grads = out.loss.backward();
                black_box(collect_grads(&model, &mut grads));
                sync();
            })
        });
    }
    let mut opt = adamw();
    let mut state = Some(model);
    g.bench_function("step", |b| {
        b.iter(|| {
            let model = state.take().expect("model");
            let out = model
                .forward_loss(batch, Some(pixels.clone()), 0.0)
                .expect("forward");
            let mut grads = out.loss.backward();
            let grads = collect_grads(&model, &mut grads);
            assert_eq!(
                grads.len(),
                n_params,
                "every trainable parameter gets a gradient"
            );
            state = Some(opt.step(model, LR, grads));
            sync();
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    biqa::kernels::tune_allocator();
    let device = Device::flex().autodiff();

    // tiny: the fixture checkpoint and batch; the loss must be the original code's.
    let (model, assets) = load_model(model_dir(), &device).expect("tiny-owl2");
    let batch = fixture_batch(&assets, 9);
    assert_eq!((batch.batch, batch.len, batch.n_supervised()), (2, 176, 18));
    let pre = assets.preprocessor.as_ref().expect("preprocessor");
    let pixels = pre
        .preprocess_paths(&batch.images)
        .expect("pixels")
        .to_tensor(&device);
    let loss = loss_value(&model, &batch, &pixels);
    assert!(
        (f64::from(loss) - 6.809_484_48).abs() < 1e-4,
        "tiny loss {loss}, the fixture's is 6.80948448"
    );
    assert_eq!(param_count(&model), (108, 550_944));
    bench_steps(c, "tiny", model, &batch, &pixels, Duration::from_secs(3));

    // small: random weights, the same two conversations with 17 image tokens, the image at 224 px.
    let (vc, ac) = small_vision();
    let model = Owl2Net {
        llm: Llama::init(&small_llm(), 2, &device, 0),
        vision_model: Some(VisionModel::init(&vc, &device, 1)),
        visual_abstractor: Some(VisualAbstractor::init(&ac, &device, 2)),
    };
    let batch = fixture_batch(&assets, ac.num_queries + 1);
    assert_eq!((batch.batch, batch.len, batch.n_supervised()), (2, 184, 18));
    let pre = small_preprocessor();
    let pixels = pre
        .preprocess_paths(&batch.images)
        .expect("pixels")
        .to_tensor(&device);
    let loss = loss_value(&model, &batch, &pixels);
    assert!(loss.is_finite(), "small loss {loss}");
    // The same parameter tensors and sizes as the PyTorch reference's model.
    assert_eq!(param_count(&model), (234, 68_985_344));
    bench_steps(
        c,
        "small",
        model.clone(),
        &batch,
        &pixels,
        Duration::from_secs(8),
    );

    // small with the vision tower frozen (mPLUG-Owl2's fine-tuning default, `--freeze_vision_model True`): the
    // tower then runs outside autodiff, on the fused kernels.
    let mut model = model;
    model.vision_model = model.vision_model.map(Module::no_grad);
    bench_steps(
        c,
        "small_frozen_vision",
        model,
        &batch,
        &pixels,
        Duration::from_secs(8),
    );
}

criterion_group!(train, benches);
criterion_main!(train);
