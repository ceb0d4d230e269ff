//! The synthetic distortions, five levels each, with KADID-10k-like parameters (ARNIQA's `distortion_range`).

use std::fmt;
use std::io::Cursor;

use image::{ExtendedColorType, ImageEncoder, ImageFormat, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use biqa_core::SplitMix64;

/// An RGB image with values in [0, 1], interleaved `[r, g, b, r, g, b, …]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `3 · width · height` values in [0, 1].
    pub data: Vec<f32>,
}

impl FloatImage {
    /// From 8-bit RGB (value / 255).
    pub fn from_rgb8(img: &RgbImage) -> Self {
        Self {
            width: img.width(),
            height: img.height(),
            data: img.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect(),
        }
    }

    /// To 8-bit RGB: clamp to [0, 1], scale by 255 and round half away from zero.
    pub fn to_rgb8(&self) -> RgbImage {
        let raw: Vec<u8> = self
            .data
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        RgbImage::from_raw(self.width, self.height, raw).unwrap_or_else(|| RgbImage::new(0, 0))
    }

    fn map(&self, f: impl Fn(f32) -> f32) -> Self {
        Self {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }
}

/// A distortion type of the synthetic set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistortionKind {
    /// Gaussian blur, σ = 0.1, 0.5, 1, 2, 5 px; kernel size 2·⌈2σ⌉+1, symmetric (`reflect`) borders.
    GaussianBlur,
    /// Additive white Gaussian noise, variance 0.001, 0.002, 0.003, 0.005, 0.01 on [0, 1], clipped.
    WhiteNoise,
    /// A real JPEG round trip (the `image` crate's encoder), quality 43, 36, 24, 7, 4.
    Jpeg,
    /// Brightening by a gamma curve `x^(1/(1+a))`, a = 0.1, 0.2, 0.4, 0.7, 1.1.
    Brighten,
    /// Darkening by a gamma curve `x^(1+2a)`, a = 0.05, 0.1, 0.2, 0.4, 0.8.
    Darken,
    /// Contrast reduction: blend toward the image mean, `α·x + (1−α)·mean`, α = 0.85, 0.7, 0.55, 0.4, 0.25.
    ContrastReduction,
    /// Pixelation: each block of b×b pixels replaced by its mean, b = 2, 3, 4, 6, 8.
    Pixelate,
}

impl DistortionKind {
    /// Every distortion, in manifest order.
    pub const ALL: [DistortionKind; 7] = [
        DistortionKind::GaussianBlur,
        DistortionKind::WhiteNoise,
        DistortionKind::Jpeg,
        DistortionKind::Brighten,
        DistortionKind::Darken,
        DistortionKind::ContrastReduction,
        DistortionKind::Pixelate,
    ];

    /// The short name used in file names and the manifest (`gblur`, `noise`, `jpeg`, `brighten`, `darken`,
    /// `contrast`, `pixelate`).
    pub fn name(self) -> &'static str {
        match self {
            DistortionKind::GaussianBlur => "gblur",
            DistortionKind::WhiteNoise => "noise",
            DistortionKind::Jpeg => "jpeg",
            DistortionKind::Brighten => "brighten",
            DistortionKind::Darken => "darken",
            DistortionKind::ContrastReduction => "contrast",
            DistortionKind::Pixelate => "pixelate",
        }
    }

    /// The parameter of each of the five levels (σ, variance, JPEG quality, a, a, α, block size).
    pub fn parameters(self) -> [f64; 5] {
        match self {
            DistortionKind::GaussianBlur => [0.1, 0.5, 1.0, 2.0, 5.0],
            DistortionKind::WhiteNoise => [0.001, 0.002, 0.003, 0.005, 0.01],
            DistortionKind::Jpeg => [43.0, 36.0, 24.0, 7.0, 4.0],
            DistortionKind::Brighten => [0.1, 0.2, 0.4, 0.7, 1.1],
            DistortionKind::Darken => [0.05, 0.1, 0.2, 0.4, 0.8],
            DistortionKind::ContrastReduction => [0.85, 0.7, 0.55, 0.4, 0.25],
            DistortionKind::Pixelate => [2.0, 3.0, 4.0, 6.0, 8.0],
        }
    }

    /// The severity in [0, 1] of each level, the basis of the pseudo-MOS (see [`pseudo_mos`]).
    pub fn severities(self) -> [f64; 5] {
        match self {
            DistortionKind::GaussianBlur => [0.05, 0.2, 0.4, 0.65, 0.9],
            DistortionKind::WhiteNoise => [0.25, 0.4, 0.5, 0.65, 0.85],
            DistortionKind::Jpeg => [0.2, 0.3, 0.45, 0.75, 0.9],
            DistortionKind::Brighten => [0.05, 0.12, 0.25, 0.45, 0.65],
            DistortionKind::Darken => [0.05, 0.12, 0.25, 0.5, 0.8],
            DistortionKind::ContrastReduction => [0.05, 0.15, 0.3, 0.5, 0.7],
            DistortionKind::Pixelate => [0.2, 0.35, 0.5, 0.7, 0.85],
        }
    }

    /// Parses [`DistortionKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for DistortionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The pseudo-MOS of an image on the 1–5 scale: `5 − 4·severity`, where the severity comes from the per-type table
