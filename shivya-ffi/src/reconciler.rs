//! `shivya_complex`: the standalone reconciler, a simplicial complex with its solver
//! workspace, for projecting flows without a mesh.

use crate::boundary::{
    free_boxed, guard, guard_value, overlaps, try_mut, try_ref, try_slice, try_slice_mut, write_out,
};
use crate::status::{shivya_status, Error};
use shivya_core::hodge::{HodgeWorkspace, SimplicialComplex};

/// A simplicial complex with its solver workspace, for reconciling flows without a mesh.
/// One thread at a time.
pub struct shivya_complex {
    complex: SimplicialComplex,
    ws: HodgeWorkspace,
}

/// What a reconciliation's solve did.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct shivya_solver_report {
    /// Solver iterations: 0 when the exact sparse factor solved it, CG iterations
    /// otherwise.
    pub iterations: u64,
    /// Final residual norm.
    pub residual: f64,
    /// Whether the residual reached the tolerance.
    pub converged: bool,
}

/// Builds a complex of `n_vertices` vertices, `n_edges` edges given as `2 * n_edges`
/// vertex indices, and `n_triangles` triangles given as `3 * n_triangles` indices (each
/// triangle's edges must exist). At most `SHIVYA_MAX_VERTICES` vertices, `SHIVYA_MAX_EDGES`
/// edges and `SHIVYA_MAX_TRIANGLES` triangles, checked before anything is allocated.
/// Writes the handle to `*out` (NULL on error).
#[no_mangle]
pub extern "C" fn shivya_complex_new(
    n_vertices: u32,
    edges: *const u32,
    n_edges: usize,
    triangles: *const u32,
    n_triangles: usize,
    out: *mut *mut shivya_complex,
) -> shivya_status {
    if !out.is_null() {
        // SAFETY: non-null out-pointer, writable per the contract.
        unsafe { out.write(std::ptr::null_mut()) };
    }
    guard(|| {
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        let e_len = n_edges
            .checked_mul(2)
            .ok_or_else(|| Error::invalid("n_edges is too large"))?;
        let t_len = n_triangles
            .checked_mul(3)
            .ok_or_else(|| Error::invalid("n_triangles is too large"))?;
        // SAFETY: as above.
        let (e, t) = unsafe {
            (
                try_slice(edges, e_len, "edges")?,
                try_slice(triangles, t_len, "triangles")?,
            )
        };
        let pairs: Vec<(u32, u32)> = e.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let tris: Vec<(u32, u32, u32)> = t.chunks_exact(3).map(|p| (p[0], p[1], p[2])).collect();
        let complex = SimplicialComplex::new(n_vertices as usize, &pairs, &tris)?;
        let ws = complex.workspace();
        let raw = Box::into_raw(Box::new(shivya_complex { complex, ws }));
        // SAFETY: as above.
        unsafe { write_out(out, raw, "out") }
    })
}

/// Releases a complex. NULL is ignored.
#[no_mangle]
pub extern "C" fn shivya_complex_free(complex: *mut shivya_complex) {
    // SAFETY: a non-null pointer came from `shivya_complex_new` and is freed once.
    guard_value((), || unsafe { free_boxed(complex) })
}

/// Number of edges of the complex (the length `shivya_reconcile` expects); 0 for NULL.
#[no_mangle]
pub extern "C" fn shivya_complex_n_edges(complex: *const shivya_complex) -> usize {
    guard_value(0, || {
        // SAFETY: as above.
        unsafe { try_ref(complex, "complex") }.map_or(0, |c| c.complex.n_edges())
    })
}

/// Writes the curl-free part of the edge flow `input` (length `len`, which must equal the
/// edge count; finite values of magnitude ≤ 1e100) to `output` (length `len`; may not
/// overlap `input`, not even in part). `report` may be NULL. Repeated calls allocate nothing. A flow whose
/// magnitudes floating point cannot resolve gives `SHIVYA_ERR_NUMERIC`; on any error the
/// contents of `output` are unspecified.
#[no_mangle]
pub extern "C" fn shivya_reconcile(
    complex: *mut shivya_complex,
    input: *const f64,
    output: *mut f64,
    len: usize,
    report: *mut shivya_solver_report,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(complex, "complex")? };
        let e = c.complex.n_edges();
        if len != e {
            return Err(Error::invalid(format!(
                "len is {len} but the complex has {e} edges"
            )));
        }
        if e > 0 && (input.is_null() || output.is_null()) {
            return Err(Error::invalid("input or output is NULL"));
        }
        if e > 0 && overlaps(input, output.cast_const(), len) {
            return Err(Error::invalid(
                "input and output must not overlap (not even in part)",
            ));
        }
        // SAFETY: as above; distinct buffers per the contract.
        let (inp, out) = unsafe {
            (
                try_slice(input, len, "input")?,
                try_slice_mut(output, len, "output")?,
            )
        };
        let r = c.complex.project_curl_free_into(inp, &mut c.ws, out)?;
        if !report.is_null() {
            let rep = shivya_solver_report {
                iterations: r.iterations as u64,
                residual: r.residual,
                converged: r.converged,
            };
            // SAFETY: non-null, writable per the contract.
            unsafe { write_out(report, rep, "report")? };
        }
        Ok(())
    })
}
