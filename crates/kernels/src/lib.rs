//! Fused, vectorised CPU kernels for the transcendental element-wise steps of the towers, and allocator tuning.
//!
//! burn-flex (burn 0.22.1's CPU backend) evaluates `exp` with scalar libm, about 4 ns per element on one core, and
//! runs its `sigmoid` as a branchy scalar loop; PyTorch's CPU kernels are vectorised and threaded. On the ViT's
//! 257 × 1024 MLP activations and 4 × 257 × 257 attention scores those steps weighed as much as a matmul. The
//! functions here do the whole step in one pass over the data, eight lanes at a time (AVX2 + FMA, picked at run
//! time; a portable loop otherwise), split across burn's rayon pool, and in place when the tensor's buffer is not
//! shared.
//!
//! Each function takes and returns burn tensors on any device. The fast path applies to f32 tensors on the flex
//! device outside autodiff; everything else (CUDA, half precision, autodiff graphs) runs the plain burn
//! composition, so gradients and other backends are unchanged. Both paths compute the same function; they agree
//! to about 1e-6 relative (the polynomial `exp` of [`simd`](crate) is within 2 ulp).
//!
//! [`tune_allocator`] is the other half of the CPU speed: every burn-flex op writes a fresh buffer, and glibc's
//! default of serving blocks above 128 KiB with `mmap` turns each 1 MiB activation into ~256 page faults.

use std::sync::atomic::{AtomicU8, Ordering};

use burn::tensor::{Bytes, DType, FloatDType, Tensor, activation};
use burn_flex::{Flex, FlexTensor, Layout};

mod gemm_ops;
mod gemv;
mod simd;

/// Below this many elements a kernel runs on the calling thread (a rayon split costs more than it saves).
const PARALLEL_MIN: usize = 32 * 1024;

/// `x · σ(1.702 x)` (CLIP's quick-GELU), element-wise; any shape.
///
/// Written `x / (1 + e^(−1.702x))`. Under autodiff it is `x · sigmoid(1.702x)`, whose dedicated backward is
/// cheaper than that of the composition.
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.is_autodiff() {
        return x.clone() * activation::sigmoid(x * 1.702);
    }
    match into_flex_f32(x) {
        Ok(t) => {
            let mut t = writable(t);
            let isa = simd::detect();
            for_chunks(storage(&mut t), 1, |c| simd::quick_gelu(isa, c));
            from_flex(t)
        }
        Err(x) => x.clone() / ((x * -1.702).exp() + 1.0),
    }
}

/// `silu(g) · u = (g / (1 + e^(−g))) · u` for `g`, `u` of the same shape (the SwiGLU inner product).
///
/// Under autodiff it is `silu(g) · u`, whose dedicated backward is cheaper than that of the composition.
/// Shapes that differ (broadcasting) take the plain burn composition.
pub fn silu_mul<const D: usize>(g: Tensor<D>, u: Tensor<D>) -> Tensor<D> {
    if g.is_autodiff() {
        return activation::silu(g) * u;
    }
    if g.dims() != u.dims() || u.dtype() != DType::F32 {
        return silu_mul_plain(g, u);
    }
    let g = match into_flex_f32(g) {
        Ok(t) => t,
        Err(g) => return silu_mul_plain(g, u),
    };
    let u = match into_flex_f32(u) {
        Ok(t) => t.to_contiguous(),
        Err(u) => return silu_mul_plain(from_flex::<D>(g), u),
    };
    let mut g = writable(g);
    let us = u.as_slice::<f32>().expect("contiguous after to_contiguous");
    let isa = simd::detect();
    let gs = storage(&mut g);
    if gs.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        gs.par_chunks_mut(PARALLEL_MIN / 2)
            .zip(us.par_chunks(PARALLEL_MIN / 2))
            .for_each(|(a, b)| simd::silu_mul(isa, a, b));
    } else {
        simd::silu_mul(isa, gs, us);
    }
    from_flex(g)
}

fn silu_mul_plain<const D: usize>(g: Tensor<D>, u: Tensor<D>) -> Tensor<D> {
    g.clone() / (g.neg().exp() + 1.0) * u
}

