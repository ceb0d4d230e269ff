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

mod cast;
mod error;
mod map;
mod pickle_guard;
mod st;
mod weights;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::store::bridge;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::pytorch_reader::PytorchReader;
use burn::tensor::{DType, TensorData};

pub use error::{CheckpointError, Result, TensorProblem};
pub use st::MAX_HEADER_BYTES;
pub use weights::{FloatPolicy, Weights, random_values};
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

/// Where a tensor's bytes are.
enum Body {
    /// A safetensors byte range, read with one positioned read.
    Range { start: u64, len: u64 },
    /// A PyTorch tensor, read by burn's pickle reader.
    Pack(PackTensor),
}

struct Stored {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    body: Body,
}

/// An opened checkpoint: every tensor name with its shape and dtype, data read on demand.
pub struct Checkpoint {
    desc: String,
    format: WeightFormat,
    files: Vec<PathBuf>,
    tensors: BTreeMap<String, Stored>,
    /// Each safetensors file mapped on first use (`None` where mapping failed: reads then go through `read`).
    maps: Vec<std::sync::OnceLock<Option<bytes::Bytes>>>,
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

/// One entry of a file's tensor table: `(name, dtype, shape, body)`.
type TableEntry = (String, DType, Vec<usize>, Body);

/// Reads the tensor table of one file (no tensor data yet).
fn read_file_tensors(path: &Path, format: WeightFormat) -> Result<Vec<TableEntry>> {
    if !path.is_file() {
        return Err(CheckpointError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    match format {
        WeightFormat::Safetensors => {
            let entries = st::read_header(path).map_err(|reason| CheckpointError::Safetensors {
                path: path.to_path_buf(),
                reason,
            })?;
            Ok(entries
                .into_iter()
                .map(|(k, e)| {
                    let body = Body::Range {
                        start: e.start,
                        len: e.len,
                    };
                    (k, e.dtype, e.shape, body)
                })
                .collect())
        }
        WeightFormat::Pytorch => {
            let err = |e: &dyn std::fmt::Display| CheckpointError::Pytorch {
                path: path.to_path_buf(),
                reason: e.to_string(),
            };
            // The guard reads the pickle's opcodes before anything else interprets it, and refuses every global
            // but the tensor-rebuild ones (which is also all a value tree could name), and every tensor view
            // that would materialise more elements than its storage window holds.
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
                .map(|(k, t)| {
                    let t = bridge::from_pytorch(t);
                    (k, t.dtype, t.shape.iter().copied().collect(), Body::Pack(t))
                })
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
            maps: vec![std::sync::OnceLock::new()],
            tensors: tensors
                .into_iter()
                .map(|(k, dtype, shape, body)| {
                    let stored = Stored {
                        file: 0,
                        dtype,
                        shape,
                        body,
                    };
                    (k, stored)
                })
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
            for (name, dtype, shape, body) in read_file_tensors(&file, f)? {
                if let Some(prev) = tensors.get(&name) {
                    return Err(CheckpointError::Duplicate {
                        name,
                        first: files[prev.file].clone(),
                        second: file.clone(),
                    });
                }
                let stored = Stored {
                    file: idx,
                    dtype,
                    shape,
                    body,
                };
                tensors.insert(name, stored);
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
            maps: files.iter().map(|_| std::sync::OnceLock::new()).collect(),
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
            shape: s.shape.clone(),
            dtype: s.dtype,
            file: self.files[s.file].clone(),
        })
    }

    fn stored(&self, name: &str) -> Result<&Stored> {
        self.tensors
            .get(name)
            .ok_or_else(|| CheckpointError::NotFound {
                source_desc: self.desc.clone(),
                name: name.to_string(),
            })
    }

    fn data_error(&self, name: &str, reason: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Data {
            source_desc: self.desc.clone(),
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Reads one tensor's data in its stored dtype.
    ///
    /// # Errors
    /// No such tensor, or its bytes cannot be read (e.g. a truncated file).
    pub fn data(&self, name: &str) -> Result<TensorData> {
        let stored = self.stored(name)?;
        if cast::is_float(stored.dtype) {
            return self.float_data(name, stored.dtype);
        }
        match &stored.body {
            Body::Pack(t) => bridge::to_data(t).map_err(|e| self.data_error(name, e)),
            Body::Range { start, len } => {
                let mut bytes =
                    vec![0u8; usize::try_from(*len).map_err(|e| self.data_error(name, e))?];
                st::read_at(&self.files[stored.file], *start, &mut bytes)
                    .map_err(|e| self.data_error(name, e))?;
                Ok(TensorData::from_bytes_vec(
                    bytes,
                    stored.shape.clone(),
                    stored.dtype,
                ))
            }
        }
    }

    /// Reads one float tensor converted to the float dtype `dtype` (f32, bf16, f16 or f64). A safetensors tensor
    /// stored in `dtype` is not copied at all: the tensor views the memory-mapped file. Otherwise the stored
    /// bytes go through one conversion pass into a new buffer. Memory: at most the tensor in `dtype`.
    ///
    /// # Errors
    /// No such tensor, unreadable bytes, or a stored dtype that is not a float dtype.
    pub fn float_data(&self, name: &str, dtype: DType) -> Result<TensorData> {
        self.read_float(name, dtype, false)
    }

    /// Reads a 2-D float tensor `[rows, cols]` transposed to `[cols, rows]` (contiguous) and converted to
    /// `dtype`, in one cache-blocked pass from the stored bytes: PyTorch's `[out, in]` linear weights as burn's
    /// `[in, out]`, which the GEMMs read fastest.
    ///
    /// # Errors
    /// As [`Checkpoint::float_data`], and a tensor that is not 2-D.
    pub fn float_data_transposed(&self, name: &str, dtype: DType) -> Result<TensorData> {
        self.read_float(name, dtype, true)
    }

    fn read_float(&self, name: &str, dtype: DType, transpose: bool) -> Result<TensorData> {
        let stored = self.stored(name)?;
        if !cast::is_float(stored.dtype) || !cast::is_float(dtype) {
            return Err(self.data_error(
                name,
                format!("dtype {:?} is not a float dtype", stored.dtype),
            ));
        }
        if transpose && stored.shape.len() != 2 {
            return Err(self.data_error(name, format!("shape {:?} is not a matrix", stored.shape)));
        }
        let same = stored.dtype == dtype && !transpose;
        match &stored.body {
            Body::Range { start, len } => {
                let path = &self.files[stored.file];
                let (start, len) = usize::try_from(*start)
                    .ok()
                    .zip(usize::try_from(*len).ok())
                    .ok_or_else(|| {
                        self.data_error(name, "byte range beyond this platform's usize")
                    })?;
                if same
                    && cfg!(target_endian = "little")
                    && let Some(map) = self.map(stored.file)
                {
                    if start + len > map.len() {
                        return Err(self.data_error(
                            name,
                            "the file is shorter than when it was opened (changed on disk?)",
                        ));
                    }
                    if (map.as_ptr() as usize + start).is_multiple_of(dtype.size()) {
                        // Zero-copy: the tensor views the mapped file.
                        let bytes = map::view(map, start, len);
                        return Ok(TensorData::from_bytes(bytes, stored.shape.clone(), dtype));
                    }
                }
                let file = std::fs::File::open(path).map_err(|e| self.data_error(name, e))?;
                let read = |off: usize, buf: &mut [u8]| {
                    st::read_exact_at(&file, (start + off) as u64, buf)
                };
                self.streamed(name, stored.dtype, dtype, &stored.shape, transpose, &read)
            }
            Body::Pack(t) => {
                let data = bridge::to_data(t).map_err(|e| self.data_error(name, e))?;
                if same {
                    return Ok(data);
                }
                let read = cast::from_memory(data.as_bytes());
                self.streamed(name, data.dtype(), dtype, &stored.shape, transpose, &read)
            }
        }
    }

    /// The mapped file `file` (mapped on first use), or `None` for a PyTorch file or where mapping failed.
    fn map(&self, file: usize) -> Option<&bytes::Bytes> {
        if self.format != WeightFormat::Safetensors {
            return None;
        }
        self.maps[file]
            .get_or_init(|| map::map_file(&self.files[file]).ok())
            .as_ref()
    }

    /// A stored tensor (float dtype `from`, shape `shape`, bytes from `read`) converted to `to` — and
    /// transposed, for a matrix, with `transpose` — into a new buffer: an anonymous huge-page map when large.
    fn streamed(
        &self,
        name: &str,
        from: DType,
        to: DType,
        shape: &[usize],
        transpose: bool,
        read: &cast::ReadAt<'_>,
    ) -> Result<TensorData> {
        let n: usize = shape.iter().product();
        let out_shape = if transpose {
            vec![shape[1], shape[0]]
        } else {
            shape.to_vec()
        };
        let fill = |dst: &mut [u8]| {
            cast::stream_into(from, to, shape, transpose, read, dst)
                .map_err(|e| self.data_error(name, e))
        };
        match map::anon(n * to.size()).map_err(|e| self.data_error(name, e))? {
            Some(mut m) => {
                fill(&mut m)?;
                let bytes = map::anon_bytes(m).map_err(|e| self.data_error(name, e))?;
                Ok(TensorData::from_bytes(bytes, out_shape, to))
            }
            None => {
                let mut buf = cast::Buffer::zeros(to, n)
                    .ok_or_else(|| self.data_error(name, "not a float dtype"))?;
                fill(buf.bytes_mut())?;
                Ok(buf.into_native_data(out_shape))
            }
        }
    }

    /// Reads one float tensor converted to f32, row-major, with its shape.
    ///
    /// # Errors
    /// No such tensor, unreadable bytes, or a non-float dtype.
    pub fn f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let data = self.float_data(name, DType::F32)?;
        let shape = data.shape().iter().copied().collect();
        let values = data
            .try_into_vec::<f32>()
            .map_err(|e| self.data_error(name, format!("{e:?}")))?;
        Ok((values, shape))
    }
}
