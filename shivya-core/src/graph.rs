//! Weighted undirected graphs in compressed adjacency form, shared by the layers.
//!
//! Vertices are `0..n`. Each undirected edge `{u, v}` appears in both adjacency rows,
//! neighbours sorted ascending, so every traversal has a fixed order (determinism).

use crate::limits::{MAX_EDGES, MAX_VERTICES};
use thiserror::Error;

/// Why a graph could not be built.
///
/// Each variant's fields are the values its message names.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GraphError {
    /// An edge names a vertex outside `0..n`.
    #[error("edge ({u}, {v}) refers to vertex {bad} but the graph has {n} vertices")]
    VertexOutOfRange { u: u32, v: u32, bad: u32, n: usize },
    /// An edge joins a vertex to itself.
    #[error("edge ({u}, {u}) is a self-loop")]
    SelfLoop { u: u32 },
    /// The same undirected edge appears twice.
    #[error("edge ({u}, {v}) appears more than once")]
    DuplicateEdge { u: u32, v: u32 },
    /// A weight is negative, NaN or infinite.
    #[error("edge ({u}, {v}) has weight {w}; weights must be finite and non-negative")]
    BadWeight { u: u32, v: u32, w: f64 },
    /// More 3-cliques than the caller's bound.
    #[error("the graph has more than {max} triangles (3-cliques); use a sparser edge list")]
    TooManyTriangles { max: usize },
    /// More vertices or edges than [`crate::limits`] allows.
    #[error("{count} {what} is more than the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

/// An undirected weighted graph stored as sorted adjacency rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    n: usize,
    offsets: Vec<usize>,
    neighbours: Vec<u32>,
    weights: Vec<f64>,
}

impl Graph {
    /// Builds a graph from undirected weighted edges; rejects bad vertices, loops,
    /// duplicates (in either orientation) and bad weights.
    pub fn new(n: usize, edges: &[(u32, u32, f64)]) -> Result<Self, GraphError> {
        for (what, count, max) in [
            ("vertices", n, MAX_VERTICES),
            ("edges", edges.len(), MAX_EDGES),
        ] {
            if count > max {
                return Err(GraphError::TooMany { what, count, max });
            }
        }
        let mut degree = vec![0usize; n];
        for &(u, v, w) in edges {
            for bad in [u, v] {
                if bad as usize >= n {
                    return Err(GraphError::VertexOutOfRange { u, v, bad, n });
                }
            }
            if u == v {
                return Err(GraphError::SelfLoop { u });
            }
            if !w.is_finite() || w < 0.0 {
                return Err(GraphError::BadWeight { u, v, w });
            }
            degree[u as usize] += 1;
            degree[v as usize] += 1;
        }
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        for d in &degree {
            let last = *offsets.last().unwrap_or(&0);
            offsets.push(last + d);
        }
        let total = offsets[n];
        let mut pairs: Vec<(u32, u32, f64)> = Vec::with_capacity(total);
        for &(u, v, w) in edges {
            pairs.push((u, v, w));
            pairs.push((v, u, w));
        }
        pairs.sort_by_key(|a| (a.0, a.1));
        for win in pairs.windows(2) {
            if win[0].0 == win[1].0 && win[0].1 == win[1].1 {
                let (u, v) = (win[0].0.min(win[0].1), win[0].0.max(win[0].1));
                return Err(GraphError::DuplicateEdge { u, v });
            }
        }
        let neighbours = pairs.iter().map(|p| p.1).collect();
        let weights = pairs.iter().map(|p| p.2).collect();
        Ok(Graph {
            n,
            offsets,
            neighbours,
            weights,
        })
    }

    /// Number of vertices.
    pub fn n_vertices(&self) -> usize {
        self.n
    }

    /// Number of undirected edges.
    pub fn n_edges(&self) -> usize {
        self.neighbours.len() / 2
    }

