//! Readers of real-dataset annotation files, on the format-exact samples of `tests/fixtures/data-cases/`.

use std::path::PathBuf;

use biqa_data::{
    DataError, KoniqScore, Scale, Split, SplitFractions, read_conversations, read_kadid,
    read_koniq, read_koniq_sets, read_pyiqa, read_qalign_json,
};
use biqa_metrics::Level;

fn case(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/data-cases")
        .join(name)
}

/// Asserts a [`DataError::Parse`] at this file, row and column.
fn assert_parse_error(err: DataError, file: &str, row: usize, column: &str) {
    let msg = err.to_string();
    match err {
        DataError::Parse {
            file: f,
            row: r,
            column: c,
            ..
        } => {
            assert!(f.ends_with(file), "{msg}");
            assert_eq!((r, c.as_str()), (row, column), "{msg}");
            assert!(
                msg.contains(file) && msg.contains(&format!("row {row}")) && msg.contains(column)
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn koniq_scores() -> anyhow::Result<()> {
    let m = read_koniq(
        &case("koniq10k_scores_and_distributions.csv"),
        KoniqScore::MosZscore,
    )?;
    assert_eq!(m.entries.len(), 4);
    assert_eq!(m.entries[0].image, "10004473376.jpg");
    assert!((m.entries[0].mos - 77.38362069).abs() < 1e-9);
    assert_eq!(m.levels()[0], Level::Excellent);
    assert_eq!(m.levels()[1], Level::Good);
    let m = read_koniq(
        &case("koniq10k_scores_and_distributions.csv"),
        KoniqScore::Mos,
    )?;
    assert!((m.entries[1].mos - 3.479166667).abs() < 1e-9);
    let e = read_koniq(
        &case("bad_koniq10k_scores_and_distributions.csv"),
        KoniqScore::MosZscore,
    )
    .unwrap_err();
    assert_parse_error(
        e,
        "bad_koniq10k_scores_and_distributions.csv",
        3,
        "MOS_zscore",
    );
    // The MOS column of the bad file is fine.
    assert!(
        read_koniq(
            &case("bad_koniq10k_scores_and_distributions.csv"),
            KoniqScore::Mos
        )
        .is_ok()
    );
    Ok(())
}

#[test]
fn koniq_official_sets() -> anyhow::Result<()> {
    let m = read_koniq_sets(&case("koniq10k_distributions_sets.csv"))?;
    let splits: Vec<_> = m.entries.iter().map(|e| e.split).collect();
    assert_eq!(
        splits,
        [Some(Split::Train), Some(Split::Val), Some(Split::Test)]
    );
    assert!((m.entries[0].mos - 70.71428571).abs() < 1e-9);
    assert_eq!(m.entries_in(Split::Test).len(), 1);
    let e = read_koniq_sets(&case("bad_koniq10k_distributions_sets.csv")).unwrap_err();
    assert_parse_error(e, "bad_koniq10k_distributions_sets.csv", 3, "set");
    Ok(())
}

#[test]
fn kadid_and_split_by_reference() -> anyhow::Result<()> {
    let m = read_kadid(&case("dmos.csv"))?;
    assert_eq!(m.entries.len(), 6);
    assert_eq!(m.entries[2].reference.as_deref(), Some("I01.png"));
    assert!(m.scale.higher_is_better);
    let f = SplitFractions {
        val: 0.34,
        test: 0.34,
    };
    let a = m.clone().with_random_split(f, 9)?;
    let b = m.clone().with_random_split(f, 9)?;
    assert_eq!(a, b);
    for e in &a.entries {
        let mut same_ref = a.entries.iter().filter(|o| o.reference == e.reference);
        assert!(same_ref.all(|o| o.split == e.split));
    }
    let used: std::collections::BTreeSet<_> = a.entries.iter().filter_map(|e| e.split).collect();
    assert_eq!(used.len(), 3);
    let e = read_kadid(&case("bad_dmos.csv")).unwrap_err();
    assert_parse_error(e, "bad_dmos.csv", 4, "dmos");
    Ok(())
}

#[test]
fn pyiqa_meta_info() -> anyhow::Result<()> {
    let scale = Scale::new(0.0, 100.0, true)?;
    let m = read_pyiqa(&case("meta_info_LIVEChallengeDataset.csv"), scale, None)?;
    let splits: Vec<_> = m.entries.iter().map(|e| e.split).collect();
    assert_eq!(
        splits,
        [
            Some(Split::Train),
            Some(Split::Train),
            Some(Split::Test),
            None
        ]
    );
    let m = read_pyiqa(
        &case("meta_info_LIVEChallengeDataset.csv"),
        scale,
        Some("ratio802_seed123_split01"),
    )?;
    assert_eq!(m.entries[1].split, Some(Split::Val));
    assert_eq!(m.entries[3].image, "4.jpg");
    assert!(
        read_pyiqa(
            &case("meta_info_LIVEChallengeDataset.csv"),
            scale,
            Some("nope")
        )
        .is_err()
    );
    let e = read_pyiqa(&case("bad_meta_info_LIVEChallengeDataset.csv"), scale, None).unwrap_err();
    assert_parse_error(e, "bad_meta_info_LIVEChallengeDataset.csv", 4, "mos");
    // A DMOS scale bins in reverse.
    let dmos = Scale::new(0.0, 1.0, false)?;
    assert_eq!(dmos.binning.level(0.05), Level::Excellent);
    Ok(())
}

#[test]
fn qalign_json_and_missing_files() -> anyhow::Result<()> {
    let m = read_qalign_json(&case("qalign_test.json"), Scale::koniq_zscore())?;
    assert_eq!(m.entries.len(), 3);
    assert_eq!(m.entries[1].image, "10007357496.jpg");
    assert!((m.entries[2].mos - 4.63).abs() < 1e-12);
    let e = read_qalign_json(&case("bad_qalign_test.json"), Scale::koniq_zscore()).unwrap_err();
    assert_parse_error(e, "bad_qalign_test.json", 3, "image");

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("10004473376.jpg"), b"x")?;
    let missing = m.missing_files(dir.path());
    assert_eq!(
        missing,
        ["10007357496.jpg", "kadid10k/images/I66_01_01.png"]
    );
    Ok(())
}

#[test]
fn qinstruct_conversations() -> anyhow::Result<()> {
    let recs = read_conversations(&case("qinstruct_labels.json"))?;
    assert_eq!(recs.len(), 2);
    assert_eq!(
        recs[1].image.as_deref(),
        Some("livefb_liveitw_aigc/0002.jpg")
    );
    assert_eq!(recs[1].id, "2");
    assert!(recs[0].conversations[0].value.starts_with("<|image|>\n"));
    assert_eq!(recs[0].gt_score, None);
    let e = read_conversations(&case("dmos.csv")).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e}");
    Ok(())
}

mod split_props {
    use biqa_data::{Split, SplitFractions, split_groups};
    use proptest::prelude::*;

    proptest! {
        /// Every group gets exactly one split, the result ignores input order, and training is never empty.
        #[test]
        fn split_is_a_partition(n in 1usize..40, seed in any::<u64>(), val in 0.0f64..0.45, test in 0.0f64..0.45) {
            let groups: Vec<String> = (0..n).map(|i| format!("g{i}")).collect();
            let f = SplitFractions { val, test };
            let a = split_groups(groups.iter().map(String::as_str), f, seed).unwrap();
            let b = split_groups(groups.iter().rev().map(String::as_str), f, seed).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.len(), n);
            prop_assert!(a.values().any(|&s| s == Split::Train));
        }
    }
}
