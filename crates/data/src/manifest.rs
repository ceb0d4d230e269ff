//! One manifest type for real IQA datasets, with readers for their annotation files (column names as in
//! `docs/iqa-conventions.md` §4), a check against an image folder and seeded splits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use biqa_metrics::{Level, MosBinning};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::split::{Split, SplitFractions, split_groups};
use crate::synth::{ConversationRecord, IMAGE_TOKEN, Turn};

/// The score scale of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// Lowest possible score.
    pub lo: f64,
    /// Highest possible score.
    pub hi: f64,
    /// True for MOS (higher is better), false for DMOS (lower is better).
    pub higher_is_better: bool,
    /// Score → level binning.
    pub binning: MosBinning,
}

impl Scale {
    /// A scale with five equal-width level bins over `[lo, hi]` (reversed when lower is better).
    ///
    /// # Errors
    /// [`DataError::InvalidScale`] unless `lo < hi`, both finite.
    pub fn new(lo: f64, hi: f64, higher_is_better: bool) -> Result<Self> {
        let b = MosBinning::equal_width(lo, hi).map_err(|source| DataError::InvalidScale {
            lo,
            hi,
            source,
        })?;
        Ok(Self {
            lo,
            hi,
            higher_is_better,
            binning: if higher_is_better {
                b
            } else {
                b.lower_is_better()
            },
        })
    }

    /// MOS on 1–5, higher is better (KonIQ `MOS`, KADID-10k, the synthetic set).
    pub fn one_to_five() -> Self {
        Self {
            lo: 1.0,
            hi: 5.0,
            higher_is_better: true,
            binning: MosBinning {
                thresholds: [1.8, 2.6, 3.4, 4.2],
                higher_is_better: true,
            },
        }
    }

    /// KonIQ `MOS_zscore` (≈0–100) with the thresholds that reproduce Q-Align's labels ([`MosBinning::koniq`]).
    pub fn koniq_zscore() -> Self {
        Self {
            lo: 0.0,
            hi: 100.0,
            higher_is_better: true,
            binning: MosBinning::koniq(),
        }
    }

    /// 0–100, higher is better, equal-width bins of 20.
    pub fn zero_to_hundred() -> Self {
        Self {
            lo: 0.0,
            hi: 100.0,
            higher_is_better: true,
            binning: MosBinning {
                thresholds: [20.0, 40.0, 60.0, 80.0],
                higher_is_better: true,
            },
        }
    }
}

/// One annotated image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Image path, relative to the dataset's image folder.
    pub image: String,
    /// The score on the manifest's [`Scale`].
    pub mos: f64,
    /// The split, when the annotation file (or [`Manifest::with_random_split`]) gives one.
    pub split: Option<Split>,
    /// The reference (pristine) image or source, for synthetic datasets; splits keep a group together.
    pub reference: Option<String>,
    /// The distortion, for datasets that record one (KADID-10k, CSIQ, the synthetic set): per-distortion rows of
    /// an evaluation.
    #[serde(default)]
    pub distortion: Option<String>,
}

/// A dataset's annotations: images with scores on one scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The score scale.
    pub scale: Scale,
    /// The images, in file order.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Images (relative paths) of the manifest that are not files under `root`, in manifest order.
    pub fn missing_files(&self, root: &Path) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| !root.join(&e.image).is_file())
            .map(|e| e.image.clone())
            .collect()
    }

    /// The level of every entry by the scale's binning.
    pub fn levels(&self) -> Vec<Level> {
        self.entries
            .iter()
            .map(|e| self.scale.binning.level(e.mos))
            .collect()
    }

    /// The entries of one split.
    pub fn entries_in(&self, split: Split) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.split == Some(split))
            .collect()
    }

    /// Assigns every entry a split, seeded: entries are grouped by `reference` (or by image when there is none)
    /// and whole groups go to one split ([`split_groups`]), so distorted versions of one reference never straddle
    /// train and test.
    ///
    /// # Errors
    /// [`DataError::InvalidSplitFractions`] for invalid fractions.
    pub fn with_random_split(mut self, fractions: SplitFractions, seed: u64) -> Result<Self> {
        let key = |e: &Entry| e.reference.clone().unwrap_or_else(|| e.image.clone());
        let keys: Vec<String> = self.entries.iter().map(key).collect();
        let map: BTreeMap<String, Split> =
            split_groups(keys.iter().map(String::as_str), fractions, seed)?;
        for (e, k) in self.entries.iter_mut().zip(&keys) {
            e.split = map.get(k).copied();
        }
        Ok(self)
    }
}

