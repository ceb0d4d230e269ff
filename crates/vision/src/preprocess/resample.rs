//! Pillow's resampling (`Image.resize`, libImaging `Resample.c`) and the geometric helpers of the
//! preprocessing pipelines (expand2square, transformers' shortest-edge size and center crop).
//!
//! The resampler is a line-by-line port of Pillow's 8-bit path: separable convolution with the filter's support
//! scaled by the downscale factor (antialiasing), coefficients computed in `f64` exactly as `precompute_coeffs`
//! does, converted to fixed point with `PRECISION_BITS = 22` (`normalize_coeffs_8bpc`), two passes with rounding
//! and clamping to `u8` in between (`clip8`), a pass skipped when its dimension does not change, and Pillow 13's
//! choice of which pass runs first ([`PassOrder`]). The output is bit-identical to Pillow for every supported
//! filter.

use std::borrow::Cow;

use super::Rgb8Image;
use crate::error::{Result, VisionError};

/// Fixed-point precision of Pillow's 8-bit resampler: `32 - 8 - 2`.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// The rounding term every accumulator starts from: `1 << (PRECISION_BITS - 1)`.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// A resampling filter of Pillow (`PIL.Image.Resampling`), by its integer code in `preprocessor_config.json`.
///
/// `NEAREST` (0) is not a convolution in Pillow (it goes through an affine transform) and is not supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resample {
    /// `LANCZOS` = 1: windowed sinc, support 3.
    Lanczos,
    /// `BILINEAR` = 2: triangle, support 1.
    Bilinear,
    /// `BICUBIC` = 3: cubic convolution with a = −0.5, support 2 (CLIP's default).
    Bicubic,
    /// `BOX` = 4: box, support 0.5.
    Box,
    /// `HAMMING` = 5: Hamming-windowed sinc, support 1.
    Hamming,
}

impl Resample {
    /// The filter for a Pillow resample code (`preprocessor_config.json: resample`).
    ///
    /// # Errors
    /// [`VisionError::UnsupportedResample`] for NEAREST (0) and unknown codes.
    pub fn from_pil(code: i64) -> Result<Self> {
        match code {
            1 => Ok(Self::Lanczos),
            2 => Ok(Self::Bilinear),
            3 => Ok(Self::Bicubic),
            4 => Ok(Self::Box),
            5 => Ok(Self::Hamming),
            value => Err(VisionError::UnsupportedResample { value }),
        }
    }

    /// Pillow's integer code of this filter.
    pub fn pil_code(self) -> i64 {
        match self {
            Self::Lanczos => 1,
            Self::Bilinear => 2,
            Self::Bicubic => 3,
            Self::Box => 4,
            Self::Hamming => 5,
        }
    }

