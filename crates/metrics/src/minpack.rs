//! A line-by-line port of MINPACK's `lmdif` (Levenberg–Marquardt with a forward-difference Jacobian), the code
//! behind `scipy.optimize.leastsq` and therefore `curve_fit(method="lm")`.
//!
//! Porting the original routine (rather than writing a fresh LM) matters: ill-posed IQA fits (few points, or
//! an exponential-looking MOS curve) stop wherever MINPACK's step-bound and convergence tests stop them, and the
//! fitted PLCC must agree with SciPy's to 1e-6 on those too. Matrices are stored column-major (`a[i + j * lda]`), as
//! in Fortran; indices are 0-based.

/// Machine precision (`dpmpar(1)`).
const EPSMCH: f64 = f64::EPSILON;
/// Smallest positive normal magnitude (`dpmpar(2)`).
const DWARF: f64 = f64::MIN_POSITIVE;

/// Why the iteration stopped (MINPACK's `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LmStatus {
    /// `info = 0`: improper input (no parameters, fewer residuals than parameters, or a negative tolerance); `x` is
    /// returned unchanged.
    ImproperInput,
    /// `info = 1`: the relative reduction of the sum of squares is at most `ftol`.
    SumOfSquaresConverged,
    /// `info = 2`: the relative change of the parameters is at most `xtol`.
    ParametersConverged,
    /// `info = 3`: both of the above.
    BothConverged,
    /// `info = 4`: the residuals are orthogonal to the Jacobian's columns (within `gtol`).
    Orthogonal,
    /// `info = 5`: the number of function evaluations reached `maxfev`.
    MaxEvaluations,
    /// `info = 6`: `ftol` is too small; no further reduction is possible.
    FtolTooSmall,
    /// `info = 7`: `xtol` is too small; no further improvement of the parameters is possible.
    XtolTooSmall,
    /// `info = 8`: `gtol` is too small; the residuals are orthogonal to the Jacobian to machine precision.
    GtolTooSmall,
}

impl LmStatus {
    /// True for the statuses SciPy's `curve_fit` accepts (`ier` in 1..=4).
    pub fn converged(self) -> bool {
        matches!(
            self,
            Self::SumOfSquaresConverged
                | Self::ParametersConverged
                | Self::BothConverged
                | Self::Orthogonal
        )
    }
}

/// Options of [`lmdif`], with SciPy's `leastsq` defaults.
#[derive(Debug, Clone, Copy)]
pub struct LmOptions {
    /// Relative error desired in the sum of squares (SciPy: 1.49012e-8).
    pub ftol: f64,
    /// Relative error desired in the approximate solution (SciPy: 1.49012e-8).
    pub xtol: f64,
    /// Orthogonality desired between the residuals and the Jacobian's columns (SciPy: 0).
    pub gtol: f64,
    /// Maximum number of function evaluations.
    pub maxfev: usize,
    /// Step length for the forward-difference Jacobian (SciPy: machine epsilon).
    pub epsfcn: f64,
    /// Initial step bound factor (SciPy: 100).
    pub factor: f64,
}

impl Default for LmOptions {
    fn default() -> Self {
        Self {
            ftol: 1.49012e-8,
            xtol: 1.49012e-8,
            gtol: 0.0,
            maxfev: 10_000,
            epsfcn: EPSMCH,
            factor: 100.0,
        }
    }
}

/// Result of [`lmdif`].
#[derive(Debug, Clone)]
pub struct LmResult {
    /// Final parameters.
    pub x: Vec<f64>,
    /// Residuals at `x`.
    pub fvec: Vec<f64>,
    /// Why it stopped.
    pub status: LmStatus,
    /// Number of residual evaluations.
    pub nfev: usize,
}