/// [`DistortionKind::severities`] at `level` (1–5). Reference (undistorted) crops (`None`) get the top, 5.
/// Within one distortion type a higher level always gives a strictly lower MOS.
pub fn pseudo_mos(distortion: Option<(DistortionKind, u8)>) -> f64 {
    match distortion {
        None => 5.0,
        Some((kind, level)) => {
            let i = usize::from(level.clamp(1, 5) - 1);
            5.0 - 4.0 * kind.severities()[i]
        }
    }
}

/// Applies `kind` at `level` (1–5) to `img`. Only white noise uses `rng`; everything else is deterministic.
///
/// # Errors
/// [`DataError::DistortionLevel`] for a level outside 1–5; [`DataError::Image`] when the JPEG round trip fails.
pub fn apply(
    img: &FloatImage,
    kind: DistortionKind,
    level: u8,
    rng: &mut SplitMix64,
) -> Result<FloatImage> {
    if !(1..=5).contains(&level) {
        return Err(DataError::DistortionLevel { level });
    }
    let p = kind.parameters()[usize::from(level - 1)];
    Ok(match kind {
        DistortionKind::GaussianBlur => gaussian_blur(img, p),
        DistortionKind::WhiteNoise => {
            let sd = p.sqrt();
            let mut out = img.clone();
            for v in &mut out.data {
                *v = (f64::from(*v) + sd * rng.normal()).clamp(0.0, 1.0) as f32;
            }
            out
        }
        DistortionKind::Jpeg => jpeg_round_trip(img, p as u8)?,
        DistortionKind::Brighten => {
            let g = 1.0 / (1.0 + p as f32);
            img.map(|x| x.max(0.0).powf(g))
        }
        DistortionKind::Darken => {
            let g = 1.0 + 2.0 * p as f32;
            img.map(|x| x.max(0.0).powf(g))
        }
        DistortionKind::ContrastReduction => {
            let n = img.data.len().max(1) as f64;
            let mean = (img.data.iter().map(|&v| f64::from(v)).sum::<f64>() / n) as f32;
            let a = p as f32;
            img.map(|x| a * x + (1.0 - a) * mean)
        }
        DistortionKind::Pixelate => pixelate(img, p as u32),
    })
}

/// Symmetric (`reflect` in SciPy) index of `i` in `0..n`.
fn mirror(mut i: i64, n: i64) -> usize {
    loop {
        if i < 0 {
            i = -i - 1;
        } else if i >= n {
            i = 2 * n - i - 1;
        } else {
            return i as usize;
        }
    }
}

