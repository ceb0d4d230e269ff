//! Image preprocessing for mPLUG-Owl2 and its IQA descendants, bit-exact with Pillow + transformers.
//!
//! A [`Preprocessor`] is a `CLIPImageProcessor` (read from `preprocessor_config.json`) plus one of the three
//! ways the released code prepares an image ([`ResizeMode`]):
//!
//! | mode | used by | steps |
//! |---|---|---|
//! | [`ResizeMode::Pad`] | Q-Align / OneAlign `scorer.py`, mPLUG-Owl2 `process_images` with `image_aspect_ratio: pad` | `expand2square` on the original image with the background `int(mean * 255)` = (122, 116, 104), then the CLIP steps |
//! | [`ResizeMode::Resize`] | the mPLUG-Owl2 demo | stretch to `size` × `size` (or `height` × `width`), then the CLIP steps |
//! | [`ResizeMode::ShortestEdgeCenterCrop`] | Q-Instruct's scorer, plain `CLIPImageProcessor` | the CLIP steps |
//!
//! CLIP steps (transformers 4.31 `CLIPImageProcessor.preprocess`): resize the shortest edge to `size` with the long
//! edge `int(size * long / short)` ([`shortest_edge_size`]) using Pillow's resampler ([`resize`], bit-exact), center
//! crop with transformers' offsets ([`center_crop`]), then `x = float32(u8 * rescale_factor)` (product in `f64`)
//! and `(x - mean) / std` in `f32`, channels first.
//!
//! Decoding ([`load_rgb`]) converts every pixel layout to RGB as Pillow's `convert("RGB")` does and refuses images
//! above a pixel limit (Pillow's `MAX_IMAGE_PIXELS` by default, [`Preprocessor::with_max_pixels`]). The padded
//! canvas and the resized image are held to the same limit. No function panics on bad input.
//!
//! The mPLUG-Owl2 demo resizes to `max(W, H)` squared with Pillow's default filter before the processor resizes
//! again; [`ResizeMode::Resize`] does the single stretch to the processor's size instead.

mod config;
mod decode;
mod resample;

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use config::{CLIP_MEAN, CLIP_STD, ChannelValues, PreprocessorConfig, SizeSpec};
pub use decode::{ANCILLARY_BUDGET, PILLOW_MAX_IMAGE_PIXELS, decode_rgb, load_rgb};
pub use resample::{
    PassOrder, Resample, center_crop, center_crop_size, expand_to_square, resize,
    resize_with_order, shortest_edge_size,
};

use crate::error::{IN_MEMORY, Result, VisionError};
use decode::check_pixels;

// ============================================================================================ RGB image

/// An 8-bit RGB image, row-major HWC (`data[(y * width + x) * 3 + c]`), like `np.asarray(pil_rgb_image)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Rgb8Image {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl fmt::Debug for Rgb8Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rgb8Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Rgb8Image {
    /// An image from HWC bytes.
    ///
    /// # Errors
    /// [`VisionError::ShapeMismatch`] unless `data.len() == width * height * 3`.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        let expected = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(3));
        if expected != Some(data.len()) {
            return Err(VisionError::ShapeMismatch {
                len: data.len(),
                shape: vec![height as usize, width as usize, 3],
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Internal constructor for buffers whose length is right by construction.
    pub(crate) fn from_parts(width: u32, height: u32, data: Vec<u8>) -> Self {
        debug_assert_eq!(data.len(), width as usize * height as usize * 3);
        Self {
            width,
            height,
            data,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The HWC bytes.
    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }

    /// The HWC bytes, by value.
    pub fn into_raw(self) -> Vec<u8> {
        self.data
    }

    /// The pixel at column `x`, row `y` (`None` outside the image).
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }
}

// ============================================================================================ modes

/// How an image of any aspect ratio is brought to the model's square input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// `expand2square` with the mean colour at the original resolution, then resize (Q-Align / OneAlign).
    Pad,
    /// Stretch to the target size, ignoring the aspect ratio (mPLUG-Owl2 demo).
    Resize,
    /// Resize the shortest edge, keep the aspect ratio, center crop (CLIPImageProcessor; Q-Instruct).
    ShortestEdgeCenterCrop,
}

impl ResizeMode {
    /// The snake-case name (`pad`, `resize`, `shortest_edge_center_crop`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pad => "pad",
            Self::Resize => "resize",
            Self::ShortestEdgeCenterCrop => "shortest_edge_center_crop",
        }
    }
}

