//! A port of the parts of sentencepiece 0.2.x that a LLaMA tokenizer uses: the normaliser (identity rule, dummy
//! prefix, whitespace escaping), the BPE segmentation of `bpe_model.cc` (merges by piece score, ties to the leftmost
//! pair, byte fallback, resegmentation of unused pieces) and the decoder of `sentencepiece_processor.cc` (byte runs
//! with one U+FFFD per invalid byte, the leading-`▁` rule).
//!
//! [`SpModel`] is built either from `tokenizer.model` ([`super::proto`]) or from `tokenizer.json` ([`super::json`]).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// `▁` (U+2581), SentencePiece's whitespace symbol.
pub(crate) const SPACE_SYMBOL: &str = "\u{2581}";

/// sentencepiece's default `unk_surface` (U+2047 between spaces).
pub(crate) const DEFAULT_UNK_SURFACE: &str = " \u{2047} ";

/// The type of a piece (`ModelProto.SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceKind {
    /// An ordinary piece.
    Normal,
    /// The unknown piece.
    Unknown,
    /// A control piece (`<s>`, `</s>`): invisible when decoding.
    Control,
    /// A user-defined piece: always one symbol, never merged.
    UserDefined,
    /// An unused piece: resegmented into the pieces it was merged from.
    Unused,
    /// A byte-fallback piece `<0xHH>`.
    Byte(u8),
}

impl PieceKind {
    /// Pieces in sentencepiece's `pieces_` map (merge targets); the others are in `reserved_id_map_`.
    fn is_mergeable(self) -> bool {
        matches!(self, Self::Normal | Self::UserDefined | Self::Unused)
    }
}

/// One piece as read from a tokenizer file.
#[derive(Debug, Clone)]
pub(crate) struct PieceSpec {
    /// The piece text.
    pub text: String,
    /// The merge priority (larger merges first).
    pub score: f32,
    /// The type.
    pub kind: PieceKind,
}

/// Normaliser and decoder options (`NormalizerSpec`, `TrainerSpec`).
#[derive(Debug, Clone)]
pub(crate) struct SpOptions {
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
    pub byte_fallback: bool,
    pub unk_surface: String,
}

/// A SentencePiece BPE model.
#[derive(Debug, Clone)]
pub(crate) struct SpModel {
    pieces: Vec<PieceSpec>,
    /// sentencepiece's `pieces_`: normal, user-defined and unused pieces.
    mergeable: HashMap<String, u32>,
    /// sentencepiece's `reserved_id_map_`: unknown, control and byte pieces.
    reserved: HashMap<String, u32>,
    /// User-defined pieces, longest first (the prefix matcher).
    user_defined: Vec<String>,
    unk_id: u32,
    opts: SpOptions,
}

/// `<0xHH>` for a byte, as sentencepiece's `ByteToPiece`.
pub(crate) fn byte_piece(b: u8) -> String {
    format!("<0x{b:02X}>")
}