    /// Neighbours of `v` (ascending) with their edge weights. Empty for `v >= n`.
    pub fn neighbours(&self, v: usize) -> (&[u32], &[f64]) {
        if v >= self.n {
            return (&[], &[]);
        }
        let (a, b) = (self.offsets[v], self.offsets[v + 1]);
        (&self.neighbours[a..b], &self.weights[a..b])
    }

    /// Unweighted degree of `v`.
    pub fn degree(&self, v: usize) -> usize {
        self.neighbours(v).0.len()
    }

    /// Largest unweighted degree.
    pub fn max_degree(&self) -> usize {
        (0..self.n).map(|v| self.degree(v)).max().unwrap_or(0)
    }

    /// Undirected edges `(u, v, w)` with `u < v`, in ascending order.
    pub fn edges(&self) -> impl Iterator<Item = (u32, u32, f64)> + '_ {
        (0..self.n).flat_map(move |u| {
            let (ns, ws) = self.neighbours(u);
            ns.iter()
                .zip(ws)
                .filter(move |(&v, _)| (u as u32) < v)
                .map(move |(&v, &w)| (u as u32, v, w))
        })
    }

    /// Triangles `(a, b, c)` with `a < b < c` (the 3-cliques), in ascending order.
    pub fn triangles(&self) -> Vec<(u32, u32, u32)> {
        self.triangles_at_most(usize::MAX).unwrap_or_default()
    }

    /// Every 3-clique as [`triangles`](Self::triangles) lists them, or an error as soon as
    /// there are more than `max`: the listing stops before it grows past the bound.
    pub fn triangles_at_most(&self, max: usize) -> Result<Vec<(u32, u32, u32)>, GraphError> {
        let mut out = Vec::new();
        for a in 0..self.n {
            let (na, _) = self.neighbours(a);
            for &b in na.iter().filter(|&&b| b as usize > a) {
                let (nb, _) = self.neighbours(b as usize);
                // Sorted intersection of the two rows above b.
                let (mut i, mut j) = (0, 0);
                while i < na.len() && j < nb.len() {
                    match na[i].cmp(&nb[j]) {
                        std::cmp::Ordering::Less => i += 1,
                        std::cmp::Ordering::Greater => j += 1,
                        std::cmp::Ordering::Equal => {
                            if na[i] > b {
                                if out.len() == max {
                                    return Err(GraphError::TooManyTriangles { max });
                                }
                                out.push((a as u32, b, na[i]));
                            }
                            i += 1;
                            j += 1;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_edges_with_clear_errors() {
        assert!(matches!(
            Graph::new(3, &[(0, 5, 1.0)]),
            Err(GraphError::VertexOutOfRange { bad: 5, .. })
        ));
        assert!(matches!(
            Graph::new(3, &[(1, 1, 1.0)]),
            Err(GraphError::SelfLoop { u: 1 })
        ));
        assert!(matches!(
            Graph::new(3, &[(0, 1, 1.0), (1, 0, 2.0)]),
            Err(GraphError::DuplicateEdge { u: 0, v: 1 })
        ));
        assert!(matches!(
            Graph::new(3, &[(0, 1, f64::NAN)]),
            Err(GraphError::BadWeight { .. })
        ));
        let msg = Graph::new(5, &[(3, 7, 1.0)]).unwrap_err().to_string();
        assert_eq!(
            msg,
            "edge (3, 7) refers to vertex 7 but the graph has 5 vertices"
        );
    }

    #[test]
    fn finds_triangles_of_k4() {
        let g = Graph::new(
            4,
            &[
                (0, 1, 1.0),
                (0, 2, 1.0),
                (0, 3, 1.0),
                (1, 2, 1.0),
                (1, 3, 1.0),
                (2, 3, 1.0),
            ],
        )
        .unwrap();
        assert_eq!(
            g.triangles(),
            vec![(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
        );
        assert_eq!(g.max_degree(), 3);
        assert_eq!(g.edges().count(), 6);
    }
}
