//! Preprocessing against the golden fixtures of the original mPLUG-Owl2 / Q-Align code (Pillow 13,
//! transformers 4.31): `tests/fixtures/tiny-owl2/expected` and `tests/fixtures/owl2-components/inputs.safetensors`.
//! `resized_u8` must match bit for bit, `pixel_values` to 1e-6.

use anyhow::Result;
use biqa_testkit::{Arrays, fixture, max_abs_diff, u8_diff};
use biqa_vision::{
    PixelBatch, Preprocessor, PreprocessorConfig, ResizeMode, SizeSpec, expand_to_square, load_rgb,
};

const IMAGES: [&str; 2] = ["astronaut_96x96", "coffee_96x64"];

fn tiny_owl2() -> Result<Preprocessor> {
    Ok(Preprocessor::from_json_file(
        fixture("tiny-owl2/preprocessor_config.json"),
        ResizeMode::Pad,
    )?)
}

#[test]
fn tiny_owl2_config_is_read() -> Result<()> {
    let cfg = PreprocessorConfig::from_json_file(fixture("tiny-owl2/preprocessor_config.json"))?;
    assert_eq!(cfg.size, SizeSpec::Int(56));
    assert_eq!(cfg.crop_size, SizeSpec::Int(56));
    assert_eq!(cfg.resample, 3);
    let proc = tiny_owl2()?;
    // expected.json: preprocessing.pad_background_rgb
    assert_eq!(proc.background(), [122, 116, 104]);
    assert_eq!(proc.crop_size(), Some((56, 56)));
    Ok(())
}

#[test]
fn tiny_owl2_resized_u8_and_pixel_values() -> Result<()> {
    let proc = tiny_owl2()?;
    let expected = Arrays::fixture("tiny-owl2/expected/expected.safetensors")?;
    let facts: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture(
        "tiny-owl2/expected/expected.json",
    ))?)?;
    for name in IMAGES {
        let out = proc.preprocess_path(fixture(&format!("tiny-owl2/images/{name}.png")))?;
        let (shape, u8s) = expected.shaped_u8(&format!("resized_u8.{name}"))?;
        assert_eq!(shape, [56, 56, 3]);
        assert_eq!(
            (out.resized().width(), out.resized().height()),
            (56, 56),
            "{name}"
        );
        assert_eq!(
            u8_diff(out.resized().as_raw(), &u8s),
            (0, 0),
            "{name}: resized_u8"
        );
        let (shape, pv) = expected.shaped_f32(&format!("pixel_values.{name}"))?;
        assert_eq!(shape, [1, 3, 56, 56]);
        let d = max_abs_diff(out.pixel_values(), &pv);
        println!("{name}: pixel_values max |diff| {d:e}");
        assert!(d <= 1e-6, "{name}: pixel_values off by {d}");
        let sum: f64 = out.pixel_values().iter().map(|&v| f64::from(v)).sum();
        let want = facts["preprocessing"]["images"][name]["pixel_values_sum"]
            .as_f64()
            .unwrap();
        assert!((sum - want).abs() < 1e-3, "{name}: sum {sum} vs {want}");
    }
    Ok(())
}

#[test]
fn tiny_owl2_batch_equals_single_images() -> Result<()> {
    let proc = tiny_owl2()?;
    let paths: Vec<_> = IMAGES
        .iter()
        .map(|n| fixture(&format!("tiny-owl2/images/{n}.png")))
        .collect();
    let batch = proc.preprocess_paths(&paths)?;
    assert_eq!(batch.shape(), [2, 3, 56, 56]);
    let expected = Arrays::fixture("tiny-owl2/expected/expected.safetensors")?;
    for (i, name) in IMAGES.iter().enumerate() {
        let (_, pv) = expected.shaped_f32(&format!("pixel_values.{name}"))?;
        assert!(max_abs_diff(batch.image(i).unwrap(), &pv) <= 1e-6);
    }
    Ok(())
}

fn components() -> Result<Preprocessor> {
    // owl2-components: CLIP mean/std, 56, bicubic (see its README: "Inputs").
    let cfg = PreprocessorConfig {
        size: SizeSpec::Int(56),
        crop_size: SizeSpec::Int(56),
        ..PreprocessorConfig::default()
    };
    Ok(Preprocessor::new(&cfg, ResizeMode::Pad)?)
}

#[test]
fn components_padded_image_matches_expand2square() -> Result<()> {
    let img = load_rgb(fixture("owl2-components/image.png"), u64::MAX)?;
    assert_eq!((img.width(), img.height()), (70, 50));
    let padded = expand_to_square(&img, [122, 116, 104]);
    let want = load_rgb(fixture("owl2-components/image_padded.png"), u64::MAX)?;
    assert_eq!((padded.width(), padded.height()), (70, 70));
    assert_eq!(padded, want);
    Ok(())
}

#[test]
fn components_resized_u8_pixel_values_and_batch() -> Result<()> {
    let proc = components()?;
    let inputs = Arrays::fixture("owl2-components/inputs.safetensors")?;
    let one = proc.preprocess_path(fixture("owl2-components/image.png"))?;
    let (shape, u8s) = inputs.shaped_u8("resized_u8")?;
    assert_eq!(shape, [56, 56, 3]);
    assert_eq!(u8_diff(one.resized().as_raw(), &u8s), (0, 0));
    let (shape, pv) = inputs.shaped_f32("pixel_values")?;
    assert_eq!(shape, [1, 3, 56, 56]);
    let d = max_abs_diff(one.pixel_values(), &pv);
    assert!(d <= 1e-6, "pixel_values off by {d}");

    let batch = proc.preprocess_paths(&[
        fixture("owl2-components/image.png"),
        fixture("owl2-components/image2.png"),
    ])?;
    let (shape, bpv) = inputs.shaped_f32("batch_pixel_values")?;
    assert_eq!(shape, [2, 3, 56, 56]);
    assert_eq!(batch.shape(), [2, 3, 56, 56]);
    let d = max_abs_diff(batch.data(), &bpv);
    println!("owl2-components batch_pixel_values max |diff| {d:e}");
    assert!(d <= 1e-6, "batch_pixel_values off by {d}");
    // the batch row 0 is the single image
    assert_eq!(batch.image(0).unwrap(), one.pixel_values());
    Ok(())
}

#[test]
fn batch_to_tensor_keeps_shape_and_values() -> Result<()> {
    let proc = components()?;
    let batch = proc.preprocess_paths(&[
        fixture("owl2-components/image.png"),
        fixture("owl2-components/image2.png"),
    ])?;
    let device = burn::tensor::Device::flex();
    let t = batch.to_tensor(&device);
    assert_eq!(t.dims(), [2, 3, 56, 56]);
    let back = t.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(back, batch.data());
    let single = proc
        .preprocess_path(fixture("owl2-components/image.png"))?
        .into_batch();
    assert_eq!(single.shape(), [1, 3, 56, 56]);
    let t1 = single.clone().into_tensor(&device);
    assert_eq!(t1.dims(), [1, 3, 56, 56]);
    let stacked = PixelBatch::from_images(&[
        proc.preprocess_path(fixture("owl2-components/image.png"))?,
        proc.preprocess_path(fixture("owl2-components/image2.png"))?,
    ])?;
    assert_eq!(stacked, batch);
    Ok(())
}
