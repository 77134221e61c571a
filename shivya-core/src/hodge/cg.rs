//! Preconditioned conjugate gradient for symmetric positive semi-definite systems.

/// Stopping rules for the conjugate-gradient solver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgConfig {
    /// Stop when the true residual `‖b − A x‖₂` is at most this (absolute).
    ///
    /// The default is `1e-10`, two decades below the `1e-8` curl residual the mesh
    /// promises: the inner product of the gradient and harmonic parts equals the vertex
    /// solve's residual dotted with the potential, so a looser solve would leave the parts
    /// measurably non-orthogonal (seen at 2e-9 with a 1e-8 tolerance on 20-vertex
    /// complexes).
    pub tolerance: f64,
    /// Hard cap on iterations; reaching it is reported, not an error.
    pub max_iterations: usize,
}

impl Default for CgConfig {
    fn default() -> Self {
        CgConfig {
            tolerance: 1e-10,
            max_iterations: 10_000,
        }
    }
}

/// What a solve did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SolverReport {
    /// Iterations run (0 when the right-hand side was already solved by `x = 0`).
    pub iterations: usize,
    /// The true residual `‖b − A x‖₂` at exit.
    pub residual: f64,
    /// Whether `residual <= tolerance`.
    pub converged: bool,
}

/// Scratch vectors for one solve size; reused across calls so a solve allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct CgScratch {
    r: Vec<f64>,
    z: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
}

impl CgScratch {
    /// Scratch for systems of dimension `n`.
    pub fn new(n: usize) -> Self {
        CgScratch {
            r: vec![0.0; n],
            z: vec![0.0; n],
            p: vec![0.0; n],
            ap: vec![0.0; n],
        }
    }

    /// The dimension this scratch serves.
    pub fn len(&self) -> usize {
        self.r.len()
    }

    /// A scratch vector of the solve dimension (for direct solves).
    pub(crate) fn work(&mut self) -> &mut [f64] {
        &mut self.z
    }

    /// `‖b − A x‖₂`, in index order.
    pub(crate) fn residual<F>(&mut self, mut apply: F, b: &[f64], x: &[f64]) -> f64
    where
        F: FnMut(&[f64], &mut [f64]),
    {
        apply(x, &mut self.ap);
        for ((r, bi), ai) in self.r.iter_mut().zip(b).zip(&self.ap) {
            *r = bi - ai;
        }
        norm(&self.r)
    }

    /// Whether it serves dimension zero.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }
}

/// Dot product in index order (fixed summation order: bit-reproducible).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = 0.0;
    for (x, y) in a.iter().zip(b) {
        acc += x * y;
    }
    acc
}

/// Euclidean norm in index order.
pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Solves `A x = b` by Jacobi-preconditioned CG from `x = 0`.
///
/// `apply(v, out)` must compute `out = A v` for a symmetric positive semi-definite `A`;
/// `inv_diag` is the preconditioner `M⁻¹ = diag(A)⁻¹` (1 where the diagonal is zero).
/// For a singular `A` the right-hand side must lie in its range (it does for every Hodge
/// system, whose right-hand sides are images of the boundary maps); the solve then
/// returns the component of the solution that the callers need.
///
/// When the recurrence residual reaches the tolerance the true residual is recomputed;
/// if rounding has let the two drift apart, the iteration restarts from the true one
/// (at most three times). Never panics on non-convergence: it reports it.
pub fn pcg<F>(
    apply: F,
    b: &[f64],
    inv_diag: &[f64],
    x: &mut [f64],
    s: &mut CgScratch,
    cfg: &CgConfig,
) -> SolverReport
where
    F: FnMut(&[f64], &mut [f64]),
{
    pcg_with(
        apply,
        |r, z| {
            for ((zi, ri), di) in z.iter_mut().zip(r).zip(inv_diag) {
                *zi = ri * di;
            }
        },
        b,
        x,
        s,
        cfg,
    )
}

