//! Decoding image files to 8-bit RGB the way `PIL.Image.open(path).convert("RGB")` does.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::Rgb8Image;
use crate::error::{IN_MEMORY, Result, VisionError};

/// Pillow's default `Image.MAX_IMAGE_PIXELS` (`int(1024 * 1024 * 1024 // 4 // 3)`).
pub const PILLOW_MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// Reads and decodes an image file to RGB (see [`decode_rgb`] for the conversion rules).
///
/// # Errors
/// [`VisionError::Io`] when the file cannot be read, and every error of [`decode_rgb`], all naming `path`.
pub fn load_rgb(path: impl AsRef<Path>, max_pixels: u64) -> Result<Rgb8Image> {
    let path = path.as_ref();
    let bytes =
        biqa_core::read_bytes(path, biqa_core::DATA_LIMIT).map_err(|source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    decode_rgb_named(&bytes, max_pixels, path)
}

/// Decodes an encoded image (PNG, JPEG, BMP, TIFF, WebP, recognised by content) to 8-bit RGB with Pillow's
/// `convert("RGB")` rules:
///
/// * grey (`L`) is replicated to the three channels; 1-, 2- and 4-bit grey are first scaled to 0..=255;
/// * alpha is dropped without compositing (`RGBA`, `LA`, palette entries with transparency);
/// * palette images take their palette colours;
/// * 16-bit RGB / RGBA / grey+alpha keep the high byte (Pillow unpacks them with `RGB;16B`, `RGBA;16B`, ...);
/// * 16-bit grey (Pillow's `I;16`, also with a `tRNS` colour key) is **clamped** to 255, not scaled
///   (Pillow's `I;16 → RGB` conversion);
/// * 32-bit float images are truncated and clamped to 0..=255 (Pillow's `F → RGB`).
///
/// EXIF orientation is not applied (neither does `Image.open`), nor are ICC profiles or PNG gamma.
///
/// # Errors
/// * [`VisionError::UnsupportedFormat`]: not one of the supported formats (e.g. not an image at all);
/// * [`VisionError::TooManyPixels`]: width × height above `max_pixels` (checked from the header, before
///   decoding the pixels);
/// * [`VisionError::Decode`]: truncated or corrupt data; [`VisionError::DecoderPanic`] if the decoder panicked;
/// * [`VisionError::EmptyImage`]: a zero width or height.
///
/// Errors name the image as [`IN_MEMORY`]; [`load_rgb`] names the file.
pub fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<Rgb8Image> {
    decode_rgb_named(bytes, max_pixels, Path::new(IN_MEMORY))
}

pub(crate) fn decode_rgb_named(bytes: &[u8], max_pixels: u64, origin: &Path) -> Result<Rgb8Image> {
    let unsupported = |detected: Option<String>| VisionError::UnsupportedFormat {
        path: origin.to_path_buf(),
        detected,
    };
    let format = image::guess_format(bytes).map_err(|_| unsupported(None))?;
    if !matches!(
        format,
        ImageFormat::Png
            | ImageFormat::Jpeg
            | ImageFormat::Bmp
            | ImageFormat::Tiff
            | ImageFormat::WebP
    ) {
        return Err(unsupported(Some(format!("{format:?}"))));
    }
    let decode_err = |source: image::ImageError| VisionError::Decode {
        path: origin.to_path_buf(),
        source,
    };
    if format == ImageFormat::Jpeg && jpeg_is_truncated(bytes) {
        // libjpeg (Pillow) reports "image file is truncated"; the image crate's decoder would return the
        // partly decoded image instead.
        return Err(decode_err(image::ImageError::Decoding(
            image::error::DecodingError::new(
                image::error::ImageFormatHint::Exact(ImageFormat::Jpeg),
                "truncated: no end-of-image marker after the last scan",
            ),
        )));
    }
    let decoded = catch_unwind(AssertUnwindSafe(|| -> Result<DynamicImage> {
        // The header alone first, with no size limits (some decoders check those against the declared size: a
        // decompression bomb is refused by its declared size, as in Pillow, before any pixel is decoded) but with
        // the ancillary-data budget, so that a huge compressed chunk read with the header (an iCCP profile) cannot
        // inflate past it.
        let mut probe = ImageReader::with_format(Cursor::new(bytes), format);
        let mut header_limits = Limits::no_limits();
        header_limits.max_alloc = Some(ANCILLARY_BUDGET);
        probe.limits(header_limits);
        let (width, height) = probe.into_dimensions().map_err(decode_err)?;
        let check = |(w, h): (u32, u32)| {
            check_pixels(
                origin,
                "decoded image",
                u64::from(w),
                u64::from(h),
                max_pixels,
            )
        };
        check((width, height))?;
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = Limits::default();
        // Room for this image at 16 bytes per pixel (RGBA f32, the widest decode) plus decoder scratch space and
        // the ancillary chunks.
        limits.max_alloc = Some(
            (u64::from(width) * u64::from(height))
                .saturating_mul(16)
                .saturating_add(ANCILLARY_BUDGET),
        );
        reader.limits(limits);
        let decoder = reader.into_decoder().map_err(decode_err)?;
        let (width, height) = decoder.dimensions();
        check((width, height))?;
        if width == 0 || height == 0 {
            return Err(VisionError::EmptyImage {
                path: origin.to_path_buf(),
                width: u64::from(width),
                height: u64::from(height),
            });
        }
        DynamicImage::from_decoder(decoder).map_err(decode_err)
    }));
    let image = match decoded {
        Ok(result) => result?,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            return Err(VisionError::DecoderPanic {
                path: origin.to_path_buf(),
                message,
            });
        }
    };
    let grey16_is_clamped = format != ImageFormat::Png || png_is_16bit_grey(bytes);
    Ok(to_rgb8(image, grey16_is_clamped))
}