/// Euclidean norm with MINPACK's overflow/underflow-safe accumulation (`enorm`).
fn enorm(x: &[f64]) -> f64 {
    const RDWARF: f64 = 3.834e-20;
    const RGIANT: f64 = 1.304e19;
    let (mut s1, mut s2, mut s3) = (0.0f64, 0.0f64, 0.0f64);
    let (mut x1max, mut x3max) = (0.0f64, 0.0f64);
    let agiant = RGIANT / x.len().max(1) as f64;
    for &v in x {
        let xabs = v.abs();
        if xabs > RDWARF && xabs < agiant {
            s2 += xabs * xabs;
        } else if xabs <= RDWARF {
            if xabs > x3max {
                s3 = 1.0 + s3 * (x3max / xabs) * (x3max / xabs);
                x3max = xabs;
            } else if xabs != 0.0 {
                s3 += (xabs / x3max) * (xabs / x3max);
            }
        } else if xabs > x1max {
            s1 = 1.0 + s1 * (x1max / xabs) * (x1max / xabs);
            x1max = xabs;
        } else {
            s1 += (xabs / x1max) * (xabs / x1max);
        }
    }
    if s1 != 0.0 {
        x1max * (s1 + (s2 / x1max) / x1max).sqrt()
    } else if s2 != 0.0 {
        if s2 >= x3max {
            (s2 * (1.0 + (x3max / s2) * (x3max * s3))).sqrt()
        } else {
            (x3max * ((s2 / x3max) + (x3max * s3))).sqrt()
        }
    } else {
        x3max * s3.sqrt()
    }
}

/// QR factorisation with column pivoting by Householder transformations (`qrfac` with `pivot = true`).
///
/// `a` is `m × n` column-major. On return its upper triangle holds R (diagonal excluded: see `rdiag`) and the
/// lower trapezoid the Householder vectors; `ipvt` the permutation, `rdiag` R's diagonal, `acnorm` the norms of
/// the original columns.
fn qrfac(
    m: usize,
    n: usize,
    a: &mut [f64],
    ipvt: &mut [usize],
    rdiag: &mut [f64],
    acnorm: &mut [f64],
) {
    let mut wa = vec![0.0; n];
    for j in 0..n {
        acnorm[j] = enorm(&a[j * m..j * m + m]);
        rdiag[j] = acnorm[j];
        wa[j] = rdiag[j];
        ipvt[j] = j;
    }
    for j in 0..m.min(n) {
        // Bring the column of largest norm into the pivot position.
        let mut kmax = j;
        for k in j..n {
            if rdiag[k] > rdiag[kmax] {
                kmax = k;
            }
        }
        if kmax != j {
            for i in 0..m {
                a.swap(i + j * m, i + kmax * m);
            }
            rdiag[kmax] = rdiag[j];
            wa[kmax] = wa[j];
            ipvt.swap(j, kmax);
        }
        // Householder transformation reducing the j-th column of a to a multiple of the j-th unit vector.
        let mut ajnorm = enorm(&a[j + j * m..j * m + m]);
        if ajnorm != 0.0 {
            if a[j + j * m] < 0.0 {
                ajnorm = -ajnorm;
            }
            for i in j..m {
                a[i + j * m] /= ajnorm;
            }
            a[j + j * m] += 1.0;
            // Apply it to the remaining columns and update the norms.
            for k in j + 1..n {
                let mut sum = 0.0;
                for i in j..m {
                    sum += a[i + j * m] * a[i + k * m];
                }
                let temp = sum / a[j + j * m];
                for i in j..m {
                    a[i + k * m] -= temp * a[i + j * m];
                }
                if rdiag[k] != 0.0 {
                    let temp = a[j + k * m] / rdiag[k];
                    rdiag[k] *= (1.0 - temp * temp).max(0.0).sqrt();
                    if 0.05 * (rdiag[k] / wa[k]).powi(2) <= EPSMCH {
                        rdiag[k] = enorm(&a[j + 1 + k * m..k * m + m]);
                        wa[k] = rdiag[k];
                    }
                }
            }
        }
        rdiag[j] = -ajnorm;
    }
}

