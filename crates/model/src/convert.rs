//! `biqa convert`: rewrite a checkpoint directory's weights as sharded safetensors (memory-mapped loads from then
//! on) and copy everything else.

use std::path::{Path, PathBuf};

use biqa_checkpoint::Checkpoint;

use crate::error::{ModelError, Result};

fn is_weight_file(name: &str) -> bool {
    name.ends_with(".bin")
        || name.ends_with(".safetensors")
        || name.ends_with(".pt")
        || name.ends_with(".pth")
        || name == "pytorch_model.bin.index.json"
        || name == "model.safetensors.index.json"
}

/// Converts `src` (any supported weight format) into `dst`: the weights, in their stored dtypes, as safetensors
/// shards of at most `max_shard_bytes` (+ index), and every other top-level file copied (config, tokenizer,
/// preprocessor, generation config…). Sub-directories (e.g. DeepSpeed `global_step*`) are not copied. Returns the
/// files written (under `dst`).
///
/// `dst` must be absent or empty: a folder that already holds files is refused (stale weights beside the new
/// shards would be picked by a later load). The whole folder is written under a temporary name beside `dst` and
/// renamed into place when complete ([`biqa_core::AtomicDir`]), so a conversion that fails half-way leaves no
/// `dst` (or the empty one it found), never shards without their index.
///
/// # Errors
/// A missing `src`, a non-empty `dst`, `dst` equal to `src`, unreadable source weights, or I/O errors (named).
pub fn convert_dir(src: &Path, dst: &Path, max_shard_bytes: u64) -> Result<Vec<PathBuf>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    if !src.exists() {
        return Err(ModelError::ConvertSourceMissing {
            dir: src.to_path_buf(),
        });
    }
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize())
        && a == b
    {
        return Err(ModelError::ConvertInPlace { dir: a });
    }
    if dst.exists() {
        let entries = std::fs::read_dir(dst).map_err(io(dst))?.count();
        if entries > 0 {
            return Err(ModelError::ConvertTargetNotEmpty {
                dir: dst.to_path_buf(),
                entries,
            });
        }
    }
    let ckpt = Checkpoint::open(src)?;
    let staging = biqa_core::AtomicDir::new(dst)?;
    let tmp = staging.path().to_path_buf();
    let mut written = ckpt.write_safetensors(&tmp, max_shard_bytes)?;
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_file() && !is_weight_file(&name) {
            let to = tmp.join(&name);
            std::fs::copy(&path, &to).map_err(io(&to))?;
            written.push(to);
        }
    }
    staging.commit()?;
    Ok(written
        .into_iter()
        .map(|p| match p.strip_prefix(&tmp) {
            Ok(rel) => dst.join(rel),
            Err(_) => p,
        })
        .collect())
}
