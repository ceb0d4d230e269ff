//! Fuzzes the training configuration: TOML parsing, path resolution and validation (all in `from_toml_file`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = biqa_train::TrainConfig::from_toml_file(&biqa_fuzz::put("train.toml", data));
});
