//! The simplicial 2-complex, its boundary operators and the Hodge solves.

use super::cg::{norm, pcg, CgConfig, CgScratch, SolverReport};
use super::factor::{Ordering, SparseCholesky};
use super::sparse::Csr;
use super::HodgeError;

/// How a workspace solves the two Hodge systems.
///
/// Measured (docs/PERFORMANCE.md): once factored, a sparse Cholesky solve is 20–40×
/// faster than Jacobi CG on random complexes of 10³–10⁶ edges and exact to rounding,
/// and the factorisation costs about as much as 1–3 CG solves. A workspace is used for
/// many solves on one complex, so the default factors on first use when the factor is
/// small enough, and falls back to CG when it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Sparse Cholesky (reverse Cuthill–McKee order), factored on the first solve with the
    /// workspace and reused, when the factor holds at most this many entries (12 bytes
    /// each); Jacobi CG otherwise. The choice depends only on the complex, so every node
    /// with the same complex makes the same one.
    Auto {
        /// Largest factor accepted.
        max_factor_nnz: usize,
    },
    /// Jacobi-preconditioned CG only (nothing factored; the one-shot helpers use this).
    ConjugateGradient,
}

/// Default [`Solver::Auto`] limit: 2²⁴ entries (200 MB).
pub const DEFAULT_MAX_FACTOR_NNZ: usize = 1 << 24;

impl Default for Solver {
    fn default() -> Self {
        Solver::Auto {
            max_factor_nnz: DEFAULT_MAX_FACTOR_NNZ,
        }
    }
}

/// A lazily made factorisation of one Hodge system.
#[derive(Debug, Clone, Default)]
enum Factor {
    #[default]
    Untried,
    Ready(Box<SparseCholesky>),
    /// Too much fill (or not factorable): CG is used.
    Unavailable,
}

impl Factor {
    /// The factor, when one is made and `use_it` (the workspace's solver allows it).
    fn ready(&self, use_it: bool) -> Option<&SparseCholesky> {
        match self {
            Factor::Ready(f) if use_it => Some(f),
            _ => None,
        }
    }
}

/// Vertices `0..n`, oriented edges and oriented triangles, with the boundary operators
/// `d0` (edges × vertices) and `d1` (triangles × edges).
///
/// An edge `(u, v)` is oriented from `u` to `v`: `(d0 f)_e = f_v − f_u`. A triangle
/// `(a, b, c)` has boundary `[a,b] + [b,c] − [a,c]`; each term gets sign `+1` when the
/// stored edge has that orientation and `−1` when it is stored reversed.
#[derive(Debug, Clone)]
pub struct SimplicialComplex {
    n_vertices: usize,
    edges: Vec<(u32, u32)>,
    triangles: Vec<(u32, u32, u32)>,
    d0: Csr,
    d0t: Csr,
    d1: Csr,
    d1t: Csr,
    /// `L0 = d0ᵀ d0`, the graph Laplacian, assembled.
    l0: Csr,
    inv_diag_l0: Vec<f64>,
    inv_diag_l2: Vec<f64>,
}

/// Reusable buffers for decompositions on one complex: repeated calls allocate nothing.
#[derive(Debug, Clone)]
pub struct HodgeWorkspace {
    /// Solver settings used by every call with this workspace (CG stopping rules; a
    /// direct solve reports `converged` when its residual meets the same tolerance or is
    /// at rounding level, 10⁻¹² of the right-hand side).
    pub cg: CgConfig,
    /// Direct or iterative; see [`Solver`].
    pub solver: Solver,
    shape: (usize, usize, usize),
    factor_v: Factor,
    factor_t: Factor,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    rhs_v: Vec<f64>,
    rhs_t: Vec<f64>,
    tmp_e: Vec<f64>,
    scratch_v: CgScratch,
    scratch_t: CgScratch,
}

/// The three orthogonal parts of an edge flow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HodgeParts {
    /// `d0 α`: the part driven by a vertex potential.
    pub gradient: Vec<f64>,
    /// `d1ᵀ β`: the rotational part around filled triangles.
    pub curl: Vec<f64>,
    /// What remains: circulation around holes (cycles no triangle fills).
    pub harmonic: Vec<f64>,
}

/// The reports of the two solves a full decomposition runs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DecompositionReport {
    /// `L0 α = d0ᵀ x`.
    pub gradient: SolverReport,
    /// `L2 β = d1 x`.
    pub curl: SolverReport,
}

