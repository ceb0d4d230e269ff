//! Shared helpers of the decoder tests: fixture paths and safetensors reading.
#![allow(missing_docs)]
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, TensorData};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every tensor of a safetensors file as (f32 or i64 widened to f64 values, shape).
pub struct Arrays {
    pub map: HashMap<String, (Vec<f64>, Vec<usize>)>,
}

impl Arrays {
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
        let st = safetensors::SafeTensors::deserialize(&bytes)?;
        let mut map = HashMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                safetensors::Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|c| {
                        i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64
                    })
                    .collect(),
                safetensors::Dtype::U8 => data.iter().map(|&b| f64::from(b)).collect(),
                other => bail!("{name}: dtype {other:?} not handled in tests"),
            };
            map.insert(name, (values, view.shape().to_vec()));
        }
        Ok(Self { map })
    }

    pub fn get(&self, name: &str) -> Result<&(Vec<f64>, Vec<usize>)> {
        self.map
            .get(name)
            .with_context(|| format!("fixture tensor {name}"))
    }

    pub fn f32(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.get(name)?.0.iter().map(|&v| v as f32).collect())
    }

    pub fn ids(&self, name: &str) -> Result<Vec<i64>> {
        Ok(self.get(name)?.0.iter().map(|&v| v as i64).collect())
    }

    pub fn tensor3(&self, name: &str, device: &Device) -> Result<Tensor<3>> {
        let (v, s) = self.get(name)?;
        let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Ok(Tensor::from_data(
            TensorData::new(v, [s[0], s[1], s[2]]),
            device,
        ))
    }
}

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec_as::<f32>().expect("f32 data")
}

/// Max |a − b| and the check against `tol`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f32;
    for (g, w) in got.iter().zip(want) {
        worst = worst.max((g - w).abs());
    }
    assert!(worst <= tol, "{what}: max |diff| = {worst} > {tol}");
}
