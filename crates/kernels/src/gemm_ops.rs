//! Linear layers and multi-head attention straight on burn-flex buffers through the `gemm` crate (burn-flex's own
//! GEMM), so that the bias lands in the output before the product accumulates onto it, heads are read in place from
//! the projection outputs (no split/merge copies), and each head's scores → softmax → context runs while its score
//! block is still in cache.

use burn::tensor::{Bytes, DType, Shape, Tensor};
use burn_flex::{Flex, FlexTensor, Layout};

use crate::{gemv, into_flex_f32, simd};

/// Work (m·n·k) above which one GEMM is split across threads (burn-flex's threshold).
const GEMM_PARALLEL: usize = 192 * 192 * 192;

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= GEMM_PARALLEL {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst[m, n] (=|+=) a[m, k] · b[k, n]` over strided f32 matrices: `*_rs`/`*_cs` are the row and column strides in
/// elements; `accumulate` adds onto `dst` instead of overwriting it.
///
/// # Safety
/// Every `(i, j)` with `i < rows`, `j < cols` of each operand, at `ptr + i·rs + j·cs`, must be in bounds of its
/// allocation; `dst`'s elements must not be written concurrently by anyone else.
#[allow(unsafe_code, clippy::too_many_arguments)]
unsafe fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_rs, dst_cs): (isize, isize),
    accumulate: bool,
    a: *const f32,
    (a_rs, a_cs): (isize, isize),
    b: *const f32,
    (b_rs, b_cs): (isize, isize),
    par: gemm::Parallelism,
) {
    // SAFETY: forwarded from the caller's contract; gemm computes dst = alpha·dst + beta·a·b.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// A contiguous f32 view of `t` (a copy only when `t` is not contiguous).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The storage of a 2-D f32 tensor with its start offset and (row, column) strides, when every element is in bounds
/// with non-negative strides.
fn matrix(t: &FlexTensor) -> Option<(&[f32], usize, isize, isize)> {
    let l = t.layout();
    let (shape, strides) = (l.shape(), l.strides());
    if shape.num_dims() != 2 || strides.iter().any(|&s| s < 0) {
        return None;
    }
    let data = t.storage::<f32>();
    let (r, c) = (shape[0], shape[1]);
    let last = l.start_offset()
        + r.saturating_sub(1) * strides[0] as usize
        + c.saturating_sub(1) * strides[1] as usize;
    (r == 0 || c == 0 || last < data.len()).then_some((
        data,
        l.start_offset(),
        strides[0],
        strides[1],
    ))
}

/// `x · W + b` on flex f32 buffers; `None` (and the inputs untouched) when a tensor is not one.
pub(crate) fn linear<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Option<Tensor<D>> {
    let [k, n] = weight.dims();
    let dims = x.dims();
    if dims[D - 1] != k || bias.is_some_and(|b| b.dims() != [n]) {
        return None;
    }
    let xt = contiguous(into_flex_f32(x.clone()).ok()?);
    let wt = into_flex_f32(weight.clone()).ok()?;
    let bt = match bias {
        Some(b) => Some(contiguous(into_flex_f32(b.clone()).ok()?)),
        None => None,
    };
    let xs = xt.as_slice::<f32>()?;
    let (wbuf, woff, w_rs, w_cs) = matrix(&wt)?;
    let m: usize = dims[..D - 1].iter().product();
    let bs = match &bt {
        Some(b) => Some(b.as_slice::<f32>()?),
        None => None,
    };
    let mut out = bias_rows(m, n, bs);
    if m <= gemv::MAX_ROWS && w_rs == n as isize && w_cs == 1 && woff + k * n <= wbuf.len() {
        // Decoding: the weight streamed once (the GEMM would pack it first).
        let w = gemv::Matrix::F32(&wbuf[woff..woff + k * n]);
        gemv::rows_times_matrix(simd::detect(), xs, (m, k, n), w, &mut out);
    } else if m > 0 && n > 0 && k > 0 {
        // SAFETY: `xs` is [m, k] row-major, `wbuf[woff..]` holds the [k, n] weight at its strides (checked by
        // `matrix`), `out` is [m, n] row-major; `out` is ours alone.
        #[allow(unsafe_code)]
        unsafe {
            gemm_f32(
                (m, n, k),
                out.as_mut_ptr(),
                (n as isize, 1),
                true,
                xs.as_ptr(),
                (k as isize, 1),
                wbuf.as_ptr().add(woff),
                (w_rs, w_cs),
                parallelism(m, n, k),
            );
        }
    }
    let mut shape = dims;
    shape[D - 1] = n;
    Some(host_tensor(out, &shape))
}

/// The `[m, n]` row-major output buffer that a product is accumulated onto: `bias` `[n]` in every row, or zeros.
fn bias_rows(m: usize, n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    match bias {
        Some(b) => b.repeat(m),
        None => vec![0.0; m * n],
    }
}

/// A contiguous flex f32 tensor of `shape` owning `data` (`Bytes::from_elems`: no re-alignment copy).
fn host_tensor<const D: usize>(data: Vec<f32>, shape: &[usize]) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    ))
}

/// A raw pointer shared by the attention tasks, each of which writes its own disjoint block.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

impl SharedOut {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper rather than its field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: the tasks write disjoint element sets of one buffer that outlives them (see `attention`).
#[allow(unsafe_code)]
unsafe impl Send for SharedOut {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for SharedOut {}

/// Softmax attention on flex f32 buffers; see [`crate::try_attention`].
pub(crate) fn attention(
    q: &crate::Heads,
    k: &crate::Heads,
    v: &crate::Heads,
    heads: usize,
    head_dim: usize,
    scale: f32,
    want_probs: bool,
) -> Option<(Tensor<3>, Option<Tensor<4>>)> {
    let hd = head_dim;
    let [b, lq, cq] = q.tensor.dims();
    let [bk, lk, ck] = k.tensor.dims();
    let [bv, lv, cv] = v.tensor.dims();
    if bk != b || bv != b || lv != lk || heads == 0 || hd == 0 || lk == 0 {
        return None;
    }
    // Checked arithmetic: `Heads` is public, and a wrapped bound would let the GEMMs read out of bounds.
    for (h, c) in [(q, cq), (k, ck), (v, cv)] {
        let end = (heads - 1)
            .checked_mul(h.head_stride)
            .and_then(|x| x.checked_add(h.offset))
            .and_then(|x| x.checked_add(hd))?;
        if end > c {
            return None;
        }
    }
    let d_out = heads.checked_mul(hd)?;
    let ctx_len = b.checked_mul(lq)?.checked_mul(d_out)?;
    let probs_len = b.checked_mul(heads)?.checked_mul(lq)?.checked_mul(lk)?;
    let qt = contiguous(into_flex_f32(q.tensor.clone()).ok()?);
    let kt = contiguous(into_flex_f32(k.tensor.clone()).ok()?);
    let vt = contiguous(into_flex_f32(v.tensor.clone()).ok()?);
    let (qs, ks, vs) = (
        qt.as_slice::<f32>()?,
        kt.as_slice::<f32>()?,
        vt.as_slice::<f32>()?,
    );
    let mut ctx = vec![0.0f32; ctx_len];
    // The probabilities are kept only when asked for; otherwise each worker reuses one [lq, lk] score block (a
    // ViT-L layer's full set would be 16 × 1025² floats, 67 MB).
    let block = lq.checked_mul(lk)?;
    let mut probs = vec![0.0f32; if want_probs { probs_len } else { 0 }];
    let tasks = b * heads;
    let threads = rayon::current_num_threads();
    // Few heads: each GEMM uses the threads; otherwise one head per task.
    let inner = if tasks >= threads {
        gemm::Parallelism::None
    } else {
        parallelism(lq, lk, hd)
    };
    let isa = simd::detect();
    let out = SharedOut(ctx.as_mut_ptr());
    let run = |t: usize, s: &mut [f32]| {
        let (bi, h) = (t / heads, t % heads);
        let qp = bi * lq * cq + q.offset + h * q.head_stride;
        let kp = bi * lk * ck + k.offset + h * k.head_stride;
        let vp = bi * lk * cv + v.offset + h * v.head_stride;
        // SAFETY: the head blocks are in bounds (checked above: offset + h·stride + hd ≤ C for every head, rows
        // within [b, l]); `s` is this task's [lq, lk] block; the context block [lq rows, columns h·hd..+hd] of
        // batch bi is written by this task only, and `ctx` outlives the parallel loop.
        #[allow(unsafe_code)]
        unsafe {
            gemm_f32(
                (lq, lk, hd),
                s.as_mut_ptr(),
                (lk as isize, 1),
                false,
                qs.as_ptr().add(qp),
                (cq as isize, 1),
                ks.as_ptr().add(kp),
                (1, ck as isize),
                inner,
            );
            simd::softmax_rows(isa, s, lk, scale);
            gemm_f32(
                (lq, hd, lk),
                out.ptr().add(bi * lq * d_out + h * hd),
                (d_out as isize, 1),
                false,
                s.as_ptr(),
                (lk as isize, 1),
                vs.as_ptr().add(vp),
                (cv as isize, 1),
                inner,
            );
        }
    };
    let parallel = tasks >= threads && tasks > 1;
    if block == 0 || tasks == 0 {
        // Nothing to compute: the context stays empty or zero-sized.
    } else if want_probs {
        if parallel {
            use rayon::prelude::*;
            probs
                .par_chunks_mut(block)
                .enumerate()
                .for_each(|(t, s)| run(t, s));
        } else {
            for (t, s) in probs.chunks_mut(block).enumerate() {
                run(t, s);
            }
        }
    } else if parallel {
        use rayon::prelude::*;
        (0..tasks)
            .into_par_iter()
            .for_each_init(|| vec![0.0f32; block], |s, t| run(t, s));
    } else {
        let mut s = vec![0.0f32; block];
        for t in 0..tasks {
            run(t, &mut s);
        }
    }
    let ctx = host_tensor(ctx, &[b, lq, d_out]);
    let probs = want_probs.then(|| host_tensor(probs, &[b, heads, lq, lk]));
    Some((ctx, probs))
}

/// The flex primitive of a plain bf16 tensor outside autodiff.
fn into_flex_bf16<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    if x.dtype() != DType::BF16 || x.is_autodiff() || !crate::fused() {
        return None;
    }
    x.clone().try_into_primitive::<Flex>().ok()
}

/// The elements of a row-major contiguous bf16 tensor.
fn bf16_elems(t: &FlexTensor) -> Option<&[half::bf16]> {
    let (start, end) = t.layout().contiguous_offsets()?;
    t.storage::<half::bf16>().get(start..end)
}

/// `x · W + b` for flex bf16 tensors (`x` `[.., K]`, `W` `[K, N]` contiguous, `b` `[N]`): the weights are read in
/// bf16 once per call — half the bytes of f32, which is what decoding is bound by — widened to f32 on the fly,
/// products accumulated in f32 as PyTorch's CPU bf16 linear does, and the output rounded to bf16 once. burn-flex
/// would instead widen the whole weight matrix into a fresh f32 copy on every call. `None` when a tensor is not a
/// plain flex bf16 one.
pub(crate) fn linear_bf16<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Option<Tensor<D>> {
    use rayon::prelude::*;
    let [k, n] = weight.dims();
    let dims = x.dims();
    if dims[D - 1] != k || bias.is_some_and(|b| b.dims() != [n]) {
        return None;
    }
    let xt = into_flex_bf16(x)?;
    let xt = if xt.is_contiguous() {
        xt
    } else {
        xt.to_contiguous()
    };
    let wt = into_flex_bf16(weight)?;
    let w = bf16_elems(&wt)?;
    let m: usize = dims[..D - 1].iter().product();
    let xs: Vec<f32> = bf16_elems(&xt)?.iter().map(|v| v.to_f32()).collect();
    let b32: Option<Vec<f32>> = match bias {
        Some(b) => {
            let bt = into_flex_bf16(b)?;
            Some(bf16_elems(&bt)?.iter().map(|v| v.to_f32()).collect())
        }
        None => None,
    };
    if xs.len() != m * k || w.len() != k * n {
        return None;
    }
    let mut out = bias_rows(m, n, b32.as_deref());
    if m <= gemv::MAX_ROWS {
        gemv::rows_times_matrix(
            simd::detect(),
            &xs,
            (m, k, n),
            gemv::Matrix::Bf16(w),
            &mut out,
        );
    } else if m > 0 && n > 0 && k > 0 {
        // Blocks of weight rows widened into a scratch that stays in cache, each accumulated by one GEMM.
        let block = ((1usize << 20) / (n * 4)).clamp(8, k);
        let mut scratch = vec![0.0f32; block * n];
        for k0 in (0..k).step_by(block) {
            let kb = block.min(k - k0);
            scratch[..kb * n]
                .par_chunks_mut(n)
                .zip(w[k0 * n..(k0 + kb) * n].par_chunks(n))
                .for_each(|(d, s)| {
                    for (d, s) in d.iter_mut().zip(s) {
                        *d = s.to_f32();
                    }
                });
            // SAFETY: `xs` is [m, k] row-major (columns `k0..k0 + kb` read at row stride k), `scratch` holds
            // [kb, n] row-major, `out` is [m, n] row-major and ours alone.
            #[allow(unsafe_code)]
            unsafe {
                gemm_f32(
                    (m, n, kb),
                    out.as_mut_ptr(),
                    (n as isize, 1),
                    true,
                    xs.as_ptr().add(k0),
                    (k as isize, 1),
                    scratch.as_ptr(),
                    (n as isize, 1),
                    parallelism(m, n, kb),
                );
            }
        }
    }
    let out: Vec<half::bf16> = out.into_iter().map(half::bf16::from_f32).collect();
    let mut shape = dims;
    shape[D - 1] = n;
    Some(Tensor::from_primitive::<Flex>(FlexTensor::new(
        Bytes::from_elems(out),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::BF16,
    )))
}
