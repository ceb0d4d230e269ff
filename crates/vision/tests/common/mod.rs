//! Helpers shared by the integration tests: fixture paths and safetensors reading.

#![allow(dead_code)]

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors};

/// `tests/fixtures/<rel>` of the workspace.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

/// A safetensors file read into memory.
pub struct Tensors {
    bytes: Vec<u8>,
}

impl Tensors {
    pub fn open(rel: &str) -> Result<Self> {
        let path = fixture(rel);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        SafeTensors::deserialize(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Self { bytes })
    }

    fn view(&self, name: &str, dtype: Dtype) -> Result<(Vec<usize>, &[u8])> {
        let st = SafeTensors::deserialize(&self.bytes)?;
        let t = st.tensor(name).with_context(|| format!("tensor {name}"))?;
        if t.dtype() != dtype {
            bail!("{name}: dtype {:?}, expected {dtype:?}", t.dtype());
        }
        Ok((t.shape().to_vec(), t.data()))
    }

    /// A u8 tensor: (shape, values).
    pub fn u8(&self, name: &str) -> Result<(Vec<usize>, Vec<u8>)> {
        let (shape, data) = self.view(name, Dtype::U8)?;
        Ok((shape, data.to_vec()))
    }

    /// An f32 tensor: (shape, values).
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (shape, data) = self.view(name, Dtype::F32)?;
        let v = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((shape, v))
    }
}

/// Largest absolute difference (lengths must match).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Number of differing bytes and the largest difference.
pub fn u8_diff(a: &[u8], b: &[u8]) -> (usize, u8) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).fold((0, 0), |(n, m), (x, y)| {
        let d = x.abs_diff(*y);
        (n + usize::from(d != 0), m.max(d))
    })
}