/// The memory budget of a decode beyond the pixels: decoder scratch space and ancillary chunks (ICC profiles,
/// text, EXIF), 64 MiB. An image whose header chunks inflate past it (a zlib bomb in an `iCCP` chunk) is refused
/// while its header is read; the pixels have their own limit, [`crate::PILLOW_MAX_IMAGE_PIXELS`].
pub const ANCILLARY_BUDGET: u64 = 64 << 20;

/// True when the JPEG's segment structure ends before an end-of-image marker (`FF D9`) closes its last scan. The
/// segments are walked by their lengths from SOI (so an embedded thumbnail inside APP1 is skipped whole), and each
/// scan's entropy-coded data runs to the next marker that is neither stuffing (`FF 00`) nor a restart (`FF D0`–`D7`).
/// Whatever follows the EOI is ignored, as Pillow does, even bytes that look like markers.
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let n = bytes.len();
    let mut pos = 2; // after SOI
    loop {
        // The next marker: one or more 0xFF fill bytes, then a code.
        while pos < n && bytes[pos] != 0xFF {
            pos += 1;
        }
        while pos + 1 < n && bytes[pos + 1] == 0xFF {
            pos += 1;
        }
        if pos + 1 >= n {
            return true;
        }
        let marker = bytes[pos + 1];
        match marker {
            0xD9 => return false,
            0x01 | 0xD0..=0xD8 => {
                pos += 2;
                continue;
            }
            _ => {}
        }
        if pos + 3 >= n {
            return true;
        }
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        let Some(end) = (pos + 2).checked_add(len).filter(|&e| e <= n && len >= 2) else {
            return true;
        };
        pos = end;
        if marker == 0xDA {
            // Entropy-coded data up to the next real marker.
            loop {
                if pos + 1 >= n {
                    return true;
                }
                if bytes[pos] == 0xFF {
                    let next = bytes[pos + 1];
                    if next != 0x00 && !(0xD0..=0xD7).contains(&next) && next != 0xFF {
                        break;
                    }
                }
                pos += 1;
            }
        }
    }
}

