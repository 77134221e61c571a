//! The sizes every structure is checked against before it allocates, so that no input
//! (a config, a C call, a frame) can make the library ask for more memory than these allow.

/// Most vertices of a graph or simplicial complex.
pub const MAX_VERTICES: usize = 1 << 20;

/// Most edges of a graph or simplicial complex.
pub const MAX_EDGES: usize = 1 << 23;

/// Most triangles (filled or found as 3-cliques) of a complex.
pub const MAX_TRIANGLES: usize = 1 << 23;
