#![doc = "Test helpers of the biqa workspace, used as a dev-dependency only:"]
#![doc = ""]
#![doc = "- fixture paths ([`fixtures`], [`fixture`]) and JSON ([`read_json`], [`fixture_json`], [`f64s`]);"]
#![doc = "- float comparisons with tolerances and messages naming the worst or first offending element"]
#![doc = "  ([`assert_close`], [`assert_all_close`], [`assert_close_f64`], [`ensure_rel_close`], [`max_abs_diff`],"]
#![doc = "  [`u8_diff`]);"]
#![doc = "- safetensors in tests: every tensor of a file by name ([`Arrays`]), raw tensors read and written for"]
#![doc = "  corrupted copies ([`read_raw`], [`write_f32_raw`], [`f32_bytes`]);"]
#![doc = "- the process's peak resident set ([`peak_rss_bytes`]);"]
#![doc = "- with the `burn` feature, `host` (a tensor's values as `f32`) and `Arrays::tensor`."]

mod compare;
mod memory;
mod paths;
mod tensors;

#[cfg(feature = "burn")]
mod burn_support;

#[cfg(feature = "burn")]
pub use burn_support::host;
pub use compare::{
    assert_all_close, assert_close, assert_close_f64, ensure_rel_close, max_abs_diff, u8_diff,
};
pub use memory::peak_rss_bytes;
pub use paths::{f64s, fixture, fixture_json, fixtures, read_json, workspace_root};
pub use tensors::{Array, Arrays, RawTensor, f32_bytes, read_raw, write_f32_raw};