impl HodgeWorkspace {
    /// Entries of the direct factors made so far: `(vertex system, triangle system)`;
    /// `None` where none was made (not solved yet, CG chosen, or too much fill).
    pub fn factor_nnz(&self) -> (Option<usize>, Option<usize>) {
        let nnz = |f: &Factor| f.ready(true).map(SparseCholesky::nnz);
        (nnz(&self.factor_v), nnz(&self.factor_t))
    }
}

impl DecompositionReport {
    /// Iterations of both solves together.
    pub fn iterations(&self) -> usize {
        self.gradient.iterations + self.curl.iterations
    }

    /// Whether both solves met the tolerance.
    pub fn converged(&self) -> bool {
        self.gradient.converged && self.curl.converged
    }
}

fn key(u: u32, v: u32) -> (u32, u32) {
    (u.min(v), u.max(v))
}

impl SimplicialComplex {
    /// Builds a complex; rejects out-of-range vertices, self-loops, duplicate edges (in
    /// either orientation), degenerate or duplicate triangles, and triangles whose edges
    /// are not all present.
    pub fn new(
        n_vertices: usize,
        edges: &[(u32, u32)],
        triangles: &[(u32, u32, u32)],
    ) -> Result<Self, HodgeError> {
        for (what, count, max) in [
            ("vertices", n_vertices, crate::limits::MAX_VERTICES),
            ("edges", edges.len(), crate::limits::MAX_EDGES),
            ("triangles", triangles.len(), crate::limits::MAX_TRIANGLES),
        ] {
            if count > max {
                return Err(HodgeError::TooLarge { what, count, max });
            }
        }
        for &(u, v) in edges {
            for bad in [u, v] {
                if bad as usize >= n_vertices {
                    return Err(HodgeError::EdgeVertexOutOfRange {
                        u,
                        v,
                        bad,
                        n_vertices,
                    });
                }
            }
            if u == v {
                return Err(HodgeError::SelfLoop { u });
            }
        }
        // Sorted (unordered key, edge index) for lookups and duplicate detection.
        let mut index: Vec<((u32, u32), u32)> = edges
            .iter()
            .enumerate()
            .map(|(i, &(u, v))| (key(u, v), i as u32))
            .collect();
        index.sort_unstable();
        for w in index.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(HodgeError::DuplicateEdge {
                    u: w[0].0 .0,
                    v: w[0].0 .1,
                });
            }
        }
        let find = |u: u32, v: u32| -> Option<(u32, f64)> {
            let k = key(u, v);
            index
                .binary_search_by(|probe| probe.0.cmp(&k))
                .ok()
                .map(|pos| {
                    let e = index[pos].1;
                    let sign = if edges[e as usize] == (u, v) {
                        1.0
                    } else {
                        -1.0
                    };
                    (e, sign)
                })
        };

        let mut tri_keys: Vec<[u32; 3]> = Vec::with_capacity(triangles.len());
        let mut d1_rows = Vec::with_capacity(triangles.len());
        for &(a, b, c) in triangles {
            for bad in [a, b, c] {
                if bad as usize >= n_vertices {
                    return Err(HodgeError::TriangleVertexOutOfRange {
                        a,
                        b,
                        c,
                        bad,
                        n_vertices,
                    });
                }
            }
            if a == b || b == c || a == c {
                return Err(HodgeError::DegenerateTriangle { a, b, c });
            }
            let mut row = Vec::with_capacity(3);
            for (u, v, orient) in [(a, b, 1.0), (b, c, 1.0), (a, c, -1.0)] {
                let (e, sign) =
                    find(u, v).ok_or(HodgeError::MissingTriangleEdge { a, b, c, u, v })?;
                row.push((e, orient * sign));
            }
            row.sort_unstable_by_key(|&(e, _)| e);
            d1_rows.push(row);
            let mut k = [a, b, c];
            k.sort_unstable();
            tri_keys.push(k);
        }
        tri_keys.sort_unstable();
        for w in tri_keys.windows(2) {
            if w[0] == w[1] {
                let [a, b, c] = w[0];
                return Err(HodgeError::DuplicateTriangle { a, b, c });
            }
        }

        let d0 = Csr::from_sorted_rows(
            n_vertices,
            edges.iter().map(|&(u, v)| {
                if u < v {
                    [(u, -1.0), (v, 1.0)]
                } else {
                    [(v, 1.0), (u, -1.0)]
                }
            }),
        );
        let d1 = Csr::from_sorted_rows(edges.len(), d1_rows);
        let d0t = d0.transpose();
        let d1t = d1.transpose();

        // L0 = d0ᵀ d0: degree on the diagonal, −1 per neighbour (edges are simple).
        let mut adj: Vec<Vec<u32>> = vec![Vec::new(); n_vertices];
        for &(u, v) in edges {
            adj[u as usize].push(v);
            adj[v as usize].push(u);
        }
        let l0 = Csr::from_sorted_rows(
            n_vertices,
            adj.iter_mut().enumerate().map(|(i, ns)| {
                let deg = ns.len() as f64;
                ns.push(i as u32);
                ns.sort_unstable();
                ns.iter()
                    .map(|&c| (c, if c as usize == i { deg } else { -1.0 }))
                    .collect::<Vec<_>>()
            }),
        );
        let inv = |d: f64| if d > 0.0 { 1.0 / d } else { 1.0 };
        let inv_diag_l0 = l0.diagonal().into_iter().map(inv).collect();
        // diag(d1 d1ᵀ) = 3 for every triangle (three ±1 entries).
        let inv_diag_l2 = vec![1.0 / 3.0; triangles.len()];

        Ok(SimplicialComplex {
            n_vertices,
            edges: edges.to_vec(),
            triangles: triangles.to_vec(),
            d0,
            d0t,
            d1,
            d1t,
            l0,
            inv_diag_l0,
            inv_diag_l2,
        })
    }

    /// Number of vertices.
    pub fn n_vertices(&self) -> usize {
        self.n_vertices
    }

    /// Number of edges (the length of every flow on this complex).
    pub fn n_edges(&self) -> usize {
        self.edges.len()
    }

    /// Number of triangles.
    pub fn n_triangles(&self) -> usize {
        self.triangles.len()
    }

    /// The oriented edges, in the order flows are indexed.
    pub fn edges(&self) -> &[(u32, u32)] {
        &self.edges
    }

    /// The triangles as given.
    pub fn triangles(&self) -> &[(u32, u32, u32)] {
        &self.triangles
    }

    /// The vertex-to-edge boundary operator (edges × vertices).
    pub fn d0(&self) -> &Csr {
        &self.d0
    }

    /// The edge-to-triangle boundary operator (triangles × edges).
    pub fn d1(&self) -> &Csr {
        &self.d1
    }

    /// The graph Laplacian `L0 = d0ᵀ d0` (vertices × vertices), assembled.
    pub fn laplacian(&self) -> &Csr {
        &self.l0
    }

    /// The up-Laplacian on triangles `L2 = d1 d1ᵀ`, assembled (the default solver applies
    /// it matrix-free as `d1 (d1ᵀ v)`; stronger preconditioners and direct solvers need
    /// the entries). Two triangles sharing an edge give one off-diagonal `±1`; the
    /// diagonal is 3. Its size grows with the square of how many triangles share an edge.
    pub fn up_laplacian(&self) -> Csr {
        let t = self.triangles.len();
        let mut acc: Vec<f64> = vec![0.0; t];
        let mut touched: Vec<u32> = Vec::new();
        let mut seen = vec![false; t];
        let rows = (0..t).map(|r| {
            for (e, s_re) in self.d1.row(r) {
                for (other, s_oe) in self.d1t.row(e as usize) {
                    let o = other as usize;
                    if !seen[o] {
                        seen[o] = true;
                        touched.push(other);
                    }
                    acc[o] += s_re * s_oe;
                }
            }
            touched.sort_unstable();
            let row: Vec<(u32, f64)> = touched
                .iter()
                .map(|&c| (c, acc[c as usize]))
                .filter(|&(c, v)| v != 0.0 || c as usize == r)
                .collect();
            for &c in &touched {
                acc[c as usize] = 0.0;
                seen[c as usize] = false;
            }
            touched.clear();
            row
        });
        let rows: Vec<Vec<(u32, f64)>> = rows.collect();
        Csr::from_sorted_rows(t, rows)
    }

    /// A workspace sized for this complex, with the default solver settings.
    pub fn workspace(&self) -> HodgeWorkspace {
        let (v, e, t) = (self.n_vertices, self.edges.len(), self.triangles.len());
        HodgeWorkspace {
            cg: CgConfig::default(),
            solver: Solver::default(),
            shape: (v, e, t),
            factor_v: Factor::Untried,
            factor_t: Factor::Untried,
            alpha: vec![0.0; v],
            beta: vec![0.0; t],
            rhs_v: vec![0.0; v],
            rhs_t: vec![0.0; t],
            tmp_e: vec![0.0; e],
            scratch_v: CgScratch::new(v),
            scratch_t: CgScratch::new(t),
        }
    }

    fn check(&self, flow: &[f64], ws: &HodgeWorkspace, out_len: usize) -> Result<(), HodgeError> {
        let e = self.edges.len();
        if flow.len() != e {
            return Err(HodgeError::FlowLength {
                expected: e,
                got: flow.len(),
            });
        }
        if out_len != e {
            return Err(HodgeError::OutputLength {
                expected: e,
                got: out_len,
            });
        }
        if let Some(index) = flow.iter().position(|x| !x.is_finite()) {
            return Err(HodgeError::NonFiniteFlow {
                index,
                value: flow[index],
            });
        }
        if let Some(index) = flow
            .iter()
            .position(|x| x.abs() > super::MAX_FLOW_MAGNITUDE)
        {
            return Err(HodgeError::FlowOutOfRange {
                index,
                value: flow[index],
            });
        }
        let shape = (self.n_vertices, e, self.triangles.len());
        if ws.shape != shape {
            return Err(HodgeError::WorkspaceMismatch {
                workspace: ws.shape,
                complex: shape,
            });
        }
        Ok(())
    }

    /// Makes the factor of the triangle (`true`) or vertex (`false`) system on first use
    /// when the workspace's [`Solver`] allows it; whether a factor is ready.
    fn ensure_factor(&self, ws: &mut HodgeWorkspace, triangles: bool) -> bool {
        let Solver::Auto { max_factor_nnz } = ws.solver else {
            return false;
        };
        let slot = if triangles {
            &mut ws.factor_t
        } else {
            &mut ws.factor_v
        };
        if let Factor::Untried = slot {
            *slot = match self.factor(triangles, max_factor_nnz) {
                Some(f) => Factor::Ready(Box::new(f)),
                None => Factor::Unavailable,
            };
        }
        matches!(slot, Factor::Ready(_))
    }

    fn factor(&self, triangles: bool, max_nnz: usize) -> Option<SparseCholesky> {
        if triangles {
            // Entries of the assembled L2: Σ over edges of (triangles on the edge)²,
            // checked before assembling (a clique-rich complex would not fit).
            let assembled: usize = (0..self.edges.len())
                .map(|e| {
                    let k = self.d1t.row(e).count();
                    k * k
                })
                .sum();
            if assembled > max_nnz {
                return None;
            }
            SparseCholesky::new(&self.up_laplacian(), Ordering::ReverseCuthillMcKee, max_nnz).ok()
        } else {
            if self.l0.nnz() > max_nnz {
                return None;
            }
            SparseCholesky::new(&self.l0, Ordering::ReverseCuthillMcKee, max_nnz).ok()
        }
    }

    /// Solves `L2 β = d1 x` into `ws.beta`.
    fn solve_curl(&self, flow: &[f64], ws: &mut HodgeWorkspace) -> SolverReport {
        self.d1.mul_vec(flow, &mut ws.rhs_t);
        let direct = self.ensure_factor(ws, true);
        let HodgeWorkspace {
            cg,
            beta,
            rhs_t,
            tmp_e,
            scratch_t,
            factor_t,
            ..
        } = ws;
        let (d1, d1t) = (&self.d1, &self.d1t);
        solve_system(
            factor_t.ready(direct),
            |p, out| {
                d1t.mul_vec(p, tmp_e);
                d1.mul_vec(tmp_e, out);
            },
            rhs_t,
            &self.inv_diag_l2,
            beta,
            scratch_t,
            cg,
        )
    }

    /// Solves `L0 α = d0ᵀ x` into `ws.alpha`.
    fn solve_gradient(&self, flow: &[f64], ws: &mut HodgeWorkspace) -> SolverReport {
        self.d0t.mul_vec(flow, &mut ws.rhs_v);
        let direct = self.ensure_factor(ws, false);
        let HodgeWorkspace {
            cg,
            alpha,
            rhs_v,
            scratch_v,
            factor_v,
            ..
        } = ws;
        let l0 = &self.l0;
        solve_system(
            factor_v.ready(direct),
            |p, out| l0.mul_vec(p, out),
            rhs_v,
            &self.inv_diag_l0,
            alpha,
            scratch_v,
            cg,
        )
    }

    /// Splits `flow` into gradient, curl and harmonic parts, writing into `parts`
    /// (resized once if needed, then reused). Allocates nothing when `parts` already has
    /// the right lengths.
    pub fn decompose_into(
        &self,
        flow: &[f64],
        ws: &mut HodgeWorkspace,
        parts: &mut HodgeParts,
    ) -> Result<DecompositionReport, HodgeError> {
        self.check(flow, ws, flow.len())?;
        let e = self.edges.len();
        for v in [&mut parts.gradient, &mut parts.curl, &mut parts.harmonic] {
            v.resize(e, 0.0);
        }
        let curl = self.solve_curl(flow, ws);
        let gradient = self.solve_gradient(flow, ws);
        self.d1t.mul_vec(&ws.beta, &mut parts.curl);
        self.d0.mul_vec(&ws.alpha, &mut parts.gradient);
        for i in 0..e {
            parts.harmonic[i] = flow[i] - parts.gradient[i] - parts.curl[i];
        }
        finite(&parts.harmonic)?;
        Ok(DecompositionReport { gradient, curl })
    }

    /// Allocating convenience for [`decompose_into`](Self::decompose_into).
    /// One solve does not repay a factorisation, so this uses CG.
    pub fn decompose(&self, flow: &[f64]) -> Result<(HodgeParts, DecompositionReport), HodgeError> {
        let mut ws = self.workspace();
        ws.solver = Solver::ConjugateGradient;
        let mut parts = HodgeParts::default();
        let report = self.decompose_into(flow, &mut ws, &mut parts)?;
        Ok((parts, report))
    }

    /// Writes the curl-free part of `flow` (gradient + harmonic = `x − d1ᵀβ`) into `out`.
    /// Only the triangle system is solved. `‖d1 · out‖` equals the reported residual.
    pub fn project_curl_free_into(
        &self,
        flow: &[f64],
        ws: &mut HodgeWorkspace,
        out: &mut [f64],
    ) -> Result<SolverReport, HodgeError> {
        self.check(flow, ws, out.len())?;
        let report = self.solve_curl(flow, ws);
        self.d1t.mul_vec(&ws.beta, out);
        for (o, x) in out.iter_mut().zip(flow) {
            *o = x - *o;
        }
        finite(out)?;
        Ok(report)
    }

    /// Allocating convenience for [`project_curl_free_into`](Self::project_curl_free_into).
    /// One solve does not repay a factorisation, so this uses CG.
    pub fn project_curl_free(&self, flow: &[f64]) -> Result<(Vec<f64>, SolverReport), HodgeError> {
        let mut ws = self.workspace();
        ws.solver = Solver::ConjugateGradient;
        let mut out = vec![0.0; self.edges.len()];
        let report = self.project_curl_free_into(flow, &mut ws, &mut out)?;
        Ok((out, report))
    }

    /// Writes only the gradient part of `flow` (`d0 α`) into `out`: every circulation,
    /// around triangles and around holes alike, is removed. Only the vertex system is
    /// solved.
    pub fn project_gradient_into(
        &self,
        flow: &[f64],
        ws: &mut HodgeWorkspace,
        out: &mut [f64],
    ) -> Result<SolverReport, HodgeError> {
        self.check(flow, ws, out.len())?;
        let report = self.solve_gradient(flow, ws);
        self.d0.mul_vec(&ws.alpha, out);
        finite(out)?;
        Ok(report)
    }

    /// The vertex potential `α` found by the last gradient solve in `ws` (zero-mean is
    /// not enforced; only differences along edges are meaningful).
    pub fn potential<'w>(&self, ws: &'w HodgeWorkspace) -> &'w [f64] {
        &ws.alpha
    }
}

/// Solves `A x = b` (`apply` computes `A v`) with `factor` when given, reporting the true
/// residual and no iterations; otherwise by Jacobi CG with `inv_diag`.
fn solve_system<F>(
    factor: Option<&SparseCholesky>,
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
    let Some(f) = factor else {
        return pcg(apply, b, inv_diag, x, s, cfg);
    };
    f.solve(b, x, s.work());
    let residual = s.residual(apply, b, x);
    SolverReport {
        iterations: 0,
        residual,
        converged: residual <= cfg.tolerance.max(1e-12 * norm(b)),
    }
}

/// `Err(Breakdown)` at the first non-finite entry.
fn finite(v: &[f64]) -> Result<(), HodgeError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(HodgeError::Breakdown { index }),
        None => Ok(()),
    }
}