/// `softmax(scale · x)` over the last dimension, computed in f32 (half-precision inputs are widened and the result
/// cast back; f64 stays f64); `scale > 0`. Any shape; `x` `[.., n]` → probabilities `[.., n]`.
///
/// The maximum is subtracted before `exp`, as in `torch.softmax`; rows of `-inf` (all masked) give NaN as there.
///
/// # Panics
/// If `scale` is not a positive, finite, normal f32 number.
pub fn softmax_last<const D: usize>(x: Tensor<D>, scale: f64) -> Tensor<D> {
    assert!(
        scale.is_finite() && scale > 0.0 && (scale as f32).is_normal(),
        "softmax_last: scale {scale} must be a positive, finite f32"
    );
    let dtype = x.dtype();
    // Half precision is widened to f32 and cast back; f64 (and anything else) is computed in its own dtype.
    let widen = matches!(dtype, DType::F16 | DType::BF16 | DType::Flex32);
    if x.is_autodiff() || dtype != DType::F32 {
        let plain = |x: Tensor<D>| {
            let x = if scale == 1.0 { x } else { x * scale };
            activation::softmax(x, D - 1)
        };
        return if widen {
            plain(x.cast(FloatDType::F32)).cast(FloatDType::from(dtype))
        } else {
            plain(x)
        };
    }
    match into_flex_f32(x) {
        Ok(t) => {
            let mut t = writable(t);
            let row = t.layout().shape()[D - 1];
            if row == 0 {
                return from_flex(t);
            }
            let isa = simd::detect();
            let s = scale as f32;
            for_chunks(storage(&mut t), row, |c| simd::softmax_rows(isa, c, row, s));
            from_flex(t)
        }
        Err(x) => activation::softmax(x * scale, D - 1),
    }
}

/// `x · W + b` for `x` `[.., K]`, `weight` `[K, N]` (burn's `Linear` layout, any strides), `bias` `[N]` →
/// `[.., N]`; what `burn::nn::Linear::forward` computes.
///
/// On flex f32 tensors outside autodiff the bias is written into the output first and the product accumulated onto
/// it by one GEMM call (burn adds it in a second pass over a zero-filled buffer). On flex bf16 tensors the weight is
/// streamed in bf16 and widened on the fly, with f32 accumulation (burn-flex widens the whole matrix into a new f32
/// copy on every call). Otherwise `burn::tensor::module::linear`.
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    if !x.is_autodiff()
        && let Some(y) = gemm_ops::linear(&x, &weight, bias.as_ref())
            .or_else(|| gemm_ops::linear_bf16(&x, &weight, bias.as_ref()))
    {
        return y;
    }
    burn::tensor::module::linear(x, weight, bias)
}

/// [`linear`] with the parameters of a `burn::nn::Linear`.
pub fn linear_module<const D: usize>(layer: &burn::nn::Linear, x: Tensor<D>) -> Tensor<D> {
    linear(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

/// The heads of one attention operand inside a projection output: `tensor` `[B, L, C]`, head `h` in the columns
/// `offset + h·head_stride .. + head_dim`.
///
/// Separate projections are `offset = 0`, `head_stride = head_dim`; the ViT's fused, per-head interleaved QKV
/// (`[head][q|k|v][head_dim]`) is one tensor with `head_stride = 3·head_dim` and offsets `0`, `head_dim`,
/// `2·head_dim`.
#[derive(Debug, Clone)]
pub struct Heads {
    /// The projection output `[B, L, C]`.
    pub tensor: Tensor<3>,
    /// Column of head 0's first element.
    pub offset: usize,
    /// Columns from one head to the next.
    pub head_stride: usize,
}

/// Softmax attention without a mask, `softmax(scale · q·kᵀ) · v` per head, on flex f32 tensors outside autodiff:
/// `q` `[B, Lq, ·]`, `k`/`v` `[B, Lk, ·]` (see [`Heads`]) → the context `[B, Lq, heads·head_dim]` (heads
/// concatenated, ready for the output projection) and, when asked, the probabilities `[B, heads, Lq, Lk]`.
///
/// Each (batch, head) task runs its two GEMMs and the softmax on its own score block, reading the heads where the
/// projections wrote them and writing the context in place; tasks run in parallel. Returns `None` when a tensor is
/// not a plain flex f32 one or the shapes do not fit; the caller then takes its burn composition.
pub fn try_attention(
    q: &Heads,
    k: &Heads,
    v: &Heads,
    heads: usize,
    head_dim: usize,
    scale: f64,
    want_probs: bool,
) -> Option<(Tensor<3>, Option<Tensor<4>>)> {
    if q.tensor.is_autodiff() || !(scale.is_finite() && scale > 0.0 && (scale as f32).is_normal()) {
        return None;
    }
    gemm_ops::attention(q, k, v, heads, head_dim, scale as f32, want_probs)
}

/// Raises glibc's `mmap` threshold to 32 MiB, stops the main heap from serving requests with `mmap` at all
/// (`M_MMAP_MAX = 0`: larger buffers come from the `brk` heap too), and disables heap trimming below 512 MiB, so that
/// the buffers burn-flex allocates for every op are reused instead of fresh `mmap`s (each of which page-faults on
/// first touch and is unmapped on free, with a TLB shootdown across the threads). Measured on the small ViT: a
/// 257 × 256 · 256 × 1024 matmul went from 2.9 ms to 2.0 ms (the threshold); the small training step, whose
/// 32000-row embedding and head gradients and AdamW moments are 65 MB each, from 1.31–1.37 s to 0.95 s with 2.5 M →
/// 0.96 M page faults and a 5 % higher peak, 2.00 → 2.10 GB (`M_MMAP_MAX`; the threshold cannot go above 32 MiB).
/// Threads' own arenas still map what does not fit their 64 MiB heaps. Call it once at program start (the `biqa`
/// binary, the examples and the benches do); it is a no-op outside Linux/glibc, and idempotent.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::tune();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    use std::ffi::c_int;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    const M_MMAP_MAX: c_int = -4;

    pub(super) fn tune() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: `mallopt` only sets allocator parameters; every value is within glibc's accepted ranges
            // (the mmap threshold's maximum is 32 MiB on 64-bit targets; a maximum of 0 mapped chunks is
            // allowed). A refusal (return 0) leaves the defaults.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_MMAP_MAX, 0);
                mallopt(M_TRIM_THRESHOLD, 512 << 20);
            }
        });
    }
}

