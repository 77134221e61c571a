//! The deterministic network simulator lives in the library (`shivya_core::mesh::sim`) so
//! `shivya-bench` can use it too; the tests reach it through here.
#![allow(unused_imports)]

pub use shivya_core::mesh::sim::{addr_of, NetConfig, Sim};
