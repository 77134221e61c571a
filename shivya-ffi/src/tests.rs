//! Pointer-handling tests that need no socket, so they also run under Miri
//! (`scripts/test-miri.sh`).

use crate::boundary::{fill_buffer, set_last_error};
use crate::status::*;
use crate::*;
use std::ffi::c_char;
use std::ptr;

fn last_error() -> String {
    let mut buf = [0 as c_char; 256];
    let n = shivya_last_error_message(buf.as_mut_ptr(), buf.len());
    let bytes: Vec<u8> = buf[..n.min(255)].iter().map(|&c| c as u8).collect();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn config_setters_check_every_pointer_and_string() {
    let mut c: *mut shivya_config = ptr::null_mut();
    assert_eq!(shivya_config_new(&mut c), SHIVYA_OK);
    assert!(!c.is_null());
    assert_eq!(
        shivya_config_new(ptr::null_mut()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_config_set_listen(c, c"127.0.0.1:9".as_ptr()),
        SHIVYA_OK
    );
    assert_eq!(
        shivya_config_set_listen(c, ptr::null()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("addr is NULL"));
    let bad_utf8 = [0xffu8 as c_char, 0xfe_u8 as c_char, 0];
    assert_eq!(
        shivya_config_set_listen(c, bad_utf8.as_ptr()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("UTF-8"));
    assert_eq!(
        shivya_config_add_bootstrap(c, c"nope".as_ptr()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    let edges = [0u32, 1, 1, 2];
    assert_eq!(
        shivya_config_set_topology(c, 3, edges.as_ptr(), 2),
        SHIVYA_OK
    );
    assert_eq!(
        shivya_config_set_topology(c, 3, ptr::null(), 2),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_config_set_topology(c, 3, edges.as_ptr(), usize::MAX),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_config_set_cg_tolerance(c, f64::NAN),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_config_set_k(ptr::null_mut(), 4),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    shivya_config_free(c);
    shivya_config_free(ptr::null_mut());
}

#[test]
fn reconciler_round_trip_and_bad_buffers() {
    let edges = [0u32, 1, 0, 2, 1, 2];
    let tris = [0u32, 1, 2];
    let mut cx: *mut shivya_complex = ptr::null_mut();
    assert_eq!(
        shivya_complex_new(3, edges.as_ptr(), 3, tris.as_ptr(), 1, &mut cx),
        SHIVYA_OK
    );
    assert_eq!(shivya_complex_n_edges(cx), 3);
    let input = [1.0, -1.0, 1.0];
    let mut out = [0.0f64; 3];
    let mut rep = shivya_solver_report::default();
    assert_eq!(
        shivya_reconcile(cx, input.as_ptr(), out.as_mut_ptr(), 3, &mut rep),
        SHIVYA_OK
    );
    assert!(out.iter().all(|x| x.abs() < 1e-9), "{out:?}");
    assert_eq!(
        shivya_reconcile(cx, input.as_ptr(), out.as_mut_ptr(), 2, &mut rep),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_reconcile(cx, ptr::null(), out.as_mut_ptr(), 3, ptr::null_mut()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    // Regression (found by fuzzing): finite but enormous values overflowed the solver and
    // came back as NaN with SHIVYA_OK; they are refused now.
    let huge = [-3.4e238, 1.0, 2.0];
    assert_eq!(
        shivya_reconcile(cx, huge.as_ptr(), out.as_mut_ptr(), 3, &mut rep),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("refused"));
    let alias = out.as_mut_ptr();
    assert_eq!(
        shivya_reconcile(cx, alias, alias, 3, ptr::null_mut()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    shivya_complex_free(cx);
    let mut bad: *mut shivya_complex = ptr::null_mut();
    let missing = [0u32, 1, 3];
    assert_eq!(
        shivya_complex_new(4, edges.as_ptr(), 3, missing.as_ptr(), 1, &mut bad),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert!(bad.is_null());
    assert_eq!(
        shivya_complex_new(3, edges.as_ptr(), 3, tris.as_ptr(), 1, ptr::null_mut()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
}

#[test]
fn node_calls_on_null_are_errors() {
    let mut t = 0u64;
    let mut len = 0usize;
    assert_eq!(shivya_step(ptr::null_mut(), 0), SHIVYA_ERR_INVALID_ARGUMENT);
    assert_eq!(shivya_fd(ptr::null()), -1);
    assert_eq!(
        shivya_next_timeout_ms(ptr::null(), 0, &mut t),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_settle(ptr::null_mut(), ptr::null_mut(), 0, &mut len),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_block(ptr::null_mut(), c"1.2.3.4:5".as_ptr()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    let mut out: *mut shivya_node = std::ptr::dangling_mut();
    assert_eq!(
        shivya_node_new(ptr::null(), 0, &mut out),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert!(out.is_null(), "out is reset on error");
    shivya_node_free(ptr::null_mut());
}

#[test]
fn buffers_report_the_needed_size_and_messages_truncate_safely() {
    let items = [1u32, 2, 3];
    let mut len = 0usize;
    let mut two = [0u32; 2];
    // SAFETY: valid pointers and capacities.
    let e = unsafe { fill_buffer(two.as_mut_ptr(), 2, &mut len, &items, "items") }.unwrap_err();
    assert_eq!(
        (e.status, len, two),
        (SHIVYA_ERR_BUFFER_TOO_SHORT, 3, [0, 0])
    );
    let mut three = [0u32; 3];
    // SAFETY: as above.
    unsafe { fill_buffer(three.as_mut_ptr(), 3, &mut len, &items, "items") }.unwrap();
    assert_eq!(three, items);
    set_last_error("a rather long message");
    let mut tiny = [1 as c_char; 4];
    assert_eq!(shivya_last_error_message(tiny.as_mut_ptr(), 4), 21);
    assert_eq!(tiny, [b'a' as c_char, b' ' as c_char, b'r' as c_char, 0]);
    assert_eq!(shivya_last_error_message(ptr::null_mut(), 0), 21);
    // SAFETY: shivya_status_name returns a static NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(shivya_status_name(-8)) };
    assert_eq!(name.to_str().unwrap(), "SHIVYA_ERR_BUSY");
    // SAFETY: as above.
    let unknown = unsafe { std::ffi::CStr::from_ptr(shivya_status_name(99)) };
    assert_eq!(unknown.to_str().unwrap(), "unknown");
}

#[test]
fn one_error_mapping_serves_the_c_abi_and_uniffi() {
    use shivya_core::hodge::HodgeError;
    use shivya_core::mesh::MeshError;
    let breakdown = HodgeError::Breakdown { index: 3 };
    assert_eq!(Error::from(breakdown.clone()).status, SHIVYA_ERR_NUMERIC);
    assert_eq!(
        Error::from(MeshError::Hodge(breakdown.clone())).status,
        SHIVYA_ERR_NUMERIC
    );
    assert!(matches!(
        ShivyaError::from(Error::from(breakdown)),
        ShivyaError::Numeric { .. }
    ));
    let short = HodgeError::FlowLength {
        expected: 3,
        got: 2,
    };
    assert_eq!(
        Error::from(short.clone()).status,
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert!(matches!(
        ShivyaError::from(Error::from(short)),
        ShivyaError::InvalidArgument { .. }
    ));
}

#[test]
fn every_status_has_its_header_name_and_its_own_uniffi_variant() {
    let mut variants = Vec::new();
    for code in -64..64 {
        // SAFETY: shivya_status_name returns a static NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(shivya_status_name(code)) };
        let name = name.to_str().unwrap();
        match shivya_status::from_code(code) {
            Some(s) => {
                assert_eq!(s as i32, code);
                assert_eq!(name, format!("{s:?}"));
                let e = ShivyaError::from(Error {
                    status: s,
                    message: String::new(),
                });
                let variant = format!("{e:?}");
                variants.push(variant.split(' ').next().unwrap().to_string());
            }
            None => assert_eq!(name, "unknown"),
        }
    }
    // SHIVYA_OK has no error variant of its own (it maps to Internal); every error does.
    assert_eq!(variants.len(), 9);
    variants.sort();
    variants.dedup();
    assert_eq!(variants.len(), 8, "{variants:?}");
}

#[test]
fn a_refused_setting_leaves_the_config_as_it_was() {
    let mut c: *mut shivya_config = ptr::null_mut();
    assert_eq!(shivya_config_new(&mut c), SHIVYA_OK);
    assert_eq!(shivya_config_set_k(c, 7), SHIVYA_OK);
    assert_eq!(shivya_config_set_k(c, 0), SHIVYA_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("k"), "{}", last_error());
    assert_eq!(
        shivya_config_set_step_interval_ms(c, 0),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_config_set_incarnation(c, 1 << 43),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        shivya_config_set_cg_tolerance(c, -1.0),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    // SAFETY: `c` is a live handle from shivya_config_new.
    let inner = unsafe { &(*c).inner };
    assert_eq!(inner.kad.k, 7);
    assert_eq!(inner.step_interval_ms, 100);
    assert_eq!(inner.incarnation, 0);
    assert!(inner.validate().is_ok());
    shivya_config_free(c);
}

#[test]
fn inputs_that_once_aborted_the_process_are_refused() {
    let mut cx: *mut shivya_complex = ptr::null_mut();
    assert_eq!(
        shivya_complex_new(u32::MAX, ptr::null(), 0, ptr::null(), 0, &mut cx),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("vertices"), "{}", last_error());
    let mut c: *mut shivya_config = ptr::null_mut();
    assert_eq!(shivya_config_new(&mut c), SHIVYA_OK);
    for n in [u32::MAX, (crate::SHIVYA_MAX_VERTICES + 1) as u32] {
        assert_eq!(
            shivya_config_set_topology(c, n, ptr::null(), 0),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
    }
    // Beyond 64 vertices the default is the ring with chords: 2n edges, accepted.
    assert_eq!(
        shivya_config_set_topology(c, 2_000, ptr::null(), 0),
        SHIVYA_OK
    );
    // SAFETY: `c` is a live handle from shivya_config_new.
    assert_eq!(unsafe { &(*c).inner }.topology.edges().len(), 4_000);
    let six = [0u32, 1, 0, 2, 1, 2, 2, 3, 2, 4, 3, 4];
    assert_eq!(
        shivya_config_set_topology(c, u32::MAX, six.as_ptr(), 6),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    for bad in [c"127.0.0.1:0", c"0.0.0.0:9", c"[::1]:9"] {
        assert_eq!(
            shivya_config_add_bootstrap(c, bad.as_ptr()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
    }
    // SAFETY: `c` is a live handle from shivya_config_new.
    assert!(unsafe { &(*c).inner }.bootstrap.is_empty());
    shivya_config_free(c);

    let edges = [0u32, 1, 0, 2, 1, 2];
    let tris = [0u32, 1, 2];
    assert_eq!(
        shivya_complex_new(3, edges.as_ptr(), 3, tris.as_ptr(), 1, &mut cx),
        SHIVYA_OK
    );
    let mut buf = [1.0f64, -1.0, 1.0, 0.0];
    let p = buf.as_mut_ptr();
    // SAFETY: both windows lie inside `buf`.
    let (a, b) = unsafe { (p.cast_const(), p.add(1)) };
    assert_eq!(
        shivya_reconcile(cx, a, b, 3, ptr::null_mut()),
        SHIVYA_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("overlap"));
    shivya_complex_free(cx);
}

#[test]
fn drop_reason_names_follow_the_core() {
    let core = shivya_core::mesh::DropCounters::default().by_reason();
    assert_eq!(core.len(), crate::node::DROP_REASON_NAMES.len());
    for ((name, _), c) in core.iter().zip(crate::node::DROP_REASON_NAMES) {
        assert_eq!(c.to_str().unwrap(), *name);
    }
}
