//! Opening the fixture checkpoints in every format, and every loader error case on corrupted copies.

use std::path::{Path, PathBuf};

use anyhow::Result;
use biqa_checkpoint::{Checkpoint, CheckpointError, TensorProblem, WeightFormat, Weights};
use biqa_testkit::{f32_bytes, fixtures, write_f32_raw};
use burn::tensor::{DType, Device};

fn bf16_round(x: f32) -> f32 {
    // Round-to-nearest-even to bf16, as torch's .to(torch.bfloat16).
    let bits = x.to_bits();
    let lsb = (bits >> 16) & 1;
    f32::from_bits((bits.wrapping_add(0x7FFF + lsb)) & 0xFFFF_0000)
}

#[test]
fn directory_prefers_safetensors_and_bin_matches_bf16() -> Result<()> {
    let dir = fixtures().join("tiny-owl2");
    let st = Checkpoint::open(&dir)?;
    assert_eq!(st.format(), WeightFormat::Safetensors);
    assert_eq!(st.len(), 114);
    let bin = Checkpoint::open(dir.join("pytorch_model.bin"))?;
    assert_eq!(bin.format(), WeightFormat::Pytorch);
    assert_eq!(bin.len(), 114);
    assert_eq!(
        st.names().collect::<Vec<_>>(),
        bin.names().collect::<Vec<_>>()
    );
    let name = "model.layers.0.self_attn.k_proj.multiway.1.weight";
    assert_eq!(bin.info(name).map(|i| i.dtype), Some(DType::BF16));
    assert_eq!(bin.info(name).map(|i| i.shape), Some(vec![96, 96]));
    for name in st.names() {
        let (a, sa) = st.f32(name)?;
        let (b, sb) = bin.f32(name)?;
        assert_eq!(sa, sb, "{name}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                bf16_round(*x),
                *y,
                "{name}: every .bin value is bf16(safetensors value)"
            );
        }
    }
    Ok(())
}

#[test]
fn strided_pickle_tensor_honours_offset_and_strides() -> Result<()> {
    let ck = Checkpoint::open(fixtures().join("checkpoint-cases/strided.bin"))?;
    let (v, shape) = ck.f32("w")?;
    assert_eq!(shape, vec![2, 3]);
    assert_eq!(v, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    Ok(())
}

#[test]
fn pickle_with_foreign_global_is_refused() {
    let err = Checkpoint::open(fixtures().join("checkpoint-cases/evil_global.bin")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::Pytorch { .. }), "{msg}");
    assert!(msg.contains("evil_global.bin"), "{msg}");
}

/// A callable hidden inside the rebuild arguments (`backward_hooks` = `posix.system(...)`) or named through
/// `STACK_GLOBAL` is refused as the opcodes are read (issue #16: the value-tree check let the first one through).
#[test]
fn hidden_callables_are_refused_by_the_opcode_guard() {
    for (file, global) in [
        ("nested_hook.bin", "posix.system"),
        ("stack_global.bin", "builtins.eval"),
    ] {
        let err = Checkpoint::open(fixtures().join("checkpoint-cases").join(file)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CheckpointError::Pytorch { .. }), "{msg}");
        assert!(msg.contains(file) && msg.contains(global), "{msg}");
    }
}

/// Writes the tensors of `ck` into `n` safetensors shards plus an index; returns the index path.
fn write_shards(ck: &Checkpoint, dir: &Path, n: usize) -> Result<PathBuf> {
    let names: Vec<String> = ck.names().map(str::to_string).collect();
    let mut weight_map = serde_json::Map::new();
    let per = names.len().div_ceil(n);
    for (s, chunk) in names.chunks(per).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", s + 1, n);
        let mut bufs = Vec::new();
        for name in chunk {
            let (v, shape) = ck.f32(name)?;
            bufs.push((name.clone(), shape, f32_bytes(&v)));
            weight_map.insert(name.clone(), serde_json::Value::String(file.clone()));
        }
        write_f32_raw(dir.join(&file), &bufs)?;
    }
    let index = dir.join("model.safetensors.index.json");
    std::fs::write(
        &index,
        serde_json::to_string(&serde_json::json!({"metadata": {}, "weight_map": weight_map}))?,
    )?;
    Ok(index)
}