/// True when the PNG header says 16-bit greyscale (colour type 0): the image crate turns a `tRNS` colour key
/// into an alpha channel, Pillow keeps `I;16` (clamped, not shifted, when converted to RGB).
fn png_is_16bit_grey(bytes: &[u8]) -> bool {
    // signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4) + bit depth + colour type
    bytes.len() > 25 && &bytes[12..16] == b"IHDR" && bytes[24] == 16 && bytes[25] == 0
}

/// Returns an error when `width * height > limit`.
pub(crate) fn check_pixels(
    origin: &Path,
    stage: &'static str,
    width: u64,
    height: u64,
    limit: u64,
) -> Result<()> {
    if u128::from(width) * u128::from(height) > u128::from(limit) {
        return Err(VisionError::TooManyPixels {
            path: origin.to_path_buf(),
            stage,
            width,
            height,
            limit,
        });
    }
    Ok(())
}

/// Pillow's `convert("RGB")` for every pixel layout the image crate produces.
///
/// `grey16_alpha_is_key`: a 16-bit grey+alpha image whose alpha came from a `tRNS` colour key (a PNG of colour
/// type 0), which Pillow treats as `I;16`.
fn to_rgb8(image: DynamicImage, grey16_alpha_is_key: bool) -> Rgb8Image {
    let (w, h) = (image.width(), image.height());
    let n = w as usize * h as usize;
    let mut out = Vec::with_capacity(n * 3);
    match image {
        DynamicImage::ImageRgb8(img) => return Rgb8Image::from_parts(w, h, img.into_raw()),
        DynamicImage::ImageRgba8(img) => {
            for p in img.as_raw().chunks_exact(4) {
                out.extend_from_slice(&p[..3]);
            }
        }
        DynamicImage::ImageLuma8(img) => {
            for &v in img.as_raw() {
                out.extend_from_slice(&[v, v, v]);
            }
        }
        DynamicImage::ImageLumaA8(img) => {
            for p in img.as_raw().chunks_exact(2) {
                out.extend_from_slice(&[p[0], p[0], p[0]]);
            }
        }
        DynamicImage::ImageLuma16(img) => {
            for &v in img.as_raw() {
                let v = clamp16(v);
                out.extend_from_slice(&[v, v, v]);
            }
        }
        DynamicImage::ImageLumaA16(img) => {
            for p in img.as_raw().chunks_exact(2) {
                let v = if grey16_alpha_is_key {
                    clamp16(p[0])
                } else {
                    high(p[0])
                };
                out.extend_from_slice(&[v, v, v]);
            }
        }
        DynamicImage::ImageRgb16(img) => {
            out.extend(img.as_raw().iter().map(|&v| high(v)));
        }
        DynamicImage::ImageRgba16(img) => {
            for p in img.as_raw().chunks_exact(4) {
                out.extend_from_slice(&[high(p[0]), high(p[1]), high(p[2])]);
            }
        }
        DynamicImage::ImageRgb32F(img) => {
            out.extend(img.as_raw().iter().map(|&v| float8(v)));
        }
        DynamicImage::ImageRgba32F(img) => {
            for p in img.as_raw().chunks_exact(4) {
                out.extend_from_slice(&[float8(p[0]), float8(p[1]), float8(p[2])]);
            }
        }
        other => return Rgb8Image::from_parts(w, h, other.to_rgb8().into_raw()),
    }
    Rgb8Image::from_parts(w, h, out)
}

/// Pillow `I;16 → RGB`: values above 255 become 255.
fn clamp16(v: u16) -> u8 {
    v.min(255) as u8
}

/// Pillow's 16-bit unpackers (`RGB;16B`, ...): the high byte.
fn high(v: u16) -> u8 {
    (v >> 8) as u8
}

/// Pillow `F → RGB`: truncation towards zero, clamped to 0..=255 (NaN gives 0).
fn float8(v: f32) -> u8 {
    v.clamp(0.0, 255.0) as u8
}
