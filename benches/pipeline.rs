//! Criterion benchmarks of the inference pipelines (time per image, batch 1): `direct` (the Q-Align forward, what
//! `biqa score` does), `one-stage` (one generated answer) and `two-stage` (an image pass, then a text-only pass),
//! each generating at most 32 new tokens per pass, on the "small" configuration (ViT 256 × 6 at 224 px, abstractor
//! 256 × 2 with 16 queries, LLM 512 × 8 with vocab 32000; random weights) with the tiny fixture's tokenizer.

mod common;

use std::hint::black_box;

use biqa::decoder::Llama;
use biqa::model::{
    Owl2, Owl2Assets, Owl2Config, Owl2Net, PipelineConfig, PipelineKind, PipelinePrompts, Scorer,
    ScoringPrompt, VisualConfig,
};
use biqa::vision::{ResizeMode, VisionModel, VisualAbstractor};
use burn::tensor::Device;
use common::{model_dir, small_llm, small_preprocessor, small_vision};
use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    biqa::kernels::tune_allocator();
    let device = Device::flex();
    let tiny = Owl2::from_dir(model_dir(), &device, &Default::default()).expect("tiny-owl2");
    let (vc, ac) = small_vision();
    let net = Owl2Net {
        llm: Llama::init(&small_llm(), 2, &device, 0),
        vision_model: Some(VisionModel::init(&vc, &device, 1)),
        visual_abstractor: Some(VisualAbstractor::init(&ac, &device, 2)),
    };
    let pre = small_preprocessor();
    let assets = Owl2Assets {
        preprocessor: Some(pre),
        config: Owl2Config {
            llm: small_llm(),
            vision: Some(VisualConfig {
                tower: vc,
                abstractor: ac,
            }),
            resize_mode: ResizeMode::Pad,
        },
        ..tiny.assets
    };
    let m = Owl2::from_parts(net, assets);
    let scorer = Scorer::new(m.tokenizer(), ScoringPrompt::Qalign, None).expect("scorer");
    let image = model_dir().join("images/astronaut_96x96.png");
    let pixels = m.pixels(&[&image]).expect("pixels");
    let mut g = c.benchmark_group("pipeline_small");
    g.sample_size(10);
    for kind in [
        PipelineKind::Direct,
        PipelineKind::OneStage,
        PipelineKind::TwoStage,
    ] {
        let mut config = PipelineConfig::new(kind, PipelinePrompts::released());
        config.max_new_tokens = 32;
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                black_box(
                    m.assess_pixels(&config, &scorer, pixels.clone(), 0)
                        .expect("assess"),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
