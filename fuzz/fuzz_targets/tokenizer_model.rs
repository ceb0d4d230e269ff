//! Fuzzes the SentencePiece `tokenizer.model` reader, then encodes and decodes with whatever it accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = biqa_fuzz::fresh_dir("spm");
    std::fs::write(dir.join("tokenizer.model"), data).unwrap();
    if let Ok(tok) = biqa_model::Tokenizer::from_dir(&dir) {
        biqa_fuzz::exercise_tokenizer(&tok);
    }
});
