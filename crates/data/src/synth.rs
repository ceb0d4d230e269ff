//! The embedded default synthetic IQA set: seeded random crops of bundled photographs, each kept as a reference and
//! distorted by every [`DistortionKind`] at five levels, with a pseudo-MOS, its level word and Q-Pathway-style text.
//!
//! Output of [`synth`] / [`synth_with`] in `out_dir`:
//! - `images/<photo>_c<crop>_ref.png` and `images/<photo>_c<crop>_<distortion><level>.png` (8-bit RGB PNG);
//! - `manifest.csv` with columns `image,mos,level,distortion,strength,source` (`image` relative to `out_dir`,
//!   `mos` on 1–5 with 3 decimals, `level` the level word, `distortion` `none` for references, `strength` the level
//!   1–5 or 0 for references, `source` the photo name);
//! - `splits.csv` (`source,split`): the split of each source photo;
//! - `one_stage_<split>.json`, `stage1_<split>.json`, `stage2_<split>.json` for `split` in train/val/test: LLaVA /
//!   Q-Align conversation records ([`ConversationRecord`]).
//!
//! All text files are written atomically (temporary file + rename), the manifest last, so a failed run leaves no
//! manifest. The same photos, configuration and seed give byte-identical files whatever the number of threads.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use biqa_metrics::{Level, MosBinning};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, ImageFormat, RgbImage};
use serde::{Deserialize, Serialize};

use crate::distort::{DistortionKind, FloatImage, apply, pseudo_mos};
use crate::error::{DataError, Result};
use crate::io::write_atomic;
use crate::split::{Split, SplitFractions, split_groups};
use crate::text::{QualityText, describe};
use biqa_core::SplitMix64;

/// The image placeholder token of mPLUG-Owl2 / Q-Align (defined once, in `biqa-core`).
pub use biqa_core::IMAGE_TOKEN;
pub use biqa_core::prompts::{ONE_STAGE_PROMPT, STAGE1_PROMPT, STAGE2_PROMPT, STAGE2_QUESTION};

/// The most images one synthetic set may have (10 million: checked before anything is allocated).
pub const MAX_SYNTH_IMAGES: usize = 10_000_000;

/// A source photograph.
#[derive(Debug, Clone)]
pub struct Photo {
    /// Short name (file stem), used in image names and as the split group.
    pub name: String,
    /// What it shows ("a cat"), for the scene sentence of the descriptions; may be empty.
    pub subject: String,
    /// The pixels.
    pub image: RgbImage,
}

const BUNDLED: [(&str, &str, &[u8]); 9] = [
    (
        "astronaut",
        "an astronaut posing in front of a flag",
        include_bytes!("../../../data/photos/astronaut.png"),
    ),
    (
        "chelsea",
        "a tabby cat",
        include_bytes!("../../../data/photos/chelsea.png"),
    ),
    (
        "coffee",
        "a cup of coffee on a saucer",
        include_bytes!("../../../data/photos/coffee.png"),
    ),
    (
        "rocket",
        "a rocket on its launch pad",
        include_bytes!("../../../data/photos/rocket.png"),
    ),
    (
        "camera",
        "a man filming with a camera on a tripod",
        include_bytes!("../../../data/photos/camera.png"),
    ),
    (
        "coins",
        "rows of old coins",
        include_bytes!("../../../data/photos/coins.png"),
    ),
    (
        "hubble_deep_field",
        "galaxies in deep space",
        include_bytes!("../../../data/photos/hubble_deep_field.png"),
    ),
    (
        "china",
        "a pagoda above a lake",
        include_bytes!("../../../data/photos/china.png"),
    ),
    (
        "flower",
        "an orange dahlia",
        include_bytes!("../../../data/photos/flower.png"),
    ),
];

