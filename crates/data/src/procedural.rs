//! Procedural images: "dead leaves" pictures (Matheron's model, used by Lee, Mumford & Huang 2001 for the
//! statistics of natural images and by Baradad et al. 2021, "Learning to see by looking at noise", to pre-train
//! vision models without photographs).
//!
//! The miniature's pre-alignment adds them to its six training photographs: occluding discs and squares whose sizes
//! follow the r⁻³ law of natural scenes (a scale-invariant, 1/f-like spectrum), with flat, striped or shaded
//! surfaces, drawn at twice the size and averaged 2 × 2 so that their edges are as soft as a camera's. They give the
//! pre-alignment content that no photograph of the set has, so that what it learns of blur, noise or compression
//! cannot be a property of six particular photos. They are seeded and need no download and no licence.

use image::{Rgb, RgbImage};

use crate::synth::Photo;
use biqa_core::SplitMix64;

/// Smallest and largest radius of a leaf, in output pixels.
const RADIUS: (f64, f64) = (1.0, 120.0);

/// The most leaves drawn per image (the canvas is usually covered long before).
const MAX_LEAVES: usize = 40_000;

/// Supersampling factor (the picture is drawn at `SUPERSAMPLE` × its size, then box-averaged).
const SUPERSAMPLE: u32 = 2;

/// One dead-leaves picture of `size` × `size` pixels, fully determined by `seed`.
///
/// Leaves are dropped front to back: each covers only the pixels that no earlier leaf covers, until the canvas is
/// covered (or [`MAX_LEAVES`] are drawn; the rest stays mid-grey). Radii follow p(r) ∝ r⁻³ on 1–120 px; a third of
/// the leaves are squares; colours are a grey level with a small chroma; a third of the leaves are flat, a third
/// carry a sinusoidal grating (period 3–28 px, amplitude 0.05–0.25), a third a linear shading.
pub fn dead_leaves(seed: u64, size: u32) -> RgbImage {
    let mut rng = SplitMix64::derive(seed, &[0xDEAD_1EAF]);
    let ss = f64::from(SUPERSAMPLE);
    let n = (size * SUPERSAMPLE) as usize;
    let mut canvas: Vec<Option<[f32; 3]>> = vec![None; n * n];
    let mut uncovered = n * n;
    let (rmin, rmax) = (RADIUS.0 * ss, RADIUS.1 * ss);
    let (a, b) = (rmin.powi(-2), rmax.powi(-2));
    for _ in 0..MAX_LEAVES {
        if uncovered == 0 {
            break;
        }
        // Inverse CDF of p(r) ∝ r⁻³ on [rmin, rmax].
        let r = (a - rng.next_f64() * (a - b)).powf(-0.5);
        let cx = rng.next_f64() * n as f64;
        let cy = rng.next_f64() * n as f64;
        let grey = 0.05 + 0.9 * rng.next_f64();
        let chroma = 0.05 + 0.2 * rng.next_f64();
        let colour: [f64; 3] = std::array::from_fn(|_| grey + chroma * rng.normal());
        let surface = rng.below(3);
        let angle = rng.next_f64() * std::f64::consts::TAU;
        let period = (3.0 + 25.0 * rng.next_f64()) * ss;
        let (fx, fy) = (
            angle.cos() * std::f64::consts::TAU / period,
            angle.sin() * std::f64::consts::TAU / period,
        );
        let amplitude = 0.05 + 0.2 * rng.next_f64();
        let square = rng.below(3) == 0;
        let half = if square { 0.8 * r } else { r };
        let lo = |c: f64| (c - half).floor().max(0.0) as usize;
        let hi = |c: f64| ((c + half).ceil().max(0.0) as usize).min(n - 1);
        for y in lo(cy)..=hi(cy) {
            for x in lo(cx)..=hi(cx) {
                let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                let inside = if square {
                    dx.abs() <= half && dy.abs() <= half
                } else {
                    dx * dx + dy * dy <= r * r
                };
                let cell = &mut canvas[y * n + x];
                if !inside || cell.is_some() {
                    continue;
                }
                let t = match surface {
                    0 => 0.0,
                    1 => amplitude * (fx * dx + fy * dy).sin(),
                    // Shading: −amplitude/2 … +amplitude/2 across the leaf, along the grating's direction.
                    _ => 0.5 * amplitude * (angle.cos() * dx + angle.sin() * dy) / r.max(1.0),
                };
                *cell = Some(std::array::from_fn(|c| {
                    (colour[c] + t).clamp(0.0, 1.0) as f32
                }));
                uncovered -= 1;
            }
        }
    }
    let mut img = RgbImage::new(size, size);
    let area = (SUPERSAMPLE * SUPERSAMPLE) as f32;
    for (x, y, px) in img.enumerate_pixels_mut() {
        let mut sum = [0f32; 3];
        for dy in 0..SUPERSAMPLE {
            for dx in 0..SUPERSAMPLE {
                let i = ((y * SUPERSAMPLE + dy) as usize) * n + (x * SUPERSAMPLE + dx) as usize;
                let v = canvas[i].unwrap_or([0.5; 3]);
                for c in 0..3 {
                    sum[c] += v[c];
                }
            }
        }
        *px = Rgb(std::array::from_fn(|c| {
            (sum[c] / area * 255.0).round().clamp(0.0, 255.0) as u8
        }));
    }
    img
}

/// The subject sentence of the dead-leaves pictures ("A photo of {subject}.").
pub const DEAD_LEAVES_SUBJECT: &str = "overlapping shapes";

/// `count` [`dead_leaves`] pictures of `size` px as [`Photo`]s named `leaves00`, `leaves01`, … (picture `i` is
/// seeded by `seed` and `i`), subject [`DEAD_LEAVES_SUBJECT`].
pub fn dead_leaves_photos(count: usize, size: u32, seed: u64) -> Vec<Photo> {
    (0..count)
        .map(|i| Photo {
            name: format!("leaves{i:02}"),
            subject: DEAD_LEAVES_SUBJECT.to_owned(),
            image: dead_leaves(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), size),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_covered_and_varied() {
        let a = dead_leaves(3, 96);
        assert_eq!(a, dead_leaves(3, 96), "same seed, same picture");
        assert_ne!(a, dead_leaves(4, 96), "another seed, another picture");
        // Edges and flat parts (detail like a photo's, 0.01–0.1), and many colours (leaves of all sizes).
        let d = crate::synth::crop_detail(&a);
        assert!((0.01..0.15).contains(&d), "detail {d}");
        let distinct: std::collections::BTreeSet<[u8; 3]> = a.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 500, "{} colours", distinct.len());
    }

    #[test]
    fn photos_are_named_and_distinct() {
        let p = dead_leaves_photos(3, 64, 7);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["leaves00", "leaves01", "leaves02"]);
        assert_ne!(p[0].image, p[1].image);
        assert_eq!(p[2].image.dimensions(), (64, 64));
    }
}