#[test]
fn sharded_safetensors_and_their_errors() -> Result<()> {
    let ck = Checkpoint::open(fixtures().join("tiny-owl2"))?;
    let tmp = tempfile::tempdir()?;
    let index = write_shards(&ck, tmp.path(), 3)?;
    // The directory opens through its index.
    let sharded = Checkpoint::open(tmp.path())?;
    assert_eq!(sharded.files().len(), 3);
    assert_eq!(sharded.len(), ck.len());
    let name = "lm_head.weight";
    assert_eq!(sharded.f32(name)?, ck.f32(name)?);

    // An index naming a missing shard.
    let text = std::fs::read_to_string(&index)?;
    std::fs::write(
        &index,
        text.replace("model-00002-of-00003", "model-00009-of-00003"),
    )?;
    let err = Checkpoint::open(tmp.path()).unwrap_err();
    assert!(
        err.to_string().contains("model-00009-of-00003.safetensors")
            && err.to_string().contains("does not exist"),
        "{err}"
    );
    std::fs::write(&index, &text)?;

    // A truncated shard.
    let shard = tmp.path().join("model-00003-of-00003.safetensors");
    let bytes = std::fs::read(&shard)?;
    std::fs::write(&shard, &bytes[..bytes.len() / 2])?;
    let err = Checkpoint::open(tmp.path()).unwrap_err();
    assert!(matches!(err, CheckpointError::Safetensors { .. }), "{err}");
    assert!(
        err.to_string().contains("model-00003-of-00003.safetensors"),
        "{err}"
    );

    // Not a checkpoint at all.
    let empty = tempfile::tempdir()?;
    assert!(matches!(
        Checkpoint::open(empty.path()),
        Err(CheckpointError::NoWeights(_))
    ));
    let garbage = empty.path().join("model.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file")?;
    assert!(matches!(
        Checkpoint::open(&garbage),
        Err(CheckpointError::Safetensors { .. })
    ));
    let garbage_bin = empty.path().join("pytorch_model.bin");
    std::fs::write(&garbage_bin, b"PK\x03\x04 truncated zip")?;
    assert!(matches!(
        Checkpoint::open(&garbage_bin),
        Err(CheckpointError::Pytorch { .. })
    ));
    Ok(())
}

#[test]
fn truncated_bin_is_an_error() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let bytes = std::fs::read(fixtures().join("tiny-owl2/pytorch_model.bin"))?;
    let p = tmp.path().join("pytorch_model.bin");
    std::fs::write(&p, &bytes[..bytes.len() * 2 / 3])?;
    let err = Checkpoint::open(&p).map(|ck| {
        // If the table of contents survived, reading every tensor must fail somewhere, never panic.
        ck.names()
            .map(str::to_string)
            .collect::<Vec<_>>()
            .iter()
            .map(|n| ck.f32(n).map(|_| ()))
            .collect::<Result<Vec<_>, _>>()
    });
    match err {
        Err(e) => assert!(e.to_string().contains("pytorch_model.bin"), "{e}"),
        Ok(inner) => assert!(inner.is_err(), "a truncated .bin must not read cleanly"),
    }
    Ok(())
}

#[test]
fn weights_report_every_problem_at_once() -> Result<()> {
    let ck = Checkpoint::open(fixtures().join("tiny-llama-gqa"))?;
    let device = Device::flex();
    let w = Weights::new(&ck, &device);
    let _ok = w.tensor("model.norm.weight", [64]);
    let _missing = w.tensor("model.layers.0.self_attn.q_norm.weight", [16]);
    let _shape = w.linear("model.layers.0.self_attn.k_proj", 64, 64, false); // stored [32, 64]
    let err = w.finish().unwrap_err();
    let CheckpointError::Tensors { problems, .. } = &err else {
        panic!("{err}")
    };
    assert!(problems.contains(&TensorProblem::Missing {
        name: "model.layers.0.self_attn.q_norm.weight".into(),
        expected: vec![16]
    }));
    assert!(problems.contains(&TensorProblem::Shape {
        name: "model.layers.0.self_attn.k_proj.weight".into(),
        expected: vec![64, 64],
        actual: vec![32, 64]
    }));
    assert!(problems.contains(&TensorProblem::Unexpected {
        name: "lm_head.weight".into(),
        actual: vec![512, 64]
    }));
    let msg = err.to_string();
    assert!(
        msg.contains("missing model.layers.0.self_attn.q_norm.weight")
            && msg.contains("expected [64, 64], found [32, 64]"),
        "{msg}"
    );
    Ok(())
}