/// The nine photographs bundled in the crate (`data/photos/`, see its `ATTRIBUTION.md`, which keeps the CC BY
/// credits of china and flower): astronaut (384×384), chelsea (384×255), coffee (384×256), rocket (384×256), camera
/// (384×384, grey), coins (384×303, grey), hubble_deep_field (384×335), china (384×256), flower (384×256).
///
/// # Errors
/// [`DataError::Image`] if a bundled PNG does not decode (it should not happen).
pub fn bundled_photos() -> Result<Vec<Photo>> {
    BUNDLED
        .iter()
        .map(|(name, subject, bytes)| {
            let img =
                image::load_from_memory_with_format(bytes, ImageFormat::Png).map_err(|e| {
                    DataError::Image {
                        name: (*name).to_owned(),
                        message: e.to_string(),
                    }
                })?;
            Ok(Photo {
                name: (*name).to_owned(),
                subject: (*subject).to_owned(),
                image: img.to_rgb8(),
            })
        })
        .collect()
}

/// Options of the synthetic set.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Random crops per photo; each gives one reference and 5 levels of every distortion.
    pub crops_per_photo: usize,
    /// Side of the square crops in pixels (at most the short side of every photo).
    pub crop_size: u32,
    /// The seed of crops, noise, wording and splits.
    pub seed: u64,
    /// The distortions to apply.
    pub kinds: Vec<DistortionKind>,
    /// Whether to keep the undistorted crops (pseudo-MOS 5).
    pub include_reference: bool,
    /// Shares of source photos for validation and test.
    pub split: SplitFractions,
    /// Photos whose split is fixed (the others are split by `split` and `seed`); empty: all seeded.
    pub fixed_splits: BTreeMap<String, Split>,
    /// The least detail a crop must have ([`crop_detail`]; 0: any crop). A crop position is drawn up to
    /// [`CROP_TRIES`] times until one reaches it, else the most detailed draw is kept: on flat crops (sky, bokeh)
    /// blur, compression and pixelation change nothing visible, and their labels would be noise.
    pub min_detail: f32,
    /// Worker threads (0: `std::thread::available_parallelism`).
    pub threads: usize,
}

impl Default for SynthConfig {
    /// 7 crops of 224 px per photo, every distortion, references kept, seed 0, 1/9 of the photos for validation
    /// and 2/9 for test (the bundled nine split 6 / 1 / 2): 9 × 7 × 36 = 2268 images from the bundled photos.
    fn default() -> Self {
        Self {
            crops_per_photo: 7,
            crop_size: 224,
            seed: 0,
            kinds: DistortionKind::ALL.to_vec(),
            include_reference: true,
            split: SplitFractions {
                val: 1.0 / 9.0,
                test: 2.0 / 9.0,
            },
            fixed_splits: BTreeMap::new(),
            min_detail: 0.0,
            threads: 0,
        }
    }
}

impl SynthConfig {
    /// Images per crop: 5 per distortion, plus the reference.
    pub fn images_per_crop(&self) -> usize {
        5 * self.kinds.len() + usize::from(self.include_reference)
    }

    /// The pseudo-MOS → level binning of the set: five equal bins over [1, 5] (thresholds 1.8, 2.6, 3.4, 4.2).
    pub fn binning() -> MosBinning {
        MosBinning::from_thresholds([1.8, 2.6, 3.4, 4.2]).unwrap_or(MosBinning {
            thresholds: [1.8, 2.6, 3.4, 4.2],
            higher_is_better: true,
        })
    }
}

/// One generated image.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthItem {
    /// Path relative to the output folder (`images/…png`).
    pub image: String,
    /// Pseudo-MOS on 1–5 ([`pseudo_mos`]), rounded to 3 decimals.
    pub mos: f64,
    /// Its level ([`SynthConfig::binning`]).
    pub level: Level,
    /// The distortion, `None` for a reference crop.
    pub distortion: Option<DistortionKind>,
    /// The distortion level 1–5, 0 for a reference.
    pub strength: u8,
    /// The source photo.
    pub source: String,
    /// The crop index within the photo.
    pub crop: usize,
    /// The split of the source photo.
    pub split: Split,
    /// The Q-Pathway-style text.
    pub text: QualityText,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// `human` or `gpt`.
    pub from: String,
    /// The text.
    pub value: String,
}

