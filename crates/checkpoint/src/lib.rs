//! Reading named tensors from HF-style checkpoints: the one place that knows file formats.
//!
//! - single `*.safetensors` files and sharded ones with a `model.safetensors.index.json`;
//! - PyTorch `torch.save` zip pickles (`pytorch_model.bin`, the format of the released mPLUG-Owl2 / Q-Align
//!   folders), single or sharded with a `pytorch_model.bin.index.json`;
//! - any float dtype (f32, f16, bf16, f64), per tensor.
//!
//! The format readers are burn's (`burn::store`: [`SafetensorsStore`] and the `pytorch-reader` behind
//! `PytorchStore`); tensors are read lazily, one at a time, so memory stays near the size of the model being
//! built. The pickle reader never executes code; on top of it, [`Checkpoint::open`] rejects any pickle that
//! references a Python global other than the torch tensor-rebuild functions and `OrderedDict`.
//!
//! [`Weights`] is the tracking loader that models are built through: every tensor a model asks for is checked
//! against the expected shape, and [`Weights::finish`] reports every missing, mis-shaped and unexpected tensor in
//! one error.

mod error;
mod pickle_guard;
mod weights;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::pytorch_reader::PytorchReader;
use burn::store::{ModuleStore, SafetensorsStore, bridge};
use burn::tensor::{DType, TensorData};

pub use error::{CheckpointError, Result, TensorProblem};
pub use weights::{FloatPolicy, Weights};
pub use write::{
    DEFAULT_SHARD_BYTES, TensorEntry, write_f32_file, write_sharded, write_sharded_f32,
};

/// The on-disk format of a checkpoint's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// `*.safetensors` (memory-mapped).
    Safetensors,
    /// PyTorch `torch.save` zip pickle (`*.bin`, `*.pt`, `*.pth`).
    Pytorch,
}

/// The weight files of a checkpoint directory, in transformers' order of preference.
pub const WEIGHT_FILES: [&str; 4] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// Metadata of one stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The shape as stored.
    pub shape: Vec<usize>,
    /// The dtype as stored.
    pub dtype: DType,
    /// The file holding it.
    pub file: PathBuf,
}

struct Stored {
    file: usize,
    tensor: PackTensor,
}

/// An opened checkpoint: every tensor name with its shape and dtype, data read on demand.
pub struct Checkpoint {
    desc: String,
    format: WeightFormat,
    files: Vec<PathBuf>,
    tensors: BTreeMap<String, Stored>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("source", &self.desc)
            .field("format", &self.format)
            .field("files", &self.files)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

fn format_of(path: &Path) -> Result<WeightFormat> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".safetensors") {
        Ok(WeightFormat::Safetensors)
    } else if name.ends_with(".bin") || name.ends_with(".pt") || name.ends_with(".pth") {
        Ok(WeightFormat::Pytorch)
    } else {
        Err(CheckpointError::UnknownFormat(path.to_path_buf()))
    }
}

