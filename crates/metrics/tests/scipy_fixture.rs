//! Every case of `tests/fixtures/metrics/metrics.json` (SciPy 1.17.1): raw correlations to 1e-9, fitted PLCC
//! and RMSE to 1e-6, and the documented edge cases.

use anyhow::{Context, Result};
use biqa_metrics::{MetricsError, average_ranks, krcc, plcc, plcc_logistic, rmse, srcc};
use biqa_testkit::{assert_close_f64, f64s, fixture_json};
use serde_json::Value;

fn cases() -> Result<Vec<Value>> {
    let json = fixture_json("metrics/metrics.json")?;
    Ok(json["cases"].as_array().context("cases")?.clone())
}

#[test]
fn every_fixture_case() -> Result<()> {
    let cases = cases()?;
    assert_eq!(cases.len(), 8, "the fixture holds 8 cases");
    for case in &cases {
        let name = case["name"].as_str().context("name")?;
        let pred = f64s(&case["pred"]);
        let mos = f64s(&case["mos"]);
        assert_eq!(pred.len(), case["n"].as_u64().context("n")? as usize);

        assert_close_f64(
            &format!("{name}: rmse_raw"),
            rmse(&pred, &mos)?,
            case["rmse_raw"].as_f64().context("rmse_raw")?,
            1e-9,
        );

        match case["srcc"].as_f64() {
            Some(want) => {
                assert_close_f64(&format!("{name}: srcc"), srcc(&pred, &mos)?, want, 1e-9);
                assert_close_f64(
                    &format!("{name}: plcc_raw"),
                    plcc(&pred, &mos)?,
                    case["plcc_raw"].as_f64().context("plcc")?,
                    1e-9,
                );
                assert_close_f64(
                    &format!("{name}: krcc"),
                    krcc(&pred, &mos)?,
                    case["krcc_tau_b"].as_f64().context("krcc")?,
                    1e-9,
                );
                let rp = average_ranks(&pred);
                let rm = average_ranks(&mos);
                assert_eq!(
                    rp,
                    f64s(&case["rank_pred_average"]),
                    "{name}: ranks of pred"
                );
                assert_eq!(rm, f64s(&case["rank_mos_average"]), "{name}: ranks of mos");
            }
            None => {
                // SciPy returns NaN (written as null) for a constant input; here it is a typed error.
                for r in [srcc(&pred, &mos), plcc(&pred, &mos), krcc(&pred, &mos)] {
                    assert!(
                        matches!(r, Err(MetricsError::ConstantInput { input: "pred", .. })),
                        "{name}: {r:?}"
                    );
                }
            }
        }

        match (case["plcc_fitted"].as_f64(), case["rmse_fitted"].as_f64()) {
            (Some(want_plcc), Some(want_rmse)) => {
                let fit = plcc_logistic(&pred, &mos)?;
                let p0 = f64s(&case["logistic_p0"]);
                for (k, (g, w)) in fit.initial.iter().zip(&p0).enumerate() {
                    assert_close_f64(
                        &format!("{name}: p0[{k}]"),
                        *g,
                        *w,
                        1e-12 * w.abs().max(1.0),
                    );
                }
                assert_close_f64(&format!("{name}: plcc_fitted"), fit.plcc, want_plcc, 1e-6);
                assert_close_f64(&format!("{name}: rmse_fitted"), fit.rmse, want_rmse, 1e-6);
                let yhat = fit.map(&pred);
                for (g, w) in yhat.iter().zip(f64s(&case["yhat_fitted"])) {
                    assert_close_f64(&format!("{name}: yhat"), *g, w, 1e-4 * w.abs().max(1.0));
                }
            }
            _ => {
                let r = plcc_logistic(&pred, &mos);
                if pred.len() < 4 {
                    assert!(
                        matches!(r, Err(MetricsError::TooFewSamples { needed: 4, .. })),
                        "{name}: {r:?}"
                    );
                } else {
                    assert!(
                        matches!(r, Err(MetricsError::ConstantInput { .. })),
                        "{name}: {r:?}"
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn dmos_direction_gives_negative_raw_but_positive_fitted_correlation() -> Result<()> {
    let cases = cases()?;
    let case = cases
        .iter()
        .find(|c| c["name"] == "negative_dmos_n8")
        .context("case")?;
    let (pred, mos) = (f64s(&case["pred"]), f64s(&case["mos"]));
    assert!(srcc(&pred, &mos)? < -0.99);
    assert!(plcc(&pred, &mos)? < -0.99);
    assert!(plcc_logistic(&pred, &mos)?.plcc > 0.99);
    Ok(())
}
