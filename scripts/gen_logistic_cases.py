#!/usr/bin/env python3
"""Writes tests/fixtures/metrics-extra/logistic_cases.json: extra SciPy ground truth for biqa-metrics.

Random prediction/MOS sets of several shapes (well-posed sigmoids, noisy, tiny n, discrete predictions,
decreasing DMOS-like curves, large n), each with SciPy's SRCC / PLCC / KRCC and pyiqa's 4-parameter logistic
fit done by `curve_fit(maxfev=10000)` (fitted betas, nfev, ier, fitted PLCC and RMSE).

Run: python3 scripts/gen_logistic_cases.py   (needs numpy and scipy; made with numpy 2.4.6 and scipy 1.17.1)
"""
import json
import pathlib
import warnings

import numpy as np
import scipy
from scipy import stats
from scipy.optimize import curve_fit


def logistic(x, b1, b2, b3, b4):
    return (b1 - b2) / (1 + np.exp(-(x - b3) / b4)) + b2


def case(name, pred, mos):
    pred = np.asarray(pred, dtype=float)
    mos = np.asarray(mos, dtype=float)
    out = {"name": name, "pred": pred.tolist(), "mos": mos.tolist()}
    out["srcc"] = float(stats.spearmanr(pred, mos).statistic)
    out["plcc"] = float(stats.pearsonr(pred, mos).statistic)
    out["krcc"] = float(stats.kendalltau(pred, mos).statistic)
    p0 = [np.max(mos), np.min(mos), np.mean(pred), np.std(pred) / 4.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        popt, _, info, msg, ier = curve_fit(logistic, pred, mos, p0=p0, maxfev=10000, full_output=True)
    yhat = logistic(pred, *popt)
    out["p0"] = [float(v) for v in p0]
    out["betas"] = [float(v) for v in popt]
    out["nfev"] = int(info["nfev"])
    out["ier"] = int(ier)
    out["plcc_fitted"] = float(stats.pearsonr(yhat, mos).statistic)
    out["rmse_fitted"] = float(np.sqrt(np.mean((yhat - mos) ** 2)))
    return out


def main():
    rng = np.random.default_rng(20261126)
    cases = []
    for i in range(6):
        n = int(rng.integers(20, 120))
        pred = rng.uniform(0, 1, n)
        mos = 100 / (1 + np.exp(-(pred - rng.uniform(0.3, 0.7)) / rng.uniform(0.05, 0.3))) + rng.normal(0, 6, n)
        cases.append(case(f"sigmoid_{i}", np.round(pred, 6), np.round(mos, 6)))
    for i in range(4):
        n = int(rng.integers(4, 9))
        cases.append(case(f"tiny_{i}", np.round(rng.uniform(1, 5, n), 4), np.round(rng.uniform(1, 5, n), 4)))
    for i in range(3):
        n = 40
        pred = rng.integers(1, 6, n).astype(float)
        mos = pred * 15 + rng.normal(0, 10, n)
        cases.append(case(f"discrete_{i}", pred, np.round(mos, 4)))
    for i in range(3):
        n = 60
        pred = rng.uniform(0, 1, n)
        dmos = 1 - pred**2 + rng.normal(0, 0.05, n)
        cases.append(case(f"dmos_{i}", np.round(pred, 6), np.round(dmos, 6)))
    pred = rng.normal(3, 1, 2000)
    mos = 50 + 20 * np.tanh(pred - 3) + rng.normal(0, 4, 2000)
    cases.append(case("large_2000", np.round(pred, 6), np.round(mos, 6)))
    doc = {
        "generator": "scripts/gen_logistic_cases.py",
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "cases": cases,
    }
    path = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/metrics-extra/logistic_cases.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