/// Reads the tensor table of one file (no tensor data yet).
fn read_file_tensors(path: &Path, format: WeightFormat) -> Result<BTreeMap<String, PackTensor>> {
    if !path.is_file() {
        return Err(CheckpointError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    match format {
        WeightFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path);
            let all = store
                .get_all_tensors()
                .map_err(|e| CheckpointError::Safetensors {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            Ok(all.clone())
        }
        WeightFormat::Pytorch => {
            let err = |e: &dyn std::fmt::Display| CheckpointError::Pytorch {
                path: path.to_path_buf(),
                reason: e.to_string(),
            };
            // The guard reads the pickle's opcodes before anything else interprets it, and refuses every global
            // but the tensor-rebuild ones (which is also all a value tree could name).
            let file = std::fs::File::open(path).map_err(|source| CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            pickle_guard::check_file(file).map_err(|reason| CheckpointError::Pytorch {
                path: path.to_path_buf(),
                reason,
            })?;
            let reader = PytorchReader::new(path).map_err(|e| err(&e))?;
            Ok(reader
                .into_tensors()
                .into_iter()
                .map(|(k, t)| (k, bridge::from_pytorch(t)))
                .collect())
        }
    }
}

impl Checkpoint {
    /// Opens a checkpoint directory (the first of [`WEIGHT_FILES`] that exists), a single weight file, or a
    /// shard index (`*.index.json`).
    ///
    /// # Errors
    /// No weight file, unreadable or malformed files, an index naming missing files or tensors, or a tensor
    /// name in two shards.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            let file = WEIGHT_FILES
                .iter()
                .map(|f| path.join(f))
                .find(|p| p.is_file())
                .ok_or_else(|| CheckpointError::NoWeights(path.to_path_buf()))?;
            return Self::open(file);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".index.json") {
            return Self::open_index(path);
        }
        let format = format_of(path)?;
        let tensors = read_file_tensors(path, format)?;
        Ok(Self {
            desc: path.display().to_string(),
            format,
            files: vec![path.to_path_buf()],
            tensors: tensors
                .into_iter()
                .map(|(k, tensor)| (k, Stored { file: 0, tensor }))
                .collect(),
        })
    }

    fn open_index(index: &Path) -> Result<Self> {
        let text = biqa_core::read_text(index, biqa_core::CONFIG_LIMIT).map_err(|source| {
            CheckpointError::Io {
                path: index.to_path_buf(),
                source,
            }
        })?;
        let parsed: ShardIndex =
            serde_json::from_str(&text).map_err(|e| CheckpointError::Index {
                path: index.to_path_buf(),
                reason: e.to_string(),
            })?;
        let dir = index.parent().unwrap_or_else(|| Path::new("."));
        let mut shard_names: Vec<&String> = parsed.weight_map.values().collect();
        shard_names.sort_unstable();
        shard_names.dedup();
        if shard_names.is_empty() {
            return Err(CheckpointError::EmptyIndex(index.to_path_buf()));
        }
        let mut files: Vec<PathBuf> = Vec::new();
        let mut tensors: BTreeMap<String, Stored> = BTreeMap::new();
        let mut format = None;
        for shard in shard_names {
            let file = dir.join(shard);
            if !file.is_file() {
                return Err(CheckpointError::MissingShard {
                    path: index.to_path_buf(),
                    shard: shard.clone(),
                });
            }
            let f = format_of(&file)?;
            format = Some(f);
            let idx = files.len();
            for (name, tensor) in read_file_tensors(&file, f)? {
                if let Some(prev) = tensors.get(&name) {
                    return Err(CheckpointError::Duplicate {
                        name,
                        first: files[prev.file].clone(),
                        second: file.clone(),
                    });
                }
                tensors.insert(name, Stored { file: idx, tensor });
            }
            files.push(file);
        }
        // Every entry of the map must be in the shard it names.
        let position: HashMap<&Path, usize> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.as_path(), i))
            .collect();
        for (name, shard) in &parsed.weight_map {
            let expected = position.get(dir.join(shard).as_path()).copied();
            match tensors.get(name) {
                Some(s) if Some(s.file) == expected => {}
                _ => {
                    return Err(CheckpointError::ShardMismatch {
                        path: index.to_path_buf(),
                        name: name.clone(),
                        shard: shard.clone(),
                    });
                }
            }
        }
        Ok(Self {
            desc: index.parent().unwrap_or(index).display().to_string(),
            format: format.unwrap_or(WeightFormat::Safetensors),
            files,
            tensors,
        })
    }

    /// Where the checkpoint came from (for messages).
    pub fn source(&self) -> &str {
        &self.desc
    }

    /// The weight format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// The weight files, in shard order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// True when a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Shape, dtype and file of a tensor.
    pub fn info(&self, name: &str) -> Option<TensorInfo> {
        self.tensors.get(name).map(|s| TensorInfo {
            shape: s.tensor.shape.iter().copied().collect(),
            dtype: s.tensor.dtype,
            file: self.files[s.file].clone(),
        })
    }

    /// Reads one tensor's data in its stored dtype.
    ///
    /// # Errors
    /// No such tensor, or its bytes cannot be read (e.g. a truncated file).
    pub fn data(&self, name: &str) -> Result<TensorData> {
        let stored = self
            .tensors
            .get(name)
            .ok_or_else(|| CheckpointError::NotFound {
                source_desc: self.desc.clone(),
                name: name.to_string(),
            })?;
        bridge::to_data(&stored.tensor).map_err(|e| CheckpointError::Data {
            source_desc: self.desc.clone(),
            name: name.to_string(),
            reason: e.to_string(),
        })
    }

    /// Reads one float tensor converted to f32, row-major, with its shape.
    ///
    /// # Errors
    /// No such tensor, unreadable bytes, or a non-float dtype.
    pub fn f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let data = self.data(name)?;
        if !data.dtype().is_float() {
            return Err(CheckpointError::Data {
                source_desc: self.desc.clone(),
                name: name.to_string(),
                reason: format!("dtype {:?} is not a float dtype", data.dtype()),
            });
        }
        let shape = data.shape().iter().copied().collect();
        let values = data
            .try_to_vec_as::<f32>()
            .map_err(|e| CheckpointError::Data {
                source_desc: self.desc.clone(),
                name: name.to_string(),
                reason: format!("{e:?}"),
            })?;
        Ok((values, shape))
    }
}
