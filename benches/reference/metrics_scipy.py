#!/usr/bin/env python3
"""SciPy side of `cargo bench --bench metrics`: the same data, the same metrics, the same statistics (median).

Run: python3 benches/reference/metrics_scipy.py   (numpy + scipy; single-threaded like the Rust code)
"""
import sys
import time

import numpy as np
import scipy
from scipy import stats
from scipy.optimize import curve_fit


def data(n):
    i = np.arange(n, dtype=np.float64)
    pred = (i * 0.6180339887498949) % 1.0
    noise = ((i * 0.7548776662466927) % 1.0 - 0.5) * 20.0
    mos = 100.0 / (1.0 + np.exp(-(pred - 0.5) / 0.1)) + noise
    return pred, mos


def logistic(x, b1, b2, b3, b4):
    return (b1 - b2) / (1 + np.exp(-(x - b3) / b4)) + b2


def plcc_logistic(pred, mos):
    p0 = [np.max(mos), np.min(mos), np.mean(pred), np.std(pred) / 4.0]
    betas, _ = curve_fit(logistic, pred, mos, p0=p0, maxfev=10000)
    yhat = logistic(pred, *betas)
    return stats.pearsonr(yhat, mos)[0], np.sqrt(np.mean((yhat - mos) ** 2))


def bench(name, f, reps):
    f()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    print(f"{name:<28} median {np.median(times) * 1e3:9.3f} ms   ({reps} runs)")


def main():
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, scipy {scipy.__version__}")
    pred, mos = data(1_000_000)
    bench("metrics_1e6/srcc", lambda: stats.spearmanr(pred, mos).statistic, 10)
    bench("metrics_1e6/plcc", lambda: stats.pearsonr(pred, mos).statistic, 10)
    bench("metrics_1e6/krcc", lambda: stats.kendalltau(pred, mos).statistic, 10)
    p4, m4 = data(10_000)
    bench("metrics_1e4/plcc_logistic", lambda: plcc_logistic(p4, m4), 20)


if __name__ == "__main__":
    main()
