//! Safetensors in tests: reading every tensor of a fixture by name, and writing (corrupted) copies of weights.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors};

use crate::paths::fixture;

/// One stored tensor: its dtype, shape and little-endian bytes, with its values as `f32` when the dtype is a
/// number.
#[derive(Debug, Clone)]
pub struct Array {
    /// The stored dtype.
    pub dtype: Dtype,
    /// The shape.
    pub shape: Vec<usize>,
    /// The stored bytes (little-endian, row-major).
    pub bytes: Vec<u8>,
    values: Option<Vec<f32>>,
}

/// Splits little-endian bytes into `N`-byte words.
fn words<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut w = [0u8; N];
        w.copy_from_slice(c);
        w
    })
}

impl Array {
    fn new(dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8>) -> Self {
        let b = &bytes;
        let values: Option<Vec<f32>> = match dtype {
            Dtype::F32 => Some(words::<4>(b).map(f32::from_le_bytes).collect()),
            Dtype::F64 => Some(
                words::<8>(b)
                    .map(|w| f64::from_le_bytes(w) as f32)
                    .collect(),
            ),
            Dtype::BF16 => Some(
                words::<2>(b)
                    .map(|w| f32::from_bits(u32::from(u16::from_le_bytes(w)) << 16))
                    .collect(),
            ),
            Dtype::I64 => Some(
                words::<8>(b)
                    .map(|w| i64::from_le_bytes(w) as f32)
                    .collect(),
            ),
            Dtype::I32 => Some(
                words::<4>(b)
                    .map(|w| i32::from_le_bytes(w) as f32)
                    .collect(),
            ),
            Dtype::I16 => Some(
                words::<2>(b)
                    .map(|w| f32::from(i16::from_le_bytes(w)))
                    .collect(),
            ),
            Dtype::I8 => Some(b.iter().map(|&x| f32::from(x as i8)).collect()),
            Dtype::U8 | Dtype::BOOL => Some(b.iter().map(|&x| f32::from(x)).collect()),
            _ => None,
        };
        Self {
            dtype,
            shape,
            bytes,
            values,
        }
    }

    /// Whether the dtype is an integer (or boolean) one.
    pub fn is_integer(&self) -> bool {
        matches!(
            self.dtype,
            Dtype::I64 | Dtype::I32 | Dtype::I16 | Dtype::I8 | Dtype::U8 | Dtype::BOOL
        )
    }

    /// The values as `f32` (integers converted with `as`), if the dtype is a number.
    pub fn f32(&self) -> Option<&[f32]> {
        self.values.as_deref()
    }

    /// The values as `i64`: integers exactly, floats truncated toward zero.
    pub fn i64(&self) -> Option<Vec<i64>> {
        let b = &self.bytes;
        Some(match self.dtype {
            Dtype::I64 => words::<8>(b).map(i64::from_le_bytes).collect(),
            Dtype::I32 => words::<4>(b)
                .map(|w| i64::from(i32::from_le_bytes(w)))
                .collect(),
            Dtype::I16 => words::<2>(b)
                .map(|w| i64::from(i16::from_le_bytes(w)))
                .collect(),
            Dtype::I8 => b.iter().map(|&x| i64::from(x as i8)).collect(),
            Dtype::U8 | Dtype::BOOL => b.iter().map(|&x| i64::from(x)).collect(),
            Dtype::F64 => words::<8>(b)
                .map(|w| f64::from_le_bytes(w) as i64)
                .collect(),
            _ => self.values.as_ref()?.iter().map(|&v| v as i64).collect(),
        })
    }
}

/// Every tensor of a safetensors file, by name.
#[derive(Debug, Clone)]
pub struct Arrays {
    path: PathBuf,
    tensors: BTreeMap<String, Array>,
}

