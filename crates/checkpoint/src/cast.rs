//! Float tensors from stored bytes to the dtype the model wants, in one pass and one allocation.
//!
//! Stored bytes are little-endian (safetensors; PyTorch's reader hands native order, which is little-endian on
//! every target this crate is built for). Widening (bf16/f16 → f32, f32 → f64) is exact; narrowing rounds to
//! nearest-even, as `torch.Tensor.to` does.

use burn::tensor::{DType, TensorData};
use half::{bf16, f16};
use rayon::prelude::*;

/// The float dtypes a model can be built in and a file can hold.
pub(crate) fn is_float(d: DType) -> bool {
    matches!(d, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
}

/// A zeroed buffer of `n` elements of float dtype `d`, with its bytes exposed for a read.
pub(crate) enum Buffer {
    F64(Vec<f64>),
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Buffer {
    /// `n` zeros of `d` (a float dtype).
    pub(crate) fn zeros(d: DType, n: usize) -> Option<Self> {
        Some(match d {
            DType::F64 => Self::F64(vec![0.0; n]),
            DType::F32 => Self::F32(vec![0.0; n]),
            DType::F16 => Self::F16(vec![f16::ZERO; n]),
            DType::BF16 => Self::Bf16(vec![bf16::ZERO; n]),
            _ => return None,
        })
    }

    /// The buffer's bytes, to read the file into.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Self::F64(v) => bytemuck::cast_slice_mut(v),
            Self::F32(v) => bytemuck::cast_slice_mut(v),
            Self::F16(v) => bytemuck::cast_slice_mut(v),
            Self::Bf16(v) => bytemuck::cast_slice_mut(v),
        }
    }

    /// The tensor data of `shape`, from a buffer that was filled with native values.
    pub(crate) fn into_native_data(self, shape: Vec<usize>) -> TensorData {
        match self {
            Self::F64(v) => TensorData::new(v, shape),
            Self::F32(v) => TensorData::new(v, shape),
            Self::F16(v) => TensorData::new(v, shape),
            Self::Bf16(v) => TensorData::new(v, shape),
        }
    }
}

/// Source rows per block when transposing (64 rows: the block's lines stay in L1 while a column is walked, and
/// every destination row receives a 64-element run per block).
const BLOCK_ROWS: usize = 64;
/// Elements per block when converting without transposing.
const BLOCK_ELEMS: usize = 1 << 18;

/// Where a stored tensor's bytes come from: `read(offset, buf)` fills `buf` with the bytes at `offset` (relative
/// to the tensor's first byte). Called from several threads at once.
pub(crate) type ReadAt<'a> = dyn Fn(usize, &mut [u8]) -> std::io::Result<()> + Sync + 'a;

/// Converts a stored float tensor of dtype `from` and shape `shape` (read block by block through `read`, bytes
/// little-endian) into `dst`, the native bytes of float dtype `to` — transposed to `[cols, rows]` when
/// `transpose` (a matrix). Blocks run in parallel on burn's rayon pool; memory beyond `dst` is one block of the
/// source per thread. The source is never mapped into this process, so what was converted does not stay
/// resident twice.
pub(crate) fn stream_into(
    from: DType,
    to: DType,
    shape: &[usize],
    transpose: bool,
    read: &ReadAt<'_>,
    dst: &mut [u8],
) -> Result<(), String> {
    if !is_float(from) || !is_float(to) {
        return Err(format!("cannot convert {from:?} to {to:?}"));
    }
    if !cfg!(target_endian = "little") {
        return Err("converting loads need a little-endian target".to_string());
    }
    let n: usize = shape.iter().product();
    if dst.len() != n * to.size() {
        return Err(format!(
            "{} destination bytes for {n} elements of {to:?}",
            dst.len()
        ));
    }
    let dims = match (transpose, shape) {
        (true, &[r, c]) => (r, c),
        (true, _) => return Err(format!("shape {shape:?} is not a matrix")),
        (false, _) => (n, 1),
    };
    if from == to {
        // The same dtype: a copy (transposed or not), with no conversion per element.
        return match from {
            DType::F64 => same_dtype::<f64>(dims, transpose, read, dst),
            DType::F32 => same_dtype::<f32>(dims, transpose, read, dst),
            DType::F16 => same_dtype::<f16>(dims, transpose, read, dst),
            _ => same_dtype::<bf16>(dims, transpose, read, dst),
        };
    }
    match from {
        DType::F64 => to_dtype::<f64>(|x| x, to, dims, transpose, read, dst),
        DType::F32 => to_dtype::<f32>(f64::from, to, dims, transpose, read, dst),
        DType::F16 => to_dtype::<f16>(f64::from, to, dims, transpose, read, dst),
        _ => to_dtype::<bf16>(f64::from, to, dims, transpose, read, dst),
    }
}

