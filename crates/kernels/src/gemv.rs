//! Few rows times a large matrix, `out[m, n] += x[m, k] · W[k, n]` for `m ≤` [`MAX_ROWS`]: the decoder's linear
//! layers and head while decoding, where the whole weight matrix is read for one token and the time is the time
//! the bytes take to arrive. The weight is streamed once, in its stored dtype (f32, or bf16 widened in registers:
//! half the bytes), four weight rows at a time into an f32 accumulator band that stays in L1, the bands of
//! columns split across burn's rayon pool. Each output element is summed over `k` in order, whatever the thread
//! count, so results do not depend on the machine's core count.

use rayon::prelude::*;

use crate::simd::Isa;

/// The most rows of `x` the streaming path takes (decoding is 1 row per sequence; a small batch of sequences).
pub(crate) const MAX_ROWS: usize = 8;

/// A row-major `[k, n]` weight matrix in its stored dtype.
#[derive(Clone, Copy)]
pub(crate) enum Matrix<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// bfloat16 elements, widened to f32 as they are read.
    Bf16(&'a [half::bf16]),
}

impl Matrix<'_> {
    fn len(&self) -> usize {
        match self {
            Matrix::F32(w) => w.len(),
            Matrix::Bf16(w) => w.len(),
        }
    }

    /// Bytes per element.
    fn elem_bytes(&self) -> usize {
        match self {
            Matrix::F32(_) => 4,
            Matrix::Bf16(_) => 2,
        }
    }
}

/// Columns per task: a band whose slice of one weight row is at most 4 KiB (one page: the hardware prefetcher's
/// unit), with at least four tasks per thread where `n` allows, a multiple of 64 columns.
fn band_width(n: usize, elem_bytes: usize) -> usize {
    let page = 4096 / elem_bytes;
    let per_task = n.div_ceil(rayon::current_num_threads().max(1) * 4);
    per_task.next_multiple_of(64).clamp(64, page)
}

/// `out[m, n] += x[m, k] · w[k, n]`, all row-major (`out` holds the bias, or zeros, on entry).
///
/// # Panics
/// If a slice's length does not match `m`, `k`, `n`, or `m` exceeds [`MAX_ROWS`].
pub(crate) fn rows_times_matrix(
    isa: Isa,
    x: &[f32],
    (m, k, n): (usize, usize, usize),
    w: Matrix<'_>,
    out: &mut [f32],
) {
    assert!(m <= MAX_ROWS, "gemv: {m} rows > {MAX_ROWS}");
    assert!(
        x.len() == m * k && w.len() == k * n && out.len() == m * n,
        "gemv: slice lengths do not match ({m}, {k}, {n})"
    );
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let width = band_width(n, w.elem_bytes());
    let bands: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(width))
        .into_par_iter()
        .map(|b| {
            let c0 = b * width;
            let bw = width.min(n - c0);
            let mut acc = vec![0.0f32; m * bw];
            for r in 0..m {
                acc[r * bw..(r + 1) * bw].copy_from_slice(&out[r * n + c0..r * n + c0 + bw]);
            }
            band(isa, x, (m, k, n), w, c0, bw, &mut acc);
            (c0, acc)
        })
        .collect();
    for (c0, acc) in bands {
        let bw = acc.len() / m;
        for r in 0..m {
            out[r * n + c0..r * n + c0 + bw].copy_from_slice(&acc[r * bw..(r + 1) * bw]);
        }
    }
}

