//! The safetensors header, parsed once per file, and tensor bytes read straight into their destination.
//!
//! A safetensors file is an 8-byte little-endian header length `n`, `n` bytes of JSON (`name → {dtype, shape,
//! data_offsets}` and an optional `__metadata__`), then the data. The header is parsed once when the file is
//! opened (burn-store's deferred reader re-parsed it for every tensor: 8 000 tensors took 41 s, 30 000 never
//! finished), every entry is checked against the file's real size before anything is allocated, and a tensor's
//! bytes are later read with one positioned read into the buffer that becomes the tensor.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use burn::tensor::DType;

/// The largest safetensors header accepted (100 MiB, the `safetensors` crate's own limit).
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// One tensor entry: dtype, shape and absolute byte range in the file.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Absolute offset of the first byte.
    pub start: u64,
    /// Number of bytes (`product(shape) · dtype size`, checked).
    pub len: u64,
}

#[derive(serde::Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "I64" => DType::I64,
        "I32" => DType::I32,
        "I16" => DType::I16,
        "I8" => DType::I8,
        "U64" => DType::U64,
        "U32" => DType::U32,
        "U16" => DType::U16,
        "U8" => DType::U8,
        "BOOL" => DType::Bool(burn::tensor::BoolStore::Native),
        _ => return None,
    })
}

/// Reads and checks the header of `path`: every entry's dtype is known, its byte count is exactly its shape's
/// (with checked arithmetic), and its range lies inside the file. Costs one read of the header, whatever the
/// number of tensors.
pub(crate) fn read_header(path: &Path) -> Result<BTreeMap<String, Entry>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| format!("{file_len} bytes: too short for the 8-byte header length"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES {
        return Err(format!(
            "the header claims {n} bytes, above the {MAX_HEADER_BYTES}-byte limit"
        ));
    }
    let data_start = 8 + n;
    if data_start > file_len {
        return Err(format!(
            "the header claims {n} bytes but the file has {file_len} in all (truncated?)"
        ));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("header JSON: {e}"))?;
    let data_len = file_len - data_start;
    let mut out = BTreeMap::new();
    for (name, value) in map {
        if name == "__metadata__" {
            continue;
        }
        let raw: RawEntry =
            serde_json::from_value(value).map_err(|e| format!("tensor {name}: {e}"))?;
        let dtype = dtype_of(&raw.dtype)
            .ok_or_else(|| format!("tensor {name}: unsupported dtype {}", raw.dtype))?;
        let [begin, end] = raw.data_offsets;
        let bytes = raw
            .shape
            .iter()
            .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| format!("tensor {name}: shape {:?} overflows", raw.shape))?;
        if end < begin || end - begin != bytes {
            return Err(format!(
                "tensor {name}: data_offsets [{begin}, {end}] hold {} bytes, but shape {:?} of {} needs {bytes}",
                end.wrapping_sub(begin),
                raw.shape,
                raw.dtype
            ));
        }
        if end > data_len {
            return Err(format!(
                "tensor {name}: data_offsets end at {end}, past the {data_len} data bytes of the file (truncated?)"
            ));
        }
        out.insert(
            name,
            Entry {
                dtype,
                shape: raw.shape,
                start: data_start + begin,
                len: bytes,
            },
        );
    }
    Ok(out)
}

/// Reads `dst.len()` bytes at `offset` of `file` without moving a cursor (several threads read one file).
pub(crate) fn read_exact_at(file: &File, offset: u64, dst: &mut [u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, dst, offset)
    }
    #[cfg(windows)]
    {
        let (mut done, mut dst) = (0u64, dst);
        while !dst.is_empty() {
            let n = std::os::windows::fs::FileExt::seek_read(file, dst, offset + done)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n as u64;
            dst = &mut dst[n..];
        }
        Ok(())
    }
}

/// Reads `dst.len()` bytes at `offset` of `path`.
pub(crate) fn read_at(path: &Path, offset: u64, dst: &mut [u8]) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(dst)
}
