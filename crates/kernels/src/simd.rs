//! The element loops: one portable version and one AVX2 + FMA version picked at run time.
//!
//! `exp` is the Cephes single-precision polynomial (the one of `sse_mathfun` / `avx_mathfun`): range reduction
//! `x = n·ln 2 + r` with `ln 2` split in two constants, a degree-5 polynomial for `e^r`, and `2^n` built in the
//! exponent bits. Its error is within 2 ulp of the correctly rounded `e^x` on `[-87.33, 88.37]`; below that it
//! returns `0` (the true value is below `f32::MIN_POSITIVE`), on `(88.37, 88.72]` `e^88.37` (at most 30 % low, only
//! reached by quick-GELU/SiLU inputs whose result is `±0` either way), above `+inf`, and NaN stays NaN. Both versions evaluate the same expression; the AVX2 one fuses
//! the multiply-adds, so the two can differ in the last bit.

/// Lower end of the reduced range: `e^x` underflows to 0 below it.
const EXP_LO: f32 = -87.336_54;
/// Upper end of the reduced range (`n ≤ 127`): inputs up to [`EXP_INF`] are clamped to it.
const EXP_HI: f32 = 88.3762;
/// `ln f32::MAX`: above it `e^x` is `+inf`.
const EXP_INF: f32 = 88.722_84;
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const P0: f32 = 1.987_569_1e-4;
const P1: f32 = 1.398_199_9e-3;
const P2: f32 = 8.333_452e-3;
const P3: f32 = 4.166_579_6e-2;
const P4: f32 = 1.666_666_5e-1;
const P5: f32 = 0.5;

