//! The solver comparison: the triangle system `L2 β = d1 x` of a curl projection, solved
//! to a relative residual of 1e-8 by four methods on the same complexes.

use crate::complexes::{build, random_flow, Family};
use crate::report::Table;
use shivya_core::hodge::{
    norm, pcg, pcg_with, CgConfig, CgScratch, IncompleteCholesky, Ordering, SimplicialComplex,
    Solver, SparseCholesky, DEFAULT_MAX_FACTOR_NNZ,
};
use std::time::Instant;

/// Relative residual every method is asked for.
pub const REL_TOL: f64 = 1e-8;
/// Largest direct factor attempted (entries of L): 12 bytes each, so 1.2 GB.
pub const MAX_FACTOR_NNZ: usize = 100_000_000;

/// One method on one complex.
#[derive(Debug, Clone)]
pub struct SolverRow {
    /// Complex family.
    pub family: &'static str,
    /// Edges.
    pub edges: usize,
    /// Triangles (the system's dimension).
    pub triangles: usize,
    /// Method name.
    pub method: &'static str,
    /// One-off cost per topology (assembly, factorisation), ms.
    pub setup_ms: f64,
    /// Median time of one solve, ms.
    pub solve_ms: f64,
    /// CG iterations (0 for the direct solve).
    pub iterations: usize,
    /// `‖b − L2 β‖ / ‖b‖` reached.
    pub rel_residual: f64,
    /// Entries of the factor or preconditioner (0 for Jacobi).
    pub factor_nnz: usize,
    /// Why the method did not run, when it did not.
    pub skipped: Option<String>,
}

/// Runs `solve` `repeats` times (at least once): the median time in ms and what the last
/// run returned (its CG iterations).
fn timed(
    repeats: usize,
    mut solve: impl FnMut() -> Result<usize, String>,
) -> Result<(f64, usize), String> {
    let mut times = Vec::new();
    let mut last = 0;
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        last = solve()?;
        times.push(ms(t0));
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], last))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn rel_residual(cx: &SimplicialComplex, beta: &[f64], b: &[f64]) -> f64 {
    let mut tmp = vec![0.0; cx.n_edges()];
    let mut ab = vec![0.0; b.len()];
    cx.d1().transpose().mul_vec(beta, &mut tmp);
    cx.d1().mul_vec(&tmp, &mut ab);
    let r: Vec<f64> = ab.iter().zip(b).map(|(p, q)| q - p).collect();
    norm(&r) / norm(b).max(f64::MIN_POSITIVE)
}

