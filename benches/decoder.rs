//! Criterion benchmarks of the decoder: prefill (batch 1, 128 tokens, last-position logits) and one decode step
//! over a 128-token cache, on the tiny fixture config and on a "small" config (hidden 512, 8 layers, 8 heads,
//! MLP 1376, vocab 32000). `benches/reference/decoder_torch.py` runs the same shapes with HF transformers.

mod common;

use std::hint::black_box;

use biqa::decoder::{DecoderInput, ForwardOptions, KvCache, Llama, LlamaConfig, LogitsMode};
use burn::tensor::Device;
use common::{small_llm, sync, tiny_llm};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_config(c: &mut Criterion, name: &str, config: LlamaConfig) {
    let device = Device::flex();
    let model = Llama::init(&config, 1, &device, 0);
    let ids: Vec<u32> = (0..128u32)
        .map(|i| (i * 7 + 3) % config.vocab_size as u32)
        .collect();
    let last = ForwardOptions {
        logits: LogitsMode::Last,
        ..Default::default()
    };
    let mut g = c.benchmark_group(format!("decoder_{name}"));
    g.sample_size(20);
    g.bench_function("prefill_128", |b| {
        b.iter(|| {
            let embeds = model.embed_ids(std::slice::from_ref(&ids)).expect("ids");
            let out = model
                .forward(DecoderInput::text(embeds), &mut KvCache::new(), last)
                .expect("forward");
            black_box(out.logits.expect("logits").into_data());
        })
    });
    let mut cache = KvCache::new();
    let embeds = model.embed_ids(std::slice::from_ref(&ids)).expect("ids");
    model
        .forward(DecoderInput::text(embeds), &mut cache, last)
        .expect("prefill");
    sync(&device);
    g.bench_function("decode_step_cache_128", |b| {
        b.iter(|| {
            let mut c = cache.clone();
            let embeds = model.embed_ids(&[vec![5]]).expect("ids");
            let out = model
                .forward(DecoderInput::text(embeds), &mut c, last)
                .expect("step");
            black_box(out.logits.expect("logits").into_data());
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    biqa::kernels::tune_allocator();
    bench_config(c, "tiny", tiny_llm());
    bench_config(c, "small", small_llm());
}

criterion_group!(decoder, benches);
criterion_main!(decoder);