/// [`pcg`] with any symmetric positive definite preconditioner: `precond(r, z)` writes
/// `z = M⁻¹ r` (for example an incomplete Cholesky solve, see
/// [`IncompleteCholesky`](super::IncompleteCholesky)).
pub fn pcg_with<F, P>(
    mut apply: F,
    mut precond: P,
    b: &[f64],
    x: &mut [f64],
    s: &mut CgScratch,
    cfg: &CgConfig,
) -> SolverReport
where
    F: FnMut(&[f64], &mut [f64]),
    P: FnMut(&[f64], &mut [f64]),
{
    let n = b.len();
    debug_assert_eq!(x.len(), n);
    debug_assert_eq!(s.len(), n);
    x.fill(0.0);
    let CgScratch { r, z, p, ap } = s;
    r.copy_from_slice(b);
    let mut iterations = 0;
    let mut restarts = 0;
    let mut residual = norm(r);
    'outer: loop {
        if residual <= cfg.tolerance {
            break;
        }
        precond(r, z);
        p.copy_from_slice(z);
        let mut rz = dot(r, z);
        loop {
            if iterations >= cfg.max_iterations {
                break 'outer;
            }
            apply(p, ap);
            let pap = dot(p, ap);
            if !(pap > 0.0) || !pap.is_finite() {
                // p lies in the null space (or arithmetic broke down): nothing more to gain.
                break 'outer;
            }
            let alpha = rz / pap;
            if !alpha.is_finite() {
                break 'outer;
            }
            for i in 0..n {
                x[i] += alpha * p[i];
                r[i] -= alpha * ap[i];
            }
            iterations += 1;
            if norm(r) <= cfg.tolerance {
                // Confirm with the true residual before trusting the recurrence.
                apply(x, ap);
                for i in 0..n {
                    r[i] = b[i] - ap[i];
                }
                residual = norm(r);
                if residual <= cfg.tolerance || restarts >= 3 {
                    break 'outer;
                }
                restarts += 1;
                continue 'outer;
            }
            precond(r, z);
            let rz_new = dot(r, z);
            let beta = rz_new / rz;
            rz = rz_new;
            for i in 0..n {
                p[i] = z[i] + beta * p[i];
            }
        }
    }
    // Report the true residual whatever the exit path.
    apply(x, ap);
    for i in 0..n {
        r[i] = b[i] - ap[i];
    }
    residual = norm(r);
    SolverReport {
        iterations,
        residual,
        converged: residual <= cfg.tolerance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_small_spd_system() {
        // A = [[4,1],[1,3]], b = [1,2] → x = [1/11, 7/11]
        let a = [[4.0, 1.0], [1.0, 3.0]];
        let b = [1.0, 2.0];
        let mut x = [0.0; 2];
        let mut s = CgScratch::new(2);
        let rep = pcg(
            |v, out| {
                out[0] = a[0][0] * v[0] + a[0][1] * v[1];
                out[1] = a[1][0] * v[0] + a[1][1] * v[1];
            },
            &b,
            &[0.25, 1.0 / 3.0],
            &mut x,
            &mut s,
            &CgConfig::default(),
        );
        assert!(rep.converged);
        assert!(rep.iterations <= 2);
        assert!((x[0] - 1.0 / 11.0).abs() < 1e-12 && (x[1] - 7.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn reports_non_convergence_instead_of_failing() {
        let b = [1.0, 1.0];
        let mut x = [0.0; 2];
        let mut s = CgScratch::new(2);
        // A = 0: every direction is in the null space and b is not in the range.
        let rep = pcg(
            |_, out| out.fill(0.0),
            &b,
            &[1.0, 1.0],
            &mut x,
            &mut s,
            &CgConfig::default(),
        );
        assert!(!rep.converged);
        assert!((rep.residual - 2f64.sqrt()).abs() < 1e-15);
    }
}
