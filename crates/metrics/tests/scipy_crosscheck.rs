//! Extra SciPy ground truth made by `scripts/gen_logistic_cases.py` (`tests/fixtures/metrics-extra/`): random
//! well-posed and ill-posed fits, where the MINPACK port must stop where SciPy's stops.

use anyhow::{Context, Result};
use biqa_metrics::{krcc, plcc, plcc_logistic, srcc};
use biqa_testkit::{f64s, fixture_json};

#[test]
fn matches_scipy_curve_fit() -> Result<()> {
    let json = fixture_json("metrics-extra/logistic_cases.json")?;
    let cases = json["cases"].as_array().context("cases")?;
    assert!(cases.len() >= 17);
    for case in cases {
        let name = case["name"].as_str().context("name")?;
        let (pred, mos) = (f64s(&case["pred"]), f64s(&case["mos"]));
        let num = |k: &str| case[k].as_f64().with_context(|| format!("{name}: {k}"));
        assert!(
            (srcc(&pred, &mos)? - num("srcc")?).abs() <= 1e-9,
            "{name}: srcc"
        );
        assert!(
            (plcc(&pred, &mos)? - num("plcc")?).abs() <= 1e-9,
            "{name}: plcc"
        );
        assert!(
            (krcc(&pred, &mos)? - num("krcc")?).abs() <= 1e-9,
            "{name}: krcc"
        );
        let fit = plcc_logistic(&pred, &mos)?;
        let betas = f64s(&case["betas"]);
        eprintln!(
            "{name}: nfev {} vs {}, betas {:?} vs {:?}",
            fit.evaluations, case["nfev"], fit.betas, betas
        );
        assert!(
            (fit.plcc - num("plcc_fitted")?).abs() <= 1e-6,
            "{name}: fitted plcc {} vs {}",
            fit.plcc,
            num("plcc_fitted")?
        );
        assert!(
            (fit.rmse - num("rmse_fitted")?).abs() <= 1e-6 * num("rmse_fitted")?.max(1.0),
            "{name}: fitted rmse"
        );
        // The port takes MINPACK's exact path: the same number of evaluations as SciPy, in every case.
        assert_eq!(
            fit.evaluations as i64,
            case["nfev"].as_i64().context("nfev")?,
            "{name}: evaluations"
        );
        assert_eq!(
            fit.status.converged(),
            case["ier"].as_i64().context("ier")? <= 4,
            "{name}: convergence"
        );
    }
    Ok(())
}
