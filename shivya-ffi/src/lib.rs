//! # shivya-ffi — the C ABI of Shivya
//!
//! A thin skin over `shivya-core`: every function checks its pointers and lengths, calls
//! the core, and maps the error to a [`shivya_status`] plus a message readable with
//! [`shivya_last_error_message`]. Every body runs inside a panic boundary. There is no
//! logic here that the Rust API lacks.
//!
//! Conventions (also in `include/shivya.h`):
//! * Objects are opaque handles created by `*_new(…, T **out)` and released by `*_free`
//!   (NULL is accepted and ignored; freeing twice is undefined behaviour).
//! * Slices cross as `(pointer, length)`; a NULL pointer is allowed only with length 0.
//! * Strings are NUL-terminated UTF-8.
//! * A `shivya_node` may move between threads but must be used by one thread at a time.
//!   A `shivya_config` and a `shivya_complex` likewise.
//! * The last error message is per thread and is only meaningful right after a call
//!   returned an error.
//!
//! One file per C object: [`status`] (status codes and the one mapping from core errors,
//! which the UniFFI errors reuse), `boundary` (panic boundary, last error, pointer checks),
//! [`config`], [`node`], [`reconciler`] (`shivya_complex`); `bindings` is the UniFFI surface.
#![allow(non_camel_case_types)]
#![deny(missing_docs)]
// Every exported function checks its pointers through the helpers in `boundary.rs` before
// touching them; the contract of each pointer is documented on the function.
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]

mod bindings;
mod boundary;
pub mod status;

pub use balance::*;
pub use bindings::*;
pub use config::*;
pub use node::*;
pub use reconciler::*;
pub use trust::*;

uniffi::setup_scaffolding!();

use boundary::{guard_value, with_last_error};
pub use status::shivya_status;
use std::ffi::c_char;

/// The ABI version. It changes only when an existing function or type changes shape.
pub const SHIVYA_ABI_VERSION: u32 = 1;

/// Bytes in a node id.
pub const SHIVYA_ID_LEN: usize = 20;

/// Bytes reserved for a peer address string, including the NUL.
pub const SHIVYA_ADDR_LEN: usize = 64;

/// Most vertices of a workload graph or complex.
pub const SHIVYA_MAX_VERTICES: usize = 1 << 20;

/// Most edges of a workload graph or complex.
pub const SHIVYA_MAX_EDGES: usize = 1 << 23;

/// Most triangles of a complex, given or found as 3-cliques of a workload graph (the
/// complete graph reaches it at about 370 vertices).
pub const SHIVYA_MAX_TRIANGLES: usize = 1 << 23;

/// Largest queue length or offload rate a node records (values are finite and ≥ 0).
pub const SHIVYA_MAX_RECORD_VALUE: f64 = 1e15;

// The header's limits are the core's, checked at compile time.
const _: () = {
    assert!(SHIVYA_MAX_VERTICES == shivya_core::limits::MAX_VERTICES);
    assert!(SHIVYA_MAX_EDGES == shivya_core::limits::MAX_EDGES);
    assert!(SHIVYA_MAX_TRIANGLES == shivya_core::limits::MAX_TRIANGLES);
    assert!(SHIVYA_MAX_RECORD_VALUE == shivya_core::p2p::protocol::MAX_RECORD_VALUE);
};

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Library version as a static NUL-terminated string (never free it). Thread-safe.
#[no_mangle]
pub extern "C" fn shivya_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The ABI version ([`SHIVYA_ABI_VERSION`] of the library actually loaded). Thread-safe.
#[no_mangle]
pub extern "C" fn shivya_abi_version() -> u32 {
    SHIVYA_ABI_VERSION
}

/// A static NUL-terminated name for a status code (never free it); `"unknown"` for a
/// number that is not a status. Takes an `int` so any value is safe to pass. Thread-safe.
#[no_mangle]
pub extern "C" fn shivya_status_name(status: i32) -> *const c_char {
    shivya_status::from_code(status)
        .map_or(c"unknown", shivya_status::name)
        .as_ptr()
}

/// Copies this thread's last error message into `buf` (capacity `cap` bytes, always
/// NUL-terminated when `cap > 0`, truncated if needed) and returns the message's full
/// length in bytes, not counting the NUL. `buf` may be NULL when `cap` is 0 (to ask the
/// length). Returns 0 when there is no message.
#[no_mangle]
pub extern "C" fn shivya_last_error_message(buf: *mut c_char, cap: usize) -> usize {
    guard_value(0, || {
        with_last_error(|msg| {
            if cap > 0 && !buf.is_null() {
                let n = msg.len().min(cap - 1);
                // SAFETY: the caller gives `cap` writable bytes at `buf`; n + 1 <= cap.
                unsafe {
                    std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                    *buf.add(n) = 0;
                }
            }
            msg.len()
        })
    })
}

// The C objects, in the order their items appear in the header.
pub mod balance;
pub mod config;
pub mod node;
pub mod reconciler;
pub mod trust;

#[cfg(test)]
mod tests;
