//! `tokenizer.model`: a SentencePiece `ModelProto`, read with a small bounds-checked protobuf reader.
//!
//! ```text
//! message ModelProto {
//!   repeated SentencePiece pieces = 1;  // { string piece = 1; float score = 2; Type type = 3 [default = NORMAL]; }
//!   TrainerSpec trainer_spec = 2;       // model_type = 3, treat_whitespace_as_suffix = 24, byte_fallback = 35,
//!                                       // unk_surface = 44
//!   NormalizerSpec normalizer_spec = 3; // name = 1, precompiled_charsmap = 2, add_dummy_prefix = 3,
//!                                       // remove_extra_whitespaces = 4, escape_whitespaces = 5
//!   NormalizerSpec denormalizer_spec = 5;
//! }
//! ```

use super::spm::{DEFAULT_UNK_SURFACE, PieceKind, PieceSpec, SpModel, SpOptions, parse_byte_piece};

/// Why a model file cannot be used.
#[derive(Debug)]
pub(crate) enum ProtoError {
    /// Not a valid model (bad wire format, inconsistent pieces).
    Corrupt(String),
    /// A valid model of a kind this crate does not implement.
    Unsupported(String),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(format!("truncated varint at byte {}", self.pos));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }

    fn key(&mut self) -> Result<(u64, u8), String> {
        let at = self.pos;
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(format!("field number 0 at byte {at}"));
        }
        Ok((field, (key & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "field of {n} bytes at byte {} runs past the end ({} bytes)",
                    self.pos,
                    self.buf.len()
                )
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| format!("length {n} is too large"))?;
        self.take(n)
    }

    fn fixed32(&mut self) -> Result<[u8; 4], String> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            w => Err(format!("unsupported wire type {w} at byte {}", self.pos)),
        }
    }
}

fn expect_wire(field: &str, wire: u8, expected: u8) -> Result<(), String> {
    if wire == expected {
        Ok(())
    } else {
        Err(format!(
            "field {field} has wire type {wire}, expected {expected}"
        ))
    }
}

fn utf8(field: &str, bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{field} is not valid UTF-8"))
}

#[derive(Default)]
struct RawPiece {
    text: Option<String>,
    score: f32,
    kind: Option<u64>,
}

fn parse_piece(buf: &[u8], index: usize) -> Result<RawPiece, String> {
    let mut r = Reader::new(buf);
    let mut p = RawPiece::default();
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect_wire("SentencePiece.piece", wire, LEN)?;
                p.text = Some(utf8(&format!("piece {index}"), r.bytes()?)?);
            }
            2 => {
                expect_wire("SentencePiece.score", wire, FIXED32)?;
                p.score = f32::from_le_bytes(r.fixed32()?);
            }
            3 => {
                expect_wire("SentencePiece.type", wire, VARINT)?;
                p.kind = Some(r.varint()?);
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(p)
}

struct Trainer {
    model_type: u64,
    treat_whitespace_as_suffix: bool,
    byte_fallback: bool,
    unk_surface: String,
}

