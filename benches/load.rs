//! Criterion benchmark of loading a checkpoint directory at the released widths (`Owl2::from_dir`: config,
//! tokenizer, preprocessor and every weight, ready to score), as f32 and bf16 parameters, from f32 and bf16
//! safetensors and from a bf16 `.bin` when one is given. `benches/reference/load_torch.py` times the original
//! code's `from_pretrained` on the same directories.
//!
//! The directories are [`biqa::realshape::RealShape::default`] (ViT-L/14-448, the abstractor, 2 LLaMA-7B layers:
//! 4.5 GB in f32, 2.2 GB in bf16), written once into `target/bench-load/{f32,bf16}` (or `$BIQA_LOAD_DIR/...`).
//! `$BIQA_LOAD_BIN` names a directory holding the bf16 weights as `pytorch_model.bin` (`benches/realshape.sh`
//! makes one). Every iteration loads and drops a whole model; the files stay in the page cache between
//! iterations, as they do for PyTorch.

use std::path::{Path, PathBuf};

use biqa::checkpoint::FloatPolicy;
use biqa::model::{LoadOptions, Owl2};
use biqa::realshape::RealShape;
use burn::tensor::{DType, Device};
use criterion::{Criterion, criterion_group, criterion_main};

fn dir(root: &Path, dtype: DType) -> PathBuf {
    let name = if dtype == DType::BF16 { "bf16" } else { "f32" };
    let path = root.join(name);
    if !path.join("config.json").is_file() {
        let _ = std::fs::remove_dir_all(&path);
        eprintln!("writing {} (once)", path.display());
        RealShape {
            dtype,
            ..RealShape::default()
        }
        .write(&path)
        .expect("write the real-shape checkpoint");
    }
    path
}

fn load(c: &mut Criterion) {
    biqa::kernels::tune_allocator();
    let root = std::env::var_os("BIQA_LOAD_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-load"),
        PathBuf::from,
    );
    let mut cases = vec![
        ("f32_file", dir(&root, DType::F32)),
        ("bf16_file", dir(&root, DType::BF16)),
    ];
    if let Some(bin) = std::env::var_os("BIQA_LOAD_BIN") {
        cases.push(("bf16_bin", PathBuf::from(bin)));
    }
    let device = Device::flex();
    let mut g = c.benchmark_group("load_realshape");
    g.sample_size(10);
    for (file, path) in &cases {
        for (dtype, policy) in [("f32", FloatPolicy::F32), ("bf16", FloatPolicy::Bf16)] {
            let options = LoadOptions {
                policy,
                ..LoadOptions::default()
            };
            g.bench_function(format!("{file}_to_{dtype}"), |b| {
                b.iter(|| drop(Owl2::from_dir(path, &device, &options).expect("load")))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
