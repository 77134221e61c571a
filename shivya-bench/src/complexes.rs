//! Random 2-complexes for the solver measurements, built deterministically from a seed.

use shivya_core::graph::Graph;
use shivya_core::hodge::SimplicialComplex;
use shivya_core::rng::Rng;
use std::collections::BTreeSet;

/// Which family of complex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A ring lattice (each vertex joined to its next 4) with 10% of edges rewired at
    /// random, every 3-clique filled: small-world, many triangles, some holes, long edges
    /// that defeat bandwidth-reducing orderings.
    Lattice,
    /// Random points in the unit square joined when closer than `r` (mean degree ≈ 8),
    /// every 3-clique filled (the 2-skeleton of a Vietoris–Rips complex): mesh-like,
    /// geometric locality, holes where the points are sparse.
    Geometric,
}

impl Family {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Family::Lattice => "lattice",
            Family::Geometric => "geometric",
        }
    }
}

/// A complex of roughly `target_edges` edges.
pub fn build(family: Family, target_edges: usize, seed: u64) -> Result<SimplicialComplex, String> {
    let (n, edges) = match family {
        Family::Lattice => lattice_edges(target_edges / 4, 4, seed),
        Family::Geometric => geometric_edges(target_edges / 4, 8.0, seed),
    };
    let weighted: Vec<(u32, u32, f64)> = edges.iter().map(|&(u, v)| (u, v, 1.0)).collect();
    let triangles = Graph::new(n, &weighted)
        .map_err(|e| e.to_string())?
        .triangles();
    SimplicialComplex::new(n, &edges, &triangles).map_err(|e| e.to_string())
}

fn lattice_edges(n: usize, k: usize, seed: u64) -> (usize, Vec<(u32, u32)>) {
    let mut rng = Rng::new(seed);
    let mut seen = BTreeSet::new();
    let mut edges = Vec::new();
    for u in 0..n {
        for d in 1..=k {
            let mut v = (u + d) % n;
            if rng.chance(0.1) {
                v = rng.below(n as u64) as usize;
            }
            let key = (u.min(v), u.max(v));
            if u != v && seen.insert(key) {
                edges.push((key.0 as u32, key.1 as u32));
            }
        }
    }
    (n, edges)
}

fn geometric_edges(n: usize, mean_degree: f64, seed: u64) -> (usize, Vec<(u32, u32)>) {
    let mut rng = Rng::new(seed);
    let pts: Vec<(f64, f64)> = (0..n).map(|_| (rng.next_f64(), rng.next_f64())).collect();
    // Expected degree n·π·r² (ignoring the border).
    let r = (mean_degree / (n as f64 * std::f64::consts::PI)).sqrt();
    let cells = ((1.0 / r).floor() as usize).max(1);
    let cell = |x: f64| ((x * cells as f64) as usize).min(cells - 1);
    let mut grid: Vec<Vec<u32>> = vec![Vec::new(); cells * cells];
    for (i, &(x, y)) in pts.iter().enumerate() {
        grid[cell(y) * cells + cell(x)].push(i as u32);
    }
    let mut edges = Vec::new();
    for (i, &(x, y)) in pts.iter().enumerate() {
        let (cx, cy) = (cell(x), cell(y));
        for gy in cy.saturating_sub(1)..=(cy + 1).min(cells - 1) {
            for gx in cx.saturating_sub(1)..=(cx + 1).min(cells - 1) {
                for &j in &grid[gy * cells + gx] {
                    let (px, py) = pts[j as usize];
                    if (j as usize) > i && (px - x).powi(2) + (py - y).powi(2) < r * r {
                        edges.push((i as u32, j));
                    }
                }
            }
        }
    }
    edges.sort_unstable();
    (n, edges)
}

/// A flow with entries uniform in [−1, 1].
pub fn random_flow(n_edges: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..n_edges).map(|_| rng.range_f64(-1.0, 1.0)).collect()
}