/// Solves `min ‖[A; D] x − [b; 0]‖` given the QR factorisation of A (`qrsolv`). `r` is `n × n` (leading
/// dimension `ldr`): its upper triangle is R on entry and is preserved; its strict lower triangle receives the
/// transposed factor S. `sdiag` receives S's diagonal.
#[allow(clippy::too_many_arguments)]
fn qrsolv(
    n: usize,
    r: &mut [f64],
    ldr: usize,
    ipvt: &[usize],
    diag: &[f64],
    qtb: &[f64],
    x: &mut [f64],
    sdiag: &mut [f64],
) {
    let mut wa = vec![0.0; n];
    for j in 0..n {
        for i in j..n {
            r[i + j * ldr] = r[j + i * ldr];
        }
        x[j] = r[j + j * ldr];
        wa[j] = qtb[j];
    }
    // Eliminate the diagonal matrix D with Givens rotations.
    for j in 0..n {
        let l = ipvt[j];
        if diag[l] != 0.0 {
            for s in sdiag.iter_mut().take(n).skip(j) {
                *s = 0.0;
            }
            sdiag[j] = diag[l];
            let mut qtbpj = 0.0;
            for k in j..n {
                if sdiag[k] == 0.0 {
                    continue;
                }
                let rkk = r[k + k * ldr];
                let (sin, cos);
                if rkk.abs() < sdiag[k].abs() {
                    let cotan = rkk / sdiag[k];
                    sin = 0.5 / (0.25 + 0.25 * cotan * cotan).sqrt();
                    cos = sin * cotan;
                } else {
                    let tan = sdiag[k] / rkk;
                    cos = 0.5 / (0.25 + 0.25 * tan * tan).sqrt();
                    sin = cos * tan;
                }
                r[k + k * ldr] = cos * rkk + sin * sdiag[k];
                let temp = cos * wa[k] + sin * qtbpj;
                qtbpj = -sin * wa[k] + cos * qtbpj;
                wa[k] = temp;
                for i in k + 1..n {
                    let temp = cos * r[i + k * ldr] + sin * sdiag[i];
                    sdiag[i] = -sin * r[i + k * ldr] + cos * sdiag[i];
                    r[i + k * ldr] = temp;
                }
            }
        }
        sdiag[j] = r[j + j * ldr];
        r[j + j * ldr] = x[j];
    }
    // Solve the triangular system; a singular one gets a least-squares solution.
    let mut nsing = n;
    for j in 0..n {
        if sdiag[j] == 0.0 && nsing == n {
            nsing = j;
        }
        if nsing < n {
            wa[j] = 0.0;
        }
    }
    for j in (0..nsing).rev() {
        let mut sum = 0.0;
        for i in j + 1..nsing {
            sum += r[i + j * ldr] * wa[i];
        }
        wa[j] = (wa[j] - sum) / sdiag[j];
    }
    for j in 0..n {
        x[ipvt[j]] = wa[j];
    }
}

