//! The random checkpoint writer (the benchmarks' real-shape and 7B checkpoints): what it writes loads as the random
//! network of the same seed, bit for bit, and its parameter list is the loader's own.

use anyhow::Result;
use biqa_checkpoint::Checkpoint;
use biqa_model::{HfOwl2Config, Owl2Net};
use biqa_testkit::fixtures;
use burn::tensor::{DType, Device};

#[test]
fn written_random_checkpoint_is_the_random_network_bit_for_bit() -> Result<()> {
    let config = HfOwl2Config::from_file(&fixtures().join("tiny-owl2/config.json"))?.to_config()?;
    let dir = tempfile::tempdir()?;
    // A small shard limit, so that the index and several shards are exercised.
    let files = Owl2Net::write_random_checkpoint(&config, 7, DType::F32, dir.path(), 200_000)?;
    assert!(files.len() > 2, "{files:?}");
    let written = Checkpoint::open(dir.path().join("model.safetensors.index.json"))?;
    let want = Owl2Net::random(&config, &Device::flex(), 7).checkpoint_tensors()?;
    // The fixture's checkpoint has the same parameter names (the released layout); it also stores buffers that the
    // models compute when absent (rotary `inv_freq`, the abstractor's sin-cos `q/k_pos_embed`), which the original
    // code recomputes too (its scores on a written checkpoint equal biqa's).
    let fixture = Checkpoint::open(fixtures().join("tiny-owl2"))?;
    let mut names: Vec<&str> = written.names().collect();
    names.sort_unstable();
    let mut fixture_names: Vec<&str> = fixture
        .names()
        .filter(|n| !n.ends_with(".inv_freq") && !n.ends_with("_pos_embed"))
        .collect();
    fixture_names.sort_unstable();
    assert_eq!(names, fixture_names);
    assert_eq!(names.len(), want.len());
    for (name, (shape, values)) in &want {
        let (got, got_shape) = written.f32(name)?;
        assert_eq!(&got_shape, shape, "{name}");
        assert!(
            got.iter()
                .zip(values)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name} differs"
        );
    }
    // bf16: the same values rounded once.
    let dir16 = tempfile::tempdir()?;
    Owl2Net::write_random_checkpoint(&config, 7, DType::BF16, dir16.path(), u64::MAX)?;
    let written16 = Checkpoint::open(dir16.path())?;
    for (name, (_, values)) in &want {
        let (got, _) = written16.f32(name)?;
        for (a, b) in got.iter().zip(values) {
            assert_eq!(
                a.to_bits(),
                half::bf16::from_f32(*b).to_f32().to_bits(),
                "{name}"
            );
        }
    }
    Ok(())
}
