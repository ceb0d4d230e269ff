//! Criterion benchmarks of the vision side: preprocessing a 1024×768 JPEG to a 448 tensor (Q-Align's pad mode),
//! and the vision tower + abstractor forward on the tiny fixture config and on a "small" config (ViT hidden 256,
//! 6 layers, 224 px; abstractor 256, 2 layers, 16 queries). `benches/reference/vision_torch.py` times Pillow +
//! transformers' CLIPImageProcessor and the original-equivalent PyTorch modules on the same shapes.

mod common;

use std::hint::black_box;
use std::path::Path;

use biqa::vision::{Preprocessor, PreprocessorConfig, ResizeMode, VisionModel, VisualAbstractor};
use burn::tensor::{Device, Distribution, Tensor};
use common::{small_vision, tiny_vision};
use criterion::{Criterion, criterion_group, criterion_main};

fn preprocessing(c: &mut Criterion) {
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/rocket_1024x768.jpg");
    let config = PreprocessorConfig::from_json_str(
        r#"{"crop_size": 448, "do_center_crop": true, "do_normalize": true, "do_resize": true,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "resample": 3, "size": 448}"#,
    )
    .expect("config");
    let proc = Preprocessor::new(&config, ResizeMode::Pad).expect("preprocessor");
    let device = Device::flex();
    let mut g = c.benchmark_group("vision_preprocess");
    g.sample_size(30);
    g.bench_function("jpeg_1024x768_to_448_pad", |b| {
        b.iter(|| {
            let pre = proc.preprocess_path(&photo).expect("preprocess");
            black_box(pre.into_batch().to_tensor(&device));
        })
    });
    g.finish();
}

fn towers(c: &mut Criterion) {
    biqa::kernels::tune_allocator();
    let device = Device::flex();
    let mut g = c.benchmark_group("vision_forward");
    g.sample_size(20);
    for (name, (vc, ac)) in [("tiny", tiny_vision()), ("small", small_vision())] {
        let vision = VisionModel::init(&vc, &device, 0);
        let abstractor = VisualAbstractor::init(&ac, &device, 1);
        let pixels: Tensor<4> = Tensor::random(
            [1, 3, vc.image_size, vc.image_size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        g.bench_function(format!("{name}_vit_plus_abstractor"), |b| {
            b.iter(|| {
                let f = vision
                    .forward(pixels.clone(), false, false)
                    .expect("vision")
                    .last_hidden_state;
                black_box(
                    abstractor
                        .forward(f, false)
                        .expect("abstractor")
                        .image_embeds
                        .into_data(),
                );
            })
        });
    }
    g.finish();
}

criterion_group!(vision, preprocessing, towers);
criterion_main!(vision);
