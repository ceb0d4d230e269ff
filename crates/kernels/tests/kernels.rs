//! The fused kernels against double-precision references, on the flex device: small (one thread) and large (rayon)
//! tensors, non-contiguous and shared inputs (which must stay untouched), and the plain-composition fallbacks.

use biqa_kernels::{Heads, linear, quick_gelu, silu_mul, softmax_last, try_attention};
use biqa_testkit::{assert_all_close, host};
use burn::tensor::{Device, Distribution, FloatDType, Tensor, TensorData};

fn qgelu_ref(x: f32) -> f64 {
    let x = x as f64;
    x / (1.0 + (-1.702 * x).exp())
}

fn softmax_ref(x: &[f32], row: usize, scale: f64) -> Vec<f64> {
    x.chunks(row)
        .flat_map(|r| {
            let m = r
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64 * scale));
            let e: Vec<f64> = r.iter().map(|&v| (v as f64 * scale - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

#[test]
fn quick_gelu_matches_the_reference_small_and_large() {
    let dev = Device::flex();
    for shape in [[1, 3, 37], [1, 257, 1024]] {
        let x: Tensor<3> = Tensor::random(shape, Distribution::Normal(0.0, 4.0), &dev);
        let xs = host(&x);
        let y = quick_gelu(x.clone());
        assert_eq!(y.dims(), shape);
        let want: Vec<f64> = xs.iter().map(|&v| qgelu_ref(v)).collect();
        assert_all_close("quick_gelu", &host(&y), &want, 1e-7, 1e-6);
        // The input was shared (`x` is still alive): it must be unchanged.
        assert_eq!(host(&x), xs, "shared input was modified");
    }
}

#[test]
fn quick_gelu_extremes() {
    let dev = Device::flex();
    let v = [
        0.0f32,
        -0.0,
        1e-30,
        -1e-30,
        60.0,
        -60.0,
        1e4,
        -1e4,
        f32::MAX,
        f32::MIN,
    ];
    let x = Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev);
    let got = host(quick_gelu(x));
    for (g, &x) in got.iter().zip(&v) {
        let w = qgelu_ref(x);
        assert!(
            (*g as f64 - w).abs() <= 1e-6 * w.abs() + 1e-30,
            "quick_gelu({x}) = {g}, want {w}"
        );
    }
    let nan = Tensor::<1>::from_data(TensorData::new(vec![f32::NAN; 3], [3]), &dev);
    assert!(
        host(quick_gelu(nan)).iter().all(|v| v.is_nan()),
        "NaN must stay NaN"
    );
}

fn silu_mul_ref(g: &[f32], u: &[f32]) -> Vec<f64> {
    g.iter()
        .zip(u)
        .map(|(&g, &u)| g as f64 * u as f64 / (1.0 + (-(g as f64)).exp()))
        .collect()
}

#[test]
fn silu_mul_matches_the_reference_and_handles_views() {
    let dev = Device::flex();
    for shape in [[2, 5, 11], [1, 184, 1376]] {
        let g: Tensor<3> = Tensor::random(shape, Distribution::Normal(0.0, 3.0), &dev);
        let u: Tensor<3> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev);
        let (gs, us) = (host(&g), host(&u));
        let want = silu_mul_ref(&gs, &us);
        assert_all_close(
            "silu_mul",
            &host(silu_mul(g.clone(), u.clone())),
            &want,
            1e-7,
            1e-6,
        );
        assert_eq!(host(&g), gs, "shared gate was modified");
        assert_eq!(host(&u), us, "shared up was modified");
    }
    // Non-contiguous operands: a transposed gate and up.
    let g: Tensor<2> = Tensor::random([40, 30], Distribution::Normal(0.0, 3.0), &dev);
    let u: Tensor<2> = Tensor::random([40, 30], Distribution::Normal(0.0, 1.0), &dev);
    let (gt, ut) = (g.clone().transpose(), u.clone().transpose());
    let (gs, us) = (host(&gt), host(&ut));
    let want = silu_mul_ref(&gs, &us);
    assert_all_close(
        "silu_mul on views",
        &host(silu_mul(gt, ut)),
        &want,
        1e-7,
        1e-6,
    );
}

#[test]
fn softmax_matches_the_reference_with_scale_views_and_masks() {
    let dev = Device::flex();
    for (shape, scale) in [
        ([1, 4, 257, 257], 0.125),
        ([2, 3, 5, 13], 1.0),
        ([1, 1, 3, 8], 0.5),
    ] {
        let x: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.0, 5.0), &dev);
        let xs = host(&x);
        let p = softmax_last(x.clone(), scale);
        assert_all_close(
            "softmax",
            &host(&p),
            &softmax_ref(&xs, shape[3], scale),
            1e-8,
            2e-6,
        );
        assert_eq!(host(&x), xs, "shared scores were modified");
    }
    // A permuted view, and masked entries (f32::MIN as the decoder fills them) that must get exactly 0.
    let x: Tensor<3> = Tensor::random([6, 9, 4], Distribution::Normal(0.0, 2.0), &dev);
    let v = x.swap_dims(1, 2);
    let mut vs = host(&v);
    for (i, e) in vs.iter_mut().enumerate() {
        if i % 3 == 1 {
            *e = f32::MIN;
        }
    }
    let masked = Tensor::<3>::from_data(TensorData::new(vs.clone(), [6, 4, 9]), &dev);
    let p = host(softmax_last(masked, 1.0));
    assert_all_close("masked softmax", &p, &softmax_ref(&vs, 9, 1.0), 1e-8, 2e-6);
    for (i, &e) in p.iter().enumerate() {
        if i % 3 == 1 {
            assert_eq!(e, 0.0, "masked entry {i}");
        }
    }
    let v2: Tensor<3> =
        Tensor::random([6, 9, 4], Distribution::Normal(0.0, 2.0), &dev).swap_dims(1, 2);
    let want = softmax_ref(&host(&v2), 9, 0.7);
    assert_all_close(
        "softmax on a view",
        &host(softmax_last(v2, 0.7)),
        &want,
        1e-8,
        2e-6,
    );
}