impl fmt::Display for ResizeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResizeMode {
    type Err = VisionError;

    /// Accepts the snake-case names and `crop` / `center_crop` for [`ResizeMode::ShortestEdgeCenterCrop`].
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pad" => Ok(Self::Pad),
            "resize" => Ok(Self::Resize),
            "shortest_edge_center_crop" | "center_crop" | "crop" => {
                Ok(Self::ShortestEdgeCenterCrop)
            }
            _ => Err(VisionError::UnknownResizeMode {
                value: s.to_string(),
            }),
        }
    }
}

/// The resize target of the processor, from the config's `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetSize {
    /// Shortest edge to this length, aspect ratio kept (an int `size` or `{"shortest_edge": n}`).
    ShortestEdge(u32),
    /// Exactly this size (`{"height": h, "width": w}`).
    Exact {
        /// Height in pixels.
        height: u32,
        /// Width in pixels.
        width: u32,
    },
}

impl TargetSize {
    /// `(width, height)` after resizing an image of `width` × `height`.
    pub fn output_size(self, width: u32, height: u32) -> (u64, u64) {
        match self {
            Self::ShortestEdge(s) => shortest_edge_size(width, height, s),
            Self::Exact { height, width } => (u64::from(width), u64::from(height)),
        }
    }

    /// `(width, height)` of the square / exact stretch of [`ResizeMode::Resize`].
    pub fn stretch_size(self) -> (u32, u32) {
        match self {
            Self::ShortestEdge(s) => (s, s),
            Self::Exact { height, width } => (width, height),
        }
    }
}

// ============================================================================================ processor

/// A validated, ready-to-run preprocessing pipeline. Cheap to clone and share across threads.
#[derive(Clone)]
pub struct Preprocessor {
    mode: ResizeMode,
    do_resize: bool,
    size: TargetSize,
    crop: Option<(u32, u32)>,
    filter: Resample,
    order: PassOrder,
    background: [u8; 3],
    max_pixels: u64,
    /// `lut[c][v]`: the normalised value of channel `c` for byte `v` (exactly the elementwise f32 arithmetic).
    lut: Box<[[f32; 256]; 3]>,
}

impl fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preprocessor")
            .field("mode", &self.mode)
            .field("do_resize", &self.do_resize)
            .field("size", &self.size)
            .field("crop", &self.crop)
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("background", &self.background)
            .field("max_pixels", &self.max_pixels)
            .finish_non_exhaustive()
    }
}

impl Preprocessor {
    /// A pipeline from a parsed config.
    ///
    /// # Errors
    /// [`VisionError::UnsupportedResample`] for an unknown / NEAREST filter,
    /// [`VisionError::InvalidPreprocessorValue`] for zero sizes, a zero std, non-finite mean/std or rescale
    /// factor, [`VisionError::ChannelCount`] for a mean/std of neither 1 nor 3 values.
    pub fn new(config: &PreprocessorConfig, mode: ResizeMode) -> Result<Self> {
        let filter = Resample::from_pil(config.resample)?;
        let size = match config.size {
            SizeSpec::Int(n) | SizeSpec::ShortestEdge { shortest_edge: n } => {
                TargetSize::ShortestEdge(n)
            }
            SizeSpec::HeightWidth { height, width } => TargetSize::Exact { height, width },
        };
        let crop = match config.crop_size {
            SizeSpec::Int(n) => (n, n),
            SizeSpec::HeightWidth { height, width } => (height, width),
            SizeSpec::ShortestEdge { .. } => {
                return Err(VisionError::InvalidPreprocessorValue {
                    key: "crop_size",
                    value: format!("{:?}", config.crop_size),
                    problem: "must be an int or {\"height\", \"width\"}",
                });
            }
        };
        let zero_size = match size {
            TargetSize::ShortestEdge(n) => n == 0,
            TargetSize::Exact { height, width } => height == 0 || width == 0,
        };
        if zero_size && (config.do_resize || mode == ResizeMode::Resize) {
            return Err(VisionError::InvalidPreprocessorValue {
                key: "size",
                value: format!("{:?}", config.size),
                problem: "has a zero side",
            });
        }
        if config.do_center_crop && (crop.0 == 0 || crop.1 == 0) {
            return Err(VisionError::InvalidPreprocessorValue {
                key: "crop_size",
                value: format!("{:?}", config.crop_size),
                problem: "has a zero side",
            });
        }
        let mean = config.image_mean.rgb("image_mean")?;
        let std = config.image_std.rgb("image_std")?;
        if config.do_normalize && std.iter().any(|&s| s as f32 == 0.0) {
            return Err(VisionError::InvalidPreprocessorValue {
                key: "image_std",
                value: format!("{std:?}"),
                problem: "has a zero",
            });
        }
        if config.do_rescale && !config.rescale_factor.is_finite() {
            return Err(VisionError::InvalidPreprocessorValue {
                key: "rescale_factor",
                value: config.rescale_factor.to_string(),
                problem: "is not finite",
            });
        }
        // mPLUG-Owl2: `tuple(int(x * 255) for x in image_processor.image_mean)`.
        let background = mean.map(|m| (m * 255.0).clamp(0.0, 255.0) as u8);
        let mut lut = Box::new([[0f32; 256]; 3]);
        for (c, table) in lut.iter_mut().enumerate() {
            let (m, s) = (mean[c] as f32, std[c] as f32);
            for (v, out) in table.iter_mut().enumerate() {
                // transformers `rescale`: uint8 * python float is a float64 product, then `.astype(float32)`.
                let x = if config.do_rescale {
                    (v as f64 * config.rescale_factor) as f32
                } else {
                    v as f32
                };
                // `normalize`: `(image - mean) / std` with float32 mean and std.
                *out = if config.do_normalize { (x - m) / s } else { x };
            }
        }
        Ok(Self {
            mode,
            do_resize: config.do_resize,
            size,
            crop: config.do_center_crop.then_some(crop),
            filter,
            order: PassOrder::default(),
            background,
            max_pixels: PILLOW_MAX_IMAGE_PIXELS,
            lut,
        })
    }