/// A CSV file with a header, read by column name or position.
struct Csv {
    file: PathBuf,
    header: Vec<String>,
    /// Non-empty records with the byte offset where each starts.
    rows: Vec<(u64, csv::StringRecord)>,
}

impl Csv {
    /// Parses the file as a stream (bounded by [`biqa_core::DATA_LIMIT`]): the records are kept with their byte
    /// offsets, and a line number is worked out only for an error message ([`Csv::line_at`]).
    fn open(path: &Path) -> Result<Self> {
        let reader = biqa_core::open_limited(path, biqa_core::DATA_LIMIT)
            .map_err(|e| DataError::io(path, e))?;
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let fmt_err = |e: csv::Error| match e.kind() {
            csv::ErrorKind::Io(io) => {
                DataError::io(path, std::io::Error::new(io.kind(), io.to_string()))
            }
            _ => DataError::Format {
                file: path.to_owned(),
                message: e.to_string(),
            },
        };
        let header: Vec<String> = rd
            .headers()
            .map_err(fmt_err)?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_owned())
            .collect();
        let mut rows = Vec::new();
        for r in rd.records() {
            let r = r.map_err(fmt_err)?;
            if r.iter().all(str::is_empty) {
                continue;
            }
            let at = r.position().map_or(0, csv::Position::byte);
            rows.push((at, r));
        }
        Ok(Self {
            file: path.to_owned(),
            header,
            rows,
        })
    }

    /// The 1-based line of the record that starts at byte `at` (csv's own line counter is off by one with CRLF
    /// line ends, and a record's position precedes the blank lines skipped before it): the newlines before its
    /// first byte, counted by reading the file again up to there (error messages only).
    fn line_at(&self, at: u64) -> usize {
        use std::io::Read;
        let Ok(mut reader) = biqa_core::open_limited(&self.file, biqa_core::DATA_LIMIT) else {
            return 0;
        };
        let (mut line, mut pos) = (1usize, 0u64);
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if pos >= at && !matches!(b, b'\r' | b'\n') {
                    return line;
                }
                line += usize::from(b == b'\n');
                pos += 1;
            }
        }
        line
    }

    fn column(&self, name: &str) -> Result<usize> {
        find_column(&self.file, &self.header, name)
    }

    fn col_name(&self, idx: usize) -> String {
        self.header
            .get(idx)
            .cloned()
            .unwrap_or_else(|| format!("#{}", idx + 1))
    }

    fn parse_err(&self, at: u64, idx: usize, message: String) -> DataError {
        DataError::Parse {
            file: self.file.clone(),
            row: self.line_at(at),
            column: self.col_name(idx),
            message,
        }
    }

    fn text<'r>(&self, line: u64, rec: &'r csv::StringRecord, idx: usize) -> Result<&'r str> {
        match rec.get(idx) {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.parse_err(line, idx, "empty or missing cell".into())),
        }
    }

    fn number(&self, line: u64, rec: &csv::StringRecord, idx: usize) -> Result<f64> {
        let s = self.text(line, rec, idx)?;
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(self.parse_err(line, idx, format!("{s:?} is not a finite number"))),
        }
    }

    fn split(&self, line: u64, rec: &csv::StringRecord, idx: usize) -> Result<Option<Split>> {
        match rec.get(idx).unwrap_or("") {
            "" => Ok(None),
            s => s
                .parse::<Split>()
                .map(Some)
                .map_err(|m| self.parse_err(line, idx, m)),
        }
    }
}

