//! Shared helpers of the fuzz targets: most readers take paths, so each input is written to a scratch folder in
//! memory (`/dev/shm` where it exists) that belongs to this process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's scratch folder (created once, emptied by the caller's writes).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("biqa-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

/// Writes `bytes` to `name` inside the scratch folder and returns its path.
pub fn put(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("scratch write");
    path
}

/// A fresh, empty sub-folder of the scratch folder.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Reads every tensor of an opened checkpoint (the data path, not only the header), ignoring per-tensor errors.
pub fn read_all(ckpt: &biqa_checkpoint::Checkpoint) {
    let names: Vec<String> = ckpt.names().map(str::to_owned).collect();
    for name in names.iter().take(64) {
        let _ = ckpt.data(name);
    }
}

/// A small valid safetensors file: `a` (f32 [2, 3]) and `b` (bf16 [4]), the shard the index target points at.
pub fn tiny_safetensors() -> Vec<u8> {
    let header = br#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}"#;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend((0..32u8).map(|i| i.wrapping_mul(7)));
    out
}

/// Encodes and decodes a fixed prompt (with an image marker, a literal `</s>` and non-ASCII text).
pub fn exercise_tokenizer(tok: &biqa_model::Tokenizer) {
    let ids = tok.encode(
        "USER: <|image|>How would you rate the quality of this image?</s> é 图 🙂 ASSISTANT:",
        true,
    );
    let _ = tok.decode(&ids, true);
    let _ = tok.encode_with_images("<|image|> a photo");
    let mut dec = tok.incremental_decoder();
    for &id in ids.iter().take(32) {
        let _ = dec.push(id);
    }
    let _ = tok.decode(&[0, 1, 2, 3, u32::MAX, 259, 32_000], false);
}