/// The byte of a `<0xHH>` piece (`PieceToByte`); `None` for anything else.
pub(crate) fn parse_byte_piece(s: &str) -> Option<u8> {
    let hex = s.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl SpModel {
    /// Builds the model, checking what sentencepiece's `InitializePieces` checks.
    pub(crate) fn new(pieces: Vec<PieceSpec>, opts: SpOptions) -> Result<Self, String> {
        if pieces.is_empty() {
            return Err("the model has no pieces".into());
        }
        if u32::try_from(pieces.len()).is_err() {
            return Err(format!("{} pieces is too many", pieces.len()));
        }
        let mut mergeable = HashMap::new();
        let mut reserved = HashMap::new();
        let mut user_defined = Vec::new();
        let mut unk_id = None;
        let mut bytes_found = [false; 256];
        for (i, p) in pieces.iter().enumerate() {
            let id = i as u32;
            if p.text.is_empty() {
                return Err(format!("piece {id} is empty"));
            }
            if p.score.is_nan() {
                return Err(format!("piece {id} ({:?}) has a NaN score", p.text));
            }
            let map = if p.kind.is_mergeable() {
                &mut mergeable
            } else {
                &mut reserved
            };
            if map.insert(p.text.clone(), id).is_some() {
                return Err(format!("piece {:?} is defined twice", p.text));
            }
            match p.kind {
                PieceKind::UserDefined => user_defined.push(p.text.clone()),
                PieceKind::Unknown => {
                    if unk_id.is_some() {
                        return Err("more than one unknown piece".into());
                    }
                    unk_id = Some(id);
                }
                PieceKind::Byte(b) => {
                    if !opts.byte_fallback {
                        return Err(format!(
                            "byte piece {:?} although byte_fallback is false",
                            p.text
                        ));
                    }
                    bytes_found[usize::from(b)] = true;
                }
                _ => {}
            }
        }
        let unk_id = unk_id.ok_or("the model has no unknown piece")?;
        if opts.byte_fallback && !bytes_found.iter().all(|&f| f) {
            return Err("byte_fallback is true but not all 256 byte pieces exist".into());
        }
        user_defined.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Self {
            pieces,
            mergeable,
            reserved,
            user_defined,
            unk_id,
            opts,
        })
    }

    /// Number of pieces.
    pub(crate) fn len(&self) -> usize {
        self.pieces.len()
    }

    /// The piece of an id.
    pub(crate) fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(|p| p.text.as_str())
    }

    /// The type of a piece.
    pub(crate) fn kind(&self, id: u32) -> Option<PieceKind> {
        self.pieces.get(id as usize).map(|p| p.kind)
    }

    /// The exact id of a piece, `None` when it is not in the vocabulary.
    pub(crate) fn lookup(&self, piece: &str) -> Option<u32> {
        self.reserved
            .get(piece)
            .or_else(|| self.mergeable.get(piece))
            .copied()
    }

    /// sentencepiece's `PieceToId`: the unknown id for a piece that is not in the vocabulary.
    pub(crate) fn piece_to_id(&self, piece: &str) -> u32 {
        self.lookup(piece).unwrap_or(self.unk_id)
    }

    fn is_unknown(&self, id: u32) -> bool {
        self.kind(id) == Some(PieceKind::Unknown)
    }

    /// `Normalizer::Normalize` with the identity rule (no character map).
    pub(crate) fn normalize(&self, text: &str) -> String {
        let o = &self.opts;
        let space: &str = if o.escape_whitespaces {
            SPACE_SYMBOL
        } else {
            " "
        };
        let mut input = text;
        if o.remove_extra_whitespaces {
            input = input.trim_start_matches(' ');
        }
        if input.is_empty() {
            return String::new();
        }
        let mut out = String::with_capacity(input.len() + 3 + input.len() / 2);
        if o.add_dummy_prefix {
            out.push_str(space);
        }
        let mut is_prev_space = o.remove_extra_whitespaces;
        for c in input.chars() {
            if !(is_prev_space && c == ' ') {
                if c == ' ' {
                    out.push_str(space);
                } else {
                    out.push(c);
                }
                is_prev_space = c == ' ';
            }
            if !o.remove_extra_whitespaces {
                is_prev_space = false;
            }
        }
        if o.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        out
    }

    /// `SentencePieceProcessor::Encode(text, out_type=str)`: the pieces of `text`, byte fallback applied.
    pub(crate) fn encode_pieces(&self, text: &str) -> Vec<String> {
        let normalized = self.normalize(text);
        let segments = self.bpe(&normalized);
        // PopulateSentencePieceText: byte fallback, or runs of unknown pieces merged into one.
        let mut out: Vec<String> = Vec::with_capacity(segments.len());
        let mut is_prev_unk = false;
        for (w, id) in segments {
            let is_unk = self.is_unknown(id);
            if is_unk && self.opts.byte_fallback {
                out.extend(w.bytes().map(byte_piece));
            } else if is_unk && is_prev_unk {
                if let Some(last) = out.last_mut() {
                    last.push_str(w);
                }
            } else {
                out.push(w.to_owned());
            }
            is_prev_unk = is_unk;
        }
        out
    }

    /// `bpe::Model::SampleEncode(normalized, alpha = 0)`: the segmentation and the id of each segment.
    fn bpe<'a>(&self, normalized: &'a str) -> Vec<(&'a str, u32)> {
        #[derive(Clone, Copy)]
        struct Symbol {
            start: usize,
            end: usize,
            prev: Option<usize>,
            next: Option<usize>,
            freeze: bool,
        }
        if normalized.is_empty() {
            return Vec::new();
        }
        // Split into characters, user-defined pieces as one frozen symbol.
        let mut symbols: Vec<Symbol> = Vec::with_capacity(normalized.len());
        let mut pos = 0;
        while pos < normalized.len() {
            let rest = &normalized[pos..];
            let (len, freeze) = match self
                .user_defined
                .iter()
                .find(|u| rest.starts_with(u.as_str()))
            {
                Some(u) => (u.len(), true),
                None => (rest.chars().next().map_or(1, char::len_utf8), false),
            };
            let index = symbols.len();
            symbols.push(Symbol {
                start: pos,
                end: pos + len,
                prev: index.checked_sub(1),
                next: (pos + len < normalized.len()).then_some(index + 1),
                freeze,
            });
            pos += len;
        }

        let mut agenda = BinaryHeap::new();
        let mut rev_merge: HashMap<&'a str, (&'a str, &'a str)> = HashMap::new();
        let maybe_add = |symbols: &[Symbol],
                         agenda: &mut BinaryHeap<Candidate>,
                         rev_merge: &mut HashMap<&'a str, (&'a str, &'a str)>,
                         left: Option<usize>,
                         right: Option<usize>| {
            let (Some(l), Some(r)) = (left, right) else {
                return;
            };
            let (sl, sr) = (symbols[l], symbols[r]);
            if sl.freeze || sr.freeze {
                return;
            }
            let piece = &normalized[sl.start..sr.end];
            let Some(&id) = self.mergeable.get(piece) else {
                return;
            };
            let spec = &self.pieces[id as usize];
            agenda.push(Candidate {
                score: spec.score,
                left: l,
                right: r,
                size: piece.len(),
            });
            if spec.kind == PieceKind::Unused {
                rev_merge.insert(
                    piece,
                    (&normalized[sl.start..sl.end], &normalized[sr.start..sr.end]),
                );
            }
        };
        for i in 1..symbols.len() {
            maybe_add(&symbols, &mut agenda, &mut rev_merge, Some(i - 1), Some(i));
        }
        while let Some(top) = agenda.pop() {
            let (l, r) = (symbols[top.left], symbols[top.right]);
            let (len_l, len_r) = (l.end - l.start, r.end - r.start);
            if len_l == 0 || len_r == 0 || len_l + len_r != top.size {
                continue; // stale
            }
            symbols[top.left].end = r.end;
            symbols[top.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(top.left);
            }
            symbols[top.right].end = symbols[top.right].start;
            let (prev, next) = (symbols[top.left].prev, symbols[top.left].next);
            maybe_add(&symbols, &mut agenda, &mut rev_merge, prev, Some(top.left));
            maybe_add(&symbols, &mut agenda, &mut rev_merge, Some(top.left), next);
        }

        let mut out = Vec::with_capacity(symbols.len());
        let mut index = Some(0);
        while let Some(i) = index {
            let s = symbols[i];
            self.resegment(&normalized[s.start..s.end], &rev_merge, &mut out);
            index = s.next;
        }
        out
    }

    fn resegment<'a>(
        &self,
        w: &'a str,
        rev_merge: &HashMap<&'a str, (&'a str, &'a str)>,
        out: &mut Vec<(&'a str, u32)>,
    ) {
        let id = self.piece_to_id(w);
        if self.kind(id) == Some(PieceKind::Unused)
            && let Some(&(l, r)) = rev_merge.get(w)
        {
            self.resegment(l, rev_merge, out);
            self.resegment(r, rev_merge, out);
            return;
        }
        out.push((w, id));
    }

    /// `SentencePieceProcessor::Decode(pieces)`: control pieces vanish, `<unk>` becomes the unknown surface, runs of
    /// byte pieces are UTF-8 decoded with one U+FFFD per invalid byte, and the `▁` of the first piece is dropped
    /// (dummy prefix).
    pub(crate) fn decode_pieces<S: AsRef<str>>(&self, pieces: &[S]) -> String {
        let mut text = String::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        for w in pieces {
            let w = w.as_ref();
            let id = self.piece_to_id(w);
            let kind = self.kind(id).unwrap_or(PieceKind::Unknown);
            if let PieceKind::Byte(b) = kind {
                bytes.push(b);
                continue;
            }
            decode_byte_run(&bytes, &mut text);
            bytes.clear();
            if bos_ws_seen || !text.is_empty() {
                is_bos_ws = false;
            }
            bos_ws_seen = false;
            match kind {
                PieceKind::Control => {}
                PieceKind::Unknown => {
                    if self.piece(id) == Some(w) {
                        text.push_str(&self.opts.unk_surface);
                    } else {
                        text.push_str(w);
                    }
                }
                _ => {
                    let mut piece = w;
                    if is_bos_ws
                        && (self.opts.add_dummy_prefix || self.opts.remove_extra_whitespaces)
                        && let Some(rest) = piece.strip_prefix(SPACE_SYMBOL)
                    {
                        piece = rest;
                        bos_ws_seen = !self.opts.remove_extra_whitespaces;
                    }
                    text.push_str(&piece.replace(SPACE_SYMBOL, " "));
                }
            }
        }
        decode_byte_run(&bytes, &mut text);
        text
    }

    /// The number of trailing bytes of a byte run that sentencepiece could still decode differently once more
    /// bytes follow (an incomplete UTF-8 sequence at the end).
    pub(crate) fn pending_bytes(run: &[u8]) -> usize {
        let mut offset = 0;
        while offset < run.len() {
            let need = utf8_len(run[offset]);
            if need > run.len() - offset {
                return run.len() - offset;
            }
            offset += decode_utf8_step(&run[offset..]).map_or(1, |(_, n)| n);
        }
        0
    }
}

