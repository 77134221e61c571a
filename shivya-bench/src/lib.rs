//! Measurements of Shivya, reproducible by one command (`shivya-bench`): the Hodge solver
//! comparison, six load-balancing policies in a simulated cluster, and membership
//! (discovery and partition heal) in the simulator and over real UDP, and the live demo
//! of the README's main job (`shivya-demo`). Results are printed as tables and written as
//! CSV and SVG (see docs/PERFORMANCE.md).
#![warn(missing_docs)]

pub mod cluster;
pub mod complexes;
pub mod demo;
pub mod heap;
pub mod membership;
pub mod peer;
pub mod report;
pub mod scale;
pub mod settle;
pub mod solvers;
