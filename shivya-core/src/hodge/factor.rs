//! Factorisations of an assembled symmetric positive semi-definite matrix, for the
//! solver comparison behind the default choice (docs/PERFORMANCE.md): an incomplete
//! Cholesky preconditioner for CG and a sparse direct Cholesky solve.
//!
//! Both work on the lower triangle of a [`Csr`] whose rows hold ascending columns and a
//! stored diagonal. Both are deterministic (fixed elimination order, fixed summation
//! order) and never panic on a matrix that is not positive definite: IC(0) shifts its
//! diagonal until it succeeds, and the direct factorisation drops the pivots of
//! linearly dependent columns (the null space of a singular Hodge Laplacian), which is
//! exact for the consistent right-hand sides the Hodge systems have.

use super::sparse::Csr;
use thiserror::Error;

/// Why a factorisation could not be made.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FactorError {
    /// The matrix is not square.
    #[error("matrix is {rows} × {cols}; a factorisation needs a square matrix")]
    NotSquare {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// A diagonal entry is negative or not finite (or, for IC(0), zero or missing).
    #[error("diagonal entry {index} is {value}; a finite, non-negative (IC: positive) diagonal is required")]
    BadDiagonal {
        /// Row.
        index: usize,
        /// Its value (0 when absent).
        value: f64,
    },
    /// The exact factor would hold more entries than the caller allowed.
    #[error("the factor needs {needed} entries, more than the limit of {limit}")]
    TooMuchFill {
        /// Entries counted before giving up (at least `limit + 1`).
        needed: usize,
        /// The limit.
        limit: usize,
    },
    /// IC(0) broke down even with the largest diagonal shift tried.
    #[error("incomplete Cholesky broke down even with a diagonal shift of {shift}")]
    Breakdown {
        /// The last shift tried (relative to the diagonal).
        shift: f64,
    },
}

/// Square, with a finite diagonal that is positive (or, with `allow_zero`, zero: an
/// empty row, such as an isolated vertex's, whose unknown the direct solve sets to 0).
fn check_square(a: &Csr, allow_zero: bool) -> Result<Vec<f64>, FactorError> {
    if a.rows() != a.cols() {
        return Err(FactorError::NotSquare {
            rows: a.rows(),
            cols: a.cols(),
        });
    }
    let d = a.diagonal();
    if let Some((index, &value)) = d
        .iter()
        .enumerate()
        .find(|(_, v)| !((**v > 0.0 || (allow_zero && **v == 0.0)) && v.is_finite()))
    {
        return Err(FactorError::BadDiagonal { index, value });
    }
    Ok(d)
}

/// Zero-fill incomplete Cholesky `A + σ·diag(A) ≈ L Lᵀ`, `L` with the sparsity of the
/// lower triangle of `A`. Applied as `z = (L Lᵀ)⁻¹ r` by two triangular sweeps.
#[derive(Debug, Clone)]
pub struct IncompleteCholesky {
    /// Strictly-lower entries, row by row, ascending columns.
    row_ptr: Vec<usize>,
    col: Vec<u32>,
    val: Vec<f64>,
    diag: Vec<f64>,
    shift: f64,
}

impl IncompleteCholesky {
    /// Factors `a` (square, symmetric, positive diagonal). Tries σ = 0 first and, on a
    /// non-positive pivot, σ = 10⁻³, 2·10⁻³, … up to 16 times.
    pub fn new(a: &Csr) -> Result<IncompleteCholesky, FactorError> {
        let diag = check_square(a, false)?;
        let n = a.rows();
        let mut row_ptr = Vec::with_capacity(n + 1);
        let mut col = Vec::new();
        row_ptr.push(0);
        for r in 0..n {
            for (c, _) in a.row(r) {
                if (c as usize) < r {
                    col.push(c);
                }
            }
            row_ptr.push(col.len());
        }
        let mut ic = IncompleteCholesky {
            val: vec![0.0; col.len()],
            row_ptr,
            col,
            diag: vec![0.0; n],
            shift: 0.0,
        };
        let mut shift = 0.0;
        for _ in 0..17 {
            if ic.try_factor(a, &diag, shift) {
                ic.shift = shift;
                return Ok(ic);
            }
            shift = if shift == 0.0 { 1e-3 } else { 2.0 * shift };
        }
        Err(FactorError::Breakdown { shift })
    }

