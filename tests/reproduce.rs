//! The main job's `--quick` path (one seed, fewer steps and images), from the bundled pre-aligned miniature: the
//! report's tables are complete, and the quick fine-tuned models beat chance on the held-out photos (seeded and
//! deterministic, so the check is stable).

use std::path::PathBuf;

use biqa::model::PipelineKind;
use biqa::reproduce::{ModelKind, ReproduceConfig, Start, headlines, run, write_report};

/// One-sided critical SRCC for n = 72 at α = 0.05 is about 0.195: a fine-tuned model above 0.20 beats chance.
const CHANCE_SRCC: f64 = 0.20;

#[test]
fn quick_reproduction_learns_and_reports_everything() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir()?;
    let config = ReproduceConfig::quick(
        tmp.path().to_owned(),
        Start::Bundled {
            dir: root.join("data/miniature"),
        },
    );
    let r = run(&config, &mut |line| eprintln!("{line}"))?;
    let report = write_report(&r, tmp.path())?;
    let md = std::fs::read_to_string(&report)?;
    for section in [
        "## Table 2 analogue",
        "### SRCC per distortion",
        "## Table 1 analogue",
        "## Contradictions",
        "| description SRCC | answer SRCC | second pass on true descriptions (SRCC) |",
        "## Level accuracy and confusion matrices",
        "## Fig. 5 analogue",
        "## Fig. 6 analogue",
        "### Fig. 3 analogue",
        "## Loss curves",
        "## What the miniature reproduces",
    ] {
        assert!(md.contains(section), "report.md lacks {section}");
    }
    for png in [
        "confusion_one-stage.png",
        "confusion_two-stage.png",
        "attention_one-stage.png",
        "attention_two-stage.png",
        "lens_one-stage.png",
        "lens_two-stage.png",
        "loss_one-stage.png",
        "loss_two-stage.png",
        "loss_pre-alignment.png",
    ] {
        assert!(tmp.path().join(png).is_file(), "no {png}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("report.json"))?)?;
    assert!(json["headlines"].as_array().is_some_and(|a| a.len() == 5));

    let hs = headlines(&r);
    let rows: Vec<(ModelKind, PipelineKind)> = hs.iter().map(|h| (h.model, h.pipeline)).collect();
    assert_eq!(
        rows,
        vec![
            (ModelKind::Baseline, PipelineKind::Direct),
            (ModelKind::OneStage, PipelineKind::OneStage),
            (ModelKind::OneStage, PipelineKind::Direct),
            (ModelKind::TwoStage, PipelineKind::TwoStage),
            (ModelKind::TwoStage, PipelineKind::Direct),
        ]
    );
    for h in &hs {
        // Every table cell of the row is measured.
        assert!(
            h.srcc.iter().all(|v| v.is_finite()),
            "{:?} {:?}",
            h.model,
            h.pipeline
        );
        assert!(h.plcc.iter().all(|v| v.is_finite()));
        assert!(h.accuracy.iter().all(|v| v.is_finite()));
        assert!(h.seconds_per_image.iter().all(|v| *v > 0.0));
        assert_eq!(
            h.per_distortion.len(),
            8,
            "7 distortions and the references"
        );
        if h.model.own_pipeline() == h.pipeline && h.pipeline != PipelineKind::Direct {
            assert!(h.instability_sample.iter().all(|v| v.is_finite()));
            assert!(h.contradiction.iter().all(|v| v.is_finite()));
            assert!(h.description_srcc.iter().all(|v| v.is_finite()));
        }
        if h.model.own_pipeline() == h.pipeline {
            assert!(h.second_pass_on_truth.iter().all(|v| v.is_finite()));
        }
    }
    let own = |m: ModelKind| {
        hs.iter()
            .find(|h| h.model == m && h.pipeline == m.own_pipeline())
            .map_or(f64::NAN, |h| h.srcc[0])
    };
    let best = own(ModelKind::OneStage).max(own(ModelKind::TwoStage));
    assert!(
        best > CHANCE_SRCC,
        "the quick models do not beat chance: one-stage {}, two-stage {}",
        own(ModelKind::OneStage),
        own(ModelKind::TwoStage)
    );
    let lens: Vec<_> = r.seeds[0].lens.iter().map(|l| l.model).collect();
    assert_eq!(lens, vec![ModelKind::OneStage, ModelKind::TwoStage]);
    Ok(())
}