#[test]
fn silu_mul_of_a_saturated_gate_and_a_huge_up_is_finite() {
    let dev = Device::flex();
    let g = Tensor::<1>::from_data(TensorData::new(vec![-100.0f32; 9], [9]), &dev);
    let u = Tensor::<1>::from_data(TensorData::new(vec![1e37f32; 9], [9]), &dev);
    // The true value is about -3.7e-5; silu(-100) itself is below f32's normal range, so f32 gives -0 or a
    // denormal-based value. What matters: no inf/inf = NaN.
    let want = [-100.0f64 / (1.0 + 100f64.exp()) * 1e37; 9];
    assert_all_close(
        "silu_mul(-100, 1e37)",
        &host(silu_mul(g, u)),
        &want,
        1e-4,
        0.0,
    );
}

#[test]
fn half_precision_takes_the_plain_path() {
    let dev = Device::flex();
    let x: Tensor<2> = Tensor::random([4, 33], Distribution::Normal(0.0, 2.0), &dev);
    let xs = host(&x);
    let h = x.cast(FloatDType::BF16);
    let p = softmax_last(h.clone(), 0.5);
    assert_eq!(p.dtype(), h.dtype());
    assert_all_close(
        "bf16 softmax",
        &host(&p),
        &softmax_ref(&xs, 33, 0.5),
        1e-2,
        1e-2,
    );
    let g = quick_gelu(h);
    let want: Vec<f64> = xs.iter().map(|&v| qgelu_ref(v)).collect();
    assert_all_close("bf16 quick_gelu", &host(&g), &want, 2e-2, 2e-2);
}

#[test]
fn autodiff_takes_the_differentiable_path() {
    let dev = Device::flex().autodiff();
    let x: Tensor<2> = Tensor::random([3, 7], Distribution::Normal(0.0, 2.0), &dev).require_grad();
    let y = quick_gelu(x.clone()).sum();
    let grads = y.backward();
    let gx = x.grad(&grads).expect("gradient");
    let xs = host(&x);
    // d/dx x·σ(1.702x) = σ + 1.702·x·σ·(1−σ).
    let want: Vec<f64> = xs
        .iter()
        .map(|&v| {
            let v = v as f64;
            let s = 1.0 / (1.0 + (-1.702 * v).exp());
            s + 1.702 * v * s * (1.0 - s)
        })
        .collect();
    assert_all_close("quick_gelu gradient", &host(&gx), &want, 1e-6, 1e-5);
}

#[test]
fn linear_matches_burn_with_and_without_bias_and_on_strided_weights() {
    let dev = Device::flex();
    for (m, k, n) in [(3, 5, 7), (257, 256, 768)] {
        let x: Tensor<3> = Tensor::random([1, m, k], Distribution::Normal(0.0, 1.0), &dev);
        let w: Tensor<2> = Tensor::random([k, n], Distribution::Normal(0.0, 0.1), &dev);
        let b: Tensor<1> = Tensor::random([n], Distribution::Normal(0.0, 1.0), &dev);
        let want = burn::tensor::module::linear(x.clone(), w.clone(), Some(b.clone()));
        let got = linear(x.clone(), w.clone(), Some(b.clone()));
        assert_eq!(got.dims(), [1, m, n]);
        assert_all_close("linear", &host(&got), &host(&want), 1e-5, 1e-5);
        let want = burn::tensor::module::linear(x.clone(), w.clone(), None);
        assert_all_close(
            "linear, no bias",
            &host(linear(x.clone(), w.clone(), None)),
            &host(&want),
            1e-5,
            1e-5,
        );
        // A transposed view of an [n, k] matrix as the weight (HF's layout seen through burn).
        let wt: Tensor<2> = Tensor::random([n, k], Distribution::Normal(0.0, 0.1), &dev);
        let want = burn::tensor::module::linear(x.clone(), wt.clone().transpose(), Some(b.clone()));
        assert_all_close(
            "linear, strided weight",
            &host(linear(x, wt.transpose(), Some(b))),
            &host(&want),
            1e-5,
            1e-5,
        );
    }
}

