//! The pickle guard: every Python global a weight pickle names is checked **as the opcodes are read**, as
//! PyTorch's `weights_only` unpickler does, before any other code looks at the pickle. A callable hidden anywhere —
//! inside the arguments of `torch._utils._rebuild_tensor_v2`, behind `STACK_GLOBAL`, in the memo — is refused,
//! whether or not the value tree would keep it. Nothing is ever executed either way (Rust does not run pickles);
//! the guard makes the documented guarantee true: only tensor-rebuild globals get through, and so `biqa convert`
//! cannot launder a hostile checkpoint into a clean-looking safetensors file.
//!
//! The scanner simulates the pickle machine's stack only as far as it must to know `STACK_GLOBAL`'s operands and
//! the arguments of the tensor-rebuild calls (strings, integers, tuples, globals, marks, anything else);
//! extension-registry opcodes (`EXT1/2/4`, which name globals indirectly) are refused, and so is anything
//! malformed (an unknown opcode, a stack underflow, a missing memo entry).
//!
//! It also bounds memory by what the file holds: a `_rebuild_tensor*(storage, offset, size, stride, …)` view
//! whose element count exceeds the storage window its strides span (stride 0, overlapping strides: a 548-byte
//! file whose tensors claimed huge strides made `convert` write 1.6 GB) is refused. A view that passes
//! materialises at most the elements of the window, which the reader checks against the bytes the storage
//! really has before it allocates.

use std::collections::HashMap;
use std::rc::Rc;

/// Whether a weight pickle may name `module.name`: PyTorch's tensor and parameter rebuild functions, its storage
/// and size types, and `collections.OrderedDict`.
pub(crate) fn allowed_global(module: &str, name: &str) -> bool {
    match module {
        "torch._utils" => name.starts_with("_rebuild_"),
        "torch" => name.ends_with("Storage") || name == "Size" || name.ends_with("Tensor"),
        "collections" => name == "OrderedDict",
        _ => false,
    }
}

#[derive(Clone)]
enum Item {
    Str(String),
    Int(i64),
    /// Shared, so that memo copies of nested tuples cost nothing (a pickle cannot grow the scan exponentially).
    Tuple(Rc<Vec<Item>>),
    /// A global that passed [`allowed_global`], as `module.name`.
    Global(Rc<str>),
    Mark,
    Other,
}

fn tuple(items: Vec<Item>) -> Item {
    Item::Tuple(Rc::new(items))
}

/// The dimensions of a `size` or `stride` tuple: non-negative integers.
fn dims(item: &Item, what: &str) -> Result<Vec<u64>, String> {
    let Item::Tuple(items) = item else {
        return refuse(format!("a tensor {what} that is not a tuple"));
    };
    items
        .iter()
        .map(|i| match i {
            Item::Int(v) => {
                u64::try_from(*v).map_err(|_| format!("a negative tensor {what} ({v})"))
            }
            _ => refuse(format!("a tensor {what} that is not a tuple of integers")),
        })
        .collect()
}

/// A tensor view may not hold more elements than the storage window its strides span.
fn check_view(args: &Item) -> Result<(), String> {
    let Item::Tuple(args) = args else {
        return refuse("tensor-rebuild arguments that are not a tuple");
    };
    if args.len() < 4 {
        return refuse("tensor-rebuild arguments without size and stride");
    }
    let size = dims(&args[2], "size")?;
    let stride = dims(&args[3], "stride")?;
    if size.len() != stride.len() {
        return refuse(format!(
            "a tensor of size {size:?} with stride {stride:?} (different ranks)"
        ));
    }
    let overflow = || format!("a tensor of size {size:?} and stride {stride:?} overflows");
    let numel = size
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    if numel == 0 {
        return Ok(());
    }
    let span = size
        .iter()
        .zip(&stride)
        .try_fold(1u64, |a, (&d, &st)| {
            (d - 1).checked_mul(st).and_then(|x| a.checked_add(x))
        })
        .ok_or_else(overflow)?;
    if numel > span {
        return refuse(format!(
            "a tensor of size {size:?} with stride {stride:?} would materialise {numel} elements from a storage \
             window of {span}: broadcast or overlapping views are refused (memory is bounded by the file)"
        ));
    }
    Ok(())
}

/// Whether `global` is one of the tensor-rebuild functions whose arguments are `(storage, offset, size, stride, …)`.
fn rebuilds_view(global: &str) -> bool {
    matches!(
        global,
        "torch._utils._rebuild_tensor"
            | "torch._utils._rebuild_tensor_v2"
            | "torch._utils._rebuild_tensor_v3"
    )
}