    fn try_factor(&mut self, a: &Csr, diag_a: &[f64], shift: f64) -> bool {
        let n = diag_a.len();
        // Row i of L scattered into a dense vector, with a marker of which columns it has.
        let mut w = vec![0.0; n];
        let mut mark = vec![usize::MAX; n];
        for i in 0..n {
            let (lo, hi) = (self.row_ptr[i], self.row_ptr[i + 1]);
            for (c, v) in a.row(i) {
                if (c as usize) < i {
                    w[c as usize] = v;
                    mark[c as usize] = i;
                }
            }
            let mut d = diag_a[i] * (1.0 + shift);
            for p in lo..hi {
                let k = self.col[p] as usize;
                // l_ik = (a_ik − Σ_{j<k} l_ij l_kj) / l_kk over the shared pattern.
                let mut s = w[k];
                for q in self.row_ptr[k]..self.row_ptr[k + 1] {
                    let j = self.col[q] as usize;
                    if mark[j] == i {
                        s -= w[j] * self.val[q];
                    }
                }
                let l = s / self.diag[k];
                w[k] = l;
                self.val[p] = l;
                d -= l * l;
            }
            if !(d > 1e-12 * diag_a[i]) || !d.is_finite() {
                return false;
            }
            self.diag[i] = d.sqrt();
        }
        true
    }

    /// The relative diagonal shift that made the factorisation succeed.
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// Entries of `L`, diagonal included.
    pub fn nnz(&self) -> usize {
        self.val.len() + self.diag.len()
    }

    /// `z = (L Lᵀ)⁻¹ r`. Both slices have the matrix's dimension.
    pub fn apply(&self, r: &[f64], z: &mut [f64]) {
        let n = self.diag.len();
        for i in 0..n {
            let mut s = r[i];
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                s -= self.val[p] * z[self.col[p] as usize];
            }
            z[i] = s / self.diag[i];
        }
        for i in (0..n).rev() {
            let zi = z[i] / self.diag[i];
            z[i] = zi;
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                z[self.col[p] as usize] -= self.val[p] * zi;
            }
        }
    }
}

/// The elimination order of a direct factorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Rows as given.
    Natural,
    /// Reverse Cuthill–McKee from a pseudo-peripheral vertex of each component: small
    /// bandwidth, hence bounded fill on mesh-like complexes.
    ReverseCuthillMcKee,
}

/// Reverse Cuthill–McKee permutation of the symmetric pattern of `a`: `perm[new] = old`.
pub fn rcm(a: &Csr) -> Vec<u32> {
    let n = a.rows();
    let degree: Vec<usize> = (0..n)
        .map(|r| a.row(r).filter(|&(c, _)| c as usize != r).count())
        .collect();
    let mut visited = vec![false; n];
    let mut order: Vec<u32> = Vec::with_capacity(n);
    let mut level = vec![usize::MAX; n];
    let mut nbrs: Vec<u32> = Vec::new();
    // Breadth-first from `s` over unvisited vertices, neighbours by ascending degree
    // (then index); appends to `out` and returns the vertices of the last level.
    let bfs = |s: usize,
               visited: &mut Vec<bool>,
               out: &mut Vec<u32>,
               level: &mut Vec<usize>,
               nbrs: &mut Vec<u32>|
     -> usize {
        let start = out.len();
        visited[s] = true;
        level[s] = 0;
        out.push(s as u32);
        let mut head = start;
        while head < out.len() {
            let u = out[head] as usize;
            head += 1;
            nbrs.clear();
            nbrs.extend(
                a.row(u)
                    .map(|(c, _)| c)
                    .filter(|&c| c as usize != u && !visited[c as usize]),
            );
            nbrs.sort_unstable_by_key(|&c| (degree[c as usize], c));
            for &c in nbrs.iter() {
                visited[c as usize] = true;
                level[c as usize] = level[u] + 1;
                out.push(c);
            }
        }
        start
    };
    for root in 0..n {
        if visited[root] {
            continue;
        }
        // Pseudo-peripheral start: twice, jump to the lowest-degree vertex of the deepest
        // level, then undo the trial searches.
        let mut s = root;
        for _ in 0..2 {
            let start = bfs(s, &mut visited, &mut order, &mut level, &mut nbrs);
            let deepest = order[start..]
                .iter()
                .map(|&v| level[v as usize])
                .max()
                .unwrap_or(0);
            let next = order[start..]
                .iter()
                .copied()
                .filter(|&v| level[v as usize] == deepest)
                .min_by_key(|&v| (degree[v as usize], v))
                .map_or(s, |v| v as usize);
            for &v in &order[start..] {
                visited[v as usize] = false;
            }
            order.truncate(start);
            s = next;
        }
        bfs(s, &mut visited, &mut order, &mut level, &mut nbrs);
    }
    order.reverse();
    order
}