/// A LLaVA / Q-Align training record:
/// `{"id","image","conversations":[{"from":"human",…},{"from":"gpt",…}],"gt_score"}`; text-only records have no
/// `image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    /// `<image>-><mos>` (Q-Align style), with a `#stage2` suffix for text-only samples.
    pub id: String,
    /// The image path relative to the output folder; absent for text-only samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The human and gpt turns.
    pub conversations: Vec<Turn>,
    /// The pseudo-MOS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt_score: Option<f64>,
}

/// The three records of one image: one-stage, stage 1 and stage 2.
pub fn records(item: &SynthItem) -> [ConversationRecord; 3] {
    let id = format!("{}->{:.3}", item.image, item.mos);
    let turn = |from: &str, value: String| Turn {
        from: from.to_owned(),
        value,
    };
    [
        ConversationRecord {
            id: id.clone(),
            image: Some(item.image.clone()),
            conversations: vec![
                turn("human", format!("{IMAGE_TOKEN}\n{ONE_STAGE_PROMPT}")),
                turn("gpt", item.text.full()),
            ],
            gt_score: Some(item.mos),
        },
        ConversationRecord {
            id: id.clone(),
            image: Some(item.image.clone()),
            conversations: vec![
                turn("human", format!("{IMAGE_TOKEN}\n{STAGE1_PROMPT}")),
                turn("gpt", item.text.description.clone()),
            ],
            gt_score: Some(item.mos),
        },
        ConversationRecord {
            id: format!("{id}#stage2"),
            image: None,
            conversations: vec![
                turn(
                    "human",
                    format!(
                        "{STAGE2_PROMPT}\n{}\n{STAGE2_QUESTION}",
                        item.text.description
                    ),
                ),
                turn("gpt", item.text.conclusion.clone()),
            ],
            gt_score: Some(item.mos),
        },
    ]
}

/// The number of images of every distortion at every level (and of references) that a configuration gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountTable {
    /// Per distortion, the count at levels 1–5.
    pub rows: Vec<(DistortionKind, [usize; 5])>,
    /// Reference crops.
    pub references: usize,
}

impl CountTable {
    /// All images.
    pub fn total(&self) -> usize {
        self.references
            + self
                .rows
                .iter()
                .map(|(_, c)| c.iter().sum::<usize>())
                .sum::<usize>()
    }

    /// Counts the items of a generated set.
    pub fn from_items(items: &[SynthItem]) -> Self {
        let mut map: BTreeMap<DistortionKind, [usize; 5]> = BTreeMap::new();
        let mut references = 0;
        for it in items {
            match it.distortion {
                Some(k) => {
                    let i = usize::from(it.strength.clamp(1, 5) - 1);
                    map.entry(k).or_default()[i] += 1;
                }
                None => references += 1,
            }
        }
        Self {
            rows: map.into_iter().collect(),
            references,
        }
    }
}

impl fmt::Display for CountTable {
    /// A plain-text table: one row per distortion, columns L1–L5 and the total.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<10} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}",
            "distortion", "L1", "L2", "L3", "L4", "L5", "total"
        )?;
        for (k, c) in &self.rows {
            writeln!(
                f,
                "{:<10} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}",
                k.name(),
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c.iter().sum::<usize>()
            )?;
        }
        writeln!(f, "{:<10} {:>42}", "reference", self.references)?;
        write!(f, "{:<10} {:>42}", "all", self.total())
    }
}

