//! The embedded synthetic IQA set: determinism, monotone pseudo-MOS, text, splits, atomic writes, speed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::Instant;

use biqa_data::{
    ConversationRecord, DistortionKind, Split, SynthConfig, bundled_photos, count_table, keyword,
    read_synth_manifest, synth, synth_with,
};

fn small(seed: u64, threads: usize) -> SynthConfig {
    SynthConfig {
        crops_per_photo: 2,
        crop_size: 64,
        seed,
        threads,
        ..SynthConfig::default()
    }
}

/// Every file under `dir`, relative path → bytes.
fn snapshot(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir)?.to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p)?);
            }
        }
    }
    Ok(out)
}

/// (source, crop, distortion) → [(strength, mos)].
type Groups = BTreeMap<(String, usize, Option<DistortionKind>), Vec<(u8, f64)>>;

#[test]
fn same_seed_gives_identical_files_whatever_the_threads() -> anyhow::Result<()> {
    let photos = bundled_photos()?;
    let (a, b, c) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let mut calls = Vec::new();
    let out = synth_with(a.path(), &photos, &small(5, 1), &mut |d, t| {
        calls.push((d, t))
    })?;
    synth_with(b.path(), &photos, &small(5, 2), &mut |_, _| {})?;
    synth_with(c.path(), &photos, &small(6, 2), &mut |_, _| {})?;
    let (sa, sb, sc) = (
        snapshot(a.path())?,
        snapshot(b.path())?,
        snapshot(c.path())?,
    );
    assert_eq!(sa.len(), 9 * 2 * 36 + 1 + 1 + 9);
    assert!(sa == sb, "same seed, different thread counts: files differ");
    // Another seed draws other crops (the manifest itself only lists names, scores and sources).
    let reference = "images/astronaut_c000_ref.png";
    assert!(
        sa[reference] != sc[reference],
        "seed 6 gave the same crop as seed 5"
    );
    // Progress reaches the total, monotonically.
    assert_eq!(calls.last(), Some(&(648, 648)));
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(out.items.len(), 648);
    // Images differ from one another, except that blur at sigma = 0.1 can round back to the reference crop.
    let distinct: BTreeSet<&Vec<u8>> = sa.values().collect();
    assert!(
        distinct.len() >= sa.len() - 18,
        "{} of {}",
        distinct.len(),
        sa.len()
    );
    Ok(())
}