/// Columns `c0..c0 + bw` of every output row: `acc[m, bw] += x[m, k] · w[k, c0..c0 + bw]`.
#[allow(unsafe_code)]
fn band(
    isa: Isa,
    x: &[f32],
    (m, k, n): (usize, usize, usize),
    w: Matrix<'_>,
    c0: usize,
    bw: usize,
    acc: &mut [f32],
) {
    match isa {
        Isa::Portable => match w {
            Matrix::F32(w) => band_portable(x, (m, k, n), |i, c| w[i * n + c], c0, bw, acc),
            Matrix::Bf16(w) => {
                band_portable(x, (m, k, n), |i, c| w[i * n + c].to_f32(), c0, bw, acc)
            }
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` comes from `simd::detect` only when the CPU has AVX2 and FMA; the lengths were
        // checked by `rows_times_matrix` and `c0 + bw ≤ n`.
        Isa::Avx2 => unsafe { avx2::band(x, (m, k, n), w, c0, bw, acc) },
    }
}

fn band_portable(
    x: &[f32],
    (m, k, _n): (usize, usize, usize),
    w: impl Fn(usize, usize) -> f32,
    c0: usize,
    bw: usize,
    acc: &mut [f32],
) {
    for i in 0..k {
        for r in 0..m {
            let xv = x[r * k + i];
            for (j, a) in acc[r * bw..(r + 1) * bw].iter_mut().enumerate() {
                *a = xv.mul_add(w(i, c0 + j), *a);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Matrix;

    /// Eight weights at `p` widened to f32.
    #[inline(always)]
    unsafe fn load_bf16(p: *const half::bf16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements at `p`; bf16 → f32 is the 16 bits shifted up.
        unsafe {
            let h = _mm_loadu_si128(p.cast());
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        }
    }

    /// See [`super::band`]. Weight rows go four at a time: per 8 columns, four weight vectors are loaded once and
    /// fused into every output row's accumulator (`a = fma(x₀, w₀, a); a = fma(x₁, w₁, a); …`, i.e. the sum over
    /// `k` in order); the columns past the last multiple of 8 and the rows past the last multiple of 4 go one at a
    /// time with the same fused multiply-add.
    ///
    /// # Safety
    /// AVX2 and FMA available; `x.len() = m·k`, `w.len() = k·n`, `acc.len() = m·bw`, `c0 + bw ≤ n`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn band(
        x: &[f32],
        (m, k, n): (usize, usize, usize),
        w: Matrix<'_>,
        c0: usize,
        bw: usize,
        acc: &mut [f32],
    ) {
        let vec_cols = bw / 8 * 8;
        let k4 = k / 4 * 4;
        let a = acc.as_mut_ptr();
        match w {
            Matrix::F32(w) => {
                let wp = w.as_ptr();
                // SAFETY (both closures): row `i < k`, column `c0 + c` with `c + 8 ≤ bw` (vector) or `c < bw`.
                let vload = |i: usize, c: usize| unsafe { _mm256_loadu_ps(wp.add(i * n + c0 + c)) };
                let sload = |i: usize, c: usize| unsafe { *wp.add(i * n + c0 + c) };
                // SAFETY: forwarded.
                unsafe { run(x, (m, k), bw, vec_cols, k4, a, vload, sload) }
            }
            Matrix::Bf16(w) => {
                let wp = w.as_ptr();
                // SAFETY: as above.
                let vload = |i: usize, c: usize| unsafe { load_bf16(wp.add(i * n + c0 + c)) };
                let sload = |i: usize, c: usize| unsafe { (*wp.add(i * n + c0 + c)).to_f32() };
                // SAFETY: forwarded.
                unsafe { run(x, (m, k), bw, vec_cols, k4, a, vload, sload) }
            }
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn run(
        x: &[f32],
        (m, k): (usize, usize),
        bw: usize,
        vec_cols: usize,
        k4: usize,
        a: *mut f32,
        vload: impl Fn(usize, usize) -> __m256,
        sload: impl Fn(usize, usize) -> f32,
    ) {
        // SAFETY: every `a.add(r·bw + c)` has `r < m`, `c < bw` (vectors: `c + 8 ≤ vec_cols ≤ bw`).
        unsafe {
            for i in (0..k4).step_by(4) {
                let mut xb = [[_mm256_setzero_ps(); 4]; super::MAX_ROWS];
                for r in 0..m {
                    for q in 0..4 {
                        xb[r][q] = _mm256_set1_ps(x[r * k + i + q]);
                    }
                }
                let mut c = 0;
                while c < vec_cols {
                    let w0 = vload(i, c);
                    let w1 = vload(i + 1, c);
                    let w2 = vload(i + 2, c);
                    let w3 = vload(i + 3, c);
                    for (r, xr) in xb.iter().enumerate().take(m) {
                        let p = a.add(r * bw + c);
                        let mut v = _mm256_loadu_ps(p);
                        v = _mm256_fmadd_ps(xr[0], w0, v);
                        v = _mm256_fmadd_ps(xr[1], w1, v);
                        v = _mm256_fmadd_ps(xr[2], w2, v);
                        v = _mm256_fmadd_ps(xr[3], w3, v);
                        _mm256_storeu_ps(p, v);
                    }
                    c += 8;
                }
                for c in vec_cols..bw {
                    for r in 0..m {
                        let p = a.add(r * bw + c);
                        for q in 0..4 {
                            *p = x[r * k + i + q].mul_add(sload(i + q, c), *p);
                        }
                    }
                }
            }
            for i in k4..k {
                for r in 0..m {
                    let xv = x[r * k + i];
                    let xvb = _mm256_set1_ps(xv);
                    let mut c = 0;
                    while c < vec_cols {
                        let p = a.add(r * bw + c);
                        _mm256_storeu_ps(p, _mm256_fmadd_ps(xvb, vload(i, c), _mm256_loadu_ps(p)));
                        c += 8;
                    }
                    for c in vec_cols..bw {
                        let p = a.add(r * bw + c);
                        *p = xv.mul_add(sload(i, c), *p);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], (m, k, n): (usize, usize, usize), w: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f64; m * n];
        for r in 0..m {
            for j in 0..n {
                out[r * n + j] = f64::from(bias[j])
                    + (0..k)
                        .map(|i| f64::from(x[r * k + i]) * f64::from(w[i * n + j]))
                        .sum::<f64>();
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32 ^ seed)
                    .wrapping_mul(2_654_435_761)
                    .rotate_left(13);
                (h % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_a_float64_product_for_every_isa_dtype_and_ragged_shape() {
        let mut isas = vec![Isa::Portable];
        if crate::simd::detect() != Isa::Portable {
            isas.push(crate::simd::detect());
        }
        for &(m, k, n) in &[
            (1, 4096, 33),
            (1, 7, 5),
            (3, 130, 1000),
            (8, 67, 4099),
            (2, 1, 9),
        ] {
            let x = values(m * k, 1);
            let w32 = values(k * n, 2);
            let w16: Vec<half::bf16> = w32.iter().map(|&v| half::bf16::from_f32(v)).collect();
            let w16w: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
            let bias = values(n, 3);
            for &isa in &isas {
                for (w, wide) in [(Matrix::F32(&w32), &w32), (Matrix::Bf16(&w16), &w16w)] {
                    let expect = reference(&x, (m, k, n), wide, &bias);
                    let mut out: Vec<f32> = (0..m).flat_map(|_| bias.iter().copied()).collect();
                    rows_times_matrix(isa, &x, (m, k, n), w, &mut out);
                    let tol = 1e-5 * (k as f32).sqrt();
                    for (i, (a, b)) in out.iter().zip(&expect).enumerate() {
                        assert!(
                            (a - b).abs() <= tol * (1.0 + b.abs()),
                            "{isa:?} ({m}, {k}, {n}) [{i}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        let (m, k, n) = (2, 300, 2000);
        let x = values(m * k, 4);
        let w = values(k * n, 5);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0f32; m * n];
            pool.install(|| {
                rows_times_matrix(
                    crate::simd::detect(),
                    &x,
                    (m, k, n),
                    Matrix::F32(&w),
                    &mut out,
                )
            });
            out
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(5));
    }
}
