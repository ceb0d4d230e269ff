//! Writing a checkpoint as sharded safetensors (`biqa convert`): memory-mapped loads from then on.

use std::path::{Path, PathBuf};

use burn::tensor::DType;

use crate::{Checkpoint, CheckpointError, Result};

/// Default maximum shard size: 2 GB, like `save_pretrained`'s `max_shard_size="2GB"`… rounded to bytes.
pub const DEFAULT_SHARD_BYTES: u64 = 2_000_000_000;

fn st_dtype(dtype: DType) -> Option<safetensors::Dtype> {
    Some(match dtype {
        DType::F64 => safetensors::Dtype::F64,
        DType::F32 => safetensors::Dtype::F32,
        DType::F16 => safetensors::Dtype::F16,
        DType::BF16 => safetensors::Dtype::BF16,
        DType::I64 => safetensors::Dtype::I64,
        DType::I32 => safetensors::Dtype::I32,
        DType::I16 => safetensors::Dtype::I16,
        DType::I8 => safetensors::Dtype::I8,
        DType::U8 => safetensors::Dtype::U8,
        DType::Bool(_) => safetensors::Dtype::BOOL,
        _ => return None,
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Checkpoint {
    /// Writes every tensor, in its stored dtype, into safetensors shards of at most `max_shard_bytes` each
    /// (`model-0000i-of-0000n.safetensors`) plus `model.safetensors.index.json` in `out_dir`; a single file
    /// `model.safetensors` when everything fits in one shard. Files are written under temporary names and
    /// renamed when complete, so an interrupted run leaves no half-written output. Returns the files written.
    ///
    /// # Errors
    /// Unreadable tensors, an unsupported dtype, or an I/O error (named).
    pub fn write_safetensors(&self, out_dir: &Path, max_shard_bytes: u64) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
        // Plan the shards from the sizes alone.
        let mut shards: Vec<Vec<String>> = vec![Vec::new()];
        let mut size = 0u64;
        for name in self.names() {
            let info = self.info(name).ok_or_else(|| CheckpointError::NotFound {
                source_desc: self.source().to_string(),
                name: name.to_string(),
            })?;
            let bytes = info.shape.iter().product::<usize>() as u64 * info.dtype.size() as u64;
            if size > 0 && size + bytes > max_shard_bytes {
                shards.push(Vec::new());
                size = 0;
            }
            size += bytes;
            if let Some(s) = shards.last_mut() {
                s.push(name.to_string());
            }
        }
        let n = shards.len();
        let file_name = |i: usize| {
            if n == 1 {
                "model.safetensors".to_string()
            } else {
                format!("model-{:05}-of-{n:05}.safetensors", i + 1)
            }
        };
        let mut written = Vec::new();
        let mut weight_map = serde_json::Map::new();
        for (i, names) in shards.iter().enumerate() {
            let mut datas = Vec::with_capacity(names.len());
            for name in names {
                let data = self.data(name)?;
                let dtype = st_dtype(data.dtype()).ok_or_else(|| CheckpointError::Data {
                    source_desc: self.source().to_string(),
                    name: name.clone(),
                    reason: format!("dtype {:?} cannot be written to safetensors", data.dtype()),
                })?;
                datas.push((name.clone(), dtype, data));
            }
            let views = datas
                .iter()
                .map(|(name, dtype, data)| {
                    let shape: Vec<usize> = data.shape().iter().copied().collect();
                    safetensors::tensor::TensorView::new(*dtype, shape, data.as_bytes())
                        .map(|v| (name.clone(), v))
                        .map_err(|e| CheckpointError::Data {
                            source_desc: self.source().to_string(),
                            name: name.clone(),
                            reason: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let final_path = out_dir.join(file_name(i));
            let tmp = out_dir.join(format!(".{}.partial", file_name(i)));
            let mut meta = std::collections::HashMap::new();
            meta.insert("format".to_string(), "pt".to_string());
            safetensors::serialize_to_file(views, Some(meta), &tmp).map_err(|e| {
                CheckpointError::Safetensors {
                    path: tmp.clone(),
                    reason: e.to_string(),
                }
            })?;
            std::fs::rename(&tmp, &final_path).map_err(io(&final_path))?;
            for name in names {
                weight_map.insert(name.clone(), serde_json::Value::String(file_name(i)));
            }
            written.push(final_path);
        }
        if n > 1 {
            let total: u64 = self
                .names()
                .filter_map(|nm| self.info(nm))
                .map(|i| i.shape.iter().product::<usize>() as u64 * i.dtype.size() as u64)
                .sum();
            let index =
                serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
            let path = out_dir.join("model.safetensors.index.json");
            let tmp = out_dir.join(".model.safetensors.index.json.partial");
            std::fs::write(
                &tmp,
                serde_json::to_string_pretty(&index).unwrap_or_default(),
            )
            .map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            written.push(path);
        }
        Ok(written)
    }
}