/// An integer pickled as little-endian two's complement bytes (`LONG1` / `LONG4`), if it fits an i64.
fn long(bytes: &[u8]) -> Item {
    if bytes.is_empty() {
        return Item::Int(0);
    }
    if bytes.len() > 8 {
        return Item::Other;
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xff } else { 0 }; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    Item::Int(i64::from_le_bytes(buf))
}

fn refuse<T>(why: impl Into<String>) -> Result<T, String> {
    Err(why.into())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated pickle at byte {}", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let s = self.take(n)?;
        Ok(s.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }

    fn len(&mut self, n: usize) -> Result<usize, String> {
        usize::try_from(self.uint(n)?).map_err(|_| "a length beyond usize".to_string())
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.b[self.pos..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or("a text argument without its newline")?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| "a text argument that is not UTF-8".to_string())
    }
}

/// Checks one pickle stream starting at `start`; returns the position after its STOP.
pub(crate) fn scan(bytes: &[u8], start: usize) -> Result<usize, String> {
    let mut r = Reader {
        b: bytes,
        pos: start,
    };
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: HashMap<u64, Item> = HashMap::new();
    let pop = |stack: &mut Vec<Item>, n: usize| -> Result<Vec<Item>, String> {
        if stack.len() < n {
            return refuse("stack underflow");
        }
        Ok(stack.split_off(stack.len() - n))
    };
    let pop_mark = |stack: &mut Vec<Item>| -> Result<Vec<Item>, String> {
        let m = stack
            .iter()
            .rposition(|i| matches!(i, Item::Mark))
            .ok_or("no mark to pop to")?;
        let items = stack.split_off(m + 1);
        stack.pop();
        Ok(items)
    };
    let check = |module: &str, name: &str| -> Result<(), String> {
        if allowed_global(module, name) {
            Ok(())
        } else {
            refuse(format!(
                "the pickle references {module}.{name}, which is not a tensor-rebuild global"
            ))
        }
    };
    loop {
        let op = r.take(1)?[0];
        match op {
            b'.' => return Ok(r.pos),
            0x80 => {
                r.take(1)?;
            }
            0x95 => {
                r.take(8)?;
            }
            b'(' => stack.push(Item::Mark),
            // Strings.
            b'S' | b'V' => {
                let s = r.line()?.to_string();
                stack.push(Item::Str(
                    s.trim_matches(|c| c == '\'' || c == '"').to_string(),
                ));
            }
            b'T' | b'X' | b'U' | 0x8c | 0x8d => {
                let n = match op {
                    b'U' | 0x8c => r.len(1)?,
                    0x8d => r.len(8)?,
                    _ => r.len(4)?,
                };
                let s = String::from_utf8_lossy(r.take(n)?).into_owned();
                stack.push(Item::Str(s));
            }
            // Other values with fixed or counted arguments.
            b'N' | 0x88 | 0x89 | b'}' | b']' | 0x8f | 0x97 => stack.push(Item::Other),
            b')' => stack.push(tuple(Vec::new())),
            b'K' => {
                let v = r.uint(1)?;
                stack.push(Item::Int(v as i64));
            }
            b'M' => {
                let v = r.uint(2)?;
                stack.push(Item::Int(v as i64));
            }
            b'J' => {
                let v = r.uint(4)? as u32 as i32;
                stack.push(Item::Int(i64::from(v)));
            }
            b'G' => {
                r.take(8)?;
                stack.push(Item::Other);
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a { r.len(1)? } else { r.len(4)? };
                let bytes = r.take(n)?;
                stack.push(long(bytes));
            }
            b'C' | b'B' | 0x8e | 0x96 => {
                let n = match op {
                    b'C' => r.len(1)?,
                    b'B' => r.len(4)?,
                    _ => r.len(8)?,
                };
                r.take(n)?;
                stack.push(Item::Other);
            }
            b'I' | b'L' => {
                let text = r.line()?.trim_end_matches('L');
                stack.push(text.parse().map_or(Item::Other, Item::Int));
            }
            b'F' => {
                r.line()?;
                stack.push(Item::Other);
            }
            b'P' => {
                r.line()?;
                stack.push(Item::Other);
            }
            // Globals.
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?;
                check(&module, name)?;
                stack.push(Item::Global(format!("{module}.{name}").into()));
            }
            b'i' => {
                let module = r.line()?.to_string();
                let name = r.line()?;
                check(&module, name)?;
                pop_mark(&mut stack)?;
                stack.push(Item::Other);
            }
            0x93 => {
                let items = pop(&mut stack, 2)?;
                match (&items[0], &items[1]) {
                    (Item::Str(m), Item::Str(n)) => {
                        check(m, n)?;
                        stack.push(Item::Global(format!("{m}.{n}").into()));
                    }
                    _ => return refuse("STACK_GLOBAL on values that are not plain strings"),
                }
            }
            0x82..=0x84 => {
                return refuse("an extension-registry opcode (EXT1/2/4) names a global indirectly");
            }
            // Memo.
            b'g' => {
                let k: u64 = r.line()?.trim().parse().map_err(|_| "a bad GET index")?;
                stack.push(memo.get(&k).cloned().ok_or("GET of a missing memo entry")?);
            }
            b'h' | b'j' => {
                let k = r.uint(if op == b'h' { 1 } else { 4 })?;
                stack.push(memo.get(&k).cloned().ok_or("GET of a missing memo entry")?);
            }
            b'p' | b'q' | b'r' | 0x94 => {
                let k = match op {
                    b'p' => r.line()?.trim().parse().map_err(|_| "a bad PUT index")?,
                    b'q' => r.uint(1)?,
                    b'r' => r.uint(4)?,
                    _ => memo.len() as u64,
                };
                let top = stack.last().cloned().ok_or("PUT on an empty stack")?;
                memo.insert(k, top);
            }
            // Stack shapes.
            b'0' => {
                pop(&mut stack, 1)?;
            }
            b'1' | b'e' | b'u' | 0x90 => {
                pop_mark(&mut stack)?;
            }
            b'2' => {
                let top = stack.last().cloned().ok_or("DUP on an empty stack")?;
                stack.push(top);
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(tuple(items));
            }
            b'l' | b'd' | 0x91 | b'o' => {
                pop_mark(&mut stack)?;
                stack.push(Item::Other);
            }
            0x85..=0x87 => {
                let items = pop(&mut stack, usize::from(op - 0x84))?;
                stack.push(tuple(items));
            }
            b'a' | b'b' => {
                pop(&mut stack, 1)?;
            }
            b's' => {
                pop(&mut stack, 2)?;
            }
            b'R' => {
                let items = pop(&mut stack, 2)?;
                if let Item::Global(g) = &items[0]
                    && rebuilds_view(g)
                {
                    check_view(&items[1])?;
                }
                stack.push(Item::Other);
            }
            0x81 => {
                pop(&mut stack, 2)?;
                stack.push(Item::Other);
            }
            0x92 => {
                pop(&mut stack, 3)?;
                stack.push(Item::Other);
            }
            b'Q' => {
                pop(&mut stack, 1)?;
                stack.push(Item::Other);
            }
            0x98 => {}
            other => return refuse(format!("unknown pickle opcode 0x{other:02x}")),
        }
    }
}