#[test]
fn manifest_text_and_splits() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = synth(dir.path(), 1, 3, &mut |_, _| {})?;
    let items = &out.items;
    assert_eq!(items.len(), 9 * 36);
    // The nine bundled photos split 6 / 1 / 2.
    let count = |s: Split| out.splits.values().filter(|x| **x == s).count();
    assert_eq!(
        (count(Split::Train), count(Split::Val), count(Split::Test)),
        (6, 1, 2)
    );

    // Manifest columns and contents.
    let manifest = fs::read_to_string(dir.path().join("manifest.csv"))?;
    let mut lines = manifest.lines();
    assert_eq!(
        lines.next(),
        Some("image,mos,level,distortion,strength,source")
    );
    assert_eq!(lines.count(), items.len());
    assert!(manifest.contains("images/astronaut_c000_ref.png,5.000,excellent,none,0,astronaut"));
    let m = read_synth_manifest(&dir.path().join("manifest.csv"))?;
    assert!(m.missing_files(dir.path()).is_empty());
    assert_eq!(m.entries.len(), items.len());
    // A reproducible re-split of the manifest keeps each source photo in one split.
    let f = biqa_data::SplitFractions {
        val: 0.25,
        test: 0.25,
    };
    let r1 = m.clone().with_random_split(f, 42)?;
    assert_eq!(r1, m.clone().with_random_split(f, 42)?);
    for e in &r1.entries {
        let same: Vec<_> = r1
            .entries
            .iter()
            .filter(|o| o.reference == e.reference)
            .collect();
        assert!(same.iter().all(|o| o.split == e.split));
    }

    // Monotone pseudo-MOS within a crop and distortion; references on top.
    let mut groups = Groups::new();
    for it in items {
        groups
            .entry((it.source.clone(), it.crop, it.distortion))
            .or_default()
            .push((it.strength, it.mos));
        // The level word is the binning of the MOS; the conclusion uses it.
        assert_eq!(it.level, SynthConfig::binning().level(it.mos));
        assert_eq!(
            it.text.conclusion,
            format!(
                "Therefore, the quality of the image is {}.",
                it.level.word()
            )
        );
        match it.distortion {
            Some(k) => assert!(
                it.text.description.to_lowercase().contains(keyword(k)),
                "{}: {}",
                it.image,
                it.text.description
            ),
            None => assert_eq!(it.mos, 5.0),
        }
    }
    for ((_, _, kind), mut v) in groups {
        v.sort_by_key(|&(s, _)| s);
        if kind.is_some() {
            assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
            assert!(v.windows(2).all(|w| w[1].1 < w[0].1), "{kind:?}: {v:?}");
        }
    }

    // Splits by source photo: 6 / 1 / 2, and every file holds only its split's images.
    let by_split: BTreeMap<Split, BTreeSet<&str>> =
        out.splits.iter().fold(BTreeMap::new(), |mut acc, (s, sp)| {
            acc.entry(*sp).or_default().insert(s.as_str());
            acc
        });
    assert_eq!(by_split[&Split::Train].len(), 6);
    assert_eq!(by_split[&Split::Val].len(), 1);
    assert_eq!(by_split[&Split::Test].len(), 2);
    for it in items {
        assert_eq!(it.split, out.splits[&it.source]);
    }
    for split in Split::ALL {
        let n = items.iter().filter(|i| i.split == split).count();
        for prefix in ["one_stage", "stage1", "stage2"] {
            let path = dir.path().join(format!("{prefix}_{split}.json"));
            let recs: Vec<ConversationRecord> = serde_json::from_slice(&fs::read(&path)?)?;
            assert_eq!(recs.len(), n, "{}", path.display());
            for r in &recs {
                assert_eq!(r.conversations.len(), 2);
                assert_eq!(
                    (
                        r.conversations[0].from.as_str(),
                        r.conversations[1].from.as_str()
                    ),
                    ("human", "gpt")
                );
                let human = &r.conversations[0].value;
                let gpt = &r.conversations[1].value;
                match prefix {
                    "stage2" => {
                        assert!(r.image.is_none() && !human.contains("<|image|>"));
                        assert!(gpt.starts_with("Therefore, the quality of the image is"));
                    }
                    _ => {
                        let img = r.image.as_deref().unwrap();
                        let src = img
                            .trim_start_matches("images/")
                            .rsplitn(3, '_')
                            .last()
                            .unwrap();
                        assert!(by_split[&split].contains(src));
                        assert!(human.starts_with("<|image|>\n"));
                        assert_eq!(prefix == "one_stage", gpt.contains("Therefore"));
                    }
                }
                assert!(r.gt_score.is_some());
            }
        }
    }
    // The raw JSON keeps the Q-Align key order and omits `image` for text-only samples.
    let raw = fs::read_to_string(dir.path().join("stage2_train.json"))?;
    assert!(!raw.contains("\"image\""));
    let raw = fs::read_to_string(dir.path().join("one_stage_train.json"))?;
    let (i_id, i_img, i_conv, i_gt) = (
        raw.find("\"id\"").unwrap(),
        raw.find("\"image\"").unwrap(),
        raw.find("\"conversations\"").unwrap(),
        raw.find("\"gt_score\"").unwrap(),
    );
    assert!(i_id < i_img && i_img < i_conv && i_conv < i_gt);
    Ok(())
}

#[test]
fn failed_run_leaves_no_manifest() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // `images` is a file, so no image can be written.
    fs::write(dir.path().join("images"), b"not a folder")?;
    let r = synth_with(dir.path(), &bundled_photos()?, &small(1, 2), &mut |_, _| {});
    assert!(r.is_err());
    let names: Vec<String> = fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, ["images"]);
    // Invalid configurations are errors, not panics.
    let big = SynthConfig {
        crop_size: 1000,
        ..small(1, 1)
    };
    assert!(synth_with(dir.path(), &bundled_photos()?, &big, &mut |_, _| {}).is_err());
    assert!(synth_with(dir.path(), &[], &small(1, 1), &mut |_, _| {}).is_err());
    Ok(())
}

#[test]
fn default_set_counts_and_speed() -> anyhow::Result<()> {
    let config = SynthConfig::default();
    assert_eq!(count_table(&config, 4).total(), 1008);
    let table = count_table(&config, 9);
    assert_eq!(table.total(), 2268);
    assert_eq!(table.rows.len(), DistortionKind::ALL.len());
    assert!(table.rows.iter().all(|(_, c)| *c == [63; 5]));
    assert!(table.to_string().contains("gblur"));
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let out = synth_with(dir.path(), &bundled_photos()?, &config, &mut |_, _| {})?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "default synthetic set: {} images in {secs:.2} s",
        out.items.len()
    );
    assert_eq!(out.count_table(), table);
    Ok(())
}