/// A scoped view asks for relative names, records into the loader's tracking, and its `finish` reports only what
/// lies under its prefix; `ignore_scope` declares another part's tensors.
#[test]
fn scoped_weights_load_and_report_alone() -> Result<()> {
    let ck = Checkpoint::open(fixtures().join("tiny-llama-gqa"))?;
    let device = Device::flex();
    let w = Weights::new(&ck, &device);
    let layer = w.scope("model.layers.0");
    assert_eq!(
        layer.name("input_layernorm.weight"),
        "model.layers.0.input_layernorm.weight"
    );
    assert!(layer.contains("input_layernorm.weight"));
    let _norm = layer.tensor("input_layernorm.weight", [64]);
    let _missing = layer.tensor("mlp.extra.weight", [8]);
    let err = layer.finish().unwrap_err();
    let CheckpointError::Tensors { problems, .. } = &err else {
        panic!("{err}")
    };
    // Only this layer's problems: the missing tensor, and its unused neighbours; nothing from layer 1 or the head.
    assert!(problems.contains(&TensorProblem::Missing {
        name: "model.layers.0.mlp.extra.weight".into(),
        expected: vec![8]
    }));
    assert!(
        problems
            .iter()
            .all(|p| p.name().starts_with("model.layers.0.")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, TensorProblem::Unexpected { name, .. }
        if name == "model.layers.0.self_attn.q_proj.weight"))
    );
    // The loader itself saw what its scope did: the missing tensor, and the used one is not unexpected.
    let all = w.finish().unwrap_err();
    let CheckpointError::Tensors { problems, .. } = &all else {
        panic!("{all}")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.name() == "model.layers.0.mlp.extra.weight")
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.name() == "model.layers.0.input_layernorm.weight")
    );
    assert!(problems.iter().any(|p| p.name() == "lm_head.weight"));
    // Another part's tensors, declared: a loader of the head alone finishes clean.
    let root = Weights::new(&ck, &device).ignore_scope("model");
    let _ = root.tensor("lm_head.weight", [512, 64]);
    root.finish()?;
    Ok(())
}

/// Issue #16: a 548-byte `.bin` whose 28-byte storage is viewed as 20000 × 20000 (strides 0) made `convert` write
/// 1.6 GB. A view larger than its storage window, or reaching past its storage, is refused when the file is opened,
/// naming the file and the tensor.
#[test]
fn views_larger_than_their_storage_are_refused_at_open() {
    for (file, says) in [
        ("huge_view.bin", "400000000"),
        ("short_storage.bin", "storage"),
    ] {
        let err = Checkpoint::open(fixtures().join("checkpoint-cases").join(file)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(file), "{msg}");
        assert!(msg.contains(says), "{file}: {msg}");
    }
}