/// A candidate merge; the heap pops the highest score, ties to the leftmost pair (sentencepiece's
/// `SymbolPairComparator`). Scores are never NaN (checked when the model is built).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// The length of the UTF-8 sequence a lead byte announces (sentencepiece's `OneCharLen` for valid leads; 1 for a byte
/// that cannot start a sequence).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// sentencepiece's `DecodeUTF8` + `IsValidDecodeUTF8`: the character at the start of `bytes` and its length, or
/// `None` when the first byte does not start a valid, complete, shortest-form sequence.
fn decode_utf8_step(bytes: &[u8]) -> Option<(char, usize)> {
    let n = utf8_len(*bytes.first()?);
    if n > bytes.len() {
        return None;
    }
    // Rust's UTF-8 validation rejects exactly what `DecodeUTF8` rejects: trail bytes outside 0x80..=0xBF,
    // overlong forms, surrogates and code points above U+10FFFF.
    let s = std::str::from_utf8(&bytes[..n]).ok()?;
    s.chars().next().map(|c| (c, n))
}

/// `ProcessBytePieces`: appends the decoded run, one U+FFFD per byte that does not start a valid character.
fn decode_byte_run(bytes: &[u8], text: &mut String) {
    let mut offset = 0;
    while offset < bytes.len() {
        match decode_utf8_step(&bytes[offset..]) {
            Some((c, n)) => {
                text.push(c);
                offset += n;
            }
            None => {
                text.push('\u{FFFD}');
                offset += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_runs_follow_sentencepiece() {
        let mut s = String::new();
        decode_byte_run(&[0x55, 0x4E, 0xC0], &mut s);
        assert_eq!(s, "UN\u{FFFD}");
        s.clear();
        decode_byte_run(&[0xF0, 0x9F], &mut s);
        assert_eq!(s, "\u{FFFD}\u{FFFD}");
        s.clear();
        decode_byte_run(&[0xF0, 0x9F, 0x98, 0x80, 0x8B, 0x58], &mut s);
        assert_eq!(s, "😀\u{FFFD}X");
        s.clear();
        // Overlong and surrogate forms are invalid byte by byte.
        decode_byte_run(&[0xC0, 0x80, 0xED, 0xA0, 0x80], &mut s);
        assert_eq!(s, "\u{FFFD}".repeat(5));
        s.clear();
        // An encoded U+FFFD is a valid character.
        decode_byte_run(&[0xEF, 0xBF, 0xBD], &mut s);
        assert_eq!(s, "\u{FFFD}");
    }

    #[test]
    fn pending_bytes_are_incomplete_tails() {
        assert_eq!(SpModel::pending_bytes(&[]), 0);
        assert_eq!(SpModel::pending_bytes(&[0x41]), 0);
        assert_eq!(SpModel::pending_bytes(&[0xF0]), 1);
        assert_eq!(SpModel::pending_bytes(&[0xF0, 0x9F, 0x98]), 3);
        assert_eq!(SpModel::pending_bytes(&[0xF0, 0x9F, 0x98, 0x80]), 0);
        assert_eq!(SpModel::pending_bytes(&[0x8B]), 0);
        assert_eq!(SpModel::pending_bytes(&[0x41, 0xE7, 0x94]), 2);
    }

    #[test]
    fn byte_pieces_round_trip() {
        for b in 0..=255u8 {
            assert_eq!(parse_byte_piece(&byte_piece(b)), Some(b));
        }
        assert_eq!(parse_byte_piece("<0x1>"), None);
        assert_eq!(parse_byte_piece("<0xZZ>"), None);
        assert_eq!(parse_byte_piece("0x41"), None);
    }
}