    /// The same pipeline with another resize mode (a scoring prompt whose released code preprocesses its own way).
    ///
    /// # Errors
    /// [`ResizeMode::Resize`] with a zero target size (which [`Preprocessor::new`] refuses too).
    pub fn with_mode(mut self, mode: ResizeMode) -> Result<Self> {
        let zero_size = match self.size {
            TargetSize::ShortestEdge(n) => n == 0,
            TargetSize::Exact { height, width } => height == 0 || width == 0,
        };
        if zero_size && (self.do_resize || mode == ResizeMode::Resize) {
            return Err(VisionError::InvalidPreprocessorValue {
                key: "size",
                value: format!("{:?}", self.size),
                problem: "has a zero side",
            });
        }
        self.mode = mode;
        Ok(self)
    }

    /// A pipeline from JSON text of a `preprocessor_config.json`.
    ///
    /// # Errors
    /// As [`PreprocessorConfig::from_json_str`] and [`Preprocessor::new`].
    pub fn from_json_str(json: &str, mode: ResizeMode) -> Result<Self> {
        Self::new(&PreprocessorConfig::from_json_str(json)?, mode)
    }

    /// A pipeline from a `preprocessor_config.json` file.
    ///
    /// # Errors
    /// As [`PreprocessorConfig::from_json_file`] and [`Preprocessor::new`].
    pub fn from_json_file(path: impl AsRef<Path>, mode: ResizeMode) -> Result<Self> {
        Self::new(&PreprocessorConfig::from_json_file(path)?, mode)
    }

    /// Sets the pixel limit (default [`PILLOW_MAX_IMAGE_PIXELS`]) for the decoded image, the padded canvas, the
    /// resized image and the crop.
    #[must_use]
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// Overrides the `expand2square` background (default `int(image_mean * 255)`).
    #[must_use]
    pub fn with_background(mut self, rgb: [u8; 3]) -> Self {
        self.background = rgb;
        self
    }

    /// Sets the resampler's pass order (default [`PassOrder::Pillow13`], the fixtures' Pillow;
    /// [`PassOrder::HorizontalFirst`] reproduces Pillow ≤ 12).
    #[must_use]
    pub fn with_pass_order(mut self, order: PassOrder) -> Self {
        self.order = order;
        self
    }

    /// The resampler's pass order.
    pub fn pass_order(&self) -> PassOrder {
        self.order
    }

    /// The resize mode.
    pub fn mode(&self) -> ResizeMode {
        self.mode
    }

    /// The resampling filter.
    pub fn filter(&self) -> Resample {
        self.filter
    }

    /// The resize target (used when `do_resize`, and always by [`ResizeMode::Resize`]).
    pub fn target_size(&self) -> TargetSize {
        self.size
    }

    /// The crop `(height, width)`, when `do_center_crop`.
    pub fn crop_size(&self) -> Option<(u32, u32)> {
        self.crop
    }