/// Portable `e^x` with the same polynomial as the vector version.
#[inline]
pub(crate) fn exp_scalar(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < EXP_LO {
        return 0.0;
    }
    if x > EXP_INF {
        return f32::INFINITY;
    }
    let x = x.min(EXP_HI);
    let n = (x * LOG2E).round_ties_even();
    let r = x - n * LN2_HI - n * LN2_LO;
    let z = r * r;
    let p = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5;
    let y = p * z + r + 1.0;
    // n ∈ [-126, 127]: a normal power of two.
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Which loop runs on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Plain Rust, any target.
    Portable,
    /// AVX2 + FMA, 8 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// The best loop this CPU runs (`std` caches the CPUID query).
#[inline]
pub(crate) fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// `x ← x / (1 + e^(−1.702·x))`, quick-GELU.
#[allow(unsafe_code)]
pub(crate) fn quick_gelu(isa: Isa, x: &mut [f32]) {
    match isa {
        Isa::Portable => {
            for v in x {
                *v /= 1.0 + exp_scalar(-1.702 * *v);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only returned by `detect` when the CPU has AVX2 and FMA.
        Isa::Avx2 => unsafe { avx2::quick_gelu(x) },
    }
}

/// `g ← (g / (1 + e^(−g)))·u`, SiLU(g)·u (the SiLU first, so that a huge `u` cannot make `inf/inf`); `g` and `u`
/// have the same length.
#[allow(unsafe_code)]
pub(crate) fn silu_mul(isa: Isa, g: &mut [f32], u: &[f32]) {
    assert_eq!(g.len(), u.len(), "silu_mul: length mismatch");
    match isa {
        Isa::Portable => {
            for (a, &b) in g.iter_mut().zip(u) {
                *a = *a / (1.0 + exp_scalar(-*a)) * b;
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `quick_gelu`; the lengths are equal (asserted).
        Isa::Avx2 => unsafe { avx2::silu_mul(g, u) },
    }
}

/// Softmax of `scale·x` over each row of `row` elements, in place; `x.len()` is a multiple of `row`, `scale > 0`.
#[allow(unsafe_code)]
pub(crate) fn softmax_rows(isa: Isa, x: &mut [f32], row: usize, scale: f32) {
    assert!(
        row > 0 && x.len().is_multiple_of(row),
        "softmax_rows: ragged rows"
    );
    match isa {
        Isa::Portable => {
            for r in x.chunks_exact_mut(row) {
                let m = r.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0.0f32;
                for v in r.iter_mut() {
                    *v = exp_scalar((*v - m) * scale);
                    sum += *v;
                }
                let inv = 1.0 / sum;
                for v in r.iter_mut() {
                    *v *= inv;
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `quick_gelu`; whole rows (asserted).
        Isa::Avx2 => unsafe {
            for r in x.chunks_exact_mut(row) {
                avx2::softmax_row(r, scale);
            }
        },
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    /// Eight `e^x` at once (see the module docs).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let below = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_LO));
        let above = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(EXP_INF));
        // `min(hi, x)` returns `x` when `x` is NaN, so NaN flows through and stays NaN.
        let x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
        let x = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x);
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let z = _mm256_mul_ps(r, r);
        let mut p = _mm256_set1_ps(P0);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
        let y = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0));
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        let y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
        let y = _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), above);
        _mm256_andnot_ps(below, y)
    }

    /// Applies `f` to `x` eight at a time; the tail goes through a zero-padded block.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn map8(x: &mut [f32], f: impl Fn(__m256) -> __m256) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly 8 f32.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), f(_mm256_loadu_ps(c.as_ptr()))) };
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut buf = [0.0f32; 8];
            buf[..tail.len()].copy_from_slice(tail);
            // SAFETY: `buf` holds 8 f32.
            unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), f(_mm256_loadu_ps(buf.as_ptr()))) };
            tail.copy_from_slice(&buf[..tail.len()]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn quick_gelu(x: &mut [f32]) {
        let k = _mm256_set1_ps(-1.702);
        let one = _mm256_set1_ps(1.0);
        map8(x, |v| {
            _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_mul_ps(k, v))))
        });
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn silu_mul(g: &mut [f32], u: &[f32]) {
        let one = _mm256_set1_ps(1.0);
        let zero = _mm256_setzero_ps();
        let f = |a: __m256, b: __m256| {
            _mm256_mul_ps(
                _mm256_div_ps(a, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, a)))),
                b,
            )
        };
        let mut gc = g.chunks_exact_mut(8);
        let mut uc = u.chunks_exact(8);
        for (a, b) in (&mut gc).zip(&mut uc) {
            // SAFETY: both chunks hold exactly 8 f32.
            unsafe {
                _mm256_storeu_ps(
                    a.as_mut_ptr(),
                    f(_mm256_loadu_ps(a.as_ptr()), _mm256_loadu_ps(b.as_ptr())),
                )
            };
        }
        let (ta, tb) = (gc.into_remainder(), uc.remainder());
        if !ta.is_empty() {
            let (mut ba, mut bb) = ([0.0f32; 8], [0.0f32; 8]);
            ba[..ta.len()].copy_from_slice(ta);
            bb[..tb.len()].copy_from_slice(tb);
            // SAFETY: the buffers hold 8 f32.
            unsafe {
                _mm256_storeu_ps(
                    ba.as_mut_ptr(),
                    f(_mm256_loadu_ps(ba.as_ptr()), _mm256_loadu_ps(bb.as_ptr())),
                )
            };
            ta.copy_from_slice(&ba[..ta.len()]);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hmax(v: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps::<0b01>(m, m));
        _mm_cvtss_f32(m)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn softmax_row(r: &mut [f32], scale: f32) {
        // Row maximum (NaN-propagating like the portable fold is not needed: a NaN score gives a NaN row anyway,
        // through `x − max`).
        let mut mv = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut chunks = r.chunks_exact(8);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly 8 f32.
            mv = _mm256_max_ps(mv, unsafe { _mm256_loadu_ps(c.as_ptr()) });
        }
        let mut m = hmax(mv);
        for &v in chunks.remainder() {
            m = m.max(v);
        }
        let (mb, sb) = (_mm256_set1_ps(m), _mm256_set1_ps(scale));
        let mut sum = _mm256_setzero_ps();
        let n8 = r.len() / 8 * 8;
        let (body, tail) = r.split_at_mut(n8);
        for c in body.chunks_exact_mut(8) {
            // SAFETY: `c` holds exactly 8 f32.
            unsafe {
                let e = exp8(_mm256_mul_ps(
                    _mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), mb),
                    sb,
                ));
                sum = _mm256_add_ps(sum, e);
                _mm256_storeu_ps(c.as_mut_ptr(), e);
            }
        }
        let mut s = hsum(sum);
        if !tail.is_empty() {
            // Pad with the maximum: e^0 = 1 per padded lane, not added to the sum.
            let mut buf = [m; 8];
            buf[..tail.len()].copy_from_slice(tail);
            // SAFETY: `buf` holds 8 f32.
            unsafe {
                let e = exp8(_mm256_mul_ps(
                    _mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), mb),
                    sb,
                ));
                _mm256_storeu_ps(buf.as_mut_ptr(), e);
            }
            for (d, &e) in tail.iter_mut().zip(&buf) {
                *d = e;
                s += e;
            }
        }
        let inv = _mm256_set1_ps(1.0 / s);
        map8(r, |v| _mm256_mul_ps(v, inv));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_exp_is_within_two_ulp_of_f64() {
        let mut x = -87.3f32;
        while x < 88.37 {
            let want = (x as f64).exp();
            let got = exp_scalar(x) as f64;
            assert!(
                ((got - want) / want).abs() < 2.5e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.0173;
        }
        assert_eq!(exp_scalar(-100.0), 0.0);
        assert_eq!(exp_scalar(f32::NEG_INFINITY), 0.0);
        assert!(exp_scalar(f32::NAN).is_nan());
        assert_eq!(exp_scalar(0.0), 1.0);
        assert_eq!(exp_scalar(89.0), f32::INFINITY);
    }

    /// The vector loops against the portable ones, tails included.
    #[test]
    fn vector_and_portable_loops_agree() {
        let isa = detect();
        let data: Vec<f32> = (0..1037)
            .map(|i| ((i * 7919 % 2003) as f32 / 2003.0 - 0.5) * 40.0)
            .collect();
        let rel = |a: f32, b: f32| (a - b).abs() <= 4e-7 * a.abs().max(b.abs()) + 1e-30;
        let (mut a, mut b) = (data.clone(), data.clone());
        quick_gelu(isa, &mut a);
        quick_gelu(Isa::Portable, &mut b);
        assert!(a.iter().zip(&b).all(|(&x, &y)| rel(x, y)), "quick_gelu");
        let (mut a, mut b) = (data.clone(), data.clone());
        silu_mul(isa, &mut a, &data);
        silu_mul(Isa::Portable, &mut b, &data);
        assert!(a.iter().zip(&b).all(|(&x, &y)| rel(x, y)), "silu_mul");
        for row in [1, 7, 8, 17, 1037] {
            let n = data.len() / row * row;
            let (mut a, mut b) = (data[..n].to_vec(), data[..n].to_vec());
            softmax_rows(isa, &mut a, row, 0.3);
            softmax_rows(Isa::Portable, &mut b, row, 0.3);
            assert!(
                a.iter()
                    .zip(&b)
                    .all(|(&x, &y)| (x - y).abs() <= 1e-6 * x.abs().max(y.abs()) + 1e-30),
                "softmax row {row}"
            );
        }
    }
}