/// 0: not decided yet (read `BIQA_KERNELS` on first use), 1: fused kernels on, 2: off.
static FUSED: AtomicU8 = AtomicU8::new(0);

/// Turns the fused flex kernels on or off for the whole process. Off, every function here runs its plain burn
/// composition on flex too: the code a GPU (or any other backend) runs, testable on a CPU. The default is on, or
/// off when the environment variable `BIQA_KERNELS` is `plain` at the first call.
pub fn set_fused(on: bool) {
    FUSED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether the fused flex kernels are on (see [`set_fused`]).
pub fn fused() -> bool {
    match FUSED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = std::env::var("BIQA_KERNELS").map_or(true, |v| v.trim() != "plain");
            // A concurrent `set_fused` wins over the environment.
            let _ = FUSED.compare_exchange(
                0,
                if on { 1 } else { 2 },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            FUSED.load(Ordering::Relaxed) == 1
        }
    }
}

/// The flex primitive of a plain f32 tensor, or the tensor back when it lives elsewhere (or the fused kernels are
/// off).
// The "error" is the input handed back on the fallback path, moved once per call: boxing it would allocate.
#[allow(clippy::result_large_err)]
fn into_flex_f32<const D: usize>(x: Tensor<D>) -> Result<FlexTensor, Tensor<D>> {
    if x.dtype() != DType::F32 || x.is_autodiff() || !fused() {
        return Err(x);
    }
    // The conversion consumes its input, so it gets a clone (a reference count); once it succeeds, dropping `x`
    // leaves the primitive as the buffer's only owner again if it was before.
    match x.clone().try_into_primitive::<Flex>() {
        Ok(t) => Ok(t),
        Err(_) => Err(x),
    }
}

/// A contiguous, unshared f32 buffer with the same values and shape (no copy when `t` already is one).
fn writable(t: FlexTensor) -> FlexTensor {
    let shape = t.layout().shape().clone();
    let n = shape.num_elements();
    let t = if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    };
    let exclusive = t.is_unique()
        && t.layout().contiguous_offsets() == Some((0, n))
        && t.bytes().len() == n * size_of::<f32>();
    if exclusive {
        return t;
    }
    let data = t
        .as_slice::<f32>()
        .expect("contiguous f32 after to_contiguous")
        .to_vec();
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        DType::F32,
    )
}

fn storage(t: &mut FlexTensor) -> &mut [f32] {
    t.try_storage_mut::<f32>()
        .expect("writable() returns an unshared buffer")
}

fn from_flex<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t)
}

/// Runs `f` over `data` in chunks of whole rows (`row` elements), in parallel when there is enough work.
fn for_chunks(data: &mut [f32], row: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
    if data.len() < PARALLEL_MIN {
        f(data);
        return;
    }
    use rayon::prelude::*;
    let rows_per_chunk = (PARALLEL_MIN / 2).div_ceil(row).max(1);
    data.par_chunks_mut(rows_per_chunk * row).for_each(f);
}
