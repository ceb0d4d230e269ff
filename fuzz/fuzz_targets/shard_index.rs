//! Fuzzes the shard index reader: the input is `model.safetensors.index.json`, beside two valid shards
//! (`a.safetensors`, `b.safetensors`, each holding tensors `a` and `b`) that the index may name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = biqa_fuzz::fresh_dir("shards");
    let shard = biqa_fuzz::tiny_safetensors();
    std::fs::write(dir.join("a.safetensors"), &shard).unwrap();
    std::fs::write(dir.join("b.safetensors"), &shard).unwrap();
    let index = dir.join("model.safetensors.index.json");
    std::fs::write(&index, data).unwrap();
    if let Ok(ckpt) = biqa_checkpoint::Checkpoint::open(&index) {
        biqa_fuzz::read_all(&ckpt);
    }
});
