//! The real-shape checkpoint directory writer (`biqa::realshape`, the benchmarks' input): its config is the
//! released widths, and its padded tokenizer keeps every id and tokenisation of the fixture's.

use anyhow::Result;
use biqa::model::{HfOwl2Config, Tokenizer};
use biqa::realshape::RealShape;
use biqa_testkit::fixtures;

#[test]
fn real_shape_assets_have_the_released_widths_and_the_fixture_tokenisation() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let shape = RealShape {
        llm_layers: 32,
        ..RealShape::default()
    };
    shape.write_assets(dir.path())?;
    let config = HfOwl2Config::from_file(&dir.path().join("config.json"))?.to_config()?;
    assert_eq!(config.llm.hidden_size, 4096);
    assert_eq!(config.llm.intermediate_size, 11008);
    assert_eq!(config.llm.num_layers, 32);
    assert_eq!(config.llm.vocab_size, 32_000);
    let vision = config.vision.as_ref().expect("a vision half");
    assert_eq!(vision.tower.image_size, 448);
    assert_eq!(vision.tower.num_layers, 24);
    assert_eq!(vision.abstractor.num_queries, 64);

    let padded = Tokenizer::from_dir(dir.path())?;
    let tiny = Tokenizer::from_dir(fixtures().join("tiny-owl2"))?;
    assert_eq!(padded.vocab_size(), 32_000);
    for text in [
        "USER: <|image|>How would you rate the quality of this image? ASSISTANT: The quality of the image is",
        "excellent good fair poor bad",
        "é 图 🙂 </s> \u{e000}",
    ] {
        assert_eq!(padded.encode(text, true), tiny.encode(text, true), "{text}");
    }
    Ok(())
}