/// [`stream_into`] from `S` into `S`: the elements are copied as they are (a bf16 → bf16 load went through f64
/// and a rounding per element, 2.3 times PyTorch's load time on an AVX2 EPYC).
fn same_dtype<S: bytemuck::Pod + Sync + Send>(
    dims: (usize, usize),
    transpose: bool,
    read: &ReadAt<'_>,
    dst: &mut [u8],
) -> Result<(), String> {
    let d = bytemuck::try_cast_slice_mut::<u8, S>(dst)
        .map_err(|e| format!("destination buffer: {e:?}"))?;
    if transpose {
        transposed(dims, read, d, |x: S| x)
    } else {
        flat(read, d, |x: S| x)
    }
}

/// [`stream_into`] with the source type fixed; picks the destination type.
fn to_dtype<S: bytemuck::Pod + Sync + Send>(
    widen: impl Fn(S) -> f64 + Sync + Copy,
    to: DType,
    dims: (usize, usize),
    transpose: bool,
    read: &ReadAt<'_>,
    dst: &mut [u8],
) -> Result<(), String> {
    let bad = |e: bytemuck::PodCastError| format!("destination buffer: {e:?}");
    macro_rules! go {
        ($t:ty, $conv:expr) => {{
            let d = bytemuck::try_cast_slice_mut::<u8, $t>(dst).map_err(bad)?;
            if transpose {
                transposed(dims, read, d, $conv)
            } else {
                flat(read, d, $conv)
            }
        }};
    }
    match to {
        DType::F64 => go!(f64, widen),
        DType::F32 => go!(f32, move |x| widen(x) as f32),
        DType::F16 => go!(f16, move |x| f16::from_f32(widen(x) as f32)),
        _ => go!(bf16, move |x| bf16::from_f32(widen(x) as f32)),
    }
}

/// Widening through f64 is exact for every float dtype, so each element is rounded once (to nearest even), as
/// `torch.Tensor.to` does. Blocks of `dst` in parallel, each reading its own source block.
fn flat<S, T>(read: &ReadAt<'_>, dst: &mut [T], conv: impl Fn(S) -> T + Sync) -> Result<(), String>
where
    S: bytemuck::Pod + Send,
    T: Send,
{
    let size = std::mem::size_of::<S>();
    dst.par_chunks_mut(BLOCK_ELEMS)
        .enumerate()
        .try_for_each_init(
            || vec![S::zeroed(); BLOCK_ELEMS],
            |scratch, (b, out)| {
                let src = &mut scratch[..out.len()];
                read(b * BLOCK_ELEMS * size, bytemuck::cast_slice_mut(src))?;
                for (o, &v) in out.iter_mut().zip(src.iter()) {
                    *o = conv(v);
                }
                Ok(())
            },
        )
        .map_err(|e: std::io::Error| e.to_string())
}

/// A destination shared by the blocks of [`transposed`], each of which writes its own disjoint element set.
struct Shared<T>(*mut T);
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
// SAFETY: see `transposed`: the blocks write disjoint elements of one buffer that outlives them.
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    fn ptr(self) -> *mut T {
        self.0
    }
}

