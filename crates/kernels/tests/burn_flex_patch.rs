//! The workspace's patch of burn-flex (`patches/burn-flex.md`) is in effect: a burn-flex matmul allocates its
//! output once. Unpatched, `FlexTensor::empty` allocated a zeroed `Vec<u8>` and `Bytes::from_bytes_vec` copied it
//! into a second, 16-byte-aligned buffer: two allocations of the output's size per matmul, the second one written
//! in full. This test fails if the `[patch.crates-io]` entry or the patched function is lost (e.g. on a burn
//! upgrade that did not carry the patch forward).

#![allow(unsafe_code)] // a counting global allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use burn::tensor::{Device, Tensor, TensorData};

/// Counts the allocations of at least [`BIG`] bytes made while [`TRACK`] is on.
struct Counting;

static TRACK: AtomicBool = AtomicBool::new(false);
static BIG_ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// The output of the matmul below: 2048 × 2048 f32 = 16 MiB; its inputs are 64 KiB each.
const BIG: usize = 2048 * 2048 * 4;

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BIG && TRACK.load(Ordering::Relaxed) {
            BIG_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BIG && TRACK.load(Ordering::Relaxed) {
            BIG_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= BIG && TRACK.load(Ordering::Relaxed) {
            BIG_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_flex_matmul_allocates_its_output_once() {
    let device = Device::flex();
    let a = Tensor::<2>::from_data(TensorData::new(vec![0.5f32; 2048 * 8], [2048, 8]), &device);
    let b = Tensor::<2>::from_data(TensorData::new(vec![0.25f32; 8 * 2048], [8, 2048]), &device);
    // Warm-up: rayon's pool and gemm's scratch exist before counting.
    drop(a.clone().matmul(b.clone()).into_data());
    TRACK.store(true, Ordering::SeqCst);
    let c = a.matmul(b);
    TRACK.store(false, Ordering::SeqCst);
    let n = BIG_ALLOCS.load(Ordering::SeqCst);
    let v = c.into_data().try_to_vec::<f32>().unwrap();
    assert!(v.iter().all(|&x| x == 1.0), "the product is wrong");
    assert_eq!(
        n, 1,
        "a 16 MiB matmul output took {n} allocations of 16 MiB: the burn-flex patch (patches/burn-flex.md) is not \
         in effect"
    );
}