/// A sparse Cholesky factor `P A Pᵀ = L Lᵀ`, computed row by row along the elimination
/// tree (an up-looking factorisation), stored by columns.
#[derive(Debug, Clone)]
pub struct SparseCholesky {
    perm: Vec<u32>,
    col_ptr: Vec<usize>,
    row: Vec<u32>,
    val: Vec<f64>,
    dropped: Vec<bool>,
}

const NONE: usize = usize::MAX;

impl SparseCholesky {
    /// Factors `a` in the given order. Fails with [`FactorError::TooMuchFill`] before any
    /// numeric work when `L` would hold more than `max_nnz` entries.
    pub fn new(a: &Csr, ordering: Ordering, max_nnz: usize) -> Result<SparseCholesky, FactorError> {
        check_square(a, true)?;
        let n = a.rows();
        let perm: Vec<u32> = match ordering {
            Ordering::Natural => (0..n as u32).collect(),
            Ordering::ReverseCuthillMcKee => rcm(a),
        };
        let mut iperm = vec![0u32; n];
        for (new, &old) in perm.iter().enumerate() {
            iperm[old as usize] = new as u32;
        }
        // Upper triangle of C = P A Pᵀ by columns (= lower by rows, by symmetry).
        let mut cptr = Vec::with_capacity(n + 1);
        let mut cidx: Vec<u32> = Vec::with_capacity(a.nnz());
        let mut cval: Vec<f64> = Vec::with_capacity(a.nnz());
        cptr.push(0);
        let mut tmp: Vec<(u32, f64)> = Vec::new();
        for k in 0..n {
            tmp.clear();
            tmp.extend(
                a.row(perm[k] as usize)
                    .map(|(c, v)| (iperm[c as usize], v))
                    .filter(|&(i, _)| i as usize <= k),
            );
            tmp.sort_unstable_by_key(|e| e.0);
            for &(i, v) in &tmp {
                cidx.push(i);
                cval.push(v);
            }
            cptr.push(cidx.len());
        }
        // Elimination tree, with path compression.
        let mut parent = vec![NONE; n];
        let mut ancestor = vec![NONE; n];
        for k in 0..n {
            for &i in &cidx[cptr[k]..cptr[k + 1]] {
                let mut i = i as usize;
                while i != NONE && i < k {
                    let next = ancestor[i];
                    ancestor[i] = k;
                    if next == NONE {
                        parent[i] = k;
                    }
                    i = next;
                }
            }
        }
        let mut flag = vec![NONE; n];
        let mut stack = vec![0u32; n];
        let mut path: Vec<u32> = Vec::new();
        // Row k of L: the vertices reachable from C's column k up the tree, in an order
        // where every vertex comes after its descendants. Written to stack[top..].
        let mut ereach = |k: usize, flag: &mut Vec<usize>, stack: &mut Vec<u32>| -> usize {
            let mut top = n;
            flag[k] = k;
            for &i in &cidx[cptr[k]..cptr[k + 1]] {
                let mut i = i as usize;
                path.clear();
                while flag[i] != k {
                    path.push(i as u32);
                    flag[i] = k;
                    i = parent[i];
                }
                top -= path.len();
                stack[top..top + path.len()].copy_from_slice(&path);
            }
            top
        };
        // Symbolic: column counts.
        let mut count = vec![1usize; n];
        let mut total = n;
        for k in 0..n {
            let top = ereach(k, &mut flag, &mut stack);
            total += n - top;
            if total > max_nnz {
                return Err(FactorError::TooMuchFill {
                    needed: total,
                    limit: max_nnz,
                });
            }
            for &j in &stack[top..] {
                count[j as usize] += 1;
            }
        }
        let mut col_ptr = Vec::with_capacity(n + 1);
        col_ptr.push(0);
        for &c in &count {
            col_ptr.push(col_ptr.last().copied().unwrap_or(0) + c);
        }
        let mut row = vec![0u32; total];
        let mut val = vec![0.0; total];
        let mut next: Vec<usize> = col_ptr[..n].iter().map(|p| p + 1).collect();
        let mut dropped = vec![false; n];
        let mut x = vec![0.0; n];
        flag.fill(NONE);
        for k in 0..n {
            let top = ereach(k, &mut flag, &mut stack);
            let mut ckk = 0.0;
            for p in cptr[k]..cptr[k + 1] {
                let i = cidx[p] as usize;
                if i == k {
                    ckk = cval[p];
                } else {
                    x[i] = cval[p];
                }
            }
            let mut d = ckk;
            for &j in &stack[top..] {
                let j = j as usize;
                let lkj = if dropped[j] {
                    0.0
                } else {
                    x[j] / val[col_ptr[j]]
                };
                x[j] = 0.0;
                for p in col_ptr[j] + 1..next[j] {
                    x[row[p] as usize] -= val[p] * lkj;
                }
                d -= lkj * lkj;
                row[next[j]] = k as u32;
                val[next[j]] = lkj;
                next[j] += 1;
            }
            row[col_ptr[k]] = k as u32;
            // A pivot that cancels to (nearly) nothing marks a dependent column: the
            // matrix is singular there, and the consistent solve sets that unknown to 0.
            if d > 1e-10 * ckk && d.is_finite() {
                val[col_ptr[k]] = d.sqrt();
            } else {
                dropped[k] = true;
                val[col_ptr[k]] = 1.0;
            }
        }
        Ok(SparseCholesky {
            perm,
            col_ptr,
            row,
            val,
            dropped,
        })
    }