/// Writes a small set to `$BIQA_SYNTH_OUT` for a look by eye: `BIQA_SYNTH_OUT=/tmp/s cargo test --release -p
/// biqa-data --test synth -- --ignored`.
#[test]
#[ignore = "writes to $BIQA_SYNTH_OUT"]
fn write_sample_set() -> anyhow::Result<()> {
    let out = std::env::var("BIQA_SYNTH_OUT")?;
    let set = synth(Path::new(&out), 1, 0, &mut |_, _| {})?;
    println!("{}", set.count_table());
    Ok(())
}

/// The pseudo-MOS and level table of `crates/data/README.md`.
#[test]
fn documented_mos_and_level_table() {
    use biqa_data::pseudo_mos;
    let table: [(DistortionKind, [f64; 5], [&str; 5]); 7] = [
        (
            DistortionKind::GaussianBlur,
            [4.8, 4.2, 3.4, 2.4, 1.4],
            ["excellent", "excellent", "good", "poor", "bad"],
        ),
        (
            DistortionKind::WhiteNoise,
            [4.0, 3.4, 3.0, 2.4, 1.6],
            ["good", "good", "fair", "poor", "bad"],
        ),
        (
            DistortionKind::Jpeg,
            [4.2, 3.8, 3.2, 2.0, 1.4],
            ["excellent", "good", "fair", "poor", "bad"],
        ),
        (
            DistortionKind::Brighten,
            [4.8, 4.52, 4.0, 3.2, 2.4],
            ["excellent", "excellent", "good", "fair", "poor"],
        ),
        (
            DistortionKind::Darken,
            [4.8, 4.52, 4.0, 3.0, 1.8],
            ["excellent", "excellent", "good", "fair", "poor"],
        ),
        (
            DistortionKind::ContrastReduction,
            [4.8, 4.4, 3.8, 3.0, 2.2],
            ["excellent", "excellent", "good", "fair", "poor"],
        ),
        (
            DistortionKind::Pixelate,
            [4.2, 3.6, 3.0, 2.2, 1.6],
            ["excellent", "good", "fair", "poor", "bad"],
        ),
    ];
    let binning = SynthConfig::binning();
    for (kind, mos, words) in table {
        for lv in 1..=5u8 {
            let i = usize::from(lv - 1);
            let m = (pseudo_mos(Some((kind, lv))) * 1000.0).round() / 1000.0;
            assert!((m - mos[i]).abs() < 1e-9, "{kind} {lv}: {m}");
            assert_eq!(binning.level(m).word(), words[i], "{kind} {lv}");
        }
    }
    assert_eq!(binning.level(pseudo_mos(None)).word(), "excellent");
}

/// The miniature's options: fixed splits are kept, and crops reach the least detail asked (the most detailed of
/// the draws where a photo has none: here every photo has some).
#[test]
fn fixed_splits_and_detailed_crops() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = SynthConfig {
        crops_per_photo: 3,
        crop_size: 64,
        seed: 0,
        split: biqa_data::SplitFractions {
            val: 0.0,
            test: 0.0,
        },
        fixed_splits: [
            ("chelsea".to_string(), Split::Test),
            ("coffee".to_string(), Split::Val),
        ]
        .into_iter()
        .collect(),
        min_detail: 0.02,
        ..SynthConfig::default()
    };
    let out = synth_with(dir.path(), &bundled_photos()?, &config, &mut |_, _| {})?;
    assert_eq!(out.splits["chelsea"], Split::Test);
    assert_eq!(out.splits["coffee"], Split::Val);
    assert!(
        out.splits
            .iter()
            .filter(|(n, _)| *n != "chelsea" && *n != "coffee")
            .all(|(_, s)| *s == Split::Train)
    );
    for it in out.items.iter().filter(|i| i.distortion.is_none()) {
        let img = image::open(dir.path().join(&it.image))?.to_rgb8();
        let d = biqa_data::crop_detail(&img);
        assert!(d >= 0.02, "{}: detail {d}", it.image);
    }
    // A flat image has no detail; a checkerboard has the most.
    let flat = image::RgbImage::from_pixel(8, 8, image::Rgb([90, 90, 90]));
    assert_eq!(biqa_data::crop_detail(&flat), 0.0);
    let checker = image::RgbImage::from_fn(8, 8, |x, y| {
        if (x + y) % 2 == 0 {
            image::Rgb([0, 0, 0])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    assert!((biqa_data::crop_detail(&checker) - 1.0).abs() < 1e-6);
    Ok(())
}
