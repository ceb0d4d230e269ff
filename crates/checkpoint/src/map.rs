//! Memory maps: weight files mapped read-only so that tensors can view them without a copy, and anonymous
//! huge-page buffers for the tensors that must be converted.
//!
//! Why: reading 4.5 GB of f32 weights into fresh heap buffers cost 1.1 million page faults (4 KiB each, about
//! 5 µs apiece on this VM: 5.4 s of system time before the first image), while the file itself is already in the
//! page cache. A mapped file is faulted in 64 KiB blocks (the kernel's fault-around) and shares its pages with
//! the cache, so a checkpoint stored in the dtype it is used in costs no copy and no extra memory; a converted
//! tensor goes into an anonymous map advised to use 2 MiB pages.
//!
//! The contract of every memory-mapped loader (safetensors, PyTorch's `mmap=True`, candle): the file must not be
//! truncated or rewritten by another process while a model built from it is alive. The mapping is private
//! (copy-on-write), so nothing biqa does writes to the file.

#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;

use burn::tensor::{AllocationProperty, Bytes};

/// Buffers at least this large go into an anonymous huge-page map rather than the heap.
const ANON_MIN: usize = 2 << 20;

/// Maps the whole of `path` read-only; the map lives as long as any slice of it.
pub(crate) fn map_file(path: &Path) -> std::io::Result<bytes::Bytes> {
    let file = File::open(path)?;
    // SAFETY: a private read-only mapping of a file opened for reading. Its bytes are only ever read as plain
    // integers and floats (every bit pattern valid); the file being changed under the map by another process is
    // outside what this loader can prevent (documented in the module doc and the README).
    let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file)? };
    Ok(bytes::Bytes::from_owner(map))
}

/// Tensor bytes that view `range` of a mapped file (no copy; copied on first write by burn).
pub(crate) fn view(map: &bytes::Bytes, start: usize, len: usize) -> Bytes {
    Bytes::from_shared(map.slice(start..start + len), AllocationProperty::File)
}

/// A zeroed, writable anonymous map of `len` bytes (page-aligned), advised to use huge pages, when `len` is large
/// enough for that to matter; `None` for small buffers (the heap serves them).
pub(crate) fn anon(len: usize) -> std::io::Result<Option<memmap2::MmapMut>> {
    if len < ANON_MIN {
        return Ok(None);
    }
    let map = memmap2::MmapOptions::new().len(len).map_anon()?;
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    Ok(Some(map))
}

/// A filled anonymous map as tensor bytes.
pub(crate) fn anon_bytes(map: memmap2::MmapMut) -> std::io::Result<Bytes> {
    Ok(Bytes::from_shared(
        bytes::Bytes::from_owner(map.make_read_only()?),
        AllocationProperty::Native,
    ))
}