/// Which KonIQ-10k score column to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KoniqScore {
    /// `MOS` on 1–5.
    Mos,
    /// `MOS_zscore` on ≈0–100: Q-Align's `gt_score`.
    MosZscore,
}

/// Reads KonIQ-10k's `koniq10k_scores_and_distributions.csv`
/// (`image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore`). No split.
///
/// # Errors
/// [`DataError::Io`], [`DataError::MissingColumn`], or [`DataError::Parse`] naming the file, line and column.
pub fn read_koniq(path: &Path, score: KoniqScore) -> Result<Manifest> {
    let csv = Csv::open(path)?;
    let img = csv.column("image_name")?;
    let (col, scale) = match score {
        KoniqScore::Mos => (csv.column("MOS")?, Scale::one_to_five()),
        KoniqScore::MosZscore => (csv.column("MOS_zscore")?, Scale::koniq_zscore()),
    };
    let mut entries = Vec::with_capacity(csv.rows.len());
    for (line, r) in &csv.rows {
        entries.push(Entry {
            image: csv.text(*line, r, img)?.to_owned(),
            mos: csv.number(*line, r, col)?,
            split: None,
            reference: None,
            distortion: None,
        });
    }
    Ok(Manifest { scale, entries })
}

/// Reads KonIQ-10k's official split file `koniq10k_distributions_sets.csv`
/// (`image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set`: `MOS` on 0–100, `set` ∈ training/validation/test).
///
/// # Errors
/// As [`read_koniq`]; an unknown `set` value is a [`DataError::Parse`].
pub fn read_koniq_sets(path: &Path) -> Result<Manifest> {
    let csv = Csv::open(path)?;
    let img = csv.column("image_name")?;
    let mos = csv.column("MOS")?;
    let set = csv.column("set")?;
    let mut entries = Vec::with_capacity(csv.rows.len());
    for (line, r) in &csv.rows {
        entries.push(Entry {
            image: csv.text(*line, r, img)?.to_owned(),
            mos: csv.number(*line, r, mos)?,
            split: csv.split(*line, r, set)?,
            reference: None,
            distortion: None,
        });
    }
    Ok(Manifest {
        scale: Scale::zero_to_hundred(),
        entries,
    })
}

/// KADID-10k's 25 distortion types, by the middle number of `I01_03_05.png` (reference, type, level).
pub const KADID_DISTORTIONS: [&str; 25] = [
    "gaussian blur",
    "lens blur",
    "motion blur",
    "color diffusion",
    "color shift",
    "color quantization",
    "color saturation 1",
    "color saturation 2",
    "jpeg2000",
    "jpeg",
    "white noise",
    "white noise in color component",
    "impulse noise",
    "multiplicative noise",
    "denoise",
    "brighten",
    "darken",
    "mean shift",
    "jitter",
    "non-eccentricity patch",
    "pixelate",
    "quantization",
    "color block",
    "high sharpen",
    "contrast change",
];

/// The distortion of a KADID-10k image name (`I01_03_05.png` → type 3, "motion blur"), if it has that form.
pub fn kadid_distortion(image: &str) -> Option<&'static str> {
    let stem = image.rsplit('/').next()?.split('.').next()?;
    let t: usize = stem.split('_').nth(1)?.parse().ok()?;
    KADID_DISTORTIONS.get(t.checked_sub(1)?).copied()
}

