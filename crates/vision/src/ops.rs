//! Tensor operations shared by the vision tower ([`crate::encoder`]) and the visual abstractor
//! ([`crate::abstractor`]).

use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;

/// LayerNorm over the last dimension (burn widens the reduction to f32 for half-precision inputs itself, and
/// needs the input in the parameters' dtype).
pub(crate) fn layer_norm<const D: usize>(ln: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    ln.forward(x)
}

/// Multi-head softmax attention; `q` `[B, nh, Lq, hd]`, `k`/`v` `[B, nh, Lk, hd]` → context `[B, Lq, nh·hd]` and
/// the probabilities `[B, nh, Lq, Lk]` (softmax in f32).
pub(crate) fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> (Tensor<3>, Tensor<4>) {
    let [b, nh, lq, hd] = q.dims();
    // softmax(q·kᵀ/√hd) in f32, scaled inside the fused kernel.
    let probs = biqa_kernels::softmax_last(q.matmul(k.swap_dims(2, 3)), 1.0 / (hd as f64).sqrt());
    let ctx = probs
        .clone()
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([b, lq, nh * hd]);
    (ctx, probs)
}

/// `layer.forward(x)` through [`biqa_kernels::linear`] (the bias written before the GEMM accumulates on flex).
pub(crate) fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    biqa_kernels::linear_module(layer, x)
}