/// Determines the Levenberg–Marquardt parameter (`lmpar`). Returns the new `par`; `x` receives the step
/// (before the sign flip done by the caller) and `sdiag` the diagonal of S.
#[allow(clippy::too_many_arguments)]
fn lmpar(
    n: usize,
    r: &mut [f64],
    ldr: usize,
    ipvt: &[usize],
    diag: &[f64],
    qtb: &[f64],
    delta: f64,
    mut par: f64,
    x: &mut [f64],
    sdiag: &mut [f64],
) -> f64 {
    let mut wa1 = vec![0.0; n];
    let mut wa2 = vec![0.0; n];
    // The Gauss–Newton direction (least-squares solution if the Jacobian is rank-deficient).
    let mut nsing = n;
    for j in 0..n {
        wa1[j] = qtb[j];
        if r[j + j * ldr] == 0.0 && nsing == n {
            nsing = j;
        }
        if nsing < n {
            wa1[j] = 0.0;
        }
    }
    for j in (0..nsing).rev() {
        wa1[j] /= r[j + j * ldr];
        let temp = wa1[j];
        for i in 0..j {
            wa1[i] -= r[i + j * ldr] * temp;
        }
    }
    for j in 0..n {
        x[ipvt[j]] = wa1[j];
    }
    let mut iter = 0;
    for j in 0..n {
        wa2[j] = diag[j] * x[j];
    }
    let mut dxnorm = enorm(&wa2);
    let mut fp = dxnorm - delta;
    if fp <= 0.1 * delta {
        return 0.0;
    }
    // Lower bound parl for the zero of the function (zero if the Jacobian is rank-deficient).
    let mut parl = 0.0;
    if nsing >= n {
        for j in 0..n {
            let l = ipvt[j];
            wa1[j] = diag[l] * (wa2[l] / dxnorm);
        }
        for j in 0..n {
            let mut sum = 0.0;
            for i in 0..j {
                sum += r[i + j * ldr] * wa1[i];
            }
            wa1[j] = (wa1[j] - sum) / r[j + j * ldr];
        }
        let temp = enorm(&wa1);
        parl = ((fp / delta) / temp) / temp;
    }
    // Upper bound paru.
    for j in 0..n {
        let mut sum = 0.0;
        for i in 0..=j {
            sum += r[i + j * ldr] * qtb[i];
        }
        wa1[j] = sum / diag[ipvt[j]];
    }
    let gnorm = enorm(&wa1);
    let mut paru = gnorm / delta;
    if paru == 0.0 {
        paru = DWARF / delta.min(0.1);
    }
    par = par.max(parl).min(paru);
    if par == 0.0 {
        par = gnorm / dxnorm;
    }
    loop {
        iter += 1;
        if par == 0.0 {
            par = DWARF.max(0.001 * paru);
        }
        let temp = par.sqrt();
        for j in 0..n {
            wa1[j] = temp * diag[j];
        }
        qrsolv(n, r, ldr, ipvt, &wa1, qtb, x, sdiag);
        for j in 0..n {
            wa2[j] = diag[j] * x[j];
        }
        dxnorm = enorm(&wa2);
        let temp = fp;
        fp = dxnorm - delta;
        // Accept par if it is within 10% of delta, or if parl is zero and the step is inside the bound.
        if fp.abs() <= 0.1 * delta || (parl == 0.0 && fp <= temp && temp < 0.0) || iter == 10 {
            break;
        }
        // Newton correction.
        for j in 0..n {
            let l = ipvt[j];
            wa1[j] = diag[l] * (wa2[l] / dxnorm);
        }
        for j in 0..n {
            wa1[j] /= sdiag[j];
            let temp = wa1[j];
            for i in j + 1..n {
                wa1[i] -= r[i + j * ldr] * temp;
            }
        }
        let temp = enorm(&wa1);
        let parc = ((fp / delta) / temp) / temp;
        if fp > 0.0 {
            parl = parl.max(par);
        }
        if fp < 0.0 {
            paru = paru.min(par);
        }
        par = parl.max(par + parc);
    }
    par
}

