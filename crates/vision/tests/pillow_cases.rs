//! Cross-check against Pillow 13 (and transformers 4.31's CLIPImageProcessor) on the synthetic cases of
//! `tests/fixtures/pillow-cases` (made by `scripts/gen_pillow_cases.py`; see the README there).
//!
//! * decoding: every lossless file (PNG of every pixel layout, BMP, TIFF, WebP) decodes to exactly Pillow's
//!   `convert("RGB")`; JPEGs within [`JPEG_TOLERANCE`] (the image crate's decoder is not libjpeg-turbo);
//! * every case's `u8` output is bit-identical to Pillow, JPEG cases starting from Pillow's decoded pixels (with
//!   Pillow 13's pass order, and Pillow 12's where a case says `pass_order: horizontal_first`);
//! * the stored CLIPImageProcessor outputs match to 1e-6.

use anyhow::{Context, Result, anyhow};
use biqa_testkit::{Arrays, fixture, max_abs_diff, u8_diff};
use biqa_vision::{PassOrder, Preprocessor, PreprocessorConfig, ResizeMode, Rgb8Image, load_rgb};
use serde_json::Value;

/// Largest per-channel difference allowed between the image crate's JPEG decoder and Pillow's libjpeg-turbo
/// (measured: grey 1, 4:4:4 2, 4:2:0 3 where the chroma upsampling differs).
const JPEG_TOLERANCE: u8 = 3;
/// Largest mean absolute difference allowed for a JPEG.
const JPEG_MEAN_TOLERANCE: f64 = 0.5;

fn manifest() -> Result<Value> {
    let text = std::fs::read_to_string(fixture("pillow-cases/manifest.json"))?;
    Ok(serde_json::from_str(&text)?)
}

fn hwc_image(shape: &[usize], data: Vec<u8>) -> Result<Rgb8Image> {
    let [h, w, 3] = shape else {
        return Err(anyhow!("not HWC RGB: {shape:?}"));
    };
    Ok(Rgb8Image::new(
        u32::try_from(*w)?,
        u32::try_from(*h)?,
        data,
    )?)
}

#[test]
fn decoding_matches_pillow_convert_rgb() -> Result<()> {
    let m = manifest()?;
    let expected = Arrays::fixture("pillow-cases/expected.safetensors")?;
    let mut failures = Vec::new();
    let mut jpeg_worst = 0u8;
    let files = m["files"].as_array().context("files")?;
    assert!(files.len() >= 20);
    for f in files {
        let rel = f["file"].as_str().context("file")?;
        let img = load_rgb(fixture(&format!("pillow-cases/{rel}")), u64::MAX)
            .with_context(|| rel.to_owned())?;
        let (shape, want) = expected.shaped_u8(f["decoded"].as_str().context("decoded")?)?;
        let want = hwc_image(&shape, want)?;
        if (img.width(), img.height()) != (want.width(), want.height()) {
            failures.push(format!("{rel}: size {}x{}", img.width(), img.height()));
            continue;
        }
        let (n, worst) = u8_diff(img.as_raw(), want.as_raw());
        if f["lossy"].as_bool() == Some(true) {
            jpeg_worst = jpeg_worst.max(worst);
            let mean = img
                .as_raw()
                .iter()
                .zip(want.as_raw())
                .map(|(a, b)| f64::from(a.abs_diff(*b)))
                .sum::<f64>()
                / img.as_raw().len() as f64;
            println!(
                "{rel}: {n} of {} values differ, by up to {worst}, mean {mean:.3}",
                img.as_raw().len()
            );
            if worst > JPEG_TOLERANCE || mean > JPEG_MEAN_TOLERANCE {
                failures.push(format!(
                    "{rel}: {n} values differ, by up to {worst}, mean {mean}"
                ));
            }
        } else if n != 0 {
            failures.push(format!(
                "{rel} ({}): {n} values differ, by up to {worst}",
                f["pillow_mode"]
            ));
        }
    }
    println!("largest JPEG decode difference from libjpeg-turbo: {jpeg_worst}");
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn every_case_is_bit_exact_with_pillow() -> Result<()> {
    let m = manifest()?;
    let expected = Arrays::fixture("pillow-cases/expected.safetensors")?;
    let mut failures = Vec::new();
    let cases = m["cases"].as_array().context("cases")?;
    assert!(cases.len() >= 60);
    let mut with_pixel_values = 0;
    for c in cases {
        let name = c["name"].as_str().context("name")?;
        let mode: ResizeMode = c["mode"].as_str().context("mode")?.parse()?;
        let config: PreprocessorConfig = serde_json::from_value(c["config"].clone())?;
        let order = match c["pass_order"].as_str() {
            Some("pillow13") => PassOrder::Pillow13,
            Some("horizontal_first") => PassOrder::HorizontalFirst,
            other => return Err(anyhow!("{name}: pass_order {other:?}")),
        };
        let proc = Preprocessor::new(&config, mode)
            .with_context(|| name.to_owned())?
            .with_pass_order(order);
        let lossy = c["source"].as_str().is_some_and(|s| s.ends_with(".jpg"));
        let out = if lossy {
            // Start from Pillow's decoded pixels: the decoders differ, the resize must not.
            let (shape, data) = expected.shaped_u8(c["decoded"].as_str().context("decoded")?)?;
            proc.preprocess_image(&hwc_image(&shape, data)?)?
        } else {
            let src = c["source"].as_str().context("source")?;
            proc.preprocess_path(fixture(&format!("pillow-cases/{src}")))
                .with_context(|| name.to_owned())?
        };
        let (shape, want) =
            expected.shaped_u8(c["expected_u8"].as_str().context("expected_u8")?)?;
        let got = out.resized();
        if [got.height() as usize, got.width() as usize, 3] != shape[..] {
            failures.push(format!(
                "{name}: shape {}x{} vs {shape:?}",
                got.height(),
                got.width()
            ));
            continue;
        }
        let (n, worst) = u8_diff(got.as_raw(), &want);
        if n != 0 {
            failures.push(format!("{name}: {n} values differ, by up to {worst}"));
        }
        if let Some(key) = c.get("expected_pixel_values").and_then(Value::as_str) {
            with_pixel_values += 1;
            let (shape, pv) = expected.shaped_f32(key)?;
            assert_eq!(shape, out.shape());
            let d = max_abs_diff(out.pixel_values(), &pv);
            println!("{name}: pixel_values max |diff| {d:e}");
            if d > 1e-6 {
                failures.push(format!("{name}: pixel_values off by {d}"));
            }
        }
    }
    assert!(with_pixel_values >= 2);
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
    Ok(())
}