    /// Entries of `L`, diagonal included.
    pub fn nnz(&self) -> usize {
        self.val.len()
    }

    /// Pivots dropped as dependent (the dimension of the null space found).
    pub fn dropped(&self) -> usize {
        self.dropped.iter().filter(|d| **d).count()
    }

    /// Solves `A x = b` (for a singular `A`, `b` must be in its range). `work` is scratch
    /// of the matrix's dimension; all three slices have that length.
    pub fn solve(&self, b: &[f64], x: &mut [f64], work: &mut [f64]) {
        let n = self.perm.len();
        for k in 0..n {
            work[k] = b[self.perm[k] as usize];
        }
        for j in 0..n {
            if self.dropped[j] {
                work[j] = 0.0;
                continue;
            }
            let yj = work[j] / self.val[self.col_ptr[j]];
            work[j] = yj;
            for p in self.col_ptr[j] + 1..self.col_ptr[j + 1] {
                work[self.row[p] as usize] -= self.val[p] * yj;
            }
        }
        for j in (0..n).rev() {
            if self.dropped[j] {
                work[j] = 0.0;
                continue;
            }
            let mut s = work[j];
            for p in self.col_ptr[j] + 1..self.col_ptr[j + 1] {
                s -= self.val[p] * work[self.row[p] as usize];
            }
            work[j] = s / self.val[self.col_ptr[j]];
        }
        for k in 0..n {
            x[self.perm[k] as usize] = work[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hodge::SimplicialComplex;

    fn tetra_surface_and_fan() -> SimplicialComplex {
        // A hollow tetrahedron (L2 singular: its four faces form a closed surface) glued
        // to a fan of three triangles.
        let edges = [
            (0, 1),
            (0, 2),
            (0, 3),
            (1, 2),
            (1, 3),
            (2, 3),
            (3, 4),
            (2, 4),
            (4, 5),
            (3, 5),
            (5, 6),
            (3, 6),
        ];
        let tris = [
            (0, 1, 2),
            (0, 1, 3),
            (0, 2, 3),
            (1, 2, 3),
            (2, 3, 4),
            (3, 4, 5),
            (3, 5, 6),
        ];
        SimplicialComplex::new(7, &edges, &tris).unwrap()
    }

    fn residual(a: &Csr, x: &[f64], b: &[f64]) -> f64 {
        let mut ax = vec![0.0; b.len()];
        a.mul_vec(x, &mut ax);
        ax.iter()
            .zip(b)
            .map(|(p, q)| (p - q) * (p - q))
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn up_laplacian_matches_the_matrix_free_product() {
        let cx = tetra_surface_and_fan();
        let l2 = cx.up_laplacian();
        let v: Vec<f64> = (0..cx.n_triangles())
            .map(|i| (i as f64).sin() + 0.5)
            .collect();
        let mut tmp = vec![0.0; cx.n_edges()];
        let mut want = vec![0.0; cx.n_triangles()];
        cx.d1().transpose().mul_vec(&v, &mut tmp);
        cx.d1().mul_vec(&tmp, &mut want);
        let mut got = vec![0.0; cx.n_triangles()];
        l2.mul_vec(&v, &mut got);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
        assert!(l2.diagonal().iter().all(|&d| d == 3.0));
    }

    #[test]
    fn direct_solve_handles_the_singular_hollow_tetrahedron() {
        let cx = tetra_surface_and_fan();
        let l2 = cx.up_laplacian();
        // A consistent right-hand side: d1 of some flow.
        let flow: Vec<f64> = (0..cx.n_edges()).map(|i| (i as f64 * 0.7).cos()).collect();
        let mut b = vec![0.0; cx.n_triangles()];
        cx.d1().mul_vec(&flow, &mut b);
        for ordering in [Ordering::Natural, Ordering::ReverseCuthillMcKee] {
            let f = SparseCholesky::new(&l2, ordering, 1 << 20).unwrap();
            assert_eq!(f.dropped(), 1, "one closed surface, one null vector");
            let mut x = vec![0.0; b.len()];
            let mut w = vec![0.0; b.len()];
            f.solve(&b, &mut x, &mut w);
            assert!(residual(&l2, &x, &b) < 1e-12, "{ordering:?}");
        }
    }

    #[test]
    fn fill_limit_is_checked_before_numeric_work() {
        let cx = tetra_surface_and_fan();
        let l2 = cx.up_laplacian();
        let err = SparseCholesky::new(&l2, Ordering::Natural, 5).unwrap_err();
        assert!(matches!(err, FactorError::TooMuchFill { limit: 5, .. }));
    }

    #[test]
    fn incomplete_cholesky_is_exact_on_a_tree_pattern_and_preconditions_cg() {
        // A path-graph Laplacian plus identity: tridiagonal, so IC(0) has no dropped fill
        // and is the exact factor.
        let n = 6;
        let rows: Vec<Vec<(u32, f64)>> = (0..n)
            .map(|i| {
                let mut r = Vec::new();
                if i > 0 {
                    r.push((i as u32 - 1, -1.0));
                }
                r.push((i as u32, 3.0));
                if i + 1 < n {
                    r.push((i as u32 + 1, -1.0));
                }
                r
            })
            .collect();
        let a = Csr::from_sorted_rows(n, rows);
        let ic = IncompleteCholesky::new(&a).unwrap();
        assert_eq!(ic.shift(), 0.0);
        let b: Vec<f64> = (0..n).map(|i| i as f64 - 2.0).collect();
        let mut z = vec![0.0; n];
        ic.apply(&b, &mut z);
        assert!(residual(&a, &z, &b) < 1e-12);
    }

    #[test]
    fn bad_matrices_are_errors() {
        let a = Csr::from_sorted_rows(2, vec![vec![(0, 1.0)]]);
        assert!(matches!(
            IncompleteCholesky::new(&a),
            Err(FactorError::NotSquare { .. })
        ));
        let a = Csr::from_sorted_rows(2, vec![vec![(0, 1.0)], vec![(1, f64::NAN)]]);
        assert!(matches!(
            SparseCholesky::new(&a, Ordering::Natural, 100),
            Err(FactorError::BadDiagonal { index: 1, .. })
        ));
        // An empty row (an isolated vertex) is a dropped pivot, not an error.
        let a = Csr::from_sorted_rows(2, vec![vec![(0, 2.0)], vec![]]);
        let f = SparseCholesky::new(&a, Ordering::Natural, 100).unwrap();
        assert_eq!(f.dropped(), 1);
        let (mut x, mut w) = (vec![9.0; 2], vec![0.0; 2]);
        f.solve(&[4.0, 0.0], &mut x, &mut w);
        assert!((x[0] - 2.0).abs() < 1e-15 && x[1] == 0.0, "{x:?}");
    }

    #[test]
    fn rcm_is_a_permutation() {
        let cx = tetra_surface_and_fan();
        let mut p = rcm(cx.laplacian());
        p.sort_unstable();
        assert_eq!(p, (0..7).collect::<Vec<u32>>());
    }
}