/// Minimises `Σ fcn(x)ᵢ²` over `x` (MINPACK `lmdif`, `mode = 1`: variables scaled by the Jacobian's column norms).
///
/// `fcn(x, out)` writes the `m` residuals at `x` (length `n`) into `out`. With `n = 0`, `m < n` or a negative
/// tolerance nothing is evaluated and the status is [`LmStatus::ImproperInput`].
pub fn lmdif(
    m: usize,
    x0: &[f64],
    options: &LmOptions,
    mut fcn: impl FnMut(&[f64], &mut [f64]),
) -> LmResult {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut fvec = vec![0.0; m];
    if n == 0
        || m < n
        || options.ftol < 0.0
        || options.xtol < 0.0
        || options.gtol < 0.0
        || options.maxfev == 0
    {
        return LmResult {
            x,
            fvec,
            status: LmStatus::ImproperInput,
            nfev: 0,
        };
    }
    let mut fjac = vec![0.0; m * n];
    let mut ipvt = vec![0usize; n];
    let mut diag = vec![0.0; n];
    let mut qtf = vec![0.0; n];
    let (mut wa1, mut wa2, mut wa3) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut wa4 = vec![0.0; m];

    fcn(&x, &mut fvec);
    let mut nfev = 1;
    let mut fnorm = enorm(&fvec);
    let mut par = 0.0;
    let mut iter = 1;
    let mut delta = 0.0;
    let mut xnorm = 0.0;
    let eps = options.epsfcn.max(EPSMCH).sqrt();

    let status = 'outer: loop {
        // Forward-difference Jacobian (`fdjac2`).
        for j in 0..n {
            let temp = x[j];
            let mut h = eps * temp.abs();
            if h == 0.0 {
                h = eps;
            }
            x[j] = temp + h;
            fcn(&x, &mut wa4);
            x[j] = temp;
            for i in 0..m {
                fjac[i + j * m] = (wa4[i] - fvec[i]) / h;
            }
        }
        nfev += n;

        qrfac(m, n, &mut fjac, &mut ipvt, &mut wa1, &mut wa2);

        // On the first iteration, scale by the column norms and set the step bound.
        if iter == 1 {
            for j in 0..n {
                diag[j] = if wa2[j] == 0.0 { 1.0 } else { wa2[j] };
                wa3[j] = diag[j] * x[j];
            }
            xnorm = enorm(&wa3);
            delta = options.factor * xnorm;
            if delta == 0.0 {
                delta = options.factor;
            }
        }

        // Qᵀ·fvec; its first n components go to qtf.
        wa4.copy_from_slice(&fvec);
        for j in 0..n {
            if fjac[j + j * m] != 0.0 {
                let mut sum = 0.0;
                for i in j..m {
                    sum += fjac[i + j * m] * wa4[i];
                }
                let temp = -sum / fjac[j + j * m];
                for i in j..m {
                    wa4[i] += fjac[i + j * m] * temp;
                }
            }
            fjac[j + j * m] = wa1[j];
            qtf[j] = wa4[j];
        }

        // Norm of the scaled gradient.
        let mut gnorm = 0.0f64;
        if fnorm != 0.0 {
            for j in 0..n {
                let l = ipvt[j];
                if wa2[l] != 0.0 {
                    let mut sum = 0.0;
                    for i in 0..=j {
                        sum += fjac[i + j * m] * (qtf[i] / fnorm);
                    }
                    gnorm = gnorm.max((sum / wa2[l]).abs());
                }
            }
        }
        if gnorm <= options.gtol {
            break 'outer LmStatus::Orthogonal;
        }
        for j in 0..n {
            diag[j] = diag[j].max(wa2[j]);
        }

        loop {
            par = lmpar(
                n, &mut fjac, m, &ipvt, &diag, &qtf, delta, par, &mut wa1, &mut wa2,
            );
            for j in 0..n {
                wa1[j] = -wa1[j];
                wa2[j] = x[j] + wa1[j];
                wa3[j] = diag[j] * wa1[j];
            }
            let pnorm = enorm(&wa3);
            if iter == 1 {
                delta = delta.min(pnorm);
            }
            fcn(&wa2, &mut wa4);
            nfev += 1;
            let fnorm1 = enorm(&wa4);

            let actred = if 0.1 * fnorm1 < fnorm {
                1.0 - (fnorm1 / fnorm).powi(2)
            } else {
                -1.0
            };
            // Scaled predicted reduction and scaled directional derivative.
            for j in 0..n {
                wa3[j] = 0.0;
                let temp = wa1[ipvt[j]];
                for i in 0..=j {
                    wa3[i] += fjac[i + j * m] * temp;
                }
            }
            let temp1 = enorm(&wa3) / fnorm;
            let temp2 = (par.sqrt() * pnorm) / fnorm;
            let prered = temp1 * temp1 + temp2 * temp2 / 0.5;
            let dirder = -(temp1 * temp1 + temp2 * temp2);
            let ratio = if prered != 0.0 { actred / prered } else { 0.0 };

            // Update the step bound.
            if ratio <= 0.25 {
                let mut temp = if actred >= 0.0 {
                    0.5
                } else {
                    0.5 * dirder / (dirder + 0.5 * actred)
                };
                if 0.1 * fnorm1 >= fnorm || temp < 0.1 {
                    temp = 0.1;
                }
                delta = temp * delta.min(pnorm / 0.1);
                par /= temp;
            } else if par == 0.0 || ratio >= 0.75 {
                delta = pnorm / 0.5;
                par *= 0.5;
            }

            // Successful iteration: update x, fvec and their norms.
            if ratio >= 1e-4 {
                for j in 0..n {
                    x[j] = wa2[j];
                    wa2[j] = diag[j] * x[j];
                }
                fvec.copy_from_slice(&wa4);
                xnorm = enorm(&wa2);
                fnorm = fnorm1;
                iter += 1;
            }

            // Convergence tests.
            let f_conv =
                actred.abs() <= options.ftol && prered <= options.ftol && 0.5 * ratio <= 1.0;
            let x_conv = delta <= options.xtol * xnorm;
            if f_conv && x_conv {
                break 'outer LmStatus::BothConverged;
            }
            if x_conv {
                break 'outer LmStatus::ParametersConverged;
            }
            if f_conv {
                break 'outer LmStatus::SumOfSquaresConverged;
            }
            // Termination and stringent tolerances (later tests win, as in MINPACK).
            let mut info = None;
            if nfev >= options.maxfev {
                info = Some(LmStatus::MaxEvaluations);
            }
            if actred.abs() <= EPSMCH && prered <= EPSMCH && 0.5 * ratio <= 1.0 {
                info = Some(LmStatus::FtolTooSmall);
            }
            if delta <= EPSMCH * xnorm {
                info = Some(LmStatus::XtolTooSmall);
            }
            if gnorm <= EPSMCH {
                info = Some(LmStatus::GtolTooSmall);
            }
            if let Some(info) = info {
                break 'outer info;
            }
            if ratio >= 1e-4 {
                break;
            }
        }
    };
    LmResult {
        x,
        fvec,
        status,
        nfev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enorm_plain_and_extreme() {
        assert!((enorm(&[3.0, 4.0]) - 5.0).abs() < 1e-15);
        assert!((enorm(&[3e200, 4e200]) - 5e200).abs() / 5e200 < 1e-15);
        assert!((enorm(&[3e-200, 4e-200]) - 5e-200).abs() / 5e-200 < 1e-15);
        assert_eq!(enorm(&[]), 0.0);
    }

    #[test]
    fn fits_a_line_exactly() {
        let xs = [0.0, 1.0, 2.0, 3.0, 4.0];
        let ys: Vec<f64> = xs.iter().map(|x| 2.0 * x - 1.0).collect();
        let r = lmdif(5, &[1.0, 1.0], &LmOptions::default(), |p, out| {
            for i in 0..5 {
                out[i] = p[0] * xs[i] + p[1] - ys[i];
            }
        });
        assert!(r.status.converged(), "{:?}", r.status);
        assert!(
            (r.x[0] - 2.0).abs() < 1e-9 && (r.x[1] + 1.0).abs() < 1e-9,
            "{:?}",
            r.x
        );
    }

    #[test]
    fn improper_input_is_reported() {
        let r = lmdif(1, &[1.0, 2.0], &LmOptions::default(), |_, _| {});
        assert_eq!(r.status, LmStatus::ImproperInput);
        assert_eq!(
            lmdif(3, &[], &LmOptions::default(), |_, _| {}).status,
            LmStatus::ImproperInput
        );
    }

    #[test]
    fn rosenbrock() {
        let r = lmdif(2, &[-1.2, 1.0], &LmOptions::default(), |p, out| {
            out[0] = 10.0 * (p[1] - p[0] * p[0]);
            out[1] = 1.0 - p[0];
        });
        assert!(
            (r.x[0] - 1.0).abs() < 1e-7 && (r.x[1] - 1.0).abs() < 1e-7,
            "{:?}",
            r
        );
    }
}
