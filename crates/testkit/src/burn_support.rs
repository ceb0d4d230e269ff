//! burn tensors in tests (the `burn` feature).

use std::borrow::Borrow;

use anyhow::{Result, bail};
use burn::tensor::{Device, Tensor, TensorData};

use crate::tensors::Arrays;

/// A float tensor's values on the host as `f32`, whatever its float dtype (bf16 and f16 are widened exactly).
/// Takes the tensor or a reference to it.
///
/// # Panics
/// If the values cannot be read back.
pub fn host<const D: usize>(t: impl Borrow<Tensor<D>>) -> Vec<f32> {
    t.borrow()
        .clone()
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("f32 data")
}

impl Arrays {
    /// A tensor of the file as a rank-`D` float tensor on `device` (its values as in [`Arrays::f32`]).
    ///
    /// # Errors
    /// A missing tensor, one that is not a number, or a rank other than `D`.
    pub fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D>> {
        let shape = self.shape(name)?.to_vec();
        if shape.len() != D {
            bail!(
                "{name}: rank {} (shape {shape:?}), expected {D}",
                shape.len()
            );
        }
        let values = self.f32(name)?.to_vec();
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip() -> Result<()> {
        let a = Arrays::fixture("owl2-components/inputs.safetensors")?;
        let device = Device::flex();
        let t = a.tensor::<4>("pixel_values", &device)?;
        assert_eq!(host(&t), a.f32("pixel_values")?);
        assert_eq!(host(t), a.f32("pixel_values")?);
        assert!(a.tensor::<3>("pixel_values", &device).is_err());
        Ok(())
    }
}
