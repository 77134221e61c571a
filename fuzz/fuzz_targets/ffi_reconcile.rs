//! The C ABI's reconciler with random complexes and flows: every call returns a status,
//! never panics across the boundary, and a successful reconcile writes finite values.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shivya::*;
use std::ptr;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let n = u32::from(data[0] % 12);
    let n_edges = usize::from(data[1] % 24);
    let n_tris = usize::from(data[2] % 8);
    let mut rest = &data[3..];
    let mut take = |k: usize| -> Vec<u32> {
        let k = k.min(rest.len());
        let v = rest[..k].iter().map(|b| u32::from(*b % 14)).collect();
        rest = &rest[k..];
        v
    };
    let edges = take(2 * n_edges);
    let tris = take(3 * n_tris);
    let (ne, nt) = (edges.len() / 2, tris.len() / 3);
    let mut cx: *mut shivya_complex = ptr::null_mut();
    let s = shivya_complex_new(n, edges.as_ptr(), ne, tris.as_ptr(), nt, &mut cx);
    if s != shivya_status::SHIVYA_OK {
        assert!(cx.is_null());
        return;
    }
    let e = shivya_complex_n_edges(cx);
    let flow: Vec<f64> = (0..e)
        .map(|i| {
            let b = rest.get(i * 8..i * 8 + 8).map_or([0u8; 8], |s| s.try_into().unwrap_or([0; 8]));
            f64::from_le_bytes(b)
        })
        .collect();
    let mut out = vec![0.0; e];
    let mut rep = shivya_solver_report::default();
    let s = shivya_reconcile(cx, flow.as_ptr(), out.as_mut_ptr(), e, &mut rep);
    if s == shivya_status::SHIVYA_OK {
        assert!(out.iter().all(|x| x.is_finite()), "finite input gives finite output");
    } else {
        assert!(
            s == shivya_status::SHIVYA_ERR_NUMERIC || flow.iter().any(|x| !x.is_finite() || x.abs() > 1e100),
            "only non-finite or out-of-range flows are refused, or a reported breakdown"
        );
    }
    shivya_complex_free(cx);
});