/// Separable Gaussian blur with kernel size 2·⌈2σ⌉+1 and symmetric borders.
pub fn gaussian_blur(img: &FloatImage, sigma: f64) -> FloatImage {
    let r = (2.0 * sigma).ceil() as i64;
    let mut k: Vec<f64> = (-r..=r)
        .map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let (w, h) = (i64::from(img.width), i64::from(img.height));
    let mut tmp = vec![0f32; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0f64;
                for (j, kv) in k.iter().enumerate() {
                    let xx = mirror(x + j as i64 - r, w);
                    acc += kv * f64::from(img.data[(y as usize * w as usize + xx) * 3 + c]);
                }
                tmp[(y * w + x) as usize * 3 + c] = acc as f32;
            }
        }
    }
    let mut out = vec![0f32; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0f64;
                for (j, kv) in k.iter().enumerate() {
                    let yy = mirror(y + j as i64 - r, h);
                    acc += kv * f64::from(tmp[(yy * w as usize + x as usize) * 3 + c]);
                }
                out[(y * w + x) as usize * 3 + c] = acc as f32;
            }
        }
    }
    FloatImage {
        width: img.width,
        height: img.height,
        data: out,
    }
}

fn pixelate(img: &FloatImage, b: u32) -> FloatImage {
    let b = b.max(1) as usize;
    let (w, h) = (img.width as usize, img.height as usize);
    let mut out = img.clone();
    for by in (0..h).step_by(b) {
        for bx in (0..w).step_by(b) {
            let (ye, xe) = ((by + b).min(h), (bx + b).min(w));
            let n = ((ye - by) * (xe - bx)) as f32;
            for c in 0..3 {
                let mut s = 0f32;
                for y in by..ye {
                    for x in bx..xe {
                        s += img.data[(y * w + x) * 3 + c];
                    }
                }
                for y in by..ye {
                    for x in bx..xe {
                        out.data[(y * w + x) * 3 + c] = s / n;
                    }
                }
            }
        }
    }
    out
}

fn jpeg_round_trip(img: &FloatImage, quality: u8) -> Result<FloatImage> {
    let rgb = img.to_rgb8();
    let err = |e: image::ImageError| DataError::Image {
        name: format!("jpeg round trip (quality {quality})"),
        message: e.to_string(),
    };
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .write_image(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            ExtendedColorType::Rgb8,
        )
        .map_err(err)?;
    let dec = image::load(Cursor::new(buf), ImageFormat::Jpeg).map_err(err)?;
    Ok(FloatImage::from_rgb8(&dec.to_rgb8()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> FloatImage {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = ((x * 7 + y * 13) % 256) as f32 / 255.0;
                data.extend([v, 1.0 - v, v * 0.5 + 0.25]);
            }
        }
        FloatImage {
            width: w,
            height: h,
            data,
        }
    }

    fn mse(a: &FloatImage, b: &FloatImage) -> f64 {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            / a.data.len() as f64
    }

    #[test]
    fn blur_keeps_constant_images_and_normalises() {
        let flat = FloatImage {
            width: 9,
            height: 5,
            data: vec![0.3; 9 * 5 * 3],
        };
        let b = gaussian_blur(&flat, 2.0);
        assert!(b.data.iter().all(|v| (v - 0.3).abs() < 1e-6));
        assert_eq!(mirror(-1, 5), 0);
        assert_eq!(mirror(5, 5), 4);
        assert_eq!(mirror(-7, 5), 3);
    }

    #[test]
    fn every_distortion_grows_with_its_level() {
        let img = ramp(48, 40);
        for kind in DistortionKind::ALL {
            let mut last = -1.0;
            for level in 1..=5 {
                let mut rng = SplitMix64::new(3);
                let d = apply(&img, kind, level, &mut rng).unwrap();
                assert_eq!((d.width, d.height), (48, 40));
                let e = mse(&img, &d);
                assert!(e > last, "{kind} level {level}: {e} <= {last}");
                last = e;
            }
        }
        assert!(apply(&img, DistortionKind::Jpeg, 0, &mut SplitMix64::new(0)).is_err());
    }

    #[test]
    fn pseudo_mos_is_monotone() {
        assert_eq!(pseudo_mos(None), 5.0);
        for kind in DistortionKind::ALL {
            let m: Vec<f64> = (1..=5).map(|l| pseudo_mos(Some((kind, l)))).collect();
            assert!(m.windows(2).all(|w| w[1] < w[0]), "{kind}: {m:?}");
            assert!(m.iter().all(|&v| (1.0..5.0).contains(&v)));
            assert_eq!(DistortionKind::from_name(kind.name()), Some(kind));
        }
    }
}