    /// The `expand2square` background colour.
    pub fn background(&self) -> [u8; 3] {
        self.background
    }

    /// The pixel limit.
    pub fn max_pixels(&self) -> u64 {
        self.max_pixels
    }

    /// Decodes an image file to RGB with this pipeline's pixel limit ([`load_rgb`]).
    ///
    /// # Errors
    /// As [`load_rgb`].
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Rgb8Image> {
        load_rgb(path, self.max_pixels)
    }

    /// The geometric part of the pipeline: the `u8` HWC image that is then rescaled and normalised (the
    /// `resized_u8` of the fixtures).
    ///
    /// # Errors
    /// [`VisionError::EmptyImage`], [`VisionError::TooManyPixels`] (padded canvas, resized image or crop above
    /// the limit), named [`IN_MEMORY`].
    pub fn resize_u8(&self, img: &Rgb8Image) -> Result<Rgb8Image> {
        self.resize_u8_named(img, Path::new(IN_MEMORY))
    }

    fn resize_u8_named(&self, img: &Rgb8Image, origin: &Path) -> Result<Rgb8Image> {
        if img.width == 0 || img.height == 0 {
            return Err(VisionError::EmptyImage {
                path: origin.to_path_buf(),
                width: u64::from(img.width),
                height: u64::from(img.height),
            });
        }
        let limit = self.max_pixels;
        let mut cur = Cow::Borrowed(img);
        match self.mode {
            ResizeMode::Pad => {
                if img.width != img.height {
                    let side = u64::from(img.width.max(img.height));
                    check_pixels(origin, "padded canvas", side, side, limit)?;
                    cur = Cow::Owned(expand_to_square(img, self.background));
                }
            }
            ResizeMode::Resize => {
                let (w, h) = self.size.stretch_size();
                check_pixels(origin, "resized image", u64::from(w), u64::from(h), limit)?;
                if (w, h) != (img.width, img.height) {
                    cur = Cow::Owned(resize_with_order(img, w, h, self.filter, self.order)?);
                }
            }
            ResizeMode::ShortestEdgeCenterCrop => {}
        }
        if self.do_resize {
            let (w, h) = self.size.output_size(cur.width, cur.height);
            check_pixels(origin, "resized image", w, h, limit)?;
            // Both fit in u32 once below a u64 pixel limit... unless the limit is huge: check.
            let (w, h) = match (u32::try_from(w), u32::try_from(h)) {
                (Ok(w), Ok(h)) => (w, h),
                _ => {
                    return Err(VisionError::TooManyPixels {
                        path: origin.to_path_buf(),
                        stage: "resized image",
                        width: w,
                        height: h,
                        limit,
                    });
                }
            };
            if (w, h) != (cur.width, cur.height) {
                cur = Cow::Owned(resize_with_order(&cur, w, h, self.filter, self.order)?);
            }
        }
        if let Some((ch, cw)) = self.crop {
            let (w, h) = center_crop_size(cur.width, cur.height, ch, cw);
            check_pixels(origin, "cropped image", w, h, limit)?;
            cur = Cow::Owned(center_crop(&cur, ch, cw));
        }
        Ok(cur.into_owned())
    }