    /// The filter's support (half-width) at scale 1, as in Pillow's `struct filter`.
    pub fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    /// The filter kernel, with Pillow's exact expressions (operation order included).
    pub fn kernel(self, x: f64) -> f64 {
        match self {
            Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = if x < 0.0 { -x } else { x };
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Self::Hamming => {
                let x = if x < 0.0 { -x } else { x };
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // `0.54f + 0.46f * cos(x)`: float constants promoted to double.
                    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = if x < 0.0 { -x } else { x };
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

/// Fixed-point coefficients of one pass (Pillow's `bounds` and normalised `kk`).
struct Coeffs {
    /// Coefficients per output sample (row stride of `kk`).
    ksize: usize,
    /// For each output sample: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// `out_size * ksize` fixed-point coefficients.
    kk: Vec<i32>,
}

impl Coeffs {
    /// `precompute_coeffs` (box = (0, in_size)) followed by `normalize_coeffs_8bpc`.
    fn new(in_size: usize, out_size: usize, filter: Resample) -> Self {
        // `scale = (double)(in1 - in0) / outSize` with the box coordinates as C floats.
        let in0 = 0.0f32;
        let in1 = in_size as f32;
        let scale = f64::from(in1 - in0) / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = filter.support() * filterscale;
        let ksize = (support.ceil() as usize) * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut kk = vec![0i32; out_size * ksize];
        let mut weights = vec![0f64; ksize];
        let ss = 1.0 / filterscale;
        for (xx, row) in kk.chunks_exact_mut(ksize).enumerate() {
            let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
            // `(int)(center - support + 0.5)`: truncation towards zero, then clamping.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).clamp(0, ksize as i64) as usize;
            let xmin = xmin as usize;
            let mut ww = 0.0;
            for (x, w) in weights[..n].iter_mut().enumerate() {
                *w = filter.kernel(((x + xmin) as f64 - center + 0.5) * ss);
                ww += *w;
            }
            for (k, &w) in row.iter_mut().zip(&weights[..n]) {
                let w = if ww != 0.0 { w / ww } else { w };
                *k = to_fixed(w);
            }
            bounds.push((xmin, n));
        }
        Self { ksize, bounds, kk }
    }

    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[i];
        (start, &self.kk[i * self.ksize..i * self.ksize + n])
    }
}

/// `normalize_coeffs_8bpc`: round half away from zero after scaling by 2^22 (C `(int)` truncation).
fn to_fixed(w: f64) -> i32 {
    let scaled = w * f64::from(1u32 << PRECISION_BITS);
    if w < 0.0 {
        (-0.5 + scaled) as i32
    } else {
        (0.5 + scaled) as i32
    }
}

/// `clip8`: drop the fraction bits and clamp to 0..=255.
#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass over the source rows `rows` (Pillow's `ImagingResampleHorizontal_8bpc`).
fn horizontal(
    src: &[u8],
    src_w: usize,
    rows: std::ops::Range<usize>,
    c: &Coeffs,
    out_w: usize,
) -> Vec<u8> {
    let in_stride = src_w * 3;
    let out_stride = out_w * 3;
    let mut out = vec![0u8; rows.len() * out_stride];
    for (y, orow) in rows.zip(out.chunks_exact_mut(out_stride)) {
        let row = &src[y * in_stride..(y + 1) * in_stride];
        for (xx, o) in orow.chunks_exact_mut(3).enumerate() {
            let (xmin, k) = c.taps(xx);
            let px = &row[xmin * 3..(xmin + k.len()) * 3];
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (&w, p) in k.iter().zip(px.chunks_exact(3)) {
                s0 = s0.wrapping_add(i32::from(p[0]).wrapping_mul(w));
                s1 = s1.wrapping_add(i32::from(p[1]).wrapping_mul(w));
                s2 = s2.wrapping_add(i32::from(p[2]).wrapping_mul(w));
            }
            o[0] = clip8(s0);
            o[1] = clip8(s1);
            o[2] = clip8(s2);
        }
    }
    out
}

/// Vertical pass (Pillow's `ImagingResampleVertical_8bpc`); `row_offset` is subtracted from every bound
/// (Pillow's shift by `ybox_first` after a horizontal pass over the needed rows only).
fn vertical(src: &[u8], w: usize, c: &Coeffs, row_offset: usize) -> Vec<u8> {
    let stride = w * 3;
    let mut out = vec![0u8; c.bounds.len() * stride];
    let mut acc = vec![0i32; stride];
    for (yy, orow) in out.chunks_exact_mut(stride).enumerate() {
        let (ymin, k) = c.taps(yy);
        let ymin = ymin - row_offset;
        acc.fill(HALF);
        for (j, &wt) in k.iter().enumerate() {
            let row = &src[(ymin + j) * stride..(ymin + j + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(i32::from(p).wrapping_mul(wt));
            }
        }
        for (o, &a) in orow.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Which of the two passes Pillow runs first when both are needed.
///
/// The passes do not commute (each rounds to `u8`), so the order changes some outputs by a level or two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PassOrder {
    /// Pillow ≥ 13 (the golden fixtures' version): vertical first when the height shrinks by more than twice as
    /// many pixels as the width does (`(H - h) > 0 && (H - h) > (W - w) * 2`), horizontal first otherwise.
    #[default]
    Pillow13,
    /// Pillow ≤ 12: always horizontal first.
    HorizontalFirst,
}

impl PassOrder {
    /// True when the horizontal pass runs first for this resize.
    pub fn horizontal_first(self, in_w: u32, in_h: u32, out_w: u32, out_h: u32) -> bool {
        match self {
            Self::HorizontalFirst => true,
            Self::Pillow13 => {
                let dy = i64::from(in_h) - i64::from(out_h);
                let dx = i64::from(in_w) - i64::from(out_w);
                !(dy > 0 && dy > dx * 2)
            }
        }
    }
}

/// `Image.resize((width, height), filter)` of an RGB image, bit-exact with Pillow 13 ([`PassOrder::Pillow13`]).
///
/// Returns a copy when the size does not change (Pillow's `self.copy()`).
///
/// # Errors
/// [`VisionError::EmptyImage`] when the source or the target has a zero side.
pub fn resize(img: &Rgb8Image, width: u32, height: u32, filter: Resample) -> Result<Rgb8Image> {
    resize_with_order(img, width, height, filter, PassOrder::Pillow13)
}

/// [`resize`] with an explicit pass order (e.g. [`PassOrder::HorizontalFirst`] to reproduce Pillow ≤ 12).
///
/// # Errors
/// [`VisionError::EmptyImage`] when the source or the target has a zero side.
pub fn resize_with_order(
    img: &Rgb8Image,
    width: u32,
    height: u32,
    filter: Resample,
    order: PassOrder,
) -> Result<Rgb8Image> {
    if img.width() == 0 || img.height() == 0 || width == 0 || height == 0 {
        let (w, h) = if img.width() == 0 || img.height() == 0 {
            (img.width(), img.height())
        } else {
            (width, height)
        };
        return Err(VisionError::EmptyImage {
            path: crate::error::IN_MEMORY.into(),
            width: u64::from(w),
            height: u64::from(h),
        });
    }
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let need_horizontal = out_w != in_w;
    let need_vertical = out_h != in_h;
    if !need_horizontal && !need_vertical {
        return Ok(img.clone());
    }
    if !order.horizontal_first(img.width(), img.height(), width, height) {
        // Vertical pass over the whole width, then the horizontal pass (the height shrinks here, so both run).
        let tmp = vertical(img.as_raw(), in_w, &Coeffs::new(in_h, out_h, filter), 0);
        let data = if need_horizontal {
            horizontal(
                &tmp,
                in_w,
                0..out_h,
                &Coeffs::new(in_w, out_w, filter),
                out_w,
            )
        } else {
            tmp
        };
        return Rgb8Image::new(width, height, data);
    }
    let vert = need_vertical.then(|| Coeffs::new(in_h, out_h, filter));
    let (data, row_offset): (Cow<'_, [u8]>, usize) = if need_horizontal {
        let horiz = Coeffs::new(in_w, out_w, filter);
        // Only the source rows the vertical pass reads (Pillow's ybox_first..ybox_last).
        let rows = match &vert {
            Some(v) => {
                let first = v.bounds[0].0;
                let (last_start, last_n) = v.bounds[out_h - 1];
                first..(last_start + last_n).max(first)
            }
            None => 0..in_h,
        };
        let first = rows.start;
        (
            Cow::Owned(horizontal(img.as_raw(), in_w, rows, &horiz, out_w)),
            first,
        )
    } else {
        (Cow::Borrowed(img.as_raw()), 0)
    };
    let data = match &vert {
        Some(v) => vertical(&data, out_w, v, row_offset),
        None => data.into_owned(),
    };
    Rgb8Image::new(width, height, data)
}

/// mPLUG-Owl2's `expand2square`: the image on a square canvas of side `max(W, H)` filled with `background`,
/// pasted at `(0, (W - H) // 2)` when wide and `((H - W) // 2, 0)` when tall. A square image is returned as is.
///
/// The canvas is allocated: callers limit its size first (see [`crate::preprocess::Preprocessor`]).
pub fn expand_to_square(img: &Rgb8Image, background: [u8; 3]) -> Rgb8Image {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == h {
        return img.clone();
    }
    let side = w.max(h);
    let (off_x, off_y) = if w > h {
        (0, (w - h) / 2)
    } else {
        ((h - w) / 2, 0)
    };
    let mut data = background.repeat(side * side);
    for (y, row) in img.as_raw().chunks_exact(w * 3).enumerate() {
        let start = ((y + off_y) * side + off_x) * 3;
        data[start..start + w * 3].copy_from_slice(row);
    }
    Rgb8Image::from_parts(side as u32, side as u32, data)
}

/// transformers' `get_resize_output_image_size(image, size, default_to_square=False)`: the shortest edge becomes
/// `shortest_edge` and the long edge `int(shortest_edge * long / short)` (float division, truncated).
///
/// Returns `(width, height)`. The long edge saturates at `u64::MAX` for absurd inputs (callers check limits).
pub fn shortest_edge_size(width: u32, height: u32, shortest_edge: u32) -> (u64, u64) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let s = u64::from(shortest_edge);
    let new_long = if short == 0 {
        0
    } else {
        // Python: `int(requested_new_short * long / short)`, an exact int product then a true division.
        ((s as f64 * f64::from(long)) / f64::from(short)) as u64
    };
    if width <= height {
        (s, new_long)
    } else {
        (new_long, s)
    }
}

/// The rectangle transformers' `center_crop(image, (crop_height, crop_width))` keeps, in the coordinates of the
/// image zero-padded to at least the crop size: `(top, left, out_height, out_width, pad_top, pad_left)`.
fn crop_geometry(h: i64, w: i64, ch: i64, cw: i64) -> (i64, i64, i64, i64, i64, i64) {
    let top = (h - ch).div_euclid(2);
    let left = (w - cw).div_euclid(2);
    if top >= 0 && top + ch <= h && left >= 0 && left + cw <= w {
        return (top, left, ch, cw, 0, 0);
    }
    // "Otherwise, we may need to pad if the image is too small. Oh joy..."
    let (nh, nw) = (ch.max(h), cw.max(w));
    let (tp, lp) = ((nh - h) / 2, (nw - w) / 2);
    let (top, bottom) = (top + tp, top + tp + ch);
    let (left, right) = (left + lp, left + lp + cw);
    let (r0, r1) = (top.max(0), bottom.min(nh));
    let (c0, c1) = (left.max(0), right.min(nw));
    (r0, c0, (r1 - r0).max(0), (c1 - c0).max(0), tp, lp)
}

/// Output `(width, height)` of [`center_crop`] (transformers' semantics, see there).
pub fn center_crop_size(width: u32, height: u32, crop_height: u32, crop_width: u32) -> (u64, u64) {
    let (_, _, oh, ow, _, _) = crop_geometry(
        i64::from(height),
        i64::from(width),
        i64::from(crop_height),
        i64::from(crop_width),
    );
    (ow as u64, oh as u64)
}

/// transformers' `center_crop(image, (crop_height, crop_width))`: offsets `top = (H - ch) // 2`,
/// `left = (W - cw) // 2`. When the crop is larger than the image, transformers zero-pads it first (centred,
/// `(new - old) // 2`) and slices the padded image with the unclamped offsets shifted by the padding; with an odd
/// size difference that slice is one pixel short of the crop size. This is mirrored exactly.
pub fn center_crop(img: &Rgb8Image, crop_height: u32, crop_width: u32) -> Rgb8Image {
    let (h, w) = (i64::from(img.height()), i64::from(img.width()));
    let (top, left, oh, ow, tp, lp) =
        crop_geometry(h, w, i64::from(crop_height), i64::from(crop_width));
    if (top, left, oh, ow, tp, lp) == (0, 0, h, w, 0, 0) {
        return img.clone();
    }
    let src = img.as_raw();
    let mut data = vec![0u8; (oh * ow * 3) as usize];
    for (r, orow) in data.chunks_exact_mut((ow * 3) as usize).enumerate() {
        // Row of the original image shown at padded row `top + r`.
        let sy = top + r as i64 - tp;
        if !(0..h).contains(&sy) {
            continue;
        }
        // Columns of the output that fall inside the original image.
        let sx0 = left - lp;
        let c_start = (-sx0).clamp(0, ow);
        let c_end = (w - sx0).clamp(0, ow);
        if c_start >= c_end {
            continue;
        }
        let s = ((sy * w + sx0 + c_start) * 3) as usize;
        let n = ((c_end - c_start) * 3) as usize;
        orow[(c_start * 3) as usize..(c_start * 3) as usize + n].copy_from_slice(&src[s..s + n]);
    }
    Rgb8Image::from_parts(ow as u32, oh as u32, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_kernel_matches_pillow_shape() {
        let k = Resample::Bicubic;
        assert_eq!(k.kernel(0.0), 1.0);
        assert_eq!(k.kernel(1.0), 0.0);
        assert_eq!(k.kernel(2.0), 0.0);
        assert!((k.kernel(0.5) - 0.5625).abs() < 1e-15);
        assert!((k.kernel(1.5) + 0.0625).abs() < 1e-15);
    }

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(96, 56), (56, 96), (300, 56), (1, 56), (37, 56), (5, 1)] {
            for f in [
                Resample::Bicubic,
                Resample::Bilinear,
                Resample::Lanczos,
                Resample::Box,
                Resample::Hamming,
            ] {
                let c = Coeffs::new(i, o, f);
                for j in 0..o {
                    let (start, k) = c.taps(j);
                    assert!(start + k.len() <= i);
                    let s: i64 = k.iter().map(|&v| i64::from(v)).sum();
                    assert!(
                        (s - (1 << 22)).abs() <= k.len() as i64,
                        "{i}->{o} {f:?} {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Rgb8Image::from_parts(7, 5, [10u8, 200, 255].repeat(35));
        for f in [Resample::Bicubic, Resample::Bilinear, Resample::Lanczos] {
            let out = resize(&img, 13, 3, f).unwrap();
            assert!(out.as_raw().chunks_exact(3).all(|p| p == [10, 200, 255]));
        }
    }

    #[test]
    fn crop_geometry_follows_transformers() {
        // inside: plain offsets with floor division
        assert_eq!(crop_geometry(45, 60, 32, 32), (6, 14, 32, 32, 0, 0));
        // crop larger by an odd amount: one short
        assert_eq!(crop_geometry(20, 25, 24, 28), (0, 0, 24, 27, 2, 1));
        assert_eq!(crop_geometry(20, 25, 23, 30), (0, 0, 22, 29, 1, 2));
    }

    #[test]
    fn shortest_edge_truncates_like_python() {
        assert_eq!(shortest_edge_size(1024, 768, 448), (597, 448));
        assert_eq!(shortest_edge_size(37, 23, 56), (90, 56));
        assert_eq!(shortest_edge_size(1, 300, 56), (56, 16800));
        assert_eq!(shortest_edge_size(96, 96, 56), (56, 56));
    }
}
