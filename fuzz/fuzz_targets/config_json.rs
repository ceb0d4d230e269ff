//! Fuzzes `config.json` → the validated runtime configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(hf) = biqa_model::HfOwl2Config::from_json(text, Path::new("config.json")) {
        let _ = hf.to_config();
    }
});