    /// Rescales and normalises an RGB image to CHW `f32` (`(u8 * rescale_factor - mean) / std`).
    pub fn normalize(&self, img: &Rgb8Image) -> Vec<f32> {
        let plane = img.width as usize * img.height as usize;
        let mut out = vec![0f32; 3 * plane];
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, p) in img.data.chunks_exact(3).enumerate() {
            r[i] = self.lut[0][p[0] as usize];
            g[i] = self.lut[1][p[1] as usize];
            b[i] = self.lut[2][p[2] as usize];
        }
        out
    }

    /// The whole pipeline on an RGB image.
    ///
    /// # Errors
    /// As [`Preprocessor::resize_u8`].
    pub fn preprocess_image(&self, img: &Rgb8Image) -> Result<PreprocessedImage> {
        self.preprocess_named(img, Path::new(IN_MEMORY))
    }

    fn preprocess_named(&self, img: &Rgb8Image, origin: &Path) -> Result<PreprocessedImage> {
        let resized = self.resize_u8_named(img, origin)?;
        let pixel_values = self.normalize(&resized);
        Ok(PreprocessedImage {
            resized,
            pixel_values,
        })
    }

    /// Decodes and preprocesses one image file.
    ///
    /// # Errors
    /// Every decoding and pipeline error, naming the file.
    pub fn preprocess_path(&self, path: impl AsRef<Path>) -> Result<PreprocessedImage> {
        let path = path.as_ref();
        let img = self.load(path)?;
        self.preprocess_named(&img, path)
    }

    /// Decodes and preprocesses image files into one batch `[N, 3, H, W]`, in order.
    ///
    /// # Errors
    /// The first error of any image (naming its file), [`VisionError::EmptyBatch`] for no path, and
    /// [`VisionError::BatchShapeMismatch`] when the images do not all give the same shape (possible only
    /// without a center crop).
    pub fn preprocess_paths<P: AsRef<Path>>(&self, paths: &[P]) -> Result<PixelBatch> {
        let first = paths.first().ok_or(VisionError::EmptyBatch)?;
        let one = self.preprocess_path(first)?;
        let shape = one.shape();
        let mut data = Vec::with_capacity(shape.iter().product::<usize>() * paths.len());
        data.extend_from_slice(&one.pixel_values);
        drop(one);
        for path in &paths[1..] {
            let p = self.preprocess_path(path)?;
            if p.shape() != shape {
                return Err(VisionError::BatchShapeMismatch {
                    path: path.as_ref().to_path_buf(),
                    expected: shape,
                    found: p.shape(),
                });
            }
            data.extend_from_slice(&p.pixel_values);
        }
        Ok(PixelBatch {
            data,
            shape: [paths.len(), shape[0], shape[1], shape[2]],
        })
    }
}

// ============================================================================================ outputs

/// One preprocessed image: the final `u8` image and its normalised CHW values.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessedImage {
    resized: Rgb8Image,
    pixel_values: Vec<f32>,
}

impl PreprocessedImage {
    /// The `u8` HWC image after pad / resize / crop (what is normalised).
    pub fn resized(&self) -> &Rgb8Image {
        &self.resized
    }

    /// The normalised values, CHW.
    pub fn pixel_values(&self) -> &[f32] {
        &self.pixel_values
    }

    /// `[3, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        [3, self.resized.height as usize, self.resized.width as usize]
    }

    /// A batch of this one image, `[1, 3, H, W]`.
    pub fn into_batch(self) -> PixelBatch {
        let [c, h, w] = self.shape();
        PixelBatch {
            data: self.pixel_values,
            shape: [1, c, h, w],
        }
    }
}

/// A batch of preprocessed images, `f32` NCHW, ready for the vision tower.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelBatch {
    data: Vec<f32>,
    shape: [usize; 4],
}

impl PixelBatch {
    /// A batch from NCHW values.
    ///
    /// # Errors
    /// [`VisionError::ShapeMismatch`] unless `data.len()` is the product of `shape`.
    pub fn new(data: Vec<f32>, shape: [usize; 4]) -> Result<Self> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(data.len()) {
            return Err(VisionError::ShapeMismatch {
                len: data.len(),
                shape: shape.to_vec(),
            });
        }
        Ok(Self { data, shape })
    }

    /// Stacks preprocessed images (all of one shape) in order.
    ///
    /// # Errors
    /// [`VisionError::EmptyBatch`], or [`VisionError::BatchShapeMismatch`] naming the image by its index.
    pub fn from_images(images: &[PreprocessedImage]) -> Result<Self> {
        let first = images.first().ok_or(VisionError::EmptyBatch)?;
        let shape = first.shape();
        let mut data = Vec::with_capacity(first.pixel_values.len() * images.len());
        for (i, img) in images.iter().enumerate() {
            if img.shape() != shape {
                return Err(VisionError::BatchShapeMismatch {
                    path: format!("<image {i}>").into(),
                    expected: shape,
                    found: img.shape(),
                });
            }
            data.extend_from_slice(&img.pixel_values);
        }
        Ok(Self {
            data,
            shape: [images.len(), shape[0], shape[1], shape[2]],
        })
    }

    /// `[N, 3, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// True for a batch of no image (only constructible through [`PixelBatch::new`]).
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// All values, NCHW.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// All values, NCHW, by value.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The CHW values of image `i`.
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        (i < self.shape[0]).then(|| &self.data[i * per..(i + 1) * per])
    }

    /// The batch as a float tensor `[N, 3, H, W]` on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::<4>::from_data(TensorData::new(self.data.clone(), self.shape), device)
    }

    /// As [`PixelBatch::to_tensor`], without copying the values first.
    pub fn into_tensor(self, device: &Device) -> Tensor<4> {
        Tensor::<4>::from_data(TensorData::new(self.data, self.shape), device)
    }
}
