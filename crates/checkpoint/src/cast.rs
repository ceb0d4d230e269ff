//! Float tensors from stored bytes to the dtype the model wants, in one pass and one allocation.
//!
//! Stored bytes are little-endian (safetensors; PyTorch's reader hands native order, which is little-endian on
//! every target this crate is built for). Widening (bf16/f16 → f32, f32 → f64) is exact; narrowing rounds to
//! nearest-even, as `torch.Tensor.to` does.

use burn::tensor::{DType, TensorData};
use half::{bf16, f16};
use rayon::prelude::*;

/// The float dtypes a model can be built in and a file can hold.
pub(crate) fn is_float(d: DType) -> bool {
    matches!(d, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
}

/// A zeroed buffer of `n` elements of float dtype `d`, with its bytes exposed for a read.
pub(crate) enum Buffer {
    F64(Vec<f64>),
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Buffer {
    /// `n` zeros of `d` (a float dtype).
    pub(crate) fn zeros(d: DType, n: usize) -> Option<Self> {
        Some(match d {
            DType::F64 => Self::F64(vec![0.0; n]),
            DType::F32 => Self::F32(vec![0.0; n]),
            DType::F16 => Self::F16(vec![f16::ZERO; n]),
            DType::BF16 => Self::Bf16(vec![bf16::ZERO; n]),
            _ => return None,
        })
    }

    /// The buffer's bytes, to read the file into.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Self::F64(v) => bytemuck::cast_slice_mut(v),
            Self::F32(v) => bytemuck::cast_slice_mut(v),
            Self::F16(v) => bytemuck::cast_slice_mut(v),
            Self::Bf16(v) => bytemuck::cast_slice_mut(v),
        }
    }

    /// Byte order fix-up after a read of little-endian bytes (nothing to do on little-endian targets).
    fn from_le(&mut self) {
        #[cfg(target_endian = "big")]
        match self {
            Self::F64(v) => v
                .iter_mut()
                .for_each(|x| *x = f64::from_bits(x.to_bits().swap_bytes())),
            Self::F32(v) => v
                .iter_mut()
                .for_each(|x| *x = f32::from_bits(x.to_bits().swap_bytes())),
            Self::F16(v) => v
                .iter_mut()
                .for_each(|x| *x = f16::from_bits(x.to_bits().swap_bytes())),
            Self::Bf16(v) => v
                .iter_mut()
                .for_each(|x| *x = bf16::from_bits(x.to_bits().swap_bytes())),
        }
    }

    /// The tensor data of `shape`.
    pub(crate) fn into_data(mut self, shape: Vec<usize>) -> TensorData {
        self.from_le();
        match self {
            Self::F64(v) => TensorData::new(v, shape),
            Self::F32(v) => TensorData::new(v, shape),
            Self::F16(v) => TensorData::new(v, shape),
            Self::Bf16(v) => TensorData::new(v, shape),
        }
    }
}

/// Writes `conv(x)` into `out` for each element `x` of the little-endian float bytes `src` of dtype `from`, read
/// as f64 (exact for every float dtype).
fn fill<T>(src: &[u8], from: DType, out: &mut [T], conv: impl Fn(f64) -> T + Sync + Send)
where
    T: Send,
{
    let w = from.size();
    let get = |c: &[u8]| -> f64 {
        match from {
            DType::F64 => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            DType::F32 => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            DType::F16 => f64::from(f16::from_le_bytes([c[0], c[1]])),
            _ => f64::from(bf16::from_le_bytes([c[0], c[1]])),
        }
    };
    // Large tensors are converted in parallel blocks (burn's rayon pool).
    const BLOCK: usize = 1 << 16;
    out.par_chunks_mut(BLOCK)
        .zip(src.par_chunks(BLOCK * w))
        .for_each(|(o, s)| {
            for (o, c) in o.iter_mut().zip(s.chunks_exact(w)) {
                *o = conv(get(c));
            }
        });
}

/// Converts little-endian float bytes of dtype `from` to a [`TensorData`] of float dtype `to`, shape `shape`.
/// `src.len()` must be `product(shape) · from.size()`.
pub(crate) fn convert(
    src: &[u8],
    from: DType,
    to: DType,
    shape: Vec<usize>,
) -> Result<TensorData, String> {
    if !is_float(from) || !is_float(to) {
        return Err(format!("cannot convert {from:?} to {to:?}"));
    }
    let n = shape.iter().product::<usize>();
    if src.len() != n * from.size() {
        return Err(format!("{} bytes for {n} elements of {from:?}", src.len()));
    }
    let mut out = Buffer::zeros(to, n).ok_or_else(|| format!("cannot convert to {to:?}"))?;
    // Narrowing from f64 goes through f32 for bf16/f16 (torch rounds f64 → f32 → half the same way for every
    // value a checkpoint holds in practice); from f32/f16/bf16 the f64 step is exact, so one rounding happens.
    match &mut out {
        Buffer::F64(v) => fill(src, from, v, |x| x),
        Buffer::F32(v) => fill(src, from, v, |x| x as f32),
        Buffer::F16(v) => fill(src, from, v, |x| f16::from_f32(x as f32)),
        Buffer::Bf16(v) => fill(src, from, v, |x| bf16::from_f32(x as f32)),
    }
    // `fill` wrote native values: no byte-order fix-up.
    Ok(match out {
        Buffer::F64(v) => TensorData::new(v, shape),
        Buffer::F32(v) => TensorData::new(v, shape),
        Buffer::F16(v) => TensorData::new(v, shape),
        Buffer::Bf16(v) => TensorData::new(v, shape),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_exact_and_narrowing_rounds_to_nearest_even() {
        let vals = [1.0f32, -2.5, 3.140625, 1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let d = convert(&bytes, DType::F32, DType::BF16, vec![5]).unwrap();
        let got: Vec<f32> = d
            .as_slice::<bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_f32())
            .collect();
        // 1 + 2⁻⁸ is a tie between 1 and 1 + 2⁻⁷: even mantissa → 1; 1 + 3·2⁻⁸ → 1 + 2·2⁻⁷ (even).
        assert_eq!(got, [1.0, -2.5, 3.140625, 1.0, 1.0 + 4.0 / 256.0]);
        let back: Vec<u8> = d.as_bytes().to_vec();
        let w = convert(&back, DType::BF16, DType::F32, vec![5]).unwrap();
        assert_eq!(w.as_slice::<f32>().unwrap(), got.as_slice());
        assert!(convert(&bytes[1..], DType::F32, DType::F32, vec![5]).is_err());
        assert!(convert(&bytes, DType::I32, DType::F32, vec![5]).is_err());
    }
}
