//! Status codes and the one mapping from the core's errors to them, used by the C ABI
//! and by the UniFFI bindings alike.

use shivya_core::hodge::HodgeError;
use shivya_core::mesh::MeshError;
use shivya_core::p2p::P2pError;
use std::ffi::CStr;

/// Result of every fallible call. The numbers are fixed forever; new codes get new numbers.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shivya_status {
    /// Success.
    SHIVYA_OK = 0,
    /// A NULL pointer, a wrong length, bad UTF-8, an unparsable address, NaN or infinity,
    /// an unknown vertex or edge, or a setting out of range. Nothing changed.
    SHIVYA_ERR_INVALID_ARGUMENT = -1,
    /// The caller's buffer is too small; the needed count was written to `*len`.
    SHIVYA_ERR_BUFFER_TOO_SHORT = -2,
    /// A socket error (including an address already in use).
    SHIVYA_ERR_IO = -3,
    /// A bounded table is full (record entries, DHT store).
    SHIVYA_ERR_CAPACITY = -4,
    /// A numerical layer failed (agent or solver); the node keeps running.
    SHIVYA_ERR_NUMERIC = -5,
    /// Rust code panicked; the panic was stopped at the boundary. Please report it.
    SHIVYA_ERR_PANIC = -6,
    /// An internal invariant broke. Please report it.
    SHIVYA_ERR_INTERNAL = -7,
    /// Another thread is inside a call on the same node; nothing was done. Retry, or give
    /// each thread its own node.
    SHIVYA_ERR_BUSY = -8,
}

pub(crate) use shivya_status::*;

/// Every status, in the order of their numbers.
const ALL: [shivya_status; 9] = [
    SHIVYA_OK,
    SHIVYA_ERR_INVALID_ARGUMENT,
    SHIVYA_ERR_BUFFER_TOO_SHORT,
    SHIVYA_ERR_IO,
    SHIVYA_ERR_CAPACITY,
    SHIVYA_ERR_NUMERIC,
    SHIVYA_ERR_PANIC,
    SHIVYA_ERR_INTERNAL,
    SHIVYA_ERR_BUSY,
];

impl shivya_status {
    /// The status with this number, if there is one.
    pub fn from_code(code: i32) -> Option<shivya_status> {
        ALL.into_iter().find(|s| *s as i32 == code)
    }

    /// The variant's name, as the header spells it.
    pub fn name(self) -> &'static CStr {
        match self {
            SHIVYA_OK => c"SHIVYA_OK",
            SHIVYA_ERR_INVALID_ARGUMENT => c"SHIVYA_ERR_INVALID_ARGUMENT",
            SHIVYA_ERR_BUFFER_TOO_SHORT => c"SHIVYA_ERR_BUFFER_TOO_SHORT",
            SHIVYA_ERR_IO => c"SHIVYA_ERR_IO",
            SHIVYA_ERR_CAPACITY => c"SHIVYA_ERR_CAPACITY",
            SHIVYA_ERR_NUMERIC => c"SHIVYA_ERR_NUMERIC",
            SHIVYA_ERR_PANIC => c"SHIVYA_ERR_PANIC",
            SHIVYA_ERR_INTERNAL => c"SHIVYA_ERR_INTERNAL",
            SHIVYA_ERR_BUSY => c"SHIVYA_ERR_BUSY",
        }
    }
}

/// An error on its way to the C caller.
#[derive(Debug)]
pub(crate) struct Error {
    pub status: shivya_status,
    pub message: String,
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error {
            status: SHIVYA_ERR_INVALID_ARGUMENT,
            message: message.into(),
        }
    }
}

impl From<MeshError> for Error {
    fn from(e: MeshError) -> Error {
        let status = match &e {
            MeshError::Config { .. }
            | MeshError::Topology(_)
            | MeshError::UnknownVertex { .. }
            | MeshError::UnknownEdge { .. }
            | MeshError::SelfEdge { .. }
            | MeshError::BadValue { .. }
            | MeshError::Length { .. }
            | MeshError::Left
            | MeshError::Balancer(_)
            | MeshError::P2p(P2pError::Config { .. }) => SHIVYA_ERR_INVALID_ARGUMENT,
            MeshError::RecordFull { .. } | MeshError::P2p(P2pError::Store { .. }) => {
                SHIVYA_ERR_CAPACITY
            }
            MeshError::P2p(P2pError::Bind { .. }) | MeshError::Io(_) => SHIVYA_ERR_IO,
            MeshError::Agent(_) => SHIVYA_ERR_NUMERIC,
            MeshError::Hodge(h) => hodge_status(h),
            MeshError::Internal(_) => SHIVYA_ERR_INTERNAL,
        };
        Error {
            status,
            message: e.to_string(),
        }
    }
}

/// A solver breakdown is numeric; every other Hodge error names bad input.
fn hodge_status(e: &HodgeError) -> shivya_status {
    match e {
        HodgeError::Breakdown { .. } => SHIVYA_ERR_NUMERIC,
        _ => SHIVYA_ERR_INVALID_ARGUMENT,
    }
}

impl From<HodgeError> for Error {
    fn from(e: HodgeError) -> Error {
        Error {
            status: hodge_status(&e),
            message: e.to_string(),
        }
    }
}
