//! The workload graph and the reconciler that turns merged records into routes.

use super::records::MergedSums;
use super::MeshError;
use crate::graph::Graph;
use crate::hodge::{CgConfig, HodgeWorkspace, SimplicialComplex, SolverReport};
use crate::limits::{MAX_EDGES, MAX_TRIANGLES, MAX_VERTICES};
use crate::p2p::protocol::RecordWire;

/// The vertices work can sit on (backends, shards, servers) and the edges along which it
/// can move. Every node of a mesh must be configured with the same topology: records name
/// vertices by index. Triangles are all 3-cliques of the edge set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadTopology {
    n_vertices: u32,
    edges: Vec<(u32, u32)>,
}

impl WorkloadTopology {
    /// `n_vertices` vertices and these undirected edges (stored as given; an edge `(u, v)`
    /// is oriented from `u` to `v`). Self-loops, duplicates and out-of-range vertices are
    /// rejected.
    pub fn new(n_vertices: u32, edges: &[(u32, u32)]) -> Result<WorkloadTopology, MeshError> {
        let t = WorkloadTopology {
            n_vertices,
            edges: edges.to_vec(),
        };
        t.complex()?;
        Ok(t)
    }

    /// Every pair of `n` vertices connected, edges `(u, v)` with `u < v` in lexicographic
    /// order. Refused, before anything is allocated, when the complete graph would have
    /// more edges or triangles than [`crate::limits`] allows (from about 370 vertices on:
    /// give a sparser edge list to [`new`](Self::new) for larger sets).
    pub fn complete(n_vertices: u32) -> Result<WorkloadTopology, MeshError> {
        let n = u128::from(n_vertices);
        let edges = n * n.saturating_sub(1) / 2;
        let triangles = edges * n.saturating_sub(2) / 3;
        if n as usize > MAX_VERTICES
            || edges > MAX_EDGES as u128
            || triangles > MAX_TRIANGLES as u128
        {
            return Err(MeshError::Topology(format!(
                "the complete graph on {n_vertices} vertices has {edges} edges and {triangles} \
                 triangles, above the limits of {MAX_EDGES} and {MAX_TRIANGLES}; give the edges"
            )));
        }
        Ok(Self::complete_unchecked(n_vertices))
    }

    /// Largest vertex count whose default topology is the complete graph.
    pub const COMPLETE_UP_TO: u32 = 64;

    /// The default topology for `n` backends: the complete graph up to
    /// [`COMPLETE_UP_TO`](Self::COMPLETE_UP_TO) vertices (2 016 edges, 41 664 triangles at
    /// 64), and beyond that the ring with chords to the second neighbour (edges
    /// `(v, v+1)` and `(v, v+2)` mod n: 2n edges, n triangles `(v, v+1, v+2)`). The
    /// complete graph's triangles grow as n³/6 (1.66e8 at 1 000) and every settle pays for
    /// them; the ring keeps settling linear in n, still has a triangle at every vertex
    /// (so circulation in offload records is still removed), and lets work move between
    /// neighbouring backends. What a balancer picks does not depend on the topology's
    /// edges; only offload routes and capacity signals do.
    pub fn for_backends(n_vertices: u32) -> Result<WorkloadTopology, MeshError> {
        if n_vertices <= Self::COMPLETE_UP_TO {
            return Self::complete(n_vertices);
        }
        if n_vertices as usize > MAX_VERTICES {
            return Err(MeshError::Topology(format!(
                "{n_vertices} vertices exceed the limit of {MAX_VERTICES}"
            )));
        }
        let n = n_vertices;
        let mut edges = Vec::with_capacity(2 * n as usize);
        for v in 0..n {
            for step in [1, 2] {
                let w = (v + step) % n;
                edges.push((v.min(w), v.max(w)));
            }
        }
        edges.sort_unstable();
        WorkloadTopology::new(n, &edges)
    }

    fn complete_unchecked(n_vertices: u32) -> WorkloadTopology {
        let mut edges = Vec::new();
        for u in 0..n_vertices {
            for v in u + 1..n_vertices {
                edges.push((u, v));
            }
        }
        WorkloadTopology { n_vertices, edges }
    }

    /// Vertex count.
    pub fn n_vertices(&self) -> u32 {
        self.n_vertices
    }

    /// The edges.
    pub fn edges(&self) -> &[(u32, u32)] {
        &self.edges
    }

    fn complex(&self) -> Result<SimplicialComplex, MeshError> {
        let weighted: Vec<(u32, u32, f64)> = self.edges.iter().map(|&(u, v)| (u, v, 1.0)).collect();
        let graph = Graph::new(self.n_vertices as usize, &weighted)
            .map_err(|e| MeshError::Topology(e.to_string()))?;
        let triangles = graph
            .triangles_at_most(MAX_TRIANGLES)
            .map_err(|e| MeshError::Topology(e.to_string()))?;
        SimplicialComplex::new(self.n_vertices as usize, &self.edges, &triangles)
            .map_err(|e| MeshError::Topology(e.to_string()))
    }

    /// Index of the edge joining `a` and `b` and whether it is stored as `(a, b)`.
    pub fn edge_index(&self, a: u32, b: u32) -> Option<(usize, bool)> {
        self.edges.iter().enumerate().find_map(|(i, &(u, v))| {
            if (u, v) == (a, b) {
                Some((i, true))
            } else if (u, v) == (b, a) {
                Some((i, false))
            } else {
                None
            }
        })
    }
}

