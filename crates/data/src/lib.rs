//! IQA datasets for biqa: manifests of real datasets, the embedded synthetic distortion set and Q-Pathway-style
//! quality text.
//!
//! - [`synth`] / [`synth_with`]: the default synthetic IQA set from the [`bundled_photos`] — seeded crops, seven
//!   distortions at five KADID-like levels ([`DistortionKind`]), a documented pseudo-MOS ([`pseudo_mos`]) and level,
//!   descriptions with conclusions ([`describe`]), `manifest.csv` and Q-Align/LLaVA JSON for one-stage, stage-1 and
//!   stage-2 training, split by source photo;
//! - [`dead_leaves`]: seeded procedural pictures (occluding shapes with natural-image size statistics) that the
//!   miniature's pre-alignment adds to its training photos;
//! - [`count_table`]: the distortion × level count table of a configuration;
//! - [`Manifest`]: one type for real datasets (KonIQ-10k, KADID-10k, pyiqa meta-info CSVs, Q-Align / Q-Instruct
//!   JSON, SPAQ and CSIQ `.xlsx` ([`read_spaq`], [`read_csiq`]), LIVE Challenge `.mat` ([`read_live_challenge`])),
//!   checked against an image folder and split reproducibly.
//!
//! Every failure is a [`DataError`]; parse errors name the file, row and column.

mod distort;
mod error;
mod io;
mod manifest;
mod procedural;
mod readers_office;
mod split;
mod synth;
mod text;

pub use biqa_core::SplitMix64;
pub use distort::{DistortionKind, FloatImage, apply, gaussian_blur, pseudo_mos};
pub use error::{DataError, Result};
pub use io::{write_atomic, write_bytes_atomic};
pub use manifest::{
    Entry, KoniqScore, Manifest, Scale, read_conversations, read_kadid, read_koniq,
    read_koniq_sets, read_pyiqa, read_qalign_json, read_synth_manifest,
};
pub use procedural::{DEAD_LEAVES_SUBJECT, dead_leaves, dead_leaves_photos};
pub use readers_office::{LiveChallengeOptions, read_csiq, read_live_challenge, read_spaq};
pub use split::{Split, SplitFractions, split_groups};
pub use synth::{
    CROP_TRIES, ConversationRecord, CountTable, IMAGE_TOKEN, MAX_SYNTH_IMAGES, ONE_STAGE_PROMPT,
    Photo, STAGE1_PROMPT, STAGE2_PROMPT, STAGE2_QUESTION, SynthConfig, SynthItem, SynthOutput,
    Turn, bundled_photos, count_table, crop_detail, records, synth, synth_with,
};
pub use text::{
    QualityText, conclusion, describe, implied_level, implied_mos, keyword, stated_distortion,
};
