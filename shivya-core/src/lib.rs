//! # shivya-core
//!
//! The library at the centre of Shivya: a consensus-free load-and-state balancing mesh.
//! Layers, lowest first (a layer never imports a higher one):
//!
//! * [`hodge`] (L0) — simplicial complex, boundary operators, Hodge decomposition by CG.
//! * [`flux`] (L1) — a Gaussian active-inference agent minimising variational free energy.
//! * [`morphic`] (L2) — a sandboxed register VM, update laws as expression trees, latent
//!   expansion driven by a seeded hill-climb.
//! * [`onsager`] (L3) — an ensemble with symmetric couplings, belief diffusion and
//!   Harsanyi dividends; its `step` runs the whole stack.
//! * [`turing`] (L4) — Gierer–Meinhardt reaction–diffusion on the node graph, split/cull.
//! * [`balancer`] — the dispatch decision (pick, weights, capacity signals) that uses
//!   L1–L4 per backend; [`mesh`] owns one per node.
//!
//! The core never reads the clock, never spawns threads and never uses ambient randomness:
//! time and seeds are arguments. Results are deterministic bit for bit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Numeric kernels walk several arrays in lockstep by index; that reads like the maths.
#![allow(clippy::needless_range_loop)]
// `!(x > 0.0)` is deliberate: it is true for NaN, which `x <= 0.0` is not.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod balancer;
pub mod flux;
pub mod graph;
pub mod hodge;
pub mod limits;
pub mod mesh;
pub mod morphic;
pub mod onsager;
pub mod p2p;
pub mod rng;
#[cfg(feature = "host-telemetry")]
pub mod telemetry;
pub mod turing;
