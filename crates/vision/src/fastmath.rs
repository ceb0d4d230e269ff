//! Fast elementwise exponentials for the CPU backend.
//!
//! burn-flex 0.22 computes `exp`, `sigmoid` and `tanh` one element at a time through libm: about 4 ns per `exp`
//! here. In the small ViT, the quick-GELU and the attention softmax then cost as much as the matmuls. The versions
//! below run on the host instead:
//! - a Cephes-style `expf` (range reduction by ln 2, degree-6 polynomial, exponent by bit arithmetic);
//! - branch-free, so the compiler vectorises it;
//! - within 2 ulp of `f32::exp`.
//!
//! They apply only to f32 tensors on a plain (non-autodiff) flex device. Anywhere else (autodiff for training,
//! CUDA, another dtype), the burn operations run unchanged.

use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{DType, Tensor, TensorData};
use burn_dispatch::DispatchDevice;

/// Whether `x` lives on a plain flex device as f32 (where the host paths are faster and exact enough).
fn host_path<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && matches!(x.device().as_dispatch(), DispatchDevice::Flex(_))
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2²³: adding and subtracting it rounds to the nearest integer (for |x| < 2²²).
const ROUND: f32 = 12_582_912.0;
const HI: f32 = 88.376_26;
const LO: f32 = -87.336_55;

/// `e^x` (Cephes `expf`): 0 below the smallest normal result, clamped at the largest.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let xc = x.clamp(LO, HI);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r
        * r
        + r
        + 1.0;
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    if x < LO { 0.0 } else { p * scale }
}

fn to_host<const D: usize>(x: Tensor<D>) -> Option<(Vec<f32>, [usize; D], burn::tensor::Device)> {
    let dims = x.dims();
    let device = x.device();
    let v = x.into_data().try_into_vec::<f32>().ok()?;
    Some((v, dims, device))
}

fn from_host<const D: usize>(
    v: Vec<f32>,
    dims: [usize; D],
    device: &burn::tensor::Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, dims), device)
}

/// Quick-GELU `x · σ(1.702 x)` of any tensor.
pub(crate) fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if host_path(&x) {
        let fallback = x.clone();
        if let Some((mut v, dims, device)) = to_host(x) {
            for e in &mut v {
                *e /= 1.0 + exp(-1.702 * *e);
            }
            return from_host(v, dims, &device);
        }
        return fallback.clone() * sigmoid(fallback * 1.702);
    }
    x.clone() * sigmoid(x * 1.702)
}

/// SiLU `x · σ(x)` of any tensor.
pub(crate) fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if host_path(&x) {
        let fallback = x.clone();
        if let Some((mut v, dims, device)) = to_host(x) {
            for e in &mut v {
                *e /= 1.0 + exp(-*e);
            }
            return from_host(v, dims, &device);
        }
        return burn::tensor::activation::silu(fallback);
    }
    burn::tensor::activation::silu(x)
}

/// Softmax over the last dimension: `exp(x − max) / Σ exp(x − max)`.
pub(crate) fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if host_path(&x) {
        let fallback = x.clone();
        if let Some((mut v, dims, device)) = to_host(x) {
            let n = dims[D - 1].max(1);
            for row in v.chunks_mut(n) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for e in row.iter_mut() {
                    *e = exp(*e - max);
                    sum += *e;
                }
                let inv = 1.0 / sum;
                for e in row.iter_mut() {
                    *e *= inv;
                }
            }
            return from_host(v, dims, &device);
        }
        return softmax(fallback, D - 1);
    }
    softmax(x, D - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            let ulp =
                f64::from((want.to_bits() as i64 - got.to_bits() as i64).unsigned_abs() as u32);
            worst = worst.max(ulp);
            x += 0.001_3;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn host_paths_match_burn() {
        let device = burn::tensor::Device::flex();
        let x: Tensor<3> = Tensor::random(
            [2, 7, 33],
            burn::tensor::Distribution::Normal(0.0, 4.0),
            &device,
        );
        let a: Vec<f32> = quick_gelu(x.clone())
            .into_data()
            .try_into_vec()
            .unwrap_or_default();
        let b: Vec<f32> = (x.clone() * sigmoid(x.clone() * 1.702))
            .into_data()
            .try_into_vec()
            .unwrap_or_default();
        let c: Vec<f32> = softmax_last(x.clone())
            .into_data()
            .try_into_vec()
            .unwrap_or_default();
        let d: Vec<f32> = softmax(x, 2).into_data().try_into_vec().unwrap_or_default();
        assert_eq!(a.len(), 2 * 7 * 33);
        for (p, q) in a.iter().zip(&b).chain(c.iter().zip(&d)) {
            assert!((p - q).abs() <= 1e-6 * q.abs().max(1.0), "{p} vs {q}");
        }
    }
}
