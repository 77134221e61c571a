//! Small dense row-major linear algebra for the agent (dimensions are a handful).

/// How a matrix was inverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InversionPath {
    /// Cholesky succeeded on the matrix as given.
    #[default]
    Plain,
    /// The matrix was not safely positive definite; `ridge · I` was added first.
    Ridge,
    /// Even the ridged matrix failed; the identity was used in its place.
    Identity,
}

/// `L Lᵀ = a` in place (lower triangle). Fails when a pivot is not safely positive.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    let scale = (0..n).map(|i| a[i * n + i].abs()).fold(0.0, f64::max);
    let floor = 1e-14 * scale.max(f64::MIN_POSITIVE);
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > floor) || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    true
}

/// Inverse of a symmetric positive definite matrix from its Cholesky factor (in `l`),
/// written to `out`; returns `log det`.
fn inverse_from_cholesky(l: &[f64], n: usize, out: &mut [f64], col: &mut [f64]) -> f64 {
    let mut logdet = 0.0;
    for i in 0..n {
        logdet += 2.0 * l[i * n + i].ln();
    }
    for c in 0..n {
        // Solve L y = e_c, then Lᵀ x = y.
        for i in 0..n {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l[i * n + k] * col[k];
            }
            col[i] = s / l[i * n + i];
        }
        for i in (0..n).rev() {
            let mut s = col[i];
            for k in i + 1..n {
                s -= l[k * n + i] * col[k];
            }
            col[i] = s / l[i * n + i];
        }
        for i in 0..n {
            out[i * n + c] = col[i];
        }
    }
    logdet
}

/// Inverts a symmetric matrix by the ladder plain → ridge → identity. `work` and `col`
/// are scratch of sizes `n²` and `n`. Returns the log-determinant of what was inverted
/// and the path taken. Never fails and never panics for finite or non-finite input.
pub fn invert_spd(
    a: &[f64],
    n: usize,
    ridge: f64,
    out: &mut [f64],
    work: &mut [f64],
    col: &mut [f64],
) -> (f64, InversionPath) {
    work.copy_from_slice(a);
    if cholesky(work, n) {
        return (
            inverse_from_cholesky(work, n, out, col),
            InversionPath::Plain,
        );
    }
    work.copy_from_slice(a);
    for i in 0..n {
        work[i * n + i] += ridge;
    }
    if cholesky(work, n) {
        return (
            inverse_from_cholesky(work, n, out, col),
            InversionPath::Ridge,
        );
    }
    out.fill(0.0);
    for i in 0..n {
        out[i * n + i] = 1.0;
    }
    (0.0, InversionPath::Identity)
}

/// `y = A x` for an `r × c` matrix.
pub fn mat_vec(a: &[f64], r: usize, c: usize, x: &[f64], y: &mut [f64]) {
    for i in 0..r {
        let mut s = 0.0;
        for j in 0..c {
            s += a[i * c + j] * x[j];
        }
        y[i] = s;
    }
}

/// `y = Aᵀ x` for an `r × c` matrix.
pub fn mat_t_vec(a: &[f64], r: usize, c: usize, x: &[f64], y: &mut [f64]) {
    for j in 0..c {
        let mut s = 0.0;
        for i in 0..r {
            s += a[i * c + j] * x[i];
        }
        y[j] = s;
    }
}

/// `xᵀ A y` for a square `n × n` matrix.
pub fn quad(a: &[f64], n: usize, x: &[f64], y: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        let mut row = 0.0;
        for j in 0..n {
            row += a[i * n + j] * y[j];
        }
        s += x[i] * row;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_spd_plainly() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let mut out = [0.0; 4];
        let (logdet, path) = invert_spd(&a, 2, 1e-6, &mut out, &mut [0.0; 4], &mut [0.0; 2]);
        assert_eq!(path, InversionPath::Plain);
        assert!((logdet - 8f64.ln()).abs() < 1e-12);
        let expect = [3.0 / 8.0, -2.0 / 8.0, -2.0 / 8.0, 4.0 / 8.0];
        for (o, e) in out.iter().zip(expect) {
            assert!((o - e).abs() < 1e-12);
        }
    }

    #[test]
    fn singular_takes_ridge_and_garbage_takes_identity() {
        let mut out = [0.0; 4];
        let (_, path) = invert_spd(
            &[1.0, 1.0, 1.0, 1.0],
            2,
            1e-6,
            &mut out,
            &mut [0.0; 4],
            &mut [0.0; 2],
        );
        assert_eq!(path, InversionPath::Ridge);
        assert!(out.iter().all(|x| x.is_finite()));
        let (logdet, path) = invert_spd(
            &[-1.0, 0.0, 0.0, f64::NAN],
            2,
            1e-6,
            &mut out,
            &mut [0.0; 4],
            &mut [0.0; 2],
        );
        assert_eq!(path, InversionPath::Identity);
        assert_eq!(out, [1.0, 0.0, 0.0, 1.0]);
        assert_eq!(logdet, 0.0);
    }
}
