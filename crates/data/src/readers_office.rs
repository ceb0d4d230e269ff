//! Readers of the dataset annotations that ship as Excel workbooks (SPAQ, CSIQ) or MATLAB files (LIVE Challenge),
//! with the column and variable names of `docs/iqa-conventions.md` §4.
//!
//! `.xlsx` files are read with `calamine`; `.mat` files with a small MAT-file level 5 reader of this module
//! (`miMATRIX` elements of cell, char and numeric classes, either endianness, `miCOMPRESSED` elements inflated).

use std::path::{Path, PathBuf};

use calamine::{Data, Range, Reader, Xlsx, open_workbook};

use crate::error::{DataError, Result};
use crate::manifest::{Entry, Manifest, Scale};

// ---------------------------------------------------------------------------------------------------------------
// Excel sheets

/// One worksheet with a header row, read by column name. Rows are spreadsheet row numbers (1-based, as Excel shows
/// them: the header is usually row 1).
struct Sheet {
    file: PathBuf,
    header: Vec<String>,
    /// Spreadsheet row number and cells of each non-empty data row.
    rows: Vec<(usize, Vec<Data>)>,
}

impl Sheet {
    /// Opens sheet `name`, or the first sheet for `None`.
    fn open(path: &Path, name: Option<&str>) -> Result<Self> {
        if !path.is_file() {
            return Err(DataError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        let fmt = |message: String| DataError::Format {
            file: path.to_owned(),
            message,
        };
        let mut wb: Xlsx<_> =
            open_workbook(path).map_err(|e| fmt(format!("not a readable .xlsx workbook: {e}")))?;
        let range: Range<Data> = match name {
            Some(n) => {
                if !wb.sheet_names().iter().any(|s| s == n) {
                    return Err(fmt(format!(
                        "no sheet {n:?} (sheets: {:?})",
                        wb.sheet_names()
                    )));
                }
                wb.worksheet_range(n)
                    .map_err(|e| fmt(format!("sheet {n:?}: {e}")))?
            }
            None => wb
                .worksheet_range_at(0)
                .ok_or_else(|| fmt("the workbook has no sheets".into()))?
                .map_err(|e| fmt(format!("sheet 0: {e}")))?,
        };
        let first_row = range.start().map_or(0, |(r, _)| r as usize);
        let mut rows = range.rows().enumerate();
        let header = rows
            .next()
            .map(|(_, r)| {
                r.iter()
                    .map(|c| cell_text(c).unwrap_or_default())
                    .collect::<Vec<_>>()
            })
            .ok_or_else(|| fmt("the sheet is empty".into()))?;
        let rows = rows
            .filter(|(_, r)| r.iter().any(|c| !matches!(c, Data::Empty)))
            .map(|(i, r)| (first_row + i + 1, r.to_vec()))
            .collect();
        Ok(Self {
            file: path.to_owned(),
            header,
            rows,
        })
    }

    fn column(&self, name: &str) -> Result<usize> {
        crate::manifest::find_column(&self.file, &self.header, name)
    }

    fn parse_err(&self, row: usize, idx: usize, message: String) -> DataError {
        DataError::Parse {
            file: self.file.clone(),
            row,
            column: self
                .header
                .get(idx)
                .cloned()
                .unwrap_or_else(|| format!("#{}", idx + 1)),
            message,
        }
    }

    /// A non-empty cell as text; whole numbers print without a fraction (CSIQ's image `1600` is a number cell).
    fn text(&self, row: usize, cells: &[Data], idx: usize) -> Result<String> {
        match cells.get(idx).and_then(cell_text) {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.parse_err(row, idx, "empty or missing cell".into())),
        }
    }

    /// A finite number, from a number cell or a text cell holding one.
    fn number(&self, row: usize, cells: &[Data], idx: usize) -> Result<f64> {
        let v = match cells.get(idx) {
            Some(Data::Float(f)) => Some(*f),
            Some(Data::Int(i)) => Some(*i as f64),
            Some(Data::String(s)) => s.trim().parse::<f64>().ok(),
            None | Some(Data::Empty) => {
                return Err(self.parse_err(row, idx, "empty or missing cell".into()));
            }
            Some(_) => None,
        };
        match v {
            Some(v) if v.is_finite() => Ok(v),
            _ => {
                let shown = cells.get(idx).map(|c| format!("{c}")).unwrap_or_default();
                Err(self.parse_err(row, idx, format!("{shown:?} is not a finite number")))
            }
        }
    }
}

/// The text of a cell; `None` for empty cells and cell errors.
fn cell_text(c: &Data) -> Option<String> {
    match c {
        Data::Empty | Data::Error(_) => None,
        Data::String(s) => Some(s.trim().to_owned()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(format!("{}", *f as i64)),
        other => Some(format!("{other}")),
    }
}

/// Reads SPAQ's `Annotations/MOS and Image attribute scores.xlsx` (first sheet; columns `Image name, MOS,
/// Brightness, Colorfulness, Contrast, Noisiness, Sharpness`). MOS on 0–100, higher is better; images are named
/// as in the file (they live in `TestImage/`). No split, no reference. Rows are spreadsheet rows (header = 1).
///
/// # Errors
/// [`DataError::Io`] for a missing file, [`DataError::Format`] for a file that is not a workbook,
/// [`DataError::MissingColumn`], or [`DataError::Parse`] naming the file, row and column.
pub fn read_spaq(path: &Path) -> Result<Manifest> {
    let sheet = Sheet::open(path, None)?;
    let img = sheet.column("Image name")?;
    let mos = sheet.column("MOS")?;
    let mut entries = Vec::with_capacity(sheet.rows.len());
    for (row, cells) in &sheet.rows {
        entries.push(Entry {
            image: sheet.text(*row, cells, img)?,
            mos: sheet.number(*row, cells, mos)?,
            split: None,
            reference: None,
            distortion: None,
        });
    }
    Ok(Manifest {
        scale: Scale::zero_to_hundred(),
        entries,
    })
}

/// CSIQ's distortion folders and file-name tokens, by the `dst_type` of `csiq.DMOS.xlsx` (compared without case
/// and spaces).
fn csiq_type(dst_type: &str) -> Option<(&'static str, &'static str)> {
    let key: String = dst_type
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    Some(match key.as_str() {
        "noise" | "awgn" => ("awgn", "AWGN"),
        "jpeg" => ("jpeg", "JPEG"),
        "jpeg2000" | "jp2k" => ("jpeg2000", "jpeg2000"),
        "fnoise" => ("fnoise", "fnoise"),
        "blur" => ("blur", "BLUR"),
        "contrast" => ("contrast", "contrast"),
        _ => return None,
    })
}

/// Reads CSIQ's `csiq.DMOS.xlsx`, sheet `all_by_image` (columns `image, dst_idx, dst_type, dst_lev, dmos_std,
/// dmos`). The score is `dmos` on 0–1, **lower is better**; the image is
/// `dst_imgs/<awgn|blur|contrast|fnoise|jpeg|jpeg2000>/<image>.<AWGN|BLUR|contrast|fnoise|JPEG|jpeg2000>.<lev>.png`
/// (relative to the dataset folder) and `reference` is the `image` name, so [`Manifest::with_random_split`] keeps
/// the distortions of one image together.
///
/// # Errors
/// As [`read_spaq`]; an unknown `dst_type` or a `dst_lev` that is not a whole number is a [`DataError::Parse`]; a
/// workbook without the sheet is a [`DataError::Format`].
pub fn read_csiq(path: &Path) -> Result<Manifest> {
    let sheet = Sheet::open(path, Some("all_by_image"))?;
    let img = sheet.column("image")?;
    let ty = sheet.column("dst_type")?;
    let lev = sheet.column("dst_lev")?;
    let dmos = sheet.column("dmos")?;
    let mut entries = Vec::with_capacity(sheet.rows.len());
    for (row, cells) in &sheet.rows {
        let name = sheet.text(*row, cells, img)?;
        let t = sheet.text(*row, cells, ty)?;
        let (folder, token) = csiq_type(&t)
            .ok_or_else(|| sheet.parse_err(*row, ty, format!("unknown distortion type {t:?}")))?;
        let l = sheet.number(*row, cells, lev)?;
        if l.fract() != 0.0 || l < 0.0 {
            return Err(sheet.parse_err(*row, lev, format!("{l} is not a level number")));
        }
        entries.push(Entry {
            image: format!("dst_imgs/{folder}/{name}.{token}.{l}.png"),
            mos: sheet.number(*row, cells, dmos)?,
            split: None,
            reference: Some(name),
            distortion: Some(folder.to_string()),
        });
    }
    Ok(Manifest {
        scale: Scale::new(0.0, 1.0, false)?,
        entries,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// MAT-file level 5

/// A MATLAB value as far as these readers need it.
#[derive(Debug, Clone, PartialEq)]
enum MatValue {
    /// A numeric array (any numeric class, real part, as `f64`), column-major, with its dimensions.
    Numeric { dims: Vec<usize>, data: Vec<f64> },
    /// A char array, one string per row.
    Char(Vec<String>),
    /// A cell array, column-major.
    Cell {
        dims: Vec<usize>,
        cells: Vec<MatValue>,
    },
    /// Any other class (struct, sparse, object, logical …), not decoded.
    Other(u8),
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

const MX_CELL: u8 = 1;
const MX_CHAR: u8 = 4;

/// A byte cursor over a MAT file's (or an inflated element's) bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Cursor<'a> {
    fn u16_at(&self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    fn u32_at(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    /// The next data element: its type and bytes (padding skipped). `None` at the end.
    fn element(&mut self) -> std::result::Result<Option<(u32, &'a [u8])>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or("truncated data element tag")?;
        let first = self.u32_at(&tag[..4]);
        if first >> 16 != 0 {
            // Small data element: type and size in the first four bytes, data in the next four.
            let (ty, n) = (first & 0xffff, (first >> 16) as usize);
            if n > 4 {
                return Err(format!("small data element of {n} bytes"));
            }
            let data = &self.buf[self.pos + 4..self.pos + 4 + n];
            self.pos += 8;
            return Ok(Some((ty, data)));
        }
        let n = self.u32_at(&tag[4..]) as usize;
        let start = self.pos + 8;
        let data = self
            .buf
            .get(start..start + n)
            .ok_or_else(|| format!("data element of {n} bytes runs past the end"))?;
        // Compressed elements are not padded; all others are padded to 8 bytes.
        self.pos = if first == MI_COMPRESSED {
            start + n
        } else {
            start + n.div_ceil(8) * 8
        };
        Ok(Some((first, data)))
    }

    fn sub(&self, buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            big_endian: self.big_endian,
        }
    }

    /// Numbers of a numeric data element, as `f64`.
    fn numbers(&self, ty: u32, b: &[u8]) -> std::result::Result<Vec<f64>, String> {
        let be = self.big_endian;
        let w = match ty {
            MI_INT8 | MI_UINT8 => 1,
            MI_INT16 | MI_UINT16 => 2,
            MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
            MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
            _ => return Err(format!("data type {ty} is not numeric")),
        };
        Ok(b.chunks_exact(w)
            .map(|c| {
                let u64v = |c: &[u8]| {
                    let a: [u8; 8] = c.try_into().unwrap_or([0; 8]);
                    if be {
                        u64::from_be_bytes(a)
                    } else {
                        u64::from_le_bytes(a)
                    }
                };
                match ty {
                    MI_INT8 => f64::from(c[0] as i8),
                    MI_UINT8 => f64::from(c[0]),
                    MI_INT16 => f64::from(self.u16_at(c) as i16),
                    MI_UINT16 => f64::from(self.u16_at(c)),
                    MI_INT32 => f64::from(self.u32_at(c) as i32),
                    MI_UINT32 => f64::from(self.u32_at(c)),
                    MI_SINGLE => f64::from(f32::from_bits(self.u32_at(c))),
                    MI_DOUBLE => f64::from_bits(u64v(c)),
                    MI_INT64 => u64v(c) as i64 as f64,
                    _ => u64v(c) as f64,
                }
            })
            .collect())
    }
}

/// Parses the body of an `miMATRIX` element: (name, value).
fn parse_matrix(cur: &Cursor<'_>, body: &[u8]) -> std::result::Result<(String, MatValue), String> {
    if body.is_empty() {
        // An empty array (MATLAB writes `[]` cells this way).
        return Ok((
            String::new(),
            MatValue::Numeric {
                dims: vec![0, 0],
                data: Vec::new(),
            },
        ));
    }
    let mut c = cur.sub(body);
    let (_, flags) = c.element()?.ok_or("no array flags")?;
    if flags.len() < 4 {
        return Err("short array flags".into());
    }
    let class = (cur.u32_at(flags) & 0xff) as u8;
    let (dty, dbytes) = c.element()?.ok_or("no dimensions")?;
    let dims: Vec<usize> = cur
        .numbers(dty, dbytes)?
        .into_iter()
        .map(|d| d.max(0.0) as usize)
        .collect();
    let (_, name) = c.element()?.ok_or("no array name")?;
    let name = String::from_utf8_lossy(name).into_owned();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("array dimensions overflow")?;
    let value = match class {
        MX_CELL => {
            let mut cells = Vec::with_capacity(count.min(body.len() / 8));
            for _ in 0..count {
                let (ty, b) = c
                    .element()?
                    .ok_or("cell array shorter than its dimensions")?;
                if ty != MI_MATRIX {
                    return Err(format!("cell element of data type {ty}"));
                }
                cells.push(parse_matrix(cur, b)?.1);
            }
            MatValue::Cell { dims, cells }
        }
        MX_CHAR => {
            let (ty, b) = c.element()?.unwrap_or((MI_UTF8, &[]));
            let units: Vec<u32> = match ty {
                MI_UTF8 => {
                    let chars = decode_utf8_units(b);
                    return Ok((name, MatValue::Char(char_rows(&dims, count, &chars)?)));
                }
                MI_UINT16 | MI_UTF16 => b
                    .chunks_exact(2)
                    .map(|x| u32::from(cur.u16_at(x)))
                    .collect(),
                MI_UTF32 | MI_UINT32 => b.chunks_exact(4).map(|x| cur.u32_at(x)).collect(),
                MI_UINT8 | MI_INT8 => b.iter().map(|&x| u32::from(x)).collect(),
                other => return Err(format!("char data of type {other}")),
            };
            let chars: Vec<char> = units
                .into_iter()
                .map(|u| char::from_u32(u).unwrap_or('\u{fffd}'))
                .collect();
            MatValue::Char(char_rows(&dims, count, &chars)?)
        }
        6..=15 => {
            let (ty, b) = c.element()?.ok_or("no real part")?;
            MatValue::Numeric {
                dims,
                data: cur.numbers(ty, b)?,
            }
        }
        other => MatValue::Other(other),
    };
    Ok((name, value))
}

fn decode_utf8_units(b: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(b).chars().collect()
}

/// Column-major chars → one string per row. The dimensions must account for exactly the characters stored
/// (`count` = their product): a header that claims more rows than the data holds is refused, not allocated (a
/// fuzzing finding: 4 × 10⁹ claimed rows over a few bytes).
fn char_rows(
    dims: &[usize],
    count: usize,
    chars: &[char],
) -> std::result::Result<Vec<String>, String> {
    if count != chars.len() {
        return Err(format!(
            "char array of dimensions {dims:?} ({count} elements) holds {} characters",
            chars.len()
        ));
    }
    let rows = dims.first().copied().unwrap_or(0);
    if rows == 0 {
        return Ok(Vec::new());
    }
    let cols = chars.len() / rows;
    Ok((0..rows)
        .map(|r| (0..cols).filter_map(|c| chars.get(c * rows + r)).collect())
        .collect())
}

/// Reads the variable `var` of a MAT-file level 5.
fn read_mat_var(path: &Path, var: &str) -> Result<MatValue> {
    let fmt = |message: String| DataError::Format {
        file: path.to_owned(),
        message,
    };
    let bytes =
        biqa_core::read_bytes(path, biqa_core::DATA_LIMIT).map_err(|e| DataError::io(path, e))?;
    if bytes.len() < 128 {
        return Err(fmt("too short for a MAT-file (128-byte header)".into()));
    }
    if bytes.starts_with(b"\x89HDF") || bytes.starts_with(b"MATLAB 7.3") {
        return Err(fmt(
            "a MAT-file version 7.3 (HDF5) is not supported; save with -v7 or -v6".into(),
        ));
    }
    let big_endian = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        _ => return Err(fmt("not a MAT-file level 5 (no endian indicator)".into())),
    };
    let mut cur = Cursor {
        buf: &bytes[128..],
        pos: 0,
        big_endian,
    };
    loop {
        let Some((ty, body)) = cur.element().map_err(&fmt)? else {
            return Err(fmt(format!("missing MAT variable {var}")));
        };
        let inflated;
        let (ty, body) = if ty == MI_COMPRESSED {
            inflated = miniz_oxide::inflate::decompress_to_vec_zlib(body)
                .map_err(|e| fmt(format!("cannot inflate a compressed element: {e:?}")))?;
            let mut inner = cur.sub(&inflated);
            let (t, b) = inner
                .element()
                .map_err(&fmt)?
                .ok_or_else(|| fmt("empty compressed element".into()))?;
            (t, b.to_vec())
        } else {
            (ty, body.to_vec())
        };
        if ty != MI_MATRIX {
            continue;
        }
        let (name, value) = parse_matrix(&cur, &body).map_err(&fmt)?;
        if name == var {
            return Ok(value);
        }
    }
}

/// Options of [`read_live_challenge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveChallengeOptions {
    /// How many leading entries to drop: 7 by default (the training images t1–t7, as pyiqa's
    /// `LIVEChallengeDataset` does, leaving 1 162 of 1 169); 0 keeps all (as Q-Align's `livec.json`).
    pub skip: usize,
}

impl Default for LiveChallengeOptions {
    fn default() -> Self {
        Self { skip: 7 }
    }
}

/// Reads LIVE Challenge (CLIVE): image names from the cell array `AllImages_release` of `images_mat`
/// (`Data/AllImages_release.mat`) and MOS from the numeric array `AllMOS_release` of `mos_mat`
/// (`Data/AllMOS_release.mat`), paired in order; the first `options.skip` pairs are dropped. MOS on 0–100, higher
/// is better; images are named as in the file (they live in `Images/`). Rows in errors are 1-based entry indices.
///
/// # Errors
/// [`DataError::Io`]; [`DataError::Format`] for a file that is not a MAT-file level 5, a missing variable (named
/// in the message), a variable of the wrong class or different entry counts; [`DataError::Parse`] for a cell that
/// is not a string or a MOS that is not finite.
pub fn read_live_challenge(
    images_mat: &Path,
    mos_mat: &Path,
    options: LiveChallengeOptions,
) -> Result<Manifest> {
    const IMAGES: &str = "AllImages_release";
    const MOS: &str = "AllMOS_release";
    let names = match read_mat_var(images_mat, IMAGES)? {
        MatValue::Cell { cells, .. } => cells,
        _ => {
            return Err(DataError::Format {
                file: images_mat.to_owned(),
                message: format!("variable {IMAGES} is not a cell array"),
            });
        }
    };
    let mos = match read_mat_var(mos_mat, MOS)? {
        MatValue::Numeric { data, .. } => data,
        _ => {
            return Err(DataError::Format {
                file: mos_mat.to_owned(),
                message: format!("variable {MOS} is not a numeric array"),
            });
        }
    };
    if names.len() != mos.len() {
        return Err(DataError::Format {
            file: mos_mat.to_owned(),
            message: format!(
                "{MOS} has {} entries but {IMAGES} of {} has {}",
                mos.len(),
                images_mat.display(),
                names.len()
            ),
        });
    }
    let mut entries = Vec::with_capacity(names.len().saturating_sub(options.skip));
    for (i, (name, &m)) in names.iter().zip(&mos).enumerate().skip(options.skip) {
        let row = i + 1;
        let image = match name {
            MatValue::Char(rows) if rows.len() == 1 && !rows[0].trim().is_empty() => {
                rows[0].trim().to_owned()
            }
            _ => {
                return Err(DataError::Parse {
                    file: images_mat.to_owned(),
                    row,
                    column: IMAGES.into(),
                    message: "expected a non-empty one-line string".into(),
                });
            }
        };
        if !m.is_finite() {
            return Err(DataError::Parse {
                file: mos_mat.to_owned(),
                row,
                column: MOS.into(),
                message: format!("{m} is not a finite number"),
            });
        }
        entries.push(Entry {
            image,
            mos: m,
            split: None,
            reference: None,
            distortion: None,
        });
    }
    Ok(Manifest {
        scale: Scale::zero_to_hundred(),
        entries,
    })
}
