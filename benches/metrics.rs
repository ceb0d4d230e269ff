//! Criterion benchmarks of the IQA metrics: SRCC / PLCC / KRCC on 10⁶ pairs, the logistic fit on 10⁴.
//! `benches/reference/metrics_scipy.py` times SciPy on the same data; the ratios are in `benches/README.md`.

use std::hint::black_box;

use biqa::metrics::{krcc, plcc, plcc_logistic, srcc};
use criterion::{Criterion, criterion_group, criterion_main};

/// The benchmark data, computed the same way by the Python reference: a low-discrepancy prediction in [0, 1)
/// and a sigmoid MOS with deterministic noise.
fn data(n: usize) -> (Vec<f64>, Vec<f64>) {
    let pred: Vec<f64> = (0..n)
        .map(|i| (i as f64 * 0.618_033_988_749_894_9) % 1.0)
        .collect();
    let mos = pred
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let noise = ((i as f64 * 0.754_877_666_246_692_7) % 1.0 - 0.5) * 20.0;
            100.0 / (1.0 + (-(x - 0.5) / 0.1).exp()) + noise
        })
        .collect();
    (pred, mos)
}

fn correlations(c: &mut Criterion) {
    let (pred, mos) = data(1_000_000);
    let mut g = c.benchmark_group("metrics_1e6");
    g.sample_size(10);
    g.bench_function("srcc", |b| {
        b.iter(|| srcc(black_box(&pred), black_box(&mos)))
    });
    g.bench_function("plcc", |b| {
        b.iter(|| plcc(black_box(&pred), black_box(&mos)))
    });
    g.bench_function("krcc", |b| {
        b.iter(|| krcc(black_box(&pred), black_box(&mos)))
    });
    g.finish();
}

fn logistic(c: &mut Criterion) {
    let (pred, mos) = data(10_000);
    let mut g = c.benchmark_group("metrics_1e4");
    g.sample_size(20);
    g.bench_function("plcc_logistic", |b| {
        b.iter(|| plcc_logistic(black_box(&pred), black_box(&mos)))
    });
    g.finish();
}

criterion_group!(benches, correlations, logistic);
criterion_main!(benches);
