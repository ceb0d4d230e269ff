//! Readers of real-dataset annotation files, on the format-exact samples of `tests/fixtures/data-cases/`.

use std::path::PathBuf;

use biqa_data::{
    DataError, KoniqScore, LiveChallengeOptions, Scale, Split, SplitFractions, read_conversations,
    read_csiq, read_kadid, read_koniq, read_koniq_sets, read_live_challenge, read_pyiqa,
    read_qalign_json, read_spaq,
};
use biqa_metrics::Level;
use biqa_testkit::fixture;

fn case(name: &str) -> PathBuf {
    fixture("data-cases").join(name)
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

#[test]
fn spaq_xlsx() -> anyhow::Result<()> {
    let m = read_spaq(&case("MOS and Image attribute scores.xlsx"))?;
    let images: Vec<_> = m.entries.iter().map(|e| e.image.as_str()).collect();
    assert_eq!(images, ["00001.jpg", "00002.jpg", "00003.jpg"]);
    assert!((m.entries[2].mos - 93.67).abs() < 1e-12);
    assert!(m.scale.higher_is_better);
    assert_eq!((m.scale.lo, m.scale.hi), (0.0, 100.0));
    assert_eq!(m.levels()[2], Level::Excellent);
    assert!(
        m.entries
            .iter()
            .all(|e| e.split.is_none() && e.reference.is_none())
    );
    let e = read_spaq(&case("bad_MOS and Image attribute scores.xlsx")).unwrap_err();
    assert_parse_error(e, "bad_MOS and Image attribute scores.xlsx", 3, "MOS");
    // Not a workbook; no such file.
    assert!(matches!(
        read_spaq(&case("dmos.csv")),
        Err(DataError::Format { .. })
    ));
    assert!(matches!(
        read_spaq(&case("nope.xlsx")),
        Err(DataError::Io { .. })
    ));
    Ok(())
}

#[test]
fn csiq_xlsx_paths_and_split_by_image() -> anyhow::Result<()> {
    let m = read_csiq(&case("csiq.DMOS.xlsx"))?;
    let images: Vec<_> = m.entries.iter().map(|e| e.image.as_str()).collect();
    assert_eq!(
        images,
        [
            "dst_imgs/awgn/1600.AWGN.1.png",
            "dst_imgs/awgn/1600.AWGN.2.png",
            "dst_imgs/jpeg/1600.JPEG.3.png",
            "dst_imgs/jpeg2000/aerial_city.jpeg2000.1.png",
            "dst_imgs/fnoise/aerial_city.fnoise.5.png",
            "dst_imgs/blur/aerial_city.BLUR.4.png",
            "dst_imgs/contrast/boston.contrast.2.png",
        ]
    );
    assert_eq!(m.entries[0].reference.as_deref(), Some("1600"));
    assert!((m.entries[0].mos - 0.062).abs() < 1e-12);
    assert!(!m.scale.higher_is_better);
    assert_eq!((m.scale.lo, m.scale.hi), (0.0, 1.0));
    // DMOS: low is good.
    assert_eq!(m.levels()[0], Level::Excellent);
    assert_eq!(m.levels()[5], Level::Fair);
    let a = m.clone().with_random_split(
        SplitFractions {
            val: 0.34,
            test: 0.34,
        },
        3,
    )?;
    for e in &a.entries {
        let mut same = a.entries.iter().filter(|o| o.reference == e.reference);
        assert!(same.all(|o| o.split == e.split));
    }
    let e = read_csiq(&case("bad_csiq.DMOS.xlsx")).unwrap_err();
    assert_parse_error(e, "bad_csiq.DMOS.xlsx", 5, "dmos");
    // The SPAQ workbook has no `all_by_image` sheet.
    let e = read_csiq(&case("MOS and Image attribute scores.xlsx")).unwrap_err();
    assert!(
        matches!(&e, DataError::Format { .. }) && e.to_string().contains("all_by_image"),
        "{e}"
    );
    Ok(())
}

#[test]
fn live_challenge_mat() -> anyhow::Result<()> {
    let (imgs, mos) = (case("AllImages_release.mat"), case("AllMOS_release.mat"));
    let m = read_live_challenge(&imgs, &mos, LiveChallengeOptions::default())?;
    let images: Vec<_> = m.entries.iter().map(|e| e.image.as_str()).collect();
    assert_eq!(images, ["3.bmp", "4.bmp", "5.bmp"]);
    assert!((m.entries[2].mos - 92.4324).abs() < 1e-12);
    assert!(m.scale.higher_is_better);
    let all = read_live_challenge(&imgs, &mos, LiveChallengeOptions { skip: 0 })?;
    assert_eq!(all.entries.len(), 10);
    assert_eq!(all.entries[0].image, "t1.bmp");
    assert!((all.entries[0].mos - 63.9634).abs() < 1e-12);
    // A compressed (-v7) file with another variable first reads the same.
    let c = read_live_challenge(
        &imgs,
        &case("AllMOS_release_compressed.mat"),
        LiveChallengeOptions::default(),
    )?;
    assert_eq!(c, m);
    // A missing variable is named.
    let e = read_live_challenge(
        &imgs,
        &case("bad_AllMOS_release.mat"),
        LiveChallengeOptions::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::Format { .. }), "{msg}");
    assert!(
        msg.contains("AllMOS_release") && msg.contains("bad_AllMOS_release.mat"),
        "{msg}"
    );
    // The files swapped: the images file has no AllMOS_release.
    let e = read_live_challenge(&mos, &imgs, LiveChallengeOptions::default()).unwrap_err();
    assert!(e.to_string().contains("AllImages_release"), "{e}");
    // Not a MAT-file.
    assert!(matches!(
        read_live_challenge(&case("dmos.csv"), &mos, LiveChallengeOptions::default()),
        Err(DataError::Format { .. })
    ));
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

/// Issue #16: CSVs are parsed as a stream. Line numbers in errors stay exact with CRLF line ends, blank lines and a
/// quoted cell spanning two lines (the reader's bound is `biqa_core::open_limited`'s, tested there on `/dev/zero`).
#[test]
fn streamed_csv_reports_exact_lines() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("dmos.csv");
    std::fs::write(
        &path,
        "dist_img,ref_img,dmos,var\r\nI01_01_01.png,I01.png,4.57,0.5\r\n\r\n\"I02_01_01\r\n.png\",I02.png,4.1,0.2\r\nI03_01_01.png,I03.png,oops,0.1\r\n",
    )?;
    let e = read_kadid(&path).unwrap_err();
    assert_parse_error(e, "dmos.csv", 6, "dmos");
    Ok(())
}

/// A fuzzing finding (fuzz/README.md): a MAT-file char array whose dimensions claim 4 × 10⁹ rows over a few bytes
/// made the reader allocate 35 GB of empty strings. Dimensions must account for the characters stored.
#[test]
fn mat_char_array_claiming_more_than_it_holds_is_refused() {
    let file = case("fuzz_char_rows.mat");
    let err = read_live_challenge(&file, &file, LiveChallengeOptions { skip: 0 }).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Format { .. }), "{msg}");
    assert!(msg.contains("fuzz_char_rows.mat"), "{msg}");
}
