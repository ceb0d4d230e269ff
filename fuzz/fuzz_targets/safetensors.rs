//! Fuzzes the safetensors reader: open (header / pickle parsing, guard, bounds) and read every tensor.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = biqa_fuzz::put("w.safetensors", data);
    if let Ok(ckpt) = biqa_checkpoint::Checkpoint::open(&path) {
        biqa_fuzz::read_all(&ckpt);
    }
});