/// Reads KADID-10k's `dmos.csv` (`dist_img,ref_img,dmos,var`). The "dmos" is a MOS on 1–5, higher is better;
/// `reference` is `ref_img`, so [`Manifest::with_random_split`] splits by reference image. Images are named as in
/// the file (they live in `images/`).
///
/// # Errors
/// As [`read_koniq`].
pub fn read_kadid(path: &Path) -> Result<Manifest> {
    let csv = Csv::open(path)?;
    let img = csv.column("dist_img")?;
    let refc = csv.column("ref_img")?;
    let dmos = csv.column("dmos")?;
    let mut entries = Vec::with_capacity(csv.rows.len());
    for (line, r) in &csv.rows {
        let image = csv.text(*line, r, img)?.to_owned();
        entries.push(Entry {
            distortion: kadid_distortion(&image).map(str::to_owned),
            image,
            mos: csv.number(*line, r, dmos)?,
            split: None,
            reference: Some(csv.text(*line, r, refc)?.to_owned()),
        });
    }
    Ok(Manifest {
        scale: Scale::one_to_five(),
        entries,
    })
}

/// Reads a pyiqa NR meta-info CSV by position, as `GeneralNRDataset` does: column 0 is the relative image path,
/// column 1 the score. The split comes from `split_column` if given, else from the first column whose name contains
/// `split` (values train/val/test, empty for none). The scale is not in the file: pass it (pyiqa's `mos_range`,
/// `lower_better`).
///
/// # Errors
/// As [`read_koniq`]; fewer than two columns is a [`DataError::MissingColumn`].
pub fn read_pyiqa(path: &Path, scale: Scale, split_column: Option<&str>) -> Result<Manifest> {
    let csv = Csv::open(path)?;
    if csv.header.len() < 2 {
        return Err(DataError::MissingColumn {
            file: path.to_owned(),
            column: "#2 (score)".into(),
        });
    }
    let split = match split_column {
        Some(name) => Some(csv.column(name)?),
        None => csv.header.iter().position(|h| h.contains("split")),
    };
    let mut entries = Vec::with_capacity(csv.rows.len());
    for (line, r) in &csv.rows {
        entries.push(Entry {
            image: csv.text(*line, r, 0)?.to_owned(),
            mos: csv.number(*line, r, 1)?,
            split: match split {
                Some(i) => csv.split(*line, r, i)?,
                None => None,
            },
            reference: None,
            distortion: None,
        });
    }
    Ok(Manifest { scale, entries })
}

fn read_json_list(path: &Path) -> Result<Vec<serde_json::Value>> {
    let bytes =
        biqa_core::read_bytes(path, biqa_core::DATA_LIMIT).map_err(|e| DataError::io(path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| DataError::Format {
        file: path.to_owned(),
        message: format!("invalid JSON: {e}"),
    })?;
    match v {
        serde_json::Value::Array(a) => Ok(a),
        _ => Err(DataError::Format {
            file: path.to_owned(),
            message: "expected a JSON list of records".into(),
        }),
    }
}

fn json_err(path: &Path, row: usize, column: &str, message: impl Into<String>) -> DataError {
    DataError::Parse {
        file: path.to_owned(),
        row,
        column: column.to_owned(),
        message: message.into(),
    }
}

fn json_image(path: &Path, row: usize, obj: &serde_json::Value) -> Result<Option<String>> {
    for key in ["image", "img_path"] {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(s)) => return Ok(Some(s.clone())),
            Some(_) => return Err(json_err(path, row, key, "expected a string")),
        }
    }
    Ok(None)
}

/// Reads a Q-Align train/test JSON (a list of `{"id","image" | "img_path","conversations","gt_score"}`) as a
/// manifest. The score is `gt_score`, or else the number after `->` in `id` (KADID's `"I66_01_01.png->4.63"`).
/// Rows are entry indices + 1.
///
/// # Errors
/// [`DataError::Format`] for invalid JSON; [`DataError::Parse`] for an entry without an image or a score.
pub fn read_qalign_json(path: &Path, scale: Scale) -> Result<Manifest> {
    let list = read_json_list(path)?;
    let mut entries = Vec::with_capacity(list.len());
    for (i, obj) in list.iter().enumerate() {
        let row = i + 1;
        if !obj.is_object() {
            return Err(json_err(path, row, "-", "expected an object"));
        }
        let image = json_image(path, row, obj)?
            .ok_or_else(|| json_err(path, row, "image", "no image or img_path"))?;
        let mos = match obj.get("gt_score") {
            Some(v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|x: &f64| x.is_finite())
                .ok_or_else(|| {
                    json_err(path, row, "gt_score", format!("{v} is not a finite number"))
                })?,
            None => obj
                .get("id")
                .and_then(|v| v.as_str())
                .and_then(|id| id.rsplit_once("->"))
                .and_then(|(_, s)| s.trim().parse::<f64>().ok())
                .filter(|x| x.is_finite())
                .ok_or_else(|| json_err(path, row, "gt_score", "no gt_score and no score in id"))?,
        };
        entries.push(Entry {
            image,
            mos,
            split: None,
            reference: None,
            distortion: None,
        });
    }
    Ok(Manifest { scale, entries })
}

