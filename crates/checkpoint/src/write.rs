//! Writing a checkpoint as sharded safetensors (`biqa convert`): memory-mapped loads from then on.

use std::path::{Path, PathBuf};

use burn::tensor::{DType, TensorData};

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

/// One tensor to write: its name, shape and dtype (for planning the shards before any data is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its dtype.
    pub dtype: DType,
}

impl TensorEntry {
    fn bytes(&self) -> u64 {
        self.shape.iter().product::<usize>() as u64 * self.dtype.size() as u64
    }
}

/// Writes one safetensors file atomically (a temporary file renamed into place) from `tensors`, with
/// `{"format": "pt"}` metadata. `desc` names the source in errors.
fn write_file(path: &Path, desc: &str, tensors: &[(String, TensorData)]) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, data)| {
            let dtype = st_dtype(data.dtype()).ok_or_else(|| CheckpointError::Data {
                source_desc: desc.to_string(),
                name: name.clone(),
                reason: format!("dtype {:?} cannot be written to safetensors", data.dtype()),
            })?;
            let shape: Vec<usize> = data.shape().iter().copied().collect();
            safetensors::tensor::TensorView::new(dtype, shape, data.as_bytes())
                .map(|v| (name.clone(), v))
                .map_err(|e| CheckpointError::Data {
                    source_desc: desc.to_string(),
                    name: name.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    biqa_core::write_file_atomic(path, |tmp| {
        safetensors::serialize_to_file(views, Some(meta), tmp).map_err(|e| {
            CheckpointError::Safetensors {
                path: tmp.to_path_buf(),
                reason: e.to_string(),
            }
        })
    })
}

/// Writes named f32 host tensors (name → (shape, row-major values)) as one safetensors file, atomically.
///
/// # Errors
/// Values that do not fill their shape, or an I/O error (named).
pub fn write_f32_file(
    path: &Path,
    tensors: &std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>,
) -> Result<()> {
    let datas: Vec<(String, TensorData)> = tensors
        .iter()
        .map(|(n, (shape, v))| (n.clone(), TensorData::new(v.clone(), shape.clone())))
        .collect();
    write_file(path, &path.display().to_string(), &datas)
}

/// Writes named f32 host tensors (name → (shape, row-major values)) through [`write_sharded`], as f32, handing
/// each tensor's values over as its shard is written (so the map is consumed, not copied).
///
/// # Errors
/// As [`write_sharded`].
pub fn write_sharded_f32(
    out_dir: &Path,
    desc: &str,
    mut tensors: std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    max_shard_bytes: u64,
) -> Result<Vec<PathBuf>> {
    let entries: Vec<TensorEntry> = tensors
        .iter()
        .map(|(name, (shape, _))| TensorEntry {
            name: name.clone(),
            shape: shape.clone(),
            dtype: DType::F32,
        })
        .collect();
    write_sharded(
        out_dir,
        desc,
        &entries,
        |name| {
            let (shape, v) = tensors.remove(name).unwrap_or_default();
            Ok(TensorData::new(v, shape))
        },
        max_shard_bytes,
    )
}

/// The one sharded safetensors writer (`biqa convert`, the training export): the tensors of `entries`, read one
/// shard at a time through `fetch`, into shards of at most `max_shard_bytes` each
/// (`model-0000i-of-0000n.safetensors`) plus `model.safetensors.index.json` in `out_dir`; a single file
/// `model.safetensors` when everything fits in one shard. Every file is written under a temporary name and renamed
/// when complete. Returns the files written.
///
/// # Errors
/// A tensor `fetch` cannot give, an unsupported dtype, or an I/O error (named); `desc` names the source.
pub fn write_sharded(
    out_dir: &Path,
    desc: &str,
    entries: &[TensorEntry],
    mut fetch: impl FnMut(&str) -> Result<TensorData>,
    max_shard_bytes: u64,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    // Plan the shards from the sizes alone.
    let mut shards: Vec<Vec<&TensorEntry>> = vec![Vec::new()];
    let mut size = 0u64;
    for e in entries {
        if size > 0 && size + e.bytes() > max_shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        size += e.bytes();
        if let Some(s) = shards.last_mut() {
            s.push(e);
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
    for (i, shard) in shards.iter().enumerate() {
        let datas = shard
            .iter()
            .map(|e| fetch(&e.name).map(|d| (e.name.clone(), d)))
            .collect::<Result<Vec<_>>>()?;
        let final_path = out_dir.join(file_name(i));
        write_file(&final_path, desc, &datas)?;
        for e in shard {
            weight_map.insert(e.name.clone(), serde_json::Value::String(file_name(i)));
        }
        written.push(final_path);
    }
    if n > 1 {
        let total: u64 = entries.iter().map(TensorEntry::bytes).sum();
        let index =
            serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let path = out_dir.join("model.safetensors.index.json");
        let text = serde_json::to_string_pretty(&index).unwrap_or_default();
        biqa_core::write_bytes_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

impl Checkpoint {
    /// Writes every tensor, in its stored dtype, with [`write_sharded`] (`biqa convert`).
    ///
    /// # Errors
    /// Unreadable tensors, an unsupported dtype, or an I/O error (named).
    pub fn write_safetensors(&self, out_dir: &Path, max_shard_bytes: u64) -> Result<Vec<PathBuf>> {
        let entries = self
            .names()
            .map(|name| {
                let info = self.info(name).ok_or_else(|| CheckpointError::NotFound {
                    source_desc: self.source().to_string(),
                    name: name.to_string(),
                })?;
                Ok(TensorEntry {
                    name: name.to_string(),
                    shape: info.shape,
                    dtype: info.dtype,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        write_sharded(
            out_dir,
            self.source(),
            &entries,
            |name| self.data(name),
            max_shard_bytes,
        )
    }
}
