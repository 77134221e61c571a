//! L0 — the Hodge mesh.
//!
//! A simplicial 2-complex (vertices are nodes, edges carry oriented flows, triangles are
//! filled 3-cycles) with its boundary operators `d0` and `d1`. Any edge flow `x` splits
//! uniquely into three orthogonal parts:
//!
//! * **gradient** `d0 α`, where `L0 α = d0ᵀ x` (`L0 = d0ᵀ d0`, the graph Laplacian);
//! * **curl** `d1ᵀ β`, where `L2 β = d1 x` (`L2 = d1 d1ᵀ`);
//! * **harmonic**, the rest: circulation around holes no triangle fills.
//!
//! A workspace solves both systems by a sparse Cholesky factor made on first use when it
//! fits ([`Solver`]), else by Jacobi-preconditioned conjugate gradient from a zero start;
//! both run in a fixed order, so the same flow gives bit-identical parts on every machine that
//! runs the same binary arithmetic (IEEE-754 doubles, no fused multiply-add reordering).
//! Nothing here reads a clock, spawns a thread or panics on bad input.

mod cg;
mod complex;
mod factor;
mod sparse;

pub use cg::{dot, norm, pcg, pcg_with, CgConfig, CgScratch, SolverReport};
pub use complex::{
    DecompositionReport, HodgeParts, HodgeWorkspace, SimplicialComplex, Solver,
    DEFAULT_MAX_FACTOR_NNZ,
};
pub use factor::{rcm, FactorError, IncompleteCholesky, Ordering, SparseCholesky};
pub use sparse::Csr;

/// Largest flow magnitude the solvers accept. Inner products of flows this size on
/// complexes of millions of edges stay far below `f64::MAX`; above it a reconcile could
/// overflow to infinity, so it is refused with [`HodgeError::FlowOutOfRange`].
pub const MAX_FLOW_MAGNITUDE: f64 = 1e100;

use thiserror::Error;

/// What can go wrong building a complex or decomposing a flow.
///
/// Each variant's fields are the values its message names.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Error)]
pub enum HodgeError {
    /// An edge names a vertex outside `0..n_vertices`.
    #[error("edge ({u}, {v}) refers to vertex {bad} but the complex has {n_vertices} vertices")]
    EdgeVertexOutOfRange {
        u: u32,
        v: u32,
        bad: u32,
        n_vertices: usize,
    },
    /// An edge joins a vertex to itself.
    #[error("edge ({u}, {u}) is a self-loop")]
    SelfLoop { u: u32 },
    /// The same edge appears twice (orientation does not make it a different edge).
    #[error("edge ({u}, {v}) appears more than once (in either orientation)")]
    DuplicateEdge { u: u32, v: u32 },
    /// A triangle names a vertex outside `0..n_vertices`.
    #[error(
        "triangle ({a}, {b}, {c}) refers to vertex {bad} but the complex has {n_vertices} vertices"
    )]
    TriangleVertexOutOfRange {
        a: u32,
        b: u32,
        c: u32,
        bad: u32,
        n_vertices: usize,
    },
    /// A triangle repeats a vertex.
    #[error("triangle ({a}, {b}, {c}) repeats a vertex")]
    DegenerateTriangle { a: u32, b: u32, c: u32 },
    /// A triangle's boundary edge is not in the edge list.
    #[error("triangle ({a}, {b}, {c}) needs edge ({u}, {v}), which is not in the edge list")]
    MissingTriangleEdge {
        a: u32,
        b: u32,
        c: u32,
        u: u32,
        v: u32,
    },
    /// The same triangle (as a vertex set) appears twice.
    #[error("triangle on vertices ({a}, {b}, {c}) appears more than once")]
    DuplicateTriangle { a: u32, b: u32, c: u32 },
    /// More vertices, edges or triangles than [`crate::limits`] allows (checked before
    /// anything is allocated).
    #[error("{count} {what} is more than the limit of {max}")]
    TooLarge {
        what: &'static str,
        count: usize,
        max: usize,
    },
    /// A flow's length is not the number of edges.
    #[error("flow has {got} entries but the complex has {expected} edges")]
    FlowLength { expected: usize, got: usize },
    /// An output buffer's length is not the number of edges.
    #[error("output buffer has {got} entries but the complex has {expected} edges")]
    OutputLength { expected: usize, got: usize },
    /// A flow entry is NaN or infinite.
    #[error("flow entry {index} is {value}; flows must be finite")]
    NonFiniteFlow { index: usize, value: f64 },
    /// A flow entry is finite but so large that the solver's inner products would overflow.
    #[error("flow entry {index} is {value:e}; magnitudes above {MAX_FLOW_MAGNITUDE:e} are refused (they overflow the solver)")]
    FlowOutOfRange { index: usize, value: f64 },
    /// The solve broke down (values of very different magnitudes in one flow can exhaust
    /// floating point); nothing usable was produced. Output buffers hold unspecified values.
    #[error("the solver broke down: output entry {index} is not finite (the flow mixes magnitudes floating point cannot resolve)")]
    Breakdown { index: usize },
    /// The workspace was made for a different complex.
    #[error("workspace shaped (V, E, T) = {workspace:?} used with a complex shaped {complex:?}")]
    WorkspaceMismatch {
        workspace: (usize, usize, usize),
        complex: (usize, usize, usize),
    },
}
