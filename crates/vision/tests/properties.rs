//! Properties of the geometric helpers on random sizes (the values themselves are checked against Pillow in
//! `pillow_cases.rs`).

use biqa_vision::{
    Preprocessor, PreprocessorConfig, Resample, ResizeMode, Rgb8Image, SizeSpec, center_crop,
    center_crop_size, expand_to_square, resize,
};
use proptest::prelude::*;

fn filter(i: u8) -> Resample {
    [
        Resample::Bicubic,
        Resample::Bilinear,
        Resample::Lanczos,
        Resample::Box,
        Resample::Hamming,
    ][usize::from(i % 5)]
}

fn image(w: u32, h: u32, seed: u32) -> Rgb8Image {
    let data = (0..w * h * 3)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect();
    Rgb8Image::new(w, h, data).expect("valid size")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn resize_gives_the_requested_size(w in 1u32..60, h in 1u32..60, ow in 1u32..80, oh in 1u32..80,
                                       f: u8, seed: u32) {
        let img = image(w, h, seed);
        let out = resize(&img, ow, oh, filter(f)).unwrap();
        prop_assert_eq!((out.width(), out.height()), (ow, oh));
        prop_assert_eq!(out.as_raw().len(), (ow * oh * 3) as usize);
    }

    #[test]
    fn constant_images_stay_constant(w in 1u32..40, h in 1u32..40, ow in 1u32..50, oh in 1u32..50,
                                     f: u8, rgb: [u8; 3]) {
        let img = Rgb8Image::new(w, h, rgb.repeat((w * h) as usize)).unwrap();
        let out = resize(&img, ow, oh, filter(f)).unwrap();
        prop_assert!(out.as_raw().chunks_exact(3).all(|p| p == rgb));
    }

    #[test]
    fn same_size_is_a_copy(w in 1u32..30, h in 1u32..30, f: u8, seed: u32) {
        let img = image(w, h, seed);
        prop_assert_eq!(resize(&img, w, h, filter(f)).unwrap(), img);
    }

    #[test]
    fn crop_size_is_predicted(w in 1u32..50, h in 1u32..50, cw in 1u32..60, ch in 1u32..60, seed: u32) {
        let img = image(w, h, seed);
        let out = center_crop(&img, ch, cw);
        prop_assert_eq!(center_crop_size(w, h, ch, cw), (u64::from(out.width()), u64::from(out.height())));
        if cw <= w && ch <= h {
            prop_assert_eq!((out.width(), out.height()), (cw, ch));
            // the crop starts at ((W - cw) // 2, (H - ch) // 2)
            prop_assert_eq!(out.pixel(0, 0), img.pixel((w - cw) / 2, (h - ch) / 2));
        }
    }

    #[test]
    fn square_padding_keeps_the_image(w in 1u32..50, h in 1u32..50, seed: u32, bg: [u8; 3]) {
        let img = image(w, h, seed);
        let sq = expand_to_square(&img, bg);
        let side = w.max(h);
        prop_assert_eq!((sq.width(), sq.height()), (side, side));
        let (ox, oy) = if w > h { (0, (w - h) / 2) } else { ((h - w) / 2, 0) };
        for y in 0..side {
            for x in 0..side {
                let inside = x >= ox && x < ox + w && y >= oy && y < oy + h;
                let want = if inside { img.pixel(x - ox, y - oy) } else { Some(bg) };
                prop_assert_eq!(sq.pixel(x, y), want);
            }
        }
    }

    #[test]
    fn every_mode_gives_the_crop_size(w in 1u32..70, h in 1u32..70, size in 8u32..40, seed: u32, m in 0u8..3) {
        let cfg = PreprocessorConfig {
            size: SizeSpec::Int(size),
            crop_size: SizeSpec::Int(size),
            ..PreprocessorConfig::default()
        };
        let mode = [ResizeMode::Pad, ResizeMode::Resize, ResizeMode::ShortestEdgeCenterCrop][usize::from(m)];
        let p = Preprocessor::new(&cfg, mode).unwrap();
        let out = p.preprocess_image(&image(w, h, seed)).unwrap();
        prop_assert_eq!(out.shape(), [3, size as usize, size as usize]);
        prop_assert!(out.pixel_values().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn pad_of_a_square_image_is_a_plain_resize() {
    let img = image(30, 30, 7);
    let cfg = PreprocessorConfig {
        size: SizeSpec::Int(17),
        crop_size: SizeSpec::Int(17),
        ..PreprocessorConfig::default()
    };
    let pad = Preprocessor::new(&cfg, ResizeMode::Pad).unwrap();
    let stretch = Preprocessor::new(&cfg, ResizeMode::Resize).unwrap();
    let a = pad.resize_u8(&img).unwrap();
    assert_eq!(a, stretch.resize_u8(&img).unwrap());
    assert_eq!(a, resize(&img, 17, 17, Resample::Bicubic).unwrap());
}