/// The distortion × level count table of a configuration over `n_photos` photos, without generating anything.
pub fn count_table(config: &SynthConfig, n_photos: usize) -> CountTable {
    let crops = config.crops_per_photo.saturating_mul(n_photos);
    let mut kinds = config.kinds.clone();
    kinds.sort();
    kinds.dedup();
    CountTable {
        rows: kinds.into_iter().map(|k| (k, [crops; 5])).collect(),
        references: if config.include_reference { crops } else { 0 },
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct SynthOutput {
    /// Every image, in manifest order (photo, crop, then reference and distortions by level).
    pub items: Vec<SynthItem>,
    /// The split of each source photo.
    pub splits: BTreeMap<String, Split>,
}

impl SynthOutput {
    /// The items of one split, in manifest order.
    pub fn items_in(&self, split: Split) -> Vec<&SynthItem> {
        self.items.iter().filter(|i| i.split == split).collect()
    }

    /// The distortion × level counts of the generated set.
    pub fn count_table(&self) -> CountTable {
        CountTable::from_items(&self.items)
    }
}

/// Builds the default set from the [`bundled_photos`] into `out_dir`: `per_photo` crops per photo (36 images per
/// crop), seeded by `seed`; `progress(done, total)` is called (on the calling thread) as images are written.
///
/// # Errors
/// See [`synth_with`].
pub fn synth(
    out_dir: &Path,
    per_photo: usize,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SynthOutput> {
    let config = SynthConfig {
        crops_per_photo: per_photo,
        seed,
        ..SynthConfig::default()
    };
    synth_with(out_dir, &bundled_photos()?, &config, progress)
}

struct Unit<'a> {
    photo_idx: usize,
    photo: &'a Photo,
    crop: usize,
    split: Split,
}

fn encode_png(img: &RgbImage, name: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        )
        .map_err(|e| DataError::Image {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
    Ok(buf)
}

fn kind_tag(kind: DistortionKind) -> u64 {
    DistortionKind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or(0) as u64
}

/// Crop positions drawn per crop at most, looking for one with [`SynthConfig::min_detail`].
pub const CROP_TRIES: usize = 64;

/// The detail of an image: the mean absolute difference of horizontally and of vertically adjacent pixels' grey
/// level (the mean of R, G, B, on 0–1), averaged over both directions. Flat sky is about 0.005, fur or foliage
/// 0.03–0.07.
pub fn crop_detail(img: &RgbImage) -> f32 {
    let (w, h) = img.dimensions();
    let grey = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        (f32::from(p[0]) + f32::from(p[1]) + f32::from(p[2])) / (3.0 * 255.0)
    };
    let (mut sx, mut nx, mut sy, mut ny) = (0.0f64, 0usize, 0.0f64, 0usize);
    for y in 0..h {
        for x in 0..w {
            let g = grey(x, y);
            if x + 1 < w {
                sx += f64::from((grey(x + 1, y) - g).abs());
                nx += 1;
            }
            if y + 1 < h {
                sy += f64::from((grey(x, y + 1) - g).abs());
                ny += 1;
            }
        }
    }
    let m = |s: f64, n: usize| if n == 0 { 0.0 } else { s / n as f64 };
    ((m(sx, nx) + m(sy, ny)) / 2.0) as f32
}

fn run_unit(unit: &Unit<'_>, config: &SynthConfig, images_dir: &Path) -> Result<Vec<SynthItem>> {
    let cs = config.crop_size;
    let (w, h) = unit.photo.image.dimensions();
    let p = unit.photo_idx as u64;
    let c = unit.crop as u64;
    let mut rng = SplitMix64::derive(config.seed, &[p, c, 0]);
    let mut best: Option<(f32, RgbImage)> = None;
    for _ in 0..if config.min_detail > 0.0 {
        CROP_TRIES
    } else {
        1
    } {
        let x = rng.below((w - cs + 1) as usize) as u32;
        let y = rng.below((h - cs + 1) as usize) as u32;
        let candidate = image::imageops::crop_imm(&unit.photo.image, x, y, cs, cs).to_image();
        let detail = if config.min_detail > 0.0 {
            crop_detail(&candidate)
        } else {
            0.0
        };
        if best.as_ref().is_none_or(|(d, _)| detail > *d) {
            best = Some((detail, candidate));
        }
        if detail >= config.min_detail {
            break;
        }
    }
    let flip = rng.below(2) == 1;
    let mut crop = best.map(|(_, c)| c).unwrap_or_default();
    if flip {
        crop = image::imageops::flip_horizontal(&crop);
    }
    let base = FloatImage::from_rgb8(&crop);
    let binning = SynthConfig::binning();
    let mut variants: Vec<Option<(DistortionKind, u8)>> = Vec::new();
    if config.include_reference {
        variants.push(None);
    }
    for &k in &config.kinds {
        for lv in 1..=5 {
            variants.push(Some((k, lv)));
        }
    }
    let mut items = Vec::with_capacity(variants.len());
    for v in variants {
        let (name, img, tags) = match v {
            None => (
                format!("{}_c{:03}_ref.png", unit.photo.name, unit.crop),
                crop.clone(),
                [p, c, 2, 99, 0],
            ),
            Some((k, lv)) => {
                let mut nrng =
                    SplitMix64::derive(config.seed, &[p, c, 1, kind_tag(k), u64::from(lv)]);
                let d = apply(&base, k, lv, &mut nrng)?;
                (
                    format!(
                        "{}_c{:03}_{}{}.png",
                        unit.photo.name,
                        unit.crop,
                        k.name(),
                        lv
                    ),
                    d.to_rgb8(),
                    [p, c, 2, kind_tag(k), u64::from(lv)],
                )
            }
        };
        let bytes = encode_png(&img, &name)?;
        let path = images_dir.join(&name);
        fs::write(&path, bytes).map_err(|e| DataError::io(&path, e))?;
        let mos = (pseudo_mos(v) * 1000.0).round() / 1000.0;
        let level = binning.level(mos);
        let mut trng = SplitMix64::derive(config.seed, &tags);
        let text = describe(&unit.photo.subject, v, level, &mut trng);
        items.push(SynthItem {
            image: format!("images/{name}"),
            mos,
            level,
            distortion: v.map(|(k, _)| k),
            strength: v.map_or(0, |(_, l)| l),
            source: unit.photo.name.clone(),
            crop: unit.crop,
            split: unit.split,
            text,
        });
    }
    Ok(items)
}

fn write_json(path: &Path, records: &[&ConversationRecord]) -> Result<()> {
    write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, records).map_err(|e| DataError::Format {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        w.write_all(b"\n").map_err(|e| DataError::io(path, e))
    })
}

/// Builds a synthetic set from any `photos` with `config` into `out_dir` (created if needed); see the module docs
/// for the files. `progress(done, total)` is called on the calling thread after each crop's images are written.
///
/// # Errors
/// [`DataError::EmptySynth`] for no photos or no crops, [`DataError::ZeroCropSize`],
/// [`DataError::DuplicatePhotoName`], [`DataError::CropTooLarge`] for a crop larger than a photo,
/// [`DataError::InvalidSplitFractions`];
/// [`DataError::Io`] / [`DataError::Image`] when writing fails. On error no `manifest.csv` is written (a previous one
/// stays untouched).
pub fn synth_with(
    out_dir: &Path,
    photos: &[Photo],
    config: &SynthConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SynthOutput> {
    if photos.is_empty() || config.crops_per_photo == 0 || config.images_per_crop() == 0 {
        return Err(DataError::EmptySynth {
            photos: photos.len(),
            crops_per_photo: config.crops_per_photo,
            images_per_crop: config.images_per_crop(),
        });
    }
    if config.crop_size == 0 {
        return Err(DataError::ZeroCropSize);
    }
    let total = photos
        .len()
        .checked_mul(config.crops_per_photo)
        .and_then(|n| n.checked_mul(config.images_per_crop()));
    if total.is_none_or(|n| n > MAX_SYNTH_IMAGES) {
        return Err(DataError::TooManySynthImages {
            photos: photos.len(),
            crops_per_photo: config.crops_per_photo,
            images_per_crop: config.images_per_crop(),
            max: MAX_SYNTH_IMAGES,
        });
    }
    let mut names: Vec<&str> = photos.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(DataError::DuplicatePhotoName {
            name: w[0].to_string(),
        });
    }
    for p in photos {
        let (w, h) = p.image.dimensions();
        if w < config.crop_size || h < config.crop_size {
            return Err(DataError::CropTooLarge {
                crop: config.crop_size,
                photo: p.name.clone(),
                width: w,
                height: h,
            });
        }
    }
    let mut splits = split_groups(
        names
            .iter()
            .copied()
            .filter(|n| !config.fixed_splits.contains_key(*n)),
        config.split,
        config.seed,
    )?;
    splits.extend(
        config
            .fixed_splits
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(n, s)| (n.clone(), *s)),
    );
    let images_dir = out_dir.join("images");
    fs::create_dir_all(&images_dir).map_err(|e| DataError::io(&images_dir, e))?;

    let units: Vec<Unit<'_>> = photos
        .iter()
        .enumerate()
        .flat_map(|(pi, photo)| {
            let split = splits.get(&photo.name).copied().unwrap_or(Split::Train);
            (0..config.crops_per_photo).map(move |crop| Unit {
                photo_idx: pi,
                photo,
                crop,
                split,
            })
        })
        .collect();
    let total = units.len() * config.images_per_crop();
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.threads
    }
    .min(units.len())
    .max(1);

    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Vec<SynthItem>>> = vec![None; units.len()];
    let mut first_err: Option<DataError> = None;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, Result<Vec<SynthItem>>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (units, next, images_dir) = (&units, &next, &images_dir);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(unit) = units.get(i) else { break };
                    let r = run_unit(unit, config, images_dir);
                    let failed = r.is_err();
                    if tx.send((i, r)).is_err() || failed {
                        // Stop the other workers early.
                        next.store(units.len(), Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (i, r) in rx {
            match r {
                Ok(items) => {
                    done += items.len();
                    results[i] = Some(items);
                    progress(done, total);
                }
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
    });
    if let Some(e) = first_err {
        return Err(e);
    }
    let items: Vec<SynthItem> = results.into_iter().flatten().flatten().collect();

    for split in Split::ALL {
        let recs: Vec<[ConversationRecord; 3]> = items
            .iter()
            .filter(|it| it.split == split)
            .map(records)
            .collect();
        for (stage, prefix) in ["one_stage", "stage1", "stage2"].iter().enumerate() {
            let list: Vec<&ConversationRecord> = recs.iter().map(|r| &r[stage]).collect();
            write_json(&out_dir.join(format!("{prefix}_{split}.json")), &list)?;
        }
    }
    let splits_path = out_dir.join("splits.csv");
    write_atomic(&splits_path, |w| {
        let mut s = String::from("source,split\n");
        for (src, sp) in &splits {
            s.push_str(&format!("{src},{sp}\n"));
        }
        w.write_all(s.as_bytes())
            .map_err(|e| DataError::io(&splits_path, e))
    })?;
    let manifest_path = out_dir.join("manifest.csv");
    write_atomic(&manifest_path, |w| {
        write_manifest(w, &items, &manifest_path)
    })?;
    Ok(SynthOutput { items, splits })
}

fn write_manifest(w: &mut dyn Write, items: &[SynthItem], path: &Path) -> Result<()> {
    let mut wr = csv::Writer::from_writer(w);
    let err = |e: csv::Error| DataError::Format {
        file: path.to_owned(),
        message: e.to_string(),
    };
    wr.write_record(["image", "mos", "level", "distortion", "strength", "source"])
        .map_err(err)?;
    for it in items {
        let mos = format!("{:.3}", it.mos);
        let strength = it.strength.to_string();
        wr.write_record([
            it.image.as_str(),
            mos.as_str(),
            it.level.word(),
            it.distortion.map_or("none", DistortionKind::name),
            strength.as_str(),
            it.source.as_str(),
        ])
        .map_err(err)?;
    }
    wr.flush().map_err(|e| DataError::io(path, e))
}