impl Default for WorkloadTopology {
    /// The complete graph on 4 vertices.
    fn default() -> Self {
        Self::complete_unchecked(4)
    }
}

/// Which part of the flow `settle` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SettleMode {
    /// Gradient + harmonic: removes circulation around filled triangles only (the seed's
    /// behaviour). Circulation around a hole in the topology survives.
    #[default]
    CurlFree,
    /// Gradient only: removes every circulation; the natural choice for routing.
    GradientOnly,
}

/// One settled route: move `rate` units of work per unit time from `src` to `dst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeRecommendation {
    /// Vertex work leaves.
    pub src: u32,
    /// Vertex work goes to.
    pub dst: u32,
    /// Rate, positive.
    pub rate: f64,
}

/// The result of one reconciliation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settlement {
    /// Routes with `rate > min_rate`, in edge order.
    pub routes: Vec<EdgeRecommendation>,
    /// The settled signed flow per edge (positive along the stored orientation).
    pub flow: Vec<f64>,
    /// Merged queue length per vertex.
    pub queue: Vec<f64>,
    /// The solve (0 iterations when the exact sparse factor solved it, CG iterations
    /// otherwise).
    pub report: SolverReport,
}

/// Builds the flow from records and projects it. Owns its workspace: repeated calls
/// reuse the buffers.
#[derive(Debug, Clone)]
pub struct Reconciler {
    topology: WorkloadTopology,
    complex: SimplicialComplex,
    ws: HodgeWorkspace,
    raw: Vec<f64>,
    queue: Vec<f64>,
}

impl Reconciler {
    /// A reconciler for `topology`.
    pub fn new(topology: WorkloadTopology, cg: CgConfig) -> Result<Reconciler, MeshError> {
        let complex = topology.complex()?;
        let mut ws = complex.workspace();
        ws.cg = cg;
        Ok(Reconciler {
            raw: vec![0.0; complex.n_edges()],
            queue: vec![0.0; complex.n_vertices()],
            topology,
            complex,
            ws,
        })
    }

    /// The topology.
    pub fn topology(&self) -> &WorkloadTopology {
        &self.topology
    }

    /// The complex (for callers that want the raw Hodge operators).
    pub fn complex(&self) -> &SimplicialComplex {
        &self.complex
    }

    /// Merges `records` into queue lengths and an offload flow (their [`MergedSums`]:
    /// exact, so the order of the records does not matter), and settles them as
    /// [`settle_sums`](Self::settle_sums) does.
    pub fn settle<'a>(
        &mut self,
        records: impl Iterator<Item = &'a RecordWire>,
        mode: SettleMode,
        queue_gain: f64,
        min_rate: f64,
    ) -> Result<Settlement, MeshError> {
        self.settle_sums(&MergedSums::of(records), mode, queue_gain, min_rate)
    }

    /// Settles merged sums: queue lengths per vertex and an offload flow per edge, plus
    /// `queue_gain · (q_u − q_v)` on every edge `(u, v)` so work moves from long queues to
    /// short ones, projected. Cost: the non-zero sums and the topology, not the number of
    /// records. Entries that name vertices or edges outside the topology are skipped (they
    /// are rejected on receipt, so none arrive here from the network).
    pub fn settle_sums(
        &mut self,
        sums: &MergedSums,
        mode: SettleMode,
        queue_gain: f64,
        min_rate: f64,
    ) -> Result<Settlement, MeshError> {
        self.raw.fill(0.0);
        self.queue.fill(0.0);
        for (v, q) in sums.queue() {
            if let Some(slot) = self.queue.get_mut(v as usize) {
                *slot = q;
            }
        }
        for ((s, d), x) in sums.offload() {
            if let Some((e, forward)) = self.topology.edge_index(s, d) {
                self.raw[e] += if forward { x } else { -x };
            }
        }
        for (e, &(u, v)) in self.topology.edges.iter().enumerate() {
            self.raw[e] += queue_gain * (self.queue[u as usize] - self.queue[v as usize]);
        }
        let mut flow = vec![0.0; self.raw.len()];
        let report = match mode {
            SettleMode::CurlFree => {
                self.complex
                    .project_curl_free_into(&self.raw, &mut self.ws, &mut flow)?
            }
            SettleMode::GradientOnly => {
                self.complex
                    .project_gradient_into(&self.raw, &mut self.ws, &mut flow)?
            }
        };
        let mut routes = Vec::new();
        for (e, &(u, v)) in self.topology.edges.iter().enumerate() {
            let f = flow[e];
            if f > min_rate {
                routes.push(EdgeRecommendation {
                    src: u,
                    dst: v,
                    rate: f,
                });
            } else if -f > min_rate {
                routes.push(EdgeRecommendation {
                    src: v,
                    dst: u,
                    rate: -f,
                });
            }
        }
        Ok(Settlement {
            routes,
            flow,
            queue: self.queue.clone(),
            report,
        })
    }

    /// Whether a record only names vertices and edges of this topology.
    pub fn fits(&self, r: &RecordWire) -> bool {
        r.queue.iter().all(|&(v, _)| v < self.topology.n_vertices)
            && r.offload
                .iter()
                .all(|&(s, d, _)| self.topology.edge_index(s, d).is_some())
    }
}