/// Runs the four methods on one complex; `repeats` solves each (median reported).
pub fn compare(
    family: Family,
    target_edges: usize,
    repeats: usize,
) -> Result<Vec<SolverRow>, String> {
    let cx = build(family, target_edges, 7)?;
    let (e, t) = (cx.n_edges(), cx.n_triangles());
    let x = random_flow(e, 1);
    let mut b = vec![0.0; t];
    cx.d1().mul_vec(&x, &mut b);
    let tol = REL_TOL * norm(&b);
    let cfg = CgConfig {
        tolerance: tol,
        max_iterations: 100_000,
    };
    let row = |method, setup_ms, solve_ms, iterations, rel_residual, factor_nnz| SolverRow {
        family: family.name(),
        edges: e,
        triangles: t,
        method,
        setup_ms,
        solve_ms,
        iterations,
        rel_residual,
        factor_nnz,
        skipped: None,
    };
    let mut rows = Vec::new();
    let mut beta = vec![0.0; t];
    let mut scratch = CgScratch::new(t);

    // 1. Jacobi CG, matrix-free (d1 (d1ᵀ p)), through the public projection: the
    //    fallback when the factor would be too large.
    let mut ws = cx.workspace();
    ws.cg = cfg;
    ws.solver = Solver::ConjugateGradient;
    let mut out = vec![0.0; e];
    let (solve_ms, iters) = timed(repeats, || {
        cx.project_curl_free_into(&x, &mut ws, &mut out)
            .map(|rep| rep.iterations)
            .map_err(|e| e.to_string())
    })?;
    let d1t = cx.d1().transpose();
    let mut tmp = vec![0.0; e];
    let inv3 = vec![1.0 / 3.0; t];
    // The projection hides β; solve once more the same way to measure its residual.
    pcg(
        |p, o| {
            d1t.mul_vec(p, &mut tmp);
            cx.d1().mul_vec(&tmp, o);
        },
        &b,
        &inv3,
        &mut beta,
        &mut scratch,
        &cfg,
    );
    rows.push(row(
        "cg-jacobi (matrix-free; fallback)",
        0.0,
        solve_ms,
        iters,
        rel_residual(&cx, &beta, &b),
        0,
    ));

    // 2. Jacobi CG on the assembled L2.
    let t0 = Instant::now();
    let l2 = cx.up_laplacian();
    let assemble_ms = ms(t0);
    let (solve_ms, iters) = timed(repeats, || {
        let rep = pcg(
            |p, o| l2.mul_vec(p, o),
            &b,
            &inv3,
            &mut beta,
            &mut scratch,
            &cfg,
        );
        Ok(rep.iterations)
    })?;
    rows.push(row(
        "cg-jacobi (assembled L2)",
        assemble_ms,
        solve_ms,
        iters,
        rel_residual(&cx, &beta, &b),
        0,
    ));

    // 3. IC(0)-preconditioned CG.
    let t0 = Instant::now();
    match IncompleteCholesky::new(&l2) {
        Ok(ic) => {
            let setup = assemble_ms + ms(t0);
            let (solve_ms, iters) = timed(repeats, || {
                let rep = pcg_with(
                    |p, o| l2.mul_vec(p, o),
                    |r, z| ic.apply(r, z),
                    &b,
                    &mut beta,
                    &mut scratch,
                    &cfg,
                );
                Ok(rep.iterations)
            })?;
            rows.push(row(
                "cg-ic0 (assembled L2)",
                setup,
                solve_ms,
                iters,
                rel_residual(&cx, &beta, &b),
                ic.nnz(),
            ));
        }
        Err(err) => {
            let mut r = row("cg-ic0 (assembled L2)", 0.0, 0.0, 0, f64::NAN, 0);
            r.skipped = Some(err.to_string());
            rows.push(r);
        }
    }

    // 4. Sparse direct: RCM-ordered Cholesky, factor once, two triangular solves per call.
    let t0 = Instant::now();
    match SparseCholesky::new(&l2, Ordering::ReverseCuthillMcKee, MAX_FACTOR_NNZ) {
        Ok(f) => {
            let setup = assemble_ms + ms(t0);
            let mut work = vec![0.0; t];
            let (solve_ms, _) = timed(repeats, || {
                f.solve(&b, &mut beta, &mut work);
                Ok(0)
            })?;
            let mut r = row(
                "direct cholesky (RCM; default)",
                setup,
                solve_ms,
                0,
                rel_residual(&cx, &beta, &b),
                f.nnz(),
            );
            if f.nnz() > DEFAULT_MAX_FACTOR_NNZ {
                r.method = "direct cholesky (RCM; above the default's limit)";
            }
            rows.push(r);
        }
        Err(err) => {
            let mut r = row(
                "direct cholesky (RCM; default)",
                ms(t0),
                0.0,
                0,
                f64::NAN,
                0,
            );
            r.skipped = Some(err.to_string());
            rows.push(r);
        }
    }
    Ok(rows)
}

/// The comparison as a table.
pub fn table(rows: &[SolverRow]) -> Table {
    let mut t = Table::new(&[
        "complex",
        "edges",
        "triangles",
        "method",
        "setup ms",
        "solve ms",
        "CG iters",
        "rel. residual",
        "factor nnz",
        "note",
    ]);
    for r in rows {
        t.push(vec![
            r.family.to_string(),
            r.edges.to_string(),
            r.triangles.to_string(),
            r.method.to_string(),
            format!("{:.2}", r.setup_ms),
            if r.skipped.is_some() {
                "-".into()
            } else {
                format!("{:.3}", r.solve_ms)
            },
            r.iterations.to_string(),
            format!("{:.1e}", r.rel_residual),
            r.factor_nnz.to_string(),
            r.skipped.clone().unwrap_or_default(),
        ]);
    }
    t
}