/// Checks every pickle of an opened weight file: the `.pkl` entries of a zip archive (torch ≥ 1.6), read on their
/// own, or the leading pickles of the legacy format (magic number, protocol, system info, the tensor pickle), read
/// from a prefix that grows until they are complete. The tensor data is never read: a multi-gigabyte shard costs
/// the size of its pickle.
pub(crate) fn check_file(mut file: std::fs::File) -> Result<(), String> {
    use std::io::{Read, Seek};
    let io = |e: std::io::Error| format!("cannot read the file: {e}");
    let mut magic = [0u8; 2];
    let got = file.read(&mut magic).map_err(io)?;
    file.rewind().map_err(io)?;
    if got == 2 && magic == *b"PK" {
        let mut zip =
            zip::ZipArchive::new(file).map_err(|e| format!("not a readable zip archive: {e}"))?;
        let names: Vec<String> = zip
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .filter(|n| n.ends_with(".pkl"))
            .collect();
        if names.is_empty() {
            return refuse("no pickle in the archive");
        }
        for name in names {
            let mut f = zip.by_name(&name).map_err(|e| format!("{name}: {e}"))?;
            let mut pkl = Vec::new();
            f.read_to_end(&mut pkl)
                .map_err(|e| format!("{name}: {e}"))?;
            scan(&pkl, 0).map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(())
    } else {
        let len = file.metadata().map_err(io)?.len();
        let mut limit: u64 = 1 << 20;
        loop {
            let mut prefix = Vec::new();
            (&mut file)
                .take(limit)
                .read_to_end(&mut prefix)
                .map_err(io)?;
            file.rewind().map_err(io)?;
            let scanned = (0..4).try_fold(0, |pos, _| scan(&prefix, pos));
            match scanned {
                Ok(_) => return Ok(()),
                // A pickle cut by the prefix: read more, up to the whole file.
                Err(_) if limit < len => limit = limit.saturating_mul(4),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ops: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, 0x02];
        v.extend_from_slice(ops);
        v.push(b'.');
        v
    }

    #[test]
    fn rebuild_globals_pass_and_others_are_refused() {
        assert!(scan(&p(b"ctorch._utils\n_rebuild_tensor_v2\n"), 0).is_ok());
        assert!(scan(&p(b"ccollections\nOrderedDict\n)R"), 0).is_ok());
        let e = scan(&p(b"cposix\nsystem\nX\x04\x00\x00\x00true\x85R"), 0).unwrap_err();
        assert!(e.contains("posix.system"), "{e}");
    }

    #[test]
    fn stack_global_is_resolved_through_the_stack_and_the_memo() {
        // 'builtins' 'eval' STACK_GLOBAL
        let e = scan(&p(b"\x8c\x08builtins\x8c\x04eval\x93"), 0).unwrap_err();
        assert!(e.contains("builtins.eval"), "{e}");
        // Allowed strings pushed last but popped: the real top is the hostile pair.
        let ops = b"\x8c\x05posix\x8c\x06system\x8c\x05torch\x8c\x0cFloatStorage00\x93";
        let e = scan(&p(ops), 0).unwrap_err();
        assert!(e.contains("posix.system"), "{e}");
        // Through the memo.
        let ops = b"\x8c\x05posixq\x00\x8c\x06systemq\x010h\x00h\x01\x93";
        let e = scan(&p(&ops[..]), 0).unwrap_err();
        assert!(e.contains("posix.system"), "{e}");
        // A computed operand is refused.
        assert!(scan(&p(b"N\x8c\x04eval\x93"), 0).is_err());
    }

    /// `_rebuild_tensor_v2((storage), offset, size, stride, False, OrderedDict())` with the given tuples.
    fn rebuild(size: &[u8], stride: &[u8]) -> Vec<u8> {
        let mut ops = b"ctorch._utils\n_rebuild_tensor_v2\n(NK\x00".to_vec();
        ops.extend_from_slice(size);
        ops.extend_from_slice(stride);
        ops.extend_from_slice(b"\x89ccollections\nOrderedDict\n)Rtq\x00R");
        p(&ops)
    }

    #[test]
    fn tensor_views_larger_than_their_storage_window_are_refused() {
        // Contiguous [2, 3] (stride (3, 1)), a transposed view, and an empty tensor pass.
        assert!(scan(&rebuild(b"K\x02K\x03\x86", b"K\x03K\x01\x86"), 0).is_ok());
        assert!(scan(&rebuild(b"K\x02K\x03\x86", b"K\x01K\x02\x86"), 0).is_ok());
        assert!(scan(&rebuild(b"K\x00K\x03\x86", b"K\x00K\x00\x86"), 0).is_ok());
        // A broadcast (stride 0) of 2^32 elements from one, and huge overlapping strides, are refused.
        let e = scan(
            &rebuild(b"J\x00\x00\x01\x00J\x00\x00\x01\x00\x86", b"K\x00K\x00\x86"),
            0,
        )
        .unwrap_err();
        assert!(e.contains("materialise"), "{e}");
        assert!(scan(&rebuild(b"K\x10\x85", b"K\x00\x85"), 0).is_err());
        // Size and stride through the memo, as torch writes them with BINPUT / BINGET.
        let ops = b"K\x02K\x02\x86q\x01K\x00K\x00\x86q\x02ctorch._utils\n_rebuild_tensor_v2\n(NK\x00h\x01h\x02\x89tR";
        assert!(scan(&p(ops), 0).is_err());
        // Rank mismatch, negative and non-integer sizes.
        assert!(scan(&rebuild(b"K\x02\x85", b"K\x01K\x01\x86"), 0).is_err());
        assert!(scan(&rebuild(b"J\xff\xff\xff\xff\x85", b"K\x01\x85"), 0).is_err());
        assert!(scan(&rebuild(b"N\x85", b"K\x01\x85"), 0).is_err());
        // A LONG1 size.
        assert!(scan(&rebuild(b"\x8a\x02\x00\x01\x85", b"K\x00\x85"), 0).is_err());
    }

    #[test]
    fn malformed_and_indirect_pickles_are_refused() {
        assert!(scan(&p(b"\x82\x01"), 0).is_err());
        assert!(scan(&p(b"0"), 0).is_err());
        assert!(scan(&p(b"h\x07"), 0).is_err());
        assert!(scan(&[0x80, 0x02, b'X', 0xff, 0xff], 0).is_err());
        assert!(scan(&p(&[0xfe]), 0).is_err());
    }
}