/// The plain burn attention: heads gathered with narrow + stack, softmax(scale·q·kᵀ)·v.
fn reference_attention(
    q: &Heads,
    k: &Heads,
    v: &Heads,
    heads: usize,
    hd: usize,
    scale: f64,
) -> (Tensor<3>, Tensor<4>) {
    let split = |h: &Heads| {
        Tensor::stack::<4>(
            (0..heads)
                .map(|i| h.tensor.clone().narrow(2, h.offset + i * h.head_stride, hd))
                .collect(),
            1,
        )
    };
    let (q4, k4, v4) = (split(q), split(k), split(v));
    let [b, _, lq, _] = q4.dims();
    let p = burn::tensor::activation::softmax(q4.matmul(k4.swap_dims(2, 3)) * scale, 3);
    let ctx = p
        .clone()
        .matmul(v4)
        .swap_dims(1, 2)
        .reshape([b, lq, heads * hd]);
    (ctx, p)
}

#[test]
fn attention_on_interleaved_and_separate_heads_matches_burn() {
    let dev = Device::flex();
    // The ViT's fused QKV: [B, S, nh·3·hd], head h at h·3hd + {0, hd, 2hd}; two batches, 4 heads (parallel tasks).
    let (b, s, nh, hd) = (2, 37, 4, 16);
    let qkv: Tensor<3> = Tensor::random([b, s, 3 * nh * hd], Distribution::Normal(0.0, 1.0), &dev);
    let h = |o: usize| Heads {
        tensor: qkv.clone(),
        offset: o * hd,
        head_stride: 3 * hd,
    };
    let (q, k, v) = (h(0), h(1), h(2));
    let (ctx, probs) =
        try_attention(&q, &k, &v, nh, hd, 0.25, true).expect("flex f32 takes the fast path");
    let (want_ctx, want_p) = reference_attention(&q, &k, &v, nh, hd, 0.25);
    assert_eq!(ctx.dims(), [b, s, nh * hd]);
    assert_all_close(
        "context (interleaved)",
        &host(&ctx),
        &host(&want_ctx),
        2e-5,
        2e-5,
    );
    assert_all_close(
        "probabilities (interleaved)",
        &host(probs.expect("asked")),
        &host(&want_p),
        2e-6,
        2e-6,
    );
    // The same without the probabilities (per-worker score blocks instead of one kept buffer).
    let (ctx2, none) = try_attention(&q, &k, &v, nh, hd, 0.25, false).expect("fast path");
    assert!(none.is_none());
    assert_all_close(
        "context (interleaved, no probabilities)",
        &host(&ctx2),
        &host(&want_ctx),
        2e-5,
        2e-5,
    );
    // Separate projections with Lq ≠ Lk (the abstractor's queries against queries + image), one head per batch.
    let (lq, lk, nh, hd) = (5, 23, 1, 8);
    let q = Heads {
        tensor: Tensor::random([1, lq, nh * hd], Distribution::Normal(0.0, 1.0), &dev),
        offset: 0,
        head_stride: hd,
    };
    let k = Heads {
        tensor: Tensor::random([1, lk, nh * hd], Distribution::Normal(0.0, 1.0), &dev),
        offset: 0,
        head_stride: hd,
    };
    let v = Heads {
        tensor: Tensor::random([1, lk, nh * hd], Distribution::Normal(0.0, 1.0), &dev),
        offset: 0,
        head_stride: hd,
    };
    let (ctx, probs) = try_attention(&q, &k, &v, nh, hd, 0.5, false).expect("fast path");
    assert!(probs.is_none());
    let (want_ctx, _) = reference_attention(&q, &k, &v, nh, hd, 0.5);
    assert_all_close(
        "context (separate)",
        &host(&ctx),
        &host(&want_ctx),
        2e-5,
        2e-5,
    );
    // Heads that do not fit the columns are refused, as are autodiff tensors.
    let bad = Heads {
        offset: 1,
        ..q.clone()
    };
    assert!(try_attention(&bad, &k, &v, nh, hd, 0.5, false).is_none());
    let ad = Heads {
        tensor: Tensor::random(
            [1, lq, hd],
            Distribution::Normal(0.0, 1.0),
            &Device::flex().autodiff(),
        ),
        offset: 0,
        head_stride: hd,
    };
    assert!(try_attention(&ad, &ad, &ad, 1, hd, 0.5, false).is_none());
}
