//! The commands of the `biqa` binary, one module each (its clap `Args` and its `run`), and what they share: the
//! device / dtype flags and model loading ([`runtime`]), the progress bar ([`progress`]) and the sampling flags and
//! output of the text commands ([`text`]).

pub mod assess;
pub mod bench;
pub mod convert;
pub mod describe;
pub mod eval;
pub mod generate;
pub mod info;
pub mod instability;
pub mod metrics;
pub mod probe;
pub mod progress;
pub mod runtime;
pub mod score;
pub mod synth;
pub mod text;
pub mod train;
