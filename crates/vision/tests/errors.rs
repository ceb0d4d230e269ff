//! Bad input gives a typed error that names the file, never a panic.

use std::path::{Path, PathBuf};

use anyhow::Result;
use biqa_testkit::fixture;
use biqa_vision::{
    PILLOW_MAX_IMAGE_PIXELS, Preprocessor, PreprocessorConfig, ResizeMode, Rgb8Image, SizeSpec,
    VisionError, decode_rgb, load_rgb,
};
use proptest::prelude::*;

fn proc(mode: ResizeMode) -> Preprocessor {
    let cfg = PreprocessorConfig {
        size: SizeSpec::Int(56),
        crop_size: SizeSpec::Int(56),
        ..PreprocessorConfig::default()
    };
    Preprocessor::new(&cfg, mode).expect("valid config")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("writable temp dir");
    p
}

fn png_bytes() -> Vec<u8> {
    std::fs::read(fixture("pillow-cases/images/rgb_64x48.png")).expect("fixture")
}

/// The error's message names the file.
fn names(err: &VisionError, path: &Path) -> bool {
    err.to_string().contains(&path.display().to_string())
}

#[test]
fn truncated_png_is_a_decode_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bytes = png_bytes();
    for cut in [bytes.len() / 2, bytes.len() - 20, 60] {
        let p = write(dir.path(), "truncated.png", &bytes[..cut]);
        let err = load_rgb(&p, PILLOW_MAX_IMAGE_PIXELS).unwrap_err();
        assert!(
            matches!(&err, VisionError::Decode { path, .. } if path == &p),
            "{err:?}"
        );
        assert!(names(&err, &p), "{err}");
        let err = proc(ResizeMode::Pad).preprocess_path(&p).unwrap_err();
        assert!(matches!(&err, VisionError::Decode { path, .. } if path == &p));
    }
    Ok(())
}