/// Issue #17: every read path gives the same tensors bit for bit. The reference values come from the test kit's own
/// safetensors reader; each path is checked against them: f32 file → f32 (memory-mapped view) and → bf16 (one
/// rounding pass), transposed reads (linear weights) in both dtypes, a copy whose data section is misaligned (the
/// streamed path), a bf16 file → bf16 (view) and → f32 (widened), and the bf16 `.bin` → both.
#[test]
fn every_format_and_dtype_path_gives_the_same_tensors_bit_for_bit() -> Result<()> {
    let src = fixtures().join("tiny-owl2/model.safetensors");
    let want = biqa_testkit::Arrays::open(&src)?;
    let bf = |x: f32| half::bf16::from_f32(x);
    let tmp = tempfile::tempdir()?;

    // A copy with the header padded by one space: the data section starts at an odd offset.
    let raw = std::fs::read(&src)?;
    let n = u64::from_le_bytes(raw[..8].try_into()?) as usize;
    let mut header = raw[8..8 + n].to_vec();
    header.push(b' ');
    let mut odd = ((n + 1) as u64).to_le_bytes().to_vec();
    odd.extend_from_slice(&header);
    odd.extend_from_slice(&raw[8 + n..]);
    let misaligned = tmp.path().join("misaligned.safetensors");
    std::fs::write(&misaligned, odd)?;

    // The same tensors stored as bf16 (rounded once, by the writer).
    let f32_ck = Checkpoint::open(&src)?;
    let bf16_dir = tmp.path().join("bf16");
    let entries: Vec<biqa_checkpoint::TensorEntry> = f32_ck
        .names()
        .map(|name| biqa_checkpoint::TensorEntry {
            name: name.to_string(),
            shape: f32_ck.info(name).map(|i| i.shape).unwrap_or_default(),
            dtype: DType::BF16,
        })
        .collect();
    biqa_checkpoint::write_sharded(
        &bf16_dir,
        "test",
        &entries,
        |name| {
            let (v, shape) = f32_ck.f32(name)?;
            Ok(burn::tensor::TensorData::new(v, shape).convert_dtype(DType::BF16))
        },
        u64::MAX,
    )?;

    let f32_sources = [
        ("f32 file", Checkpoint::open(&src)?),
        ("misaligned f32 file", Checkpoint::open(&misaligned)?),
    ];
    let bf16_sources = [
        ("bf16 file", Checkpoint::open(&bf16_dir)?),
        (
            "bf16 .bin",
            Checkpoint::open(fixtures().join("tiny-owl2/pytorch_model.bin"))?,
        ),
    ];
    for name in want.names() {
        let values = want.f32(name)?;
        let shape = want.shape(name)?.to_vec();
        let rounded: Vec<half::bf16> = values.iter().map(|&x| bf(x)).collect();
        let transposed = |v: &[f32]| -> Vec<f32> {
            match shape[..] {
                [r, c] => (0..c * r).map(|k| v[(k % r) * c + k / r]).collect(),
                _ => v.to_vec(),
            }
        };
        let t32 = transposed(values);
        let t16: Vec<half::bf16> = t32.iter().map(|&x| bf(x)).collect();
        let widened: Vec<f32> = rounded.iter().map(|x| x.to_f32()).collect();
        let t_widened = transposed(&widened);
        let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let bits16 = |v: &[half::bf16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let read32 = |ck: &Checkpoint, t: bool| -> Result<Vec<u32>> {
            let d = if t {
                ck.float_data_transposed(name, DType::F32)?
            } else {
                ck.float_data(name, DType::F32)?
            };
            Ok(bits32(
                &d.try_to_vec::<f32>()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?,
            ))
        };
        let read16 = |ck: &Checkpoint, t: bool| -> Result<Vec<u16>> {
            let d = if t {
                ck.float_data_transposed(name, DType::BF16)?
            } else {
                ck.float_data(name, DType::BF16)?
            };
            Ok(bits16(
                &d.try_to_vec::<half::bf16>()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?,
            ))
        };
        let two_d = shape.len() == 2;
        for (what, ck) in &f32_sources {
            assert_eq!(read32(ck, false)?, bits32(values), "{what}: {name} → f32");
            assert_eq!(
                read16(ck, false)?,
                bits16(&rounded),
                "{what}: {name} → bf16"
            );
            if two_d {
                assert_eq!(read32(ck, true)?, bits32(&t32), "{what}: {name} → f32ᵀ");
                assert_eq!(read16(ck, true)?, bits16(&t16), "{what}: {name} → bf16ᵀ");
            }
        }
        for (what, ck) in &bf16_sources {
            assert_eq!(
                read16(ck, false)?,
                bits16(&rounded),
                "{what}: {name} → bf16"
            );
            assert_eq!(read32(ck, false)?, bits32(&widened), "{what}: {name} → f32");
            if two_d {
                assert_eq!(read16(ck, true)?, bits16(&t16), "{what}: {name} → bf16ᵀ");
                assert_eq!(
                    read32(ck, true)?,
                    bits32(&t_widened),
                    "{what}: {name} → f32ᵀ"
                );
            }
        }
    }
    Ok(())
}

/// Issue #16: the header is parsed once. 30 000 tensors (burn-store's per-tensor re-parse never finished) and a
/// 60 MB `__metadata__` (7 s per load) open and read in well under a second; a quadratic reader would hang here.
#[test]
fn thirty_thousand_tensors_and_a_huge_metadata_open_in_one_parse() -> Result<()> {
    let n = 30_000usize;
    let mut header = serde_json::Map::new();
    let filler = "x".repeat(60 << 20);
    header.insert(
        "__metadata__".into(),
        serde_json::json!({ "format": "pt", "filler": filler }),
    );
    for i in 0..n {
        header.insert(
            format!("model.t{i}.weight"),
            serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}),
        );
    }
    let text = serde_json::to_vec(&header)?;
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&text);
    bytes.extend((0..n).flat_map(|i| (i as f32).to_le_bytes()));
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("many.safetensors");
    std::fs::write(&path, bytes)?;
    let ck = Checkpoint::open(&path)?;
    assert_eq!(ck.len(), n);
    for i in [0, 12_345, n - 1] {
        let (v, shape) = ck.f32(&format!("model.t{i}.weight"))?;
        assert_eq!((v, shape), (vec![i as f32], vec![1]));
    }
    Ok(())
}
