//! Fuzzes the `tokenizer.json` reader (the fallback when no `tokenizer.model` exists), then encodes and decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = biqa_fuzz::fresh_dir("hf");
    std::fs::write(dir.join("tokenizer.json"), data).unwrap();
    if let Ok(tok) = biqa_model::Tokenizer::from_dir(&dir) {
        biqa_fuzz::exercise_tokenizer(&tok);
    }
});