#[test]
fn corrupt_png_is_a_decode_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut bytes = png_bytes();
    // Garbage over the compressed pixel data, keeping the signature and the IHDR chunk.
    let n = bytes.len();
    for (i, b) in bytes[60..n - 12].iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    let p = write(dir.path(), "corrupt.png", &bytes);
    let err = load_rgb(&p, PILLOW_MAX_IMAGE_PIXELS).unwrap_err();
    assert!(
        matches!(&err, VisionError::Decode { path, .. } if path == &p),
        "{err:?}"
    );
    assert!(names(&err, &p));

    // A PNG signature followed by nonsense.
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0x42; 64]);
    let p = write(dir.path(), "header.png", &bytes);
    let err = load_rgb(&p, PILLOW_MAX_IMAGE_PIXELS).unwrap_err();
    assert!(
        matches!(&err, VisionError::Decode { path, .. } if path == &p),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_text_file_is_not_an_image() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = write(
        dir.path(),
        "notes.png",
        b"this is not an image, whatever its name says\n",
    );
    let err = load_rgb(&p, PILLOW_MAX_IMAGE_PIXELS).unwrap_err();
    assert!(
        matches!(&err, VisionError::UnsupportedFormat { path, detected: None } if path == &p),
        "{err:?}"
    );
    assert!(names(&err, &p));
    let empty = write(dir.path(), "empty.jpg", b"");
    let err = load_rgb(&empty, PILLOW_MAX_IMAGE_PIXELS).unwrap_err();
    assert!(matches!(&err, VisionError::UnsupportedFormat { path, .. } if path == &empty));
    // A known but unsupported format (GIF) says what it is.
    let gif = write(
        dir.path(),
        "anim.gif",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    );
    let err = load_rgb(&gif, PILLOW_MAX_IMAGE_PIXELS).unwrap_err();
    assert!(
        matches!(
            &err,
            VisionError::UnsupportedFormat {
                detected: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn too_many_pixels_is_refused() -> Result<()> {
    let src = fixture("pillow-cases/images/rgb_64x48.png");
    // the decoded image: 64 * 48 = 3072 pixels
    let err = proc(ResizeMode::Pad)
        .with_max_pixels(3071)
        .preprocess_path(&src)
        .unwrap_err();
    match &err {
        VisionError::TooManyPixels {
            path,
            stage,
            width,
            height,
            limit,
        } => {
            assert_eq!(path, &src);
            assert_eq!(*stage, "decoded image");
            assert_eq!((*width, *height, *limit), (64, 48, 3071));
        }
        other => panic!("{other:?}"),
    }
    assert!(names(&err, &src));
    assert!(load_rgb(&src, 3072).is_ok());

    // the expand2square canvas of a 300x1 image: 90000 pixels
    let wide = fixture("pillow-cases/images/rgb_300x1.png");
    let err = proc(ResizeMode::Pad)
        .with_max_pixels(50_000)
        .preprocess_path(&wide)
        .unwrap_err();
    assert!(
        matches!(&err, VisionError::TooManyPixels { stage: "padded canvas", path, .. } if path == &wide),
        "{err:?}"
    );
    // the shortest-edge resize of a 1x300 image: 56 x 16800
    let tall = fixture("pillow-cases/images/rgb_1x300.png");
    let err = proc(ResizeMode::ShortestEdgeCenterCrop)
        .with_max_pixels(500_000)
        .preprocess_path(&tall)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            VisionError::TooManyPixels {
                stage: "resized image",
                width: 56,
                height: 16800,
                ..
            }
        ),
        "{err:?}"
    );
    // in-memory decoding with a limit
    let err = decode_rgb(&std::fs::read(&src)?, 100).unwrap_err();
    assert!(matches!(err, VisionError::TooManyPixels { .. }));
    Ok(())
}

#[test]
fn a_huge_declared_size_is_refused_before_decoding() -> Result<()> {
    // A valid PNG header declaring 100000 x 100000 pixels and no data: refused by the default limit.
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(&ihdr);
    bytes.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let idat: &[u8] = b"\x78\x9c\x03\x00\x00\x00\x00\x01";
    for (tag, data) in [(&b"IDAT"[..], idat), (&b"IEND"[..], &b""[..])] {
        let mut chunk = tag.to_vec();
        chunk.extend_from_slice(data);
        bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&chunk);
        bytes.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    let dir = tempfile::tempdir()?;
    let p = write(dir.path(), "bomb.png", &bytes);
    let err = load_rgb(&p, PILLOW_MAX_IMAGE_PIXELS).unwrap_err();
    assert!(
        matches!(
            &err,
            VisionError::TooManyPixels {
                stage: "decoded image",
                width: 100_000,
                ..
            }
        ),
        "{err:?}"
    );
    Ok(())
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_missing_file_is_an_io_error() {
    let p = fixture("pillow-cases/images/does_not_exist.png");
    let err = proc(ResizeMode::Pad).preprocess_path(&p).unwrap_err();
    match &err {
        VisionError::Io { path, source } => {
            assert_eq!(path, &p);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(names(&err, &p));
    // in a batch, the failing file is named
    let ok = fixture("pillow-cases/images/rgb_64x48.png");
    let err = proc(ResizeMode::Pad)
        .preprocess_paths(&[ok, p.clone()])
        .unwrap_err();
    assert!(matches!(&err, VisionError::Io { path, .. } if path == &p));
    let none: [&str; 0] = [];
    assert!(matches!(
        proc(ResizeMode::Pad).preprocess_paths(&none),
        Err(VisionError::EmptyBatch)
    ));
}

#[test]
fn batches_without_crop_must_share_a_shape() {
    let cfg = PreprocessorConfig {
        size: SizeSpec::Int(20),
        do_center_crop: false,
        ..PreprocessorConfig::default()
    };
    let p = Preprocessor::new(&cfg, ResizeMode::ShortestEdgeCenterCrop).unwrap();
    let a = fixture("pillow-cases/images/rgb_64x48.png");
    let b = fixture("pillow-cases/images/rgb_37x23.png");
    let err = p.preprocess_paths(&[a, b.clone()]).unwrap_err();
    assert!(
        matches!(&err, VisionError::BatchShapeMismatch { path, expected: [3, 20, 26], found: [3, 20, 32] } if path == &b),
        "{err:?}"
    );
}

#[test]
fn bad_configs_are_refused() -> Result<()> {
    for (json, what) in [
        (r#"{"resample": 0}"#, "nearest"),
        (r#"{"resample": 7}"#, "unknown"),
    ] {
        let err = Preprocessor::from_json_str(json, ResizeMode::Pad).unwrap_err();
        assert!(
            matches!(err, VisionError::UnsupportedResample { .. }),
            "{what}: {err:?}"
        );
    }
    for json in [
        r#"{"size": 0}"#,
        r#"{"crop_size": {"height": 0, "width": 3}}"#,
        r#"{"image_mean": [0.5, 0.5]}"#,
        r#"{"image_std": [0.5, 0.0, 0.5]}"#,
        r#"{"crop_size": {"shortest_edge": 3}}"#,
    ] {
        let err = Preprocessor::from_json_str(json, ResizeMode::Pad).unwrap_err();
        assert!(
            matches!(
                err,
                VisionError::InvalidPreprocessorValue { .. } | VisionError::ChannelCount { .. }
            ),
            "{json}: {err:?}"
        );
    }
    let err = Preprocessor::from_json_str(r#"{"size": "big"}"#, ResizeMode::Pad).unwrap_err();
    assert!(matches!(err, VisionError::ConfigParse { .. }), "{err:?}");
    let dir = tempfile::tempdir()?;
    let p = write(dir.path(), "preprocessor_config.json", b"{ not json");
    let err = Preprocessor::from_json_file(&p, ResizeMode::Pad).unwrap_err();
    assert!(matches!(&err, VisionError::ConfigParse { path, .. } if path == &p));
    assert!(names(&err, &p));
    let err = "squash".parse::<ResizeMode>().unwrap_err();
    assert!(matches!(err, VisionError::UnknownResizeMode { .. }));
    Ok(())
}

#[test]
fn empty_and_mismatched_buffers_are_errors() {
    assert!(matches!(
        Rgb8Image::new(3, 2, vec![0; 17]),
        Err(VisionError::ShapeMismatch { len: 17, .. })
    ));
    let empty = Rgb8Image::new(0, 5, vec![]).unwrap();
    assert!(matches!(
        proc(ResizeMode::Pad).preprocess_image(&empty),
        Err(VisionError::EmptyImage { .. })
    ));
    assert!(matches!(
        biqa_vision::resize(
            &Rgb8Image::new(2, 2, vec![0; 12]).unwrap(),
            0,
            3,
            biqa_vision::Resample::Bicubic
        ),
        Err(VisionError::EmptyImage { .. })
    ));
    assert!(matches!(
        biqa_vision::PixelBatch::new(vec![0.0; 5], [1, 3, 1, 2]),
        Err(VisionError::ShapeMismatch { .. })
    ));
}

#[test]
fn truncated_files_of_every_format_are_decode_errors() -> Result<()> {
    // Pillow raises "image file is truncated" for all of these (LOAD_TRUNCATED_IMAGES is off by default).
    let dir = tempfile::tempdir()?;
    for name in [
        "photo_64x48.jpg",
        "photo444_37x23.jpg",
        "grey_40x30.jpg",
        "rgb_64x48.png",
        "rgb16_30x20.png",
        "rgb_64x48.bmp",
        "rgb_64x48.tiff",
        "rgb_64x48.webp",
    ] {
        let bytes = std::fs::read(fixture(&format!("pillow-cases/images/{name}")))?;
        for cut in [bytes.len() / 2, bytes.len() * 9 / 10] {
            let p = write(dir.path(), &format!("cut_{cut}_{name}"), &bytes[..cut]);
            let err = load_rgb(&p, PILLOW_MAX_IMAGE_PIXELS).unwrap_err();
            assert!(
                matches!(&err, VisionError::Decode { path, .. } if path == &p),
                "{name} cut at {cut}: {err:?}"
            );
            assert!(names(&err, &p));
        }
    }
    // A JPEG with data appended after its end-of-image marker is still fine (Pillow ignores the tail).
    let mut bytes = std::fs::read(fixture("pillow-cases/images/photo_64x48.jpg"))?;
    bytes.extend_from_slice(b"trailing bytes after the image");
    let p = write(dir.path(), "tail.jpg", &bytes);
    assert!(load_rgb(&p, PILLOW_MAX_IMAGE_PIXELS).is_ok());
    Ok(())
}

/// Every fixture file, truncated anywhere or with a corrupted byte, gives `Ok` or an error, never a panic.
fn all_fixture_files() -> Vec<Vec<u8>> {
    let dir = fixture("pillow-cases/images");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn damaged_files_never_panic(file in 0usize..24, cut in 0.0f64..1.0, pos in 0.0f64..1.0, byte: u8) {
        let files = all_fixture_files();
        let bytes = &files[file % files.len()];
        let truncated = &bytes[..(bytes.len() as f64 * cut) as usize];
        let _ = decode_rgb(truncated, 1 << 20);
        let mut flipped = bytes.clone();
        let i = ((flipped.len() - 1) as f64 * pos) as usize;
        flipped[i] ^= byte | 1;
        if let Ok(img) = decode_rgb(&flipped, 1 << 20) {
            let _ = proc(ResizeMode::Pad).preprocess_image(&img);
        }
    }
}

/// A valid JPEG with bytes after its end-of-image marker opens (as in Pillow), with the same pixels, even when the
/// appended bytes look like a start-of-scan marker (issue #16: it was refused as "truncated").
#[test]
fn jpeg_with_trailing_bytes_after_eoi_opens() -> Result<()> {
    let src = fixture("pillow-cases/images/photo_64x48.jpg");
    let bytes = std::fs::read(&src)?;
    let want = decode_rgb(&bytes, PILLOW_MAX_IMAGE_PIXELS)?;
    for tail in [
        &b"trailing text"[..],
        &[0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 4, 5, 6][..],
    ] {
        let mut with_tail = bytes.clone();
        with_tail.extend_from_slice(tail);
        let got = decode_rgb(&with_tail, PILLOW_MAX_IMAGE_PIXELS)?;
        assert_eq!(got.as_raw(), want.as_raw());
    }
    // Cut inside the last scan, it is still refused.
    let cut = &bytes[..bytes.len() - 40];
    assert!(decode_rgb(cut, PILLOW_MAX_IMAGE_PIXELS).is_err());
    Ok(())
}

/// A fuzzing finding (fuzz/README.md): this 3 KB JPEG makes zune-jpeg's AVX2 IDCT panic on a slice bound
/// (`idct/avx2.rs:247`, zune-jpeg 0.5.15). biqa catches a decoder's panic and reports it as the file's typed
/// error, so one such image fails alone (and the process goes on).
#[test]
fn a_decoder_panic_is_the_file_s_typed_error() {
    let path = fixture("hostile/fuzz_zune_idct.jpg");
    let bytes = std::fs::read(&path).expect("fixture");
    let got = std::panic::catch_unwind(|| decode_rgb(&bytes, PILLOW_MAX_IMAGE_PIXELS));
    let result = got.expect("no panic escapes decode_rgb");
    // Where the CPU has no AVX2 the scalar IDCT may decode it: either way, no panic and no garbage size.
    if let Ok(img) = &result {
        assert!(u64::from(img.width()) * u64::from(img.height()) <= PILLOW_MAX_IMAGE_PIXELS);
    }
    if let Err(e) = load_rgb(&path, PILLOW_MAX_IMAGE_PIXELS) {
        assert!(e.to_string().contains("fuzz_zune_idct.jpg"), "{e}");
    }
}