/// `dst` `[cols, rows]` ← `conv(src)` `[rows, cols]`: blocks of 64 source rows in parallel, each read into the
/// thread's scratch and walked column by column, so every destination row receives one contiguous run per block.
fn transposed<S, T>(
    (rows, cols): (usize, usize),
    read: &ReadAt<'_>,
    dst: &mut [T],
    conv: impl Fn(S) -> T + Sync,
) -> Result<(), String>
where
    S: bytemuck::Pod + Send,
    T: Send,
{
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    debug_assert_eq!(dst.len(), rows * cols);
    let size = std::mem::size_of::<S>();
    let row_bytes = cols * size;
    // Rows are re-laid at a stride one cache line longer than a row: at the file's power-of-two row lengths,
    // walking a column would otherwise hit one L1 set 64 times (4.5 ns per element instead of ~1).
    let stride = cols + 64 / size;
    let out = Shared(dst.as_mut_ptr());
    (0..rows.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .try_for_each_init(
            || {
                (
                    vec![S::zeroed(); BLOCK_ROWS * cols],
                    vec![S::zeroed(); BLOCK_ROWS * stride],
                )
            },
            |(raw, padded), b| {
                let i0 = b * BLOCK_ROWS;
                let r = BLOCK_ROWS.min(rows - i0);
                let raw = &mut raw[..r * cols];
                read(i0 * row_bytes, bytemuck::cast_slice_mut(raw))?;
                for (row, dst_row) in raw.chunks_exact(cols).zip(padded.chunks_exact_mut(stride)) {
                    dst_row[..cols].copy_from_slice(row);
                }
                let src = &padded[..];
                for j in 0..cols {
                    // SAFETY: block `b` writes exactly the elements `j·rows + i` for `i` in `i0..i0 + r`; the blocks'
                    // row ranges are disjoint, so no element is written twice or by two threads, and every index
                    // is below `cols · rows == dst.len()`. `dst` is borrowed mutably for the whole call.
                    #[allow(unsafe_code)]
                    let run =
                        unsafe { std::slice::from_raw_parts_mut(out.ptr().add(j * rows + i0), r) };
                    for (ii, o) in run.iter_mut().enumerate() {
                        *o = conv(src[ii * stride + j]);
                    }
                }
                Ok(())
            },
        )
        .map_err(|e: std::io::Error| e.to_string())
}

/// A [`ReadAt`] over bytes in memory.
pub(crate) fn from_memory(
    bytes: &[u8],
) -> impl Fn(usize, &mut [u8]) -> std::io::Result<()> + Sync + '_ {
    move |off, buf| {
        let src = off
            .checked_add(buf.len())
            .and_then(|end| bytes.get(off..end))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tensor bytes end early")
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Converts `src` (a whole tensor in memory) into a new heap buffer: the [`TensorData`] of `to`.
#[cfg(test)]
fn convert(src: &[u8], from: DType, to: DType, shape: Vec<usize>) -> Result<TensorData, String> {
    let n = shape.iter().product::<usize>();
    let mut out = Buffer::zeros(to, n).ok_or_else(|| format!("cannot convert to {to:?}"))?;
    stream_into(from, to, &shape, false, &from_memory(src), out.bytes_mut())?;
    Ok(out.into_native_data(shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_exact_and_narrowing_rounds_to_nearest_even() {
        let vals = [1.0f32, -2.5, 3.140625, 1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let d = convert(&bytes, DType::F32, DType::BF16, vec![5]).unwrap();
        let got: Vec<f32> = d
            .as_slice::<bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_f32())
            .collect();
        // 1 + 2⁻⁸ is a tie between 1 and 1 + 2⁻⁷: even mantissa → 1; 1 + 3·2⁻⁸ → 1 + 2·2⁻⁷ (even).
        assert_eq!(got, [1.0, -2.5, 3.140625, 1.0, 1.0 + 4.0 / 256.0]);
        let back: Vec<u8> = d.as_bytes().to_vec();
        let w = convert(&back, DType::BF16, DType::F32, vec![5]).unwrap();
        assert_eq!(w.as_slice::<f32>().unwrap(), got.as_slice());
        assert!(convert(&bytes[1..], DType::F32, DType::F32, vec![5]).is_err());
        // Transposing [2, 3] → [3, 2], widening bf16 → f32, from a misaligned source too.
        let m: Vec<u8> = (1..=6)
            .flat_map(|v| bf16::from_f32(v as f32).to_le_bytes())
            .collect();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&m);
        for src in [&m[..], &shifted[1..]] {
            let mut dst = vec![0f32; 6];
            let out = bytemuck::cast_slice_mut(&mut dst);
            stream_into(
                DType::BF16,
                DType::F32,
                &[2, 3],
                true,
                &from_memory(src),
                out,
            )
            .unwrap();
            assert_eq!(dst, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        }
        // Matrices spanning several groups and several source blocks (rows of 1 MiB: four per block).
        for (r, c) in [(130usize, 37usize), (9, 1 << 18)] {
            let src: Vec<f32> = (0..r * c).map(|v| v as f32).collect();
            let mut dst = vec![0f32; r * c];
            let out = bytemuck::cast_slice_mut(&mut dst);
            let read = from_memory(bytemuck::cast_slice(&src));
            stream_into(DType::F32, DType::F32, &[r, c], true, &read, out).unwrap();
            assert!((0..r).all(|i| (0..c).all(|j| dst[j * r + i] == src[i * c + j])));
        }
        assert!(convert(&bytes, DType::I32, DType::F32, vec![5]).is_err());
    }
}
