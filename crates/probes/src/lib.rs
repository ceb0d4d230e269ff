//! The paper's analysis tools (Fig. 3, 5, 6) as a library: they consume the decoder's traces (hidden states,
//! attention probabilities) and its `unembed`; the decoder never depends on them.
//!
//! - [`logit_lens`]: each layer's hidden state decoded through the final norm and the head (the last HF hidden
//!   state is already normed and goes through the head alone): top-k candidates, level-word probabilities and
//!   ranks, the rank of the final prediction, entropy and KL to the final distribution;
//! - [`trajectories()`]: over many samples, the share whose top level word is each word at each layer, and the layer
//!   at which the final answer settles;
//! - [`attention::aggregate`] / [`attention::average_shares`]: the attention of chosen query tokens to earlier
//!   tokens, averaged over heads and layers, grouped into named segments so samples of different lengths average;
//! - [`owl2`]: the probes applied to an mPLUG-Owl2 model as the paper does;
//! - [`output`]: JSON / CSV writers; [`figures`]: PNG figures with a bundled font.

pub mod attention;
mod error;
pub mod figures;
pub mod lens;
pub mod output;
pub mod owl2;
mod trajectories;

pub use attention::{AttentionMap, Segment, SegmentShares, segments_from_modality};
pub use error::{ProbeError, Result};
pub use lens::{Candidate, LayerLens, LensConfig, LensResult, logit_lens};
pub use trajectories::{Trajectories, trajectories};