fn parse_trainer(buf: &[u8]) -> Result<Trainer, String> {
    let mut t = Trainer {
        model_type: 1, // UNIGRAM, the proto default
        treat_whitespace_as_suffix: false,
        byte_fallback: false,
        unk_surface: DEFAULT_UNK_SURFACE.to_owned(),
    };
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            3 => {
                expect_wire("TrainerSpec.model_type", wire, VARINT)?;
                t.model_type = r.varint()?;
            }
            24 => {
                expect_wire("TrainerSpec.treat_whitespace_as_suffix", wire, VARINT)?;
                t.treat_whitespace_as_suffix = r.varint()? != 0;
            }
            35 => {
                expect_wire("TrainerSpec.byte_fallback", wire, VARINT)?;
                t.byte_fallback = r.varint()? != 0;
            }
            44 => {
                expect_wire("TrainerSpec.unk_surface", wire, LEN)?;
                t.unk_surface = utf8("TrainerSpec.unk_surface", r.bytes()?)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(t)
}

struct Normalizer {
    name: String,
    charsmap_len: usize,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

fn parse_normalizer(buf: &[u8], what: &str) -> Result<Normalizer, String> {
    let mut n = Normalizer {
        name: String::new(),
        charsmap_len: 0,
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
        escape_whitespaces: true,
    };
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect_wire(&format!("{what}.name"), wire, LEN)?;
                n.name = utf8(&format!("{what}.name"), r.bytes()?)?;
            }
            2 => {
                expect_wire(&format!("{what}.precompiled_charsmap"), wire, LEN)?;
                n.charsmap_len = r.bytes()?.len();
            }
            3..=5 => {
                expect_wire(&format!("{what} field {field}"), wire, VARINT)?;
                let v = r.varint()? != 0;
                match field {
                    3 => n.add_dummy_prefix = v,
                    4 => n.remove_extra_whitespaces = v,
                    _ => n.escape_whitespaces = v,
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(n)
}

/// Parses a serialized `ModelProto` into a model.
pub(crate) fn parse_model(bytes: &[u8]) -> Result<SpModel, ProtoError> {
    use ProtoError::{Corrupt, Unsupported};
    let mut r = Reader::new(bytes);
    let mut pieces = Vec::new();
    let mut trainer = None;
    let mut normalizer = None;
    let mut denormalizer = None;
    while !r.done() {
        let (field, wire) = r.key().map_err(Corrupt)?;
        match field {
            1 => {
                expect_wire("ModelProto.pieces", wire, LEN).map_err(Corrupt)?;
                let buf = r.bytes().map_err(Corrupt)?;
                pieces.push(parse_piece(buf, pieces.len()).map_err(Corrupt)?);
            }
            2 => {
                expect_wire("ModelProto.trainer_spec", wire, LEN).map_err(Corrupt)?;
                trainer = Some(parse_trainer(r.bytes().map_err(Corrupt)?).map_err(Corrupt)?);
            }
            3 => {
                expect_wire("ModelProto.normalizer_spec", wire, LEN).map_err(Corrupt)?;
                let buf = r.bytes().map_err(Corrupt)?;
                normalizer = Some(parse_normalizer(buf, "NormalizerSpec").map_err(Corrupt)?);
            }
            5 => {
                expect_wire("ModelProto.denormalizer_spec", wire, LEN).map_err(Corrupt)?;
                let buf = r.bytes().map_err(Corrupt)?;
                denormalizer = Some(parse_normalizer(buf, "denormalizer_spec").map_err(Corrupt)?);
            }
            _ => r.skip(wire).map_err(Corrupt)?,
        }
    }
    if pieces.is_empty() {
        return Err(Corrupt(
            "no pieces (empty or not a SentencePiece model)".into(),
        ));
    }
    let trainer = trainer.ok_or_else(|| Corrupt("no trainer_spec".into()))?;
    if trainer.model_type != 2 {
        let name = match trainer.model_type {
            1 => "UNIGRAM",
            3 => "WORD",
            4 => "CHAR",
            _ => "unknown",
        };
        return Err(Unsupported(format!(
            "model_type {} ({name}); only BPE (2) is implemented",
            trainer.model_type
        )));
    }
    if trainer.treat_whitespace_as_suffix {
        return Err(Unsupported("treat_whitespace_as_suffix".into()));
    }
    // A missing normalizer_spec is the proto default: no rule, dummy prefix, extra whitespace removed.
    let normalizer = normalizer.unwrap_or(Normalizer {
        name: String::new(),
        charsmap_len: 0,
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
        escape_whitespaces: true,
    });
    if normalizer.charsmap_len > 0 {
        return Err(Unsupported(format!(
            "normalizer {:?} with a precompiled character map; only the identity rule is implemented",
            normalizer.name
        )));
    }
    if denormalizer.is_some_and(|d| d.charsmap_len > 0) {
        return Err(Unsupported("a denormalizer character map".into()));
    }
    let mut specs = Vec::with_capacity(pieces.len());
    for (i, p) in pieces.into_iter().enumerate() {
        let text = p
            .text
            .ok_or_else(|| Corrupt(format!("piece {i} has no text")))?;
        let kind = match p.kind.unwrap_or(1) {
            1 => PieceKind::Normal,
            2 => PieceKind::Unknown,
            3 => PieceKind::Control,
            4 => PieceKind::UserDefined,
            5 => PieceKind::Unused,
            6 => PieceKind::Byte(
                parse_byte_piece(&text)
                    .ok_or_else(|| Corrupt(format!("byte piece {i} is {text:?}, not <0xHH>")))?,
            ),
            t => return Err(Corrupt(format!("piece {i} has unknown type {t}"))),
        };
        specs.push(PieceSpec {
            text,
            score: p.score,
            kind,
        });
    }
    let opts = SpOptions {
        add_dummy_prefix: normalizer.add_dummy_prefix,
        remove_extra_whitespaces: normalizer.remove_extra_whitespaces,
        escape_whitespaces: normalizer.escape_whitespaces,
        byte_fallback: trainer.byte_fallback,
        unk_surface: trainer.unk_surface,
    };
    SpModel::new(specs, opts).map_err(Corrupt)
}