impl Arrays {
    /// Reads a safetensors file.
    ///
    /// # Errors
    /// An unreadable or corrupt file, naming it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let st = SafeTensors::deserialize(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let array = Array::new(view.dtype(), view.shape().to_vec(), view.data().to_vec());
                (name, array)
            })
            .collect();
        Ok(Self {
            path: path.to_owned(),
            tensors,
        })
    }

    /// Reads `tests/fixtures/<rel>`.
    ///
    /// # Errors
    /// See [`Arrays::open`].
    pub fn fixture(rel: &str) -> Result<Self> {
        Self::open(fixture(rel))
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// One tensor.
    ///
    /// # Errors
    /// If the file has no tensor `name`.
    pub fn get(&self, name: &str) -> Result<&Array> {
        self.tensors
            .get(name)
            .with_context(|| format!("fixture tensor {name} (in {})", self.path.display()))
    }

    /// The shape of a tensor.
    ///
    /// # Errors
    /// See [`Arrays::get`].
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.get(name)?.shape)
    }

    /// A tensor's values as `f32` (integers converted with `as`).
    ///
    /// # Errors
    /// A missing tensor, or one whose dtype is not a number.
    pub fn f32(&self, name: &str) -> Result<&[f32]> {
        let a = self.get(name)?;
        a.f32()
            .with_context(|| format!("{name}: dtype {:?} is not a number", a.dtype))
    }

    /// A tensor's shape and values as `f32` (see [`Arrays::f32`]).
    ///
    /// # Errors
    /// See [`Arrays::f32`].
    pub fn shaped_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        Ok((self.shape(name)?.to_vec(), self.f32(name)?.to_vec()))
    }

    /// A tensor's values as `i64` (integers exactly, floats truncated toward zero).
    ///
    /// # Errors
    /// A missing tensor, or one whose dtype is not a number.
    pub fn i64(&self, name: &str) -> Result<Vec<i64>> {
        let a = self.get(name)?;
        a.i64()
            .with_context(|| format!("{name}: dtype {:?} is not a number", a.dtype))
    }

    /// A `u8` tensor's bytes.
    ///
    /// # Errors
    /// A missing tensor, or one of another dtype.
    pub fn u8(&self, name: &str) -> Result<&[u8]> {
        let a = self.get(name)?;
        if a.dtype != Dtype::U8 {
            bail!("{name}: dtype {:?}, expected U8", a.dtype);
        }
        Ok(&a.bytes)
    }

    /// A `u8` tensor's shape and bytes.
    ///
    /// # Errors
    /// See [`Arrays::u8`].
    pub fn shaped_u8(&self, name: &str) -> Result<(Vec<usize>, Vec<u8>)> {
        Ok((self.shape(name)?.to_vec(), self.u8(name)?.to_vec()))
    }

    /// Every tensor whose dtype is a number, as `f32` values by name.
    pub fn f32_map(&self) -> HashMap<String, Vec<f32>> {
        self.tensors
            .iter()
            .filter_map(|(n, a)| Some((n.clone(), a.f32()?.to_vec())))
            .collect()
    }

    /// Every integer tensor, as `i64` values by name.
    pub fn i64_map(&self) -> HashMap<String, Vec<i64>> {
        self.tensors
            .iter()
            .filter(|(_, a)| a.is_integer())
            .filter_map(|(n, a)| Some((n.clone(), a.i64()?)))
            .collect()
    }
}

/// A tensor as stored: name, shape and little-endian bytes (the dtype is implied by the function).
pub type RawTensor = (String, Vec<usize>, Vec<u8>);

/// Every tensor of an all-f32 safetensors file as (name, shape, bytes), to be edited and written back with
/// [`write_f32_raw`].
///
/// # Errors
/// An unreadable or corrupt file, or a tensor that is not f32.
pub fn read_raw(path: impl AsRef<Path>) -> Result<Vec<RawTensor>> {
    let arrays = Arrays::open(path)?;
    let path = arrays.path.clone();
    arrays
        .tensors
        .into_iter()
        .map(|(name, a)| {
            if a.dtype != Dtype::F32 {
                bail!("{}: {name} is {:?}, not F32", path.display(), a.dtype);
            }
            Ok((name, a.shape, a.bytes))
        })
        .collect()
}

/// Writes f32 tensors given as (name, shape, little-endian bytes) as a safetensors file (no metadata).
///
/// # Errors
/// A byte length that does not fit the shape, or an I/O error.
pub fn write_f32_raw(path: impl AsRef<Path>, tensors: &[RawTensor]) -> Result<()> {
    let path = path.as_ref();
    let views = tensors
        .iter()
        .map(|(n, s, d)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), d)
                .with_context(|| format!("{n}: {} bytes for shape {s:?}", d.len()))?;
            Ok((n.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path)
        .with_context(|| format!("writing {}", path.display()))
}

/// `f32` values as little-endian bytes.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_read_with_every_dtype() -> Result<()> {
        let a = Arrays::fixture("tiny-owl2/expected/expected.safetensors")?;
        assert!(a.names().count() > 0);
        for n in a.names() {
            let t = a.get(n)?;
            let count: usize = t.shape.iter().product();
            assert_eq!(a.f32(n)?.len(), count, "{n}");
            if t.dtype == Dtype::U8 {
                assert_eq!(a.u8(n)?.len(), count);
            } else {
                assert!(a.u8(n).is_err());
            }
        }
        assert!(a.get("no such tensor").is_err());
        assert!(a.i64_map().values().all(|v| !v.is_empty()));
        assert_eq!(a.f32_map().len(), a.names().count());
        Ok(())
    }

    #[test]
    fn raw_round_trip() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("w.safetensors");
        let t: Vec<RawTensor> = vec![
            ("a".into(), vec![2], f32_bytes(&[1.0, -2.5])),
            ("b".into(), vec![1, 1], f32_bytes(&[3.0])),
        ];
        write_f32_raw(&p, &t)?;
        assert_eq!(read_raw(&p)?, t);
        let a = Arrays::open(&p)?;
        assert_eq!(a.shaped_f32("a")?, (vec![2], vec![1.0, -2.5]));
        assert_eq!(a.i64("a")?, [1, -2]);
        assert!(write_f32_raw(&p, &[("c".into(), vec![3], vec![0; 4])]).is_err());
        assert!(read_raw(fixture("train-step/masking.safetensors")).is_err());
        Ok(())
    }
}