/// Reads LLaVA-format conversation JSON (Q-Instruct `cleaned_labels.json`, Q-Align training files, the synthetic
/// set's files), normalised: the image from `image` or `img_path`, `<image>` in turns rewritten to `<|image|>`,
/// `gt_score` kept when present. Entries without `conversations` get an empty list.
///
/// # Errors
/// [`DataError::Format`] for invalid JSON; [`DataError::Parse`] for a malformed turn.
pub fn read_conversations(path: &Path) -> Result<Vec<ConversationRecord>> {
    let list = read_json_list(path)?;
    let mut out = Vec::with_capacity(list.len());
    for (i, obj) in list.iter().enumerate() {
        let row = i + 1;
        if !obj.is_object() {
            return Err(json_err(path, row, "-", "expected an object"));
        }
        let image = json_image(path, row, obj)?;
        let mut conversations = Vec::new();
        if let Some(c) = obj.get("conversations") {
            let arr = c
                .as_array()
                .ok_or_else(|| json_err(path, row, "conversations", "expected a list"))?;
            for t in arr {
                let from = t.get("from").and_then(|v| v.as_str());
                let value = t.get("value").and_then(|v| v.as_str());
                match (from, value) {
                    (Some(f), Some(v)) => conversations.push(Turn {
                        from: f.to_owned(),
                        value: v.replace("<image>", IMAGE_TOKEN),
                    }),
                    _ => {
                        return Err(json_err(
                            path,
                            row,
                            "conversations",
                            "a turn needs string \"from\" and \"value\"",
                        ));
                    }
                }
            }
        }
        let id = match obj.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => row.to_string(),
        };
        out.push(ConversationRecord {
            id,
            image,
            conversations,
            gt_score: obj.get("gt_score").and_then(serde_json::Value::as_f64),
        });
    }
    Ok(out)
}

/// Reads the synthetic set's own `manifest.csv` (`image,mos,level,distortion,strength,source`) with `reference` =
/// `source`, so that [`Manifest::with_random_split`] splits by source photo.
///
/// # Errors
/// As [`read_koniq`].
pub fn read_synth_manifest(path: &Path) -> Result<Manifest> {
    let csv = Csv::open(path)?;
    let img = csv.column("image")?;
    let mos = csv.column("mos")?;
    let src = csv.column("source")?;
    let dist = csv.column("distortion")?;
    let mut entries = Vec::with_capacity(csv.rows.len());
    for (line, r) in &csv.rows {
        entries.push(Entry {
            image: csv.text(*line, r, img)?.to_owned(),
            mos: csv.number(*line, r, mos)?,
            split: None,
            reference: Some(csv.text(*line, r, src)?.to_owned()),
            distortion: Some(csv.text(*line, r, dist)?.to_owned()),
        });
    }
    Ok(Manifest {
        scale: Scale::one_to_five(),
        entries,
    })
}

/// The index of column `name` in `header`, or [`DataError::MissingColumn`] naming `file` (CSV and xlsx readers).
pub(crate) fn find_column(file: &Path, header: &[String], name: &str) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| DataError::MissingColumn {
            file: file.to_path_buf(),
            column: name.to_owned(),
        })
}
