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
/// files written.
///
/// # Errors
/// Unreadable source weights, or I/O errors (named); `dst` equal to `src` is refused.
pub fn convert_dir(src: &Path, dst: &Path, max_shard_bytes: u64) -> Result<Vec<PathBuf>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize())
        && a == b
    {
        return Err(ModelError::ConvertInPlace { dir: a });
    }
    let ckpt = Checkpoint::open(src)?;
    std::fs::create_dir_all(dst).map_err(io(dst))?;
    let mut written = ckpt.write_safetensors(dst, max_shard_bytes)?;
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_file() && !is_weight_file(&name) {
            let to = dst.join(&name);
            std::fs::copy(&path, &to).map_err(io(&to))?;
            written.push(to);
        }
    }
    Ok(written)
}
